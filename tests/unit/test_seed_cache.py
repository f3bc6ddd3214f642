"""Seeding a cache from an export: verified files moved into place, their sha256 recorded for re-export."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from olivine.datastores import Datastore, Exporter, claim_export, fetch, list_exports
from olivine.digests import DIGESTS_NAME, RecordedDigest, read_digests, write_digests
from olivine.engine.cache import WorkflowCache
from olivine.jobs.exports import seed_cache
from olivine.jobs.progress import export_cache
from olivine.model.handle import ModelHandle

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
FILES = {"model.onnx": os.urandom((1 << 20) + 77), "model.onnx.data": b"weights" * 1000}


def _exported_cache(datastore: Datastore, root: Path) -> None:
    cache = WorkflowCache(root, "wf")
    staging = cache.new_run_dir()
    for name, data in FILES.items():
        (staging / "model" / name).write_bytes(data)
    cache.commit_run("a" * 64, staging, ModelHandle("onnx", {"model_path": str(staging / "model")}), {})
    cache.store_evaluation("e" * 64, {"metrics": {"size": 1}})
    exporter = Exporter(datastore, claim_export(datastore, "wf", T0))
    export_cache(exporter, cache.root, "cache")
    exporter.finalize({"status": "succeeded"}, register_asset=False)


def test_seed_cache_moves_verified_files_and_records_their_sha256(tmp_path: Path) -> None:
    datastore = Datastore.from_url((tmp_path / "store").as_uri())
    _exported_cache(datastore, tmp_path / "first")
    source = list_exports(datastore, "wf")[-1]
    seeded = tmp_path / "job" / "cache" / "wf"
    count = seed_cache(source, seeded, tmp_path / "job" / "seed")

    model_dir = seeded / "runs" / ("a" * 64) / "model"
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == FILES
    assert (seeded / "runs" / ("a" * 64) / "run.json").is_file()
    assert not (tmp_path / "job" / "seed").exists()
    records = read_digests(seeded)
    on_disk = {
        p.relative_to(seeded).as_posix() for p in seeded.rglob("*") if p.is_file() and p.name != DIGESTS_NAME
    }
    assert set(records) == on_disk and count == len(on_disk)
    for rel, record in records.items():
        path = seeded / rel
        assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record.matches(path.stat())


def test_seeded_cache_exports_again_with_verifiable_hashes(tmp_path: Path) -> None:
    datastore = Datastore.from_url((tmp_path / "store").as_uri())
    _exported_cache(datastore, tmp_path / "first")
    source = list_exports(datastore, "wf")[-1]
    seeded = tmp_path / "job" / "cache" / "wf"
    seed_cache(source, seeded, tmp_path / "job" / "seed")
    second = claim_export(datastore, "wf", T0 + timedelta(minutes=1))
    exporter = Exporter(datastore, second)
    export_cache(exporter, seeded, "cache")
    exporter.finalize({"status": "succeeded"}, register_asset=False)
    # fetch verifies every file against the new manifest, whose hashes came from the records.
    fetched = fetch(datastore, second, "cache", tmp_path / "back")
    assert sorted(p.name for p in fetched if p.parent.name == "model") == sorted(FILES)
    assert not any(p.name == DIGESTS_NAME for p in fetched)


def test_seeded_records_are_what_the_next_export_uses(tmp_path: Path) -> None:
    datastore = Datastore.from_url((tmp_path / "store").as_uri())
    _exported_cache(datastore, tmp_path / "first")
    seeded = tmp_path / "job" / "cache" / "wf"
    seed_cache(list_exports(datastore, "wf")[-1], seeded, tmp_path / "job" / "seed")
    # A record that lies while the stat matches is taken as is: proof that the export did not hash.
    rel = f"runs/{'a' * 64}/model/model.onnx"
    records = read_digests(seeded)
    records[rel] = RecordedDigest.of((seeded / rel).stat(), "0" * 64)
    write_digests(seeded, records)
    exporter = Exporter(datastore, claim_export(datastore, "wf", T0 + timedelta(minutes=2)))
    export_cache(exporter, seeded, "cache")
    manifest = exporter.finalize({"status": "succeeded"}, register_asset=False)
    assert {f["path"]: f["sha256"] for f in manifest["files"]}[f"cache/{rel}"] == "0" * 64
