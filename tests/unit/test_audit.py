"""Auditing a datastore and a cache finds corruption and inconsistency; fixing a cache rebuilds misses."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from olivine.datastores import Datastore, Exporter, claim_export
from olivine.datastores.audit import audit_datastore
from olivine.datastores.files import json_bytes
from olivine.engine.cache import WorkflowCache
from olivine.jobs.progress import export_cache
from olivine.model.handle import ModelHandle

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def _cache(root: Path) -> WorkflowCache:
    cache = WorkflowCache(root, "wf")
    staging = cache.new_run_dir()
    (staging / "model" / "model.onnx").write_bytes(b"model" * 100)
    cache.commit_run("a" * 64, staging, ModelHandle("onnx", {"model_path": str(staging / "model")}), {})
    cache.store_evaluation("e" * 64, {"metrics": {}})
    return cache


def _export(datastore: Datastore, root: Path, when: datetime = T0, *, seal: bool = True) -> str:
    cache = _cache(root)
    layout = claim_export(datastore, "wf", when)
    exporter = Exporter(datastore, layout)
    export_cache(exporter, cache.root, "cache")
    exporter.write_status({"state": "SUCCEEDED" if seal else "RUNNING"})
    if seal:
        exporter.finalize({"status": {"state": "SUCCEEDED"}}, register_asset=True)
    return layout.root


def test_audit_of_a_clean_datastore_finds_nothing(tmp_path: Path) -> None:
    datastore = Datastore.from_url((tmp_path / "store").as_uri())
    _export(datastore, tmp_path / "c")
    assert audit_datastore(datastore, hashes=True) == []


def test_audit_finds_damage_split_state_unsealed_future_and_bad_assets(tmp_path: Path) -> None:
    datastore = Datastore.from_url((tmp_path / "store").as_uri())
    root = _export(datastore, tmp_path / "c1")
    base = tmp_path / "store" / root
    victim = next(p for p in (base / "cache").rglob("model.onnx"))
    os.chmod(victim, 0o600)
    victim.write_bytes(b"MODEL" * 100)  # same size, other content
    datastore.put_bytes(f"{root}/status.json", json_bytes({"state": "FAILED"}), overwrite=True)
    _export(datastore, tmp_path / "c2", T0 + timedelta(minutes=1), seal=False)
    _export(datastore, tmp_path / "c3", datetime.now(timezone.utc) + timedelta(days=400))
    asset = tmp_path / "store" / "assets" / "wf" / f"{root.split('/')[0]}.json"
    record = json.loads(asset.read_text())
    os.chmod(asset, 0o600)
    asset.write_text(json.dumps({**record, "path": "../../home/user"}))
    kinds = {f.kind for f in audit_datastore(datastore, hashes=True)}
    assert {"sha256", "split", "unsealed", "future", "asset"} <= kinds
    assert "sha256" not in {f.kind for f in audit_datastore(datastore, hashes=False)}


def test_cache_audit_reports_then_fix_removes_corrupt_entries(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    model = cache.runs / ("a" * 64) / "model" / "model.onnx"
    model.write_bytes(b"x" * 500)
    (cache.evaluations / ("e" * 64 + ".json")).write_text("{truncated")
    problems = cache.audit()
    assert len(problems) == 2 and model.exists()
    assert len(cache.audit(fix=True)) == 2
    assert cache.audit() == [] and not model.exists()
