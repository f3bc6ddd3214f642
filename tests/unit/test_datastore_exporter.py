"""Exporter rules beyond the conformance suite: reserved paths, skips, status, logs, finalize."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from olivine.datastores import Exporter, ExportLayout, claim_export, list_assets, read_log, show
from olivine.datastores.exporter import default_skip
from olivine.datastores.local import LocalDatastore
from olivine.errors import DatastoreError

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.fixture
def exporter(tmp_path: Path) -> Exporter:
    ds = LocalDatastore(tmp_path / "store")
    return Exporter(ds, claim_export(ds, "wf", T0))


def _file(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_exporter_refuses_reserved_paths(exporter: Exporter, tmp_path: Path) -> None:
    local = _file(tmp_path / "f")
    for rel in ("manifest.json", "status.json", "logs/worker/000001.log", ".olivine/claim.json", "logs"):
        with pytest.raises(DatastoreError, match="reserved"):
            exporter.export_file(local, rel)


def test_exporter_export_file_is_idempotent(exporter: Exporter, tmp_path: Path) -> None:
    local = _file(tmp_path / "m.onnx", b"model")
    first = exporter.export_file(local, "output/m.onnx")
    assert exporter.export_file(local, "output/m.onnx") == first
    assert exporter.datastore.read_bytes(exporter.layout.path("output/m.onnx")) == b"model"


def test_exporter_skips_temporary_files(exporter: Exporter, tmp_path: Path) -> None:
    src = tmp_path / "cache"
    for name in ("model.onnx", "model.onnx.tmp", ".model.onnx.tmp123", "w.part", "run.lock", "x.tmp-9"):
        _file(src / name)
    result = exporter.export_tree(src, "cache")
    assert [e.path for e in result.copied] == ["cache/model.onnx"]
    assert default_skip(Path("a.partial"))


def test_exporter_copies_many_files_concurrently(exporter: Exporter, tmp_path: Path) -> None:
    src = tmp_path / "cache"
    blobs = {f"run{i}/model.bin": os.urandom((1 << 20) + i) for i in range(6)}
    for rel, data in blobs.items():
        _file(src / rel, data)
    result = exporter.export_tree(src, "cache")
    assert sorted(e.path for e in result.copied) == sorted(f"cache/{rel}" for rel in blobs)
    for rel, data in blobs.items():
        assert exporter.datastore.read_bytes(exporter.layout.path(f"cache/{rel}")) == data


def test_exporter_export_tree_needs_a_folder(exporter: Exporter, tmp_path: Path) -> None:
    with pytest.raises(DatastoreError, match="not a folder"):
        exporter.export_tree(tmp_path / "missing", "cache")


def test_exporter_status_is_redacted_and_writable_after_finalize(exporter: Exporter) -> None:
    exporter.write_status({"state": "running", "datastore": {"url": "az://c", "account_key": "K"}})
    assert exporter.layout.read_status() == {"state": "running", "datastore": {"url": "az://c"}}
    manifest = exporter.finalize()
    assert manifest["status"] == {"state": "running", "datastore": {"url": "az://c"}}
    exporter.write_status({"state": "succeeded"})
    assert exporter.layout.read_status() == {"state": "succeeded"}


def test_exporter_finalize_registers_the_asset(exporter: Exporter) -> None:
    exporter.finalize({"status": "succeeded", "metrics": {"latency_ms": 5.0}, "host": "LocalWorker"})
    assert [(a.name, a.versions) for a in list_assets(exporter.datastore)] == [
        ("wf", ("2024-05-06-07-08-09",))
    ]
    summary = show(exporter.datastore, "wf")["summary"]
    assert summary["status"] == "succeeded" and summary["metrics"] == {"latency_ms": 5.0}
    manifest = json.loads(exporter.datastore.read_bytes(exporter.layout.manifest))
    assert manifest["extra"] == {"host": "LocalWorker"}


def test_exporter_finalize_without_asset(tmp_path: Path) -> None:
    ds = LocalDatastore(tmp_path)
    Exporter(ds, ExportLayout(ds, T0, "wf")).finalize(register_asset=False)
    assert list_assets(ds) == []


def test_exporter_finalize_twice_is_refused(exporter: Exporter) -> None:
    exporter.finalize()
    with pytest.raises(DatastoreError, match="finalized"):
        exporter.finalize()
    with pytest.raises(DatastoreError, match="finalized"):
        exporter.append_log("late\n")


def test_exporter_export_log_reships_a_shrunk_file(
    exporter: Exporter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = _file(tmp_path / "engine.log", b"first run, a long line\n")
    exporter.export_log(log)
    log.write_bytes(b"rotated\n")
    with caplog.at_level(logging.WARNING, logger="olivine.datastores.exporter"):
        assert exporter.export_log(log) == len(b"rotated\n")
    assert "shrank" in caplog.text
    assert read_log(exporter.datastore, exporter.layout, "engine") == "first run, a long line\nrotated\n"
    assert exporter.export_log(log) == 0


def test_exporter_restores_an_output_file_deleted_before_the_seal(exporter: Exporter, tmp_path: Path) -> None:
    out = tmp_path / "output"
    _file(out / "model" / "model.onnx", b"model")
    _file(out / "model" / "weights.data", b"weights")
    _file(out / "metrics.json", b"{}")
    exporter.export_tree(out, "output")
    store = Path(exporter.datastore.root)  # type: ignore[attr-defined]
    (store / exporter.layout.path("output/model/model.onnx")).unlink()  # someone else's clean-up
    assert exporter.restore_missing("output") == []
    assert exporter.datastore.read_bytes(exporter.layout.path("output/model/model.onnx")) == b"model"
    # Gone from the datastore and changed locally, or changed on the datastore: it cannot be vouched for.
    (store / exporter.layout.path("output/model/weights.data")).unlink()
    (out / "model" / "weights.data").write_bytes(b"other")
    os.chmod(store / exporter.layout.path("output/metrics.json"), 0o600)
    (store / exporter.layout.path("output/metrics.json")).write_bytes(b"{tampered}")
    assert exporter.restore_missing("output") == ["output/metrics.json", "output/model/weights.data"]
