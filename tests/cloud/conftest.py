"""Session-scoped object-store servers for the ``azure`` and ``s3`` tiers, started on first use and
stopped by PID (Azurite) or by moto's own stop (in-process) at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cloud_servers import AZURITE_ACCOUNT, CONTAINER, MOTO_ENV, Azurite, Cloud, MotoS3, fresh_prefix
from http_meter import MeteringProxy


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


@pytest.fixture(
    params=[pytest.param("azure", marks=pytest.mark.azure), pytest.param("s3", marks=pytest.mark.s3)]
)
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    if request.param == "azure":
        server: Azurite | MotoS3 = request.getfixturevalue("azure_env")
        proxy = MeteringProxy(server.port).start()
        endpoint = f"http://127.0.0.1:{proxy.port}/{AZURITE_ACCOUNT}"
        assert isinstance(server, Azurite)
        options: dict[str, Any] = {"connection_string": server.connection_string(endpoint)}
        url = f"az://{CONTAINER}/{fresh_prefix()}"
    else:
        server = request.getfixturevalue("s3_env")
        proxy = MeteringProxy(server.port).start()
        options = {"endpoint_url": f"http://127.0.0.1:{proxy.port}"}
        url = f"s3://{CONTAINER}/{fresh_prefix()}"
    try:
        yield Cloud(request.param, server, proxy, url, options)
    finally:
        proxy.stop()
