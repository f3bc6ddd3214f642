"""manifest.json content, entry selection and resumable fetch."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from olivine.datastores import Exporter, ExportLayout, build_manifest, claim_export, fetch, read_manifest
from olivine.datastores.files import FileEntry
from olivine.datastores.local import LocalDatastore
from olivine.datastores.manifest import export_entries, library_versions
from olivine.errors import DatastoreError

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.fixture
def finished(tmp_path: Path) -> tuple[LocalDatastore, ExportLayout, Path]:
    src = tmp_path / "src"
    for rel, data in {
        "cache/a.bin": b"a" * 10,
        "output/m.onnx": b"m" * 20,
        "output/sub/x.json": b"{}",
    }.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    ds = LocalDatastore(tmp_path / "store")
    layout = claim_export(ds, "wf", T0)
    exporter = Exporter(ds, layout)
    exporter.export_tree(src)
    exporter.finalize({"status": "succeeded"})
    return ds, layout, src


def test_build_manifest_redacts_config_and_records_versions(tmp_path: Path) -> None:
    layout = ExportLayout(LocalDatastore(tmp_path), T0, "wf")
    files = [FileEntry("output/b", 2, "b" * 64), FileEntry("cache/a", 1, "a" * 64)]
    config = {
        "workflow_id": "wf",
        "datastores": {"s": {"url": "az://c", "account_key": "K3y"}},
        "azureml_client": {"connection": "DefaultEndpointsProtocol=https;AccountKey=abc;"},
    }
    manifest = build_manifest(layout, files, config=config, status="succeeded", metrics={"acc": 0.9})
    assert manifest["config"] == {
        "workflow_id": "wf",
        "datastores": {"s": {"url": "az://c"}},
        "azureml_client": {},
    }
    assert [f["path"] for f in manifest["files"]] == ["cache/a", "output/b"]
    assert manifest["totals"] == {"files": 2, "bytes": 3}
    assert manifest["timestamp"] == "2024-05-06-07-08-09" and manifest["workflow_id"] == "wf"
    assert {"python", "fsspec", "pydantic"} <= set(manifest["versions"])
    assert "K3y" not in json.dumps(manifest)


def test_library_versions_reads_metadata_without_importing() -> None:
    assert library_versions()["olivine"]


def test_export_entries_selects_by_part(finished: tuple[LocalDatastore, ExportLayout, Path]) -> None:
    ds, layout, _ = finished
    assert [e.path for e in export_entries(ds, layout, "output")] == ["output/m.onnx", "output/sub/x.json"]
    assert [e.path for e in export_entries(ds, layout, "cache")] == ["cache/a.bin"]
    assert len(export_entries(ds, layout, "all")) == 3
    with pytest.raises(ValueError, match="which"):
        export_entries(ds, layout, "models")  # type: ignore[arg-type]


def test_read_manifest_is_none_before_finalize(tmp_path: Path) -> None:
    ds = LocalDatastore(tmp_path)
    assert read_manifest(ds, claim_export(ds, "wf", T0)) is None


def test_fetch_resumes_without_downloading_good_files(
    finished: tuple[LocalDatastore, ExportLayout, Path], tmp_path: Path
) -> None:
    ds, layout, _ = finished
    out = tmp_path / "out"
    fetch(ds, layout, "output", out)
    kept = out / "output" / "m.onnx"
    inode = kept.stat().st_ino
    (out / "output" / "sub" / "x.json").write_bytes(b"[]")  # damaged local copy: fetched again
    fetch(ds, layout, "output", out)
    assert kept.stat().st_ino == inode
    assert (out / "output" / "sub" / "x.json").read_bytes() == b"{}"


def test_fetch_missing_export_raises(tmp_path: Path) -> None:
    ds = LocalDatastore(tmp_path)
    with pytest.raises(DatastoreError, match="no export"):
        fetch(ds, ExportLayout(ds, T0, "wf"), "all", tmp_path / "out")
