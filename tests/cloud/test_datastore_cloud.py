"""The datastore conformance suite on Azurite (``az://``) and moto's S3 server (``s3://``), plus what
the object-store backends promise beyond it (credentials from the environment, URL forms)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloud_servers import AZURITE_KEY, CONTAINER, MOTO_ENV, Azurite, MotoS3, azure_url, s3_url
from conformance.datastore_suite import DatastoreSuite
from olivine.datastores import Datastore
from olivine.errors import ConfigError, DatastoreError


@pytest.mark.azure
class TestAzureBlobDatastore(DatastoreSuite):
    @pytest.fixture
    def datastore(self, azure_env: Azurite) -> Datastore:
        return Datastore.from_url(azure_url())

    @pytest.fixture
    def secrets(self, azure_env: Azurite) -> list[str]:
        return [AZURITE_KEY, azure_env.connection_string()]


@pytest.mark.s3
class TestS3Datastore(DatastoreSuite):
    @pytest.fixture
    def datastore(self, s3_env: MotoS3) -> Datastore:
        return Datastore.from_url(s3_url())

    @pytest.fixture
    def secrets(self) -> list[str]:
        return [MOTO_ENV["AWS_SECRET_ACCESS_KEY"]]


@pytest.mark.azure
def test_azure_credentials_come_from_options_then_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from olivine.datastores.azure import _credentials

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "envaccount")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "env-key-value")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=env")
    assert _credentials({}) == {"account_name": "envaccount", "account_key": "env-key-value"}
    assert _credentials({"account_name": "mine", "sas_token": "sig=opt", "account_key": ""}) == {
        "account_name": "mine",
        "account_key": "env-key-value",
    }
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_KEY")
    assert _credentials({}) == {"account_name": "envaccount", "sas_token": "sv=1&sig=env"}
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN")
    assert _credentials({}) == {"account_name": "envaccount"}  # DefaultAzureCredential
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "BlobEndpoint=x;AccountKey=k")
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME")
    assert _credentials({}) == {"connection_string": "BlobEndpoint=x;AccountKey=k"}


@pytest.mark.azure
def test_azure_datastore_without_credentials_says_which_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        Datastore.from_url(f"az://{CONTAINER}/x")


@pytest.mark.azure
def test_azure_datastore_refuses_query_string_and_unknown_option(azure_env: Azurite) -> None:
    with pytest.raises(ConfigError, match="query string"):
        Datastore.from_url(f"az://{CONTAINER}/x?sig=abc")
    with pytest.raises(ConfigError, match="unknown az:// datastore option"):
        Datastore.from_url(f"az://{CONTAINER}/x", {"acount_name": "typo"})


@pytest.mark.azure
def test_azure_datastore_creates_missing_container(azure_env: Azurite) -> None:
    ds = Datastore.from_url("az://fresh-container-x/prefix")
    ds.put_bytes("a.txt", b"a")
    assert Datastore.from_url("abfs://fresh-container-x/prefix").read_bytes("a.txt") == b"a"


@pytest.mark.s3
def test_s3_datastore_creates_missing_bucket_and_reads_small_files_through_its_client(
    s3_env: MotoS3,
) -> None:
    ds = Datastore.from_url("s3://fresh-bucket-x/prefix")
    assert ds.read_bytes_if_exists("a.txt") is None  # NoSuchBucket reads as missing
    ds.put_bytes("a.txt", b"a")
    ds.put_bytes("sub/b.txt", b"b")
    again = Datastore.from_url("s3://fresh-bucket-x/prefix")
    assert again.read_bytes("a.txt") == b"a"
    assert again.ls("") == ["a.txt", "sub"]
    assert again.ls("nothing") == []
    with pytest.raises(DatastoreError, match="not found"):
        again.read_bytes("missing.txt")


@pytest.mark.s3
def test_s3_datastore_endpoint_from_option_or_environment(
    s3_env: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = s3_url()
    Datastore.from_url(url).put_bytes("a.txt", b"a")  # AWS_ENDPOINT_URL_S3
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env.endpoint)
    assert Datastore.from_url(url).read_bytes("a.txt") == b"a"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert Datastore.from_url(url, {"endpoint_url": s3_env.endpoint}).read_bytes("a.txt") == b"a"


@pytest.mark.s3
def test_s3_datastore_refuses_unknown_option(s3_env: MotoS3) -> None:
    with pytest.raises(ConfigError, match="unknown s3:// datastore option"):
        Datastore.from_url(s3_url(), {"endpoint": "x"})


@pytest.mark.s3
def test_s3_writes_use_the_options_credentials_and_run_in_the_writing_threads(
    s3_env: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import threading

    import fsspec.asyn

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    secret = "option-secret-value-0123456789"
    ds = Datastore.from_url(
        s3_url(), {"endpoint_url": s3_env.endpoint, "region": "eu-west-1", "key": "opt-key", "secret": secret}
    )
    client = ds._writer()  # type: ignore[attr-defined]
    # The write client is made like s3fs's: same endpoint, region and credentials (from the options).
    assert client.meta.endpoint_url == s3_env.endpoint
    assert client.meta.region_name == "eu-west-1"
    creds = client._request_signer._credentials
    assert (creds.access_key, creds.secret_key) == ("opt-key", secret)
    assert secret not in repr(ds._client_args) and secret not in repr(ds)  # type: ignore[attr-defined]
    senders: list[str] = []
    client.meta.events.register(
        "before-send.s3.*", lambda **_: senders.append(threading.current_thread().name)
    )
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * ds.block_bytes + 5))  # type: ignore[attr-defined]
    ds.put_bytes("a.txt", b"a")
    entry = ds.put_file(big, "big.bin")
    assert ds.read_bytes("a.txt") == b"a" and ds.hash_of("big.bin") == entry
    # the bucket check, the put, start + 3 parts + complete, the read: none on fsspec's event-loop thread.
    assert len(senders) == 8
    loop_thread = fsspec.asyn.iothread[0]
    assert loop_thread is not None and loop_thread.name not in senders
