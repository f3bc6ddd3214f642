"""A real workflow records its files' sha256 at commit and in the output folder; the export trusts them."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from olivine.api import load, run_local
from olivine.datastores import Exporter, claim_export, fetch, verify
from olivine.datastores.local import LocalDatastore
from olivine.digests import DIGESTS_NAME, read_digests
from olivine.jobs.progress import export_cache
from tiny_models import write_onnx_mlp

pytestmark = pytest.mark.integration


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_workflow_records_digests_for_cache_runs_and_output_model(tmp_path: Path) -> None:
    config = {
        "workflow_id": "digests",
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "passes": {"quantize": {"type": "OnnxDynamicQuantization", "per_channel": True}},
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    result = run_local(load(path))
    out = result.output_dir

    runs = [p.parent for p in (tmp_path / "cache").rglob(DIGESTS_NAME) if p.parent.parent.name == "runs"]
    assert len(runs) == 1
    run_records = read_digests(runs[0])
    assert "run.json" in run_records and any(rel.startswith("model/") for rel in run_records)
    out_records = read_digests(out)
    model_files = sorted(p.relative_to(out).as_posix() for p in (out / "model").rglob("*") if p.is_file())
    assert sorted(out_records) == model_files  # every output model file, carried from the run's records
    for records, folder in ((run_records, runs[0]), (out_records, out)):
        for rel, record in records.items():
            assert record.sha256 == _sha(folder / rel)
            assert record.sha256_if_unchanged(folder / rel) == record.sha256

    datastore = LocalDatastore(tmp_path / "store")
    layout = claim_export(datastore, "digests", datetime(2024, 1, 1, tzinfo=timezone.utc))
    exporter = Exporter(datastore, layout)
    export_cache(exporter, tmp_path / "cache", "cache")  # as the worker's final export
    exporter.export_tree(out, "output")
    manifest = exporter.finalize({"status": "succeeded"}, register_asset=False)
    assert not any(item["path"].endswith(DIGESTS_NAME) for item in manifest["files"])
    assert verify(datastore, layout) == []
    fetched = fetch(datastore, layout, "output", tmp_path / "fetched")
    assert {p.relative_to(tmp_path / "fetched" / "output").as_posix() for p in fetched} >= set(model_files)
