"""Exporting a worker's cache: finished runs only, each run's record after its model files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from olivine.datastores.base import Datastore
from olivine.datastores.exporter import Exporter
from olivine.datastores.layout import claim_export
from olivine.jobs.progress import export_cache


def test_export_cache_ships_each_run_record_after_its_model_and_skips_staging(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "shared" / ("b" * 64)).mkdir(parents=True)  # the engine's shared working files: not exported
    (cache / "shared" / ("b" * 64) / "preprocessed.onnx").write_bytes(b"onnx")
    run = cache / "runs" / ("a" * 64)
    (run / "model").mkdir(parents=True)
    (run / "model" / "model.onnx").write_bytes(b"onnx")
    (run / "run.json").write_text("{}")
    (cache / "runs" / ".staging-123" / "model").mkdir(parents=True)
    (cache / "runs" / ".staging-123" / "model" / "half.onnx").write_bytes(b"half")
    (cache / "evaluations").mkdir()
    (cache / "evaluations" / "e.json").write_text("{}")
    store = Datastore.from_url((tmp_path / "ds").as_uri())
    exporter = Exporter(store, claim_export(store, "wf", datetime(2030, 1, 1, tzinfo=timezone.utc)))
    export_cache(exporter, cache, "cache")
    # One index segment per copy batch, in the order the batches were written.
    segments = [
        [f["path"] for f in json.loads(store.read_bytes(rel))["files"]]
        for rel, _ in store.walk_files(exporter.layout.index)
    ]
    run_rel = f"cache/runs/{'a' * 64}"
    assert segments == [
        ["cache/evaluations/e.json", f"{run_rel}/model/model.onnx"],
        [f"{run_rel}/run.json"],
    ]
