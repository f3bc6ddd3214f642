"""Opening datastores by URL, path rules, error wrapping, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from olivine.config.datastores import DatastoreConfig
from olivine.datastores import Datastore
from olivine.datastores.files import TEMP_MARK, clean_rel
from olivine.datastores.local import LocalDatastore
from olivine.errors import ConfigError, DatastoreError, NotSupportedError


def test_datastore_from_url_plain_path_is_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ds = Datastore.from_url("stores/one")
    assert isinstance(ds, LocalDatastore)
    assert ds.root == (tmp_path / "stores" / "one").as_posix()


def test_datastore_from_url_file_uri_is_percent_decoded(tmp_path: Path) -> None:
    ds = Datastore.from_url((tmp_path / "a b").as_uri())
    assert ds.root == (tmp_path / "a b").as_posix()


def test_datastore_from_config(tmp_path: Path) -> None:
    ds = Datastore.from_config(DatastoreConfig(url=str(tmp_path)))
    assert ds.url_for() == tmp_path.as_uri()


def test_datastore_from_url_unknown_scheme_lists_allowed() -> None:
    with pytest.raises(NotSupportedError, match=r"'gs'.*allowed: abfs, abfss, az, azureml, file, memory, s3"):
        Datastore.from_url("gs://bucket/prefix")


def test_datastore_from_url_refuses_options_for_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="anon"):
        Datastore.from_url(str(tmp_path), {"anon": True})


def test_datastore_from_url_file_query_is_refused_without_leaking(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Datastore.from_url(f"{tmp_path.as_uri()}?sv=1&sig=SuperSecretSig")
    assert "SuperSecretSig" not in str(info.value)
    assert tmp_path.as_uri() in str(info.value)


def test_datastore_error_hides_secret_in_path_and_drops_cause(tmp_path: Path) -> None:
    ds = Datastore.from_url(str(tmp_path / "AccountKey=abc123secretvalue"))
    with pytest.raises(DatastoreError, match="not found") as info:
        ds.read_bytes("missing")
    assert "abc123secretvalue" not in str(info.value)
    assert info.value.__cause__ is None
    assert "abc123secretvalue" not in ds.url_for("x")


def test_datastore_error_keeps_harmless_cause(tmp_path: Path) -> None:
    with pytest.raises(DatastoreError) as info:
        LocalDatastore(tmp_path).read_bytes("missing")
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_clean_rel_normalises_and_refuses_escapes() -> None:
    assert clean_rel("/a//b/./c/") == "a/b/c"
    assert clean_rel("") == ""
    for bad in ("a/../b", "..", "a\\b"):
        with pytest.raises(DatastoreError):
            clean_rel(bad)


def test_datastore_put_needs_a_file_path(tmp_path: Path) -> None:
    with pytest.raises(DatastoreError, match="file path is required"):
        LocalDatastore(tmp_path).put_bytes("/", b"x")


def test_datastore_listings_skip_in_flight_temp_files(tmp_path: Path) -> None:
    ds = LocalDatastore(tmp_path)
    ds.put_bytes("d/real", b"1")
    (tmp_path / "d" / f".partial{TEMP_MARK}abc").write_bytes(b"half")
    assert ds.ls("d") == ["real"]
    assert ds.walk_files() == [("d/real", 1)]


def test_import_datastores_loads_no_cloud_or_heavy_library() -> None:
    heavy = ["torch", "onnxruntime", "onnx", "transformers", "azure", "adlfs", "boto3", "botocore", "s3fs"]
    probe = (
        "import sys, json, olivine.datastores, olivine.datastores.local, olivine.datastores.memory\n"
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_datastore_put_file_missing_local_names_the_local_file(tmp_path: Path) -> None:
    with pytest.raises(DatastoreError, match="no such local file"):
        LocalDatastore(tmp_path / "store").put_file(tmp_path / "nope.bin", "a/nope.bin")
