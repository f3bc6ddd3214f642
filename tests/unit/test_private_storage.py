"""The local datastore is user-private (0600 files, 0700 folders) and never follows a symbolic link."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from olivine.datastores import Datastore, Exporter, claim_export
from olivine.datastores.assets import register
from olivine.errors import DatastoreError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_datastore_creates_private_files_and_folders(tmp_path: Path) -> None:
    ds = Datastore.from_url((tmp_path / "store").as_uri())
    ds.put_bytes("a/b/c/file.json", b"{}")
    ds.put_if_absent("a/b/claim.json", b"{}")
    local = tmp_path / "local.bin"
    local.write_bytes(b"x" * 2_000_000)
    local.chmod(0o644)
    ds.put_file(local, "a/big.bin")
    root = tmp_path / "store"
    for folder in (root, root / "a", root / "a" / "b", root / "a" / "b" / "c"):
        assert _mode(folder) == 0o700, folder
    for file in (root / "a/b/c/file.json", root / "a/b/claim.json", root / "a/big.bin"):
        assert _mode(file) == 0o600, file


def test_local_datastore_refuses_to_write_through_a_symlinked_folder(tmp_path: Path) -> None:
    ds = Datastore.from_url((tmp_path / "store").as_uri())
    layout = claim_export(ds, "wf")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "store" / "assets").mkdir()
    (tmp_path / "store" / "assets" / "wf").symlink_to(elsewhere)
    with pytest.raises(DatastoreError, match="symbolic link"):
        register(ds, "wf", layout.folder, {"status": "SUCCEEDED"})
    assert list(elsewhere.iterdir()) == []


def test_local_datastore_refuses_to_read_a_planted_symlink(tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE")
    ds = Datastore.from_url((tmp_path / "store").as_uri())
    layout = claim_export(ds, "wf")
    exporter = Exporter(ds, layout)
    src = tmp_path / "out"
    src.mkdir()
    (src / "model.onnx").write_bytes(b"m")
    exporter.export_tree(src, "output")
    link = Path(ds.fs_path(layout.path("output/key")))
    link.symlink_to(secret)
    with pytest.raises(DatastoreError, match="symbolic link"):
        ds.read_bytes(layout.path("output/key"))
    with pytest.raises(DatastoreError, match="symbolic link"):
        ds.get_file(layout.path("output/key"), tmp_path / "fetched")
    assert not (tmp_path / "fetched").exists()
