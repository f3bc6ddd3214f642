"""A cloud datastore whose extra is not installed is one clear error with the pip command."""

from __future__ import annotations

import sys

import pytest

from olivine.datastores import Datastore
from olivine.errors import MissingDependencyError


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("az://container/prefix", "adlfs", "azure"),
        ("abfs://c/p", "adlfs", "azure"),
        ("s3://bucket/p", "s3fs", "s3"),
    ],
)
def test_cloud_datastore_without_its_extra_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    for name in ("olivine.datastores.azure", "olivine.datastores.s3"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'olivine\[{extra}\]'"):
        Datastore.from_url(url)
