"""Session-scoped object-store servers for the ``azure`` and ``s3`` tiers, started on first use and
stopped by PID (Azurite) or by moto's own stop (in-process) at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud_servers import CONTAINER, MOTO_ENV, Azurite, MotoS3


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite")).start()
    try:
        server.create_container(CONTAINER)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3().start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in MOTO_ENV.items():
                mp.setenv(key, value)
            server.create_bucket(CONTAINER)
        yield server
    finally:
        server.stop()


@pytest.fixture
def azure_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    """Azurite's credentials in the standard variable, as a user would set them."""
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
    return azurite


@pytest.fixture
def s3_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """moto's endpoint and test credentials in the standard AWS variables."""
    for key, value in MOTO_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3.endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_s3
