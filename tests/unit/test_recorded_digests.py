"""Recorded digests: hashed once at commit, trusted by the exporter only while the file's stat holds."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from olivine.datastores import Datastore, Exporter, ExportLayout, claim_export, fetch, verify
from olivine.digests import (
    DIGESTS_NAME,
    RecordedDigest,
    hash_recorded,
    read_digests,
    record_folder,
    write_digests,
)
from olivine.engine.cache import WorkflowCache
from olivine.errors import IntegrityError
from olivine.jobs.progress import export_cache
from olivine.model.handle import ModelHandle

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
BIG = (1 << 20) + 4321  # above the local backend's small-file threshold: the kernel-copy path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["file", "memory"])
def datastore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Datastore]:
    if request.param == "file":
        yield Datastore.from_url((tmp_path / "store").as_uri())
        return
    ds = Datastore.from_url(f"memory://olivine-digests-{uuid.uuid4().hex}")
    yield ds
    if ds.fs.exists(ds.root):
        ds.fs.rm(ds.root, recursive=True)  # the memory filesystem is process-wide


def _commit(cache: WorkflowCache, files: dict[str, bytes], key: str = "k" * 64) -> Path:
    staging = cache.new_run_dir()
    for name, data in files.items():
        (staging / "model" / name).write_bytes(data)
    model = ModelHandle("onnx", {"model_path": str(staging / "model")})
    return cache.commit_run(key, staging, model, {"pass_name": "p"}).run_dir


def _export(datastore: Datastore, cache: WorkflowCache) -> tuple[ExportLayout, dict[str, str]]:
    """Export the cache as the worker does; returns the layout and the manifest's sha256 by path."""
    layout = claim_export(datastore, "wf", T0)
    exporter = Exporter(datastore, layout)
    export_cache(exporter, cache.root, "cache")
    manifest = exporter.finalize({"status": "succeeded"}, register_asset=False)
    return layout, {item["path"]: item["sha256"] for item in manifest["files"]}


def _forge(run_dir: Path, rel: str, sha256: str) -> None:
    """Make the run's record of ``rel`` lie about its content while its stat still matches."""
    records = read_digests(run_dir)
    records[rel] = RecordedDigest.of(os.stat(run_dir / rel), sha256)
    write_digests(run_dir, records)


def test_record_folder_hashes_every_file_but_itself(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.bin").write_bytes(b"x" * 10)
    (tmp_path / "top.json").write_bytes(b"{}")
    records = record_folder(tmp_path)
    assert {rel: r.sha256 for rel, r in records.items()} == {
        "a/b/x.bin": _sha(b"x" * 10),
        "top.json": _sha(b"{}"),
    }
    assert read_digests(tmp_path) == records
    assert record_folder(tmp_path) == records  # the sidecar does not record itself


def test_read_digests_is_empty_when_sidecar_missing_corrupt_or_foreign(tmp_path: Path) -> None:
    assert read_digests(tmp_path) == {}
    (tmp_path / DIGESTS_NAME).write_text("{not json")
    assert read_digests(tmp_path) == {}
    (tmp_path / DIGESTS_NAME).write_text(json.dumps({"format": "other/9", "files": {}}))
    assert read_digests(tmp_path) == {}


def test_recorded_digest_goes_stale_when_content_changes_even_with_mtime_restored(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    record = hash_recorded(path)
    assert record.sha256_if_unchanged(path) == _sha(b"a" * 100)
    before = os.stat(path)
    path.write_bytes(b"b" * 100)  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == record.mtime_ns
    assert record.sha256_if_unchanged(path) is None  # ctime moved: the record no longer vouches


def test_cache_commit_records_digests_of_model_and_run_record(tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path, "wf")
    run_dir = _commit(cache, {"model.onnx": b"weights"})
    records = read_digests(run_dir)
    assert set(records) == {"model/model.onnx", "run.json"}
    assert records["model/model.onnx"].sha256 == _sha(b"weights")
    assert records["run.json"].sha256 == _sha((run_dir / "run.json").read_bytes())
    assert all(r.sha256_if_unchanged(run_dir / rel) for rel, r in records.items())  # survive the rename
    assert cache.load_run("k" * 64) is not None


def test_export_uses_recorded_sha256_without_hashing(datastore: Datastore, tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path, "wf")
    run_dir = _commit(cache, {"big.bin": os.urandom(BIG), "small.bin": b"s"})
    # A record that lies with a matching stat is taken as is: proof that the file was not hashed.
    _forge(run_dir, "model/big.bin", "0" * 64)
    _forge(run_dir, "model/small.bin", "1" * 64)
    _, shas = _export(datastore, cache)
    rel = f"cache/runs/{'k' * 64}"
    assert shas[f"{rel}/model/big.bin"] == "0" * 64
    assert shas[f"{rel}/model/small.bin"] == "1" * 64
    assert f"{rel}/{DIGESTS_NAME}" not in shas  # local bookkeeping, never exported


def test_export_hashes_file_when_record_is_stale(datastore: Datastore, tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path, "wf")
    run_dir = _commit(cache, {"big.bin": os.urandom(BIG), "grown.bin": b"abc"})
    big = run_dir / "model" / "big.bin"
    before = os.stat(big)
    new_big = os.urandom(BIG)
    big.write_bytes(new_big)  # same size, mtime restored: only ctime and content differ
    os.utime(big, ns=(before.st_atime_ns, before.st_mtime_ns))
    (run_dir / "model" / "grown.bin").write_bytes(b"abcd")
    layout, shas = _export(datastore, cache)
    rel = f"cache/runs/{'k' * 64}/model"
    assert shas[f"{rel}/big.bin"] == _sha(new_big)
    assert shas[f"{rel}/grown.bin"] == _sha(b"abcd")
    assert verify(datastore, layout) == []


def test_export_of_cache_without_records_hashes_as_before(datastore: Datastore, tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path, "wf")
    run_dir = _commit(cache, {"model.onnx": b"older cache"})
    (run_dir / DIGESTS_NAME).unlink()
    layout, shas = _export(datastore, cache)
    assert shas[f"cache/runs/{'k' * 64}/model/model.onnx"] == _sha(b"older cache")
    assert verify(datastore, layout) == []


def test_fetch_refuses_file_whose_record_lied(datastore: Datastore, tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path, "wf")
    run_dir = _commit(cache, {"model.onnx": os.urandom(BIG)})
    _forge(run_dir, "model/model.onnx", "f" * 64)
    layout, _ = _export(datastore, cache)
    with pytest.raises(IntegrityError, match="does not match"):
        fetch(datastore, layout, "cache", tmp_path / "fetched")
    assert not (tmp_path / "fetched" / "cache" / "runs" / ("k" * 64) / "model" / "model.onnx").exists()


def test_exporter_restarted_skips_exported_file_by_its_record(datastore: Datastore, tmp_path: Path) -> None:
    cache = WorkflowCache(tmp_path, "wf")
    _commit(cache, {"model.onnx": b"once"})
    layout = claim_export(datastore, "wf", T0)
    Exporter(datastore, layout).export_tree(cache.root, "cache")
    again = Exporter(datastore, layout).export_tree(cache.root, "cache")  # a new exporter: no memory
    assert again.copied == [] and again.skipped == 2
