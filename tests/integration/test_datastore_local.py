"""The datastore conformance suite on ``file://``, plus what only the local backend promises."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from conformance.datastore_suite import DatastoreSuite
from olivine.datastores import Datastore
from olivine.datastores.local import LocalDatastore

pytestmark = pytest.mark.integration


class TestLocalDatastore(DatastoreSuite):
    @pytest.fixture
    def datastore(self, tmp_path: Path) -> Datastore:
        return Datastore.from_url((tmp_path / "store").as_uri())


def test_local_datastore_leaves_no_temp_files(tmp_path: Path) -> None:
    ds = LocalDatastore(tmp_path / "store")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    ds.put_file(big, "a/big.bin")
    ds.put_bytes("a/small", b"x")
    ds.put_bytes("a/status.json", b"{}", overwrite=True)
    ds.put_if_absent("a/claim", b"1")
    ds.put_if_absent("a/claim", b"2")
    names = sorted(p.name for p in (tmp_path / "store" / "a").iterdir())
    assert names == ["big.bin", "claim", "small", "status.json"]


def test_local_datastore_put_if_absent_when_filesystem_has_no_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some filesystems (FAT, some FUSE mounts) refuse link(); the O_EXCL fallback must keep one winner.
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    ds = LocalDatastore(tmp_path / "store")
    assert ds.put_if_absent("claim", b"first") is True
    assert ds.put_if_absent("claim", b"second") is False
    assert ds.read_bytes("claim") == b"first"
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["claim"]


def test_local_datastore_url_is_a_file_uri(tmp_path: Path) -> None:
    ds = LocalDatastore(tmp_path / "my store")
    assert ds.url_for("x y/z") == (tmp_path / "my store" / "x y" / "z").as_uri()
    assert Datastore.from_url(ds.url_for()).root == ds.root
