"""Azure Blob datastores: ``az://<container>/<prefix>`` (also ``abfs://`` and
``abfs[s]://<container>@<account>.dfs.core.windows.net/<prefix>``), through adlfs and azure-storage-blob.

Credentials come, in this order, from the datastore's options in the user's hosts file
(``connection_string``, or ``account_name`` with ``account_key`` / ``sas_token``), then from the standard
environment variables ``AZURE_STORAGE_CONNECTION_STRING``, ``AZURE_STORAGE_ACCOUNT_NAME`` with
``AZURE_STORAGE_ACCOUNT_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``; an account name alone means
``DefaultAzureCredential`` (managed identity, ``az login``, ...). A workflow file never holds them
(:mod:`olivine.config.datastores` refuses the keys), and every message is scrubbed of them.

Other options: ``account_host`` (a custom endpoint host), ``anon`` (public container), the retry options
of :class:`~olivine.datastores.objectstore.RetrySettings`, ``connection_timeout_s`` / ``read_timeout_s``,
``max_concurrency`` (blocks of one file staged at once).

Requests are retried on 408, 429, 5xx and connection errors with capped exponential backoff (the storage
SDK's own default waits 15 s and more between tries and gives up on 429 at once).
"""

from __future__ import annotations

import base64
import logging
import random
import re
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar

import adlfs  # noqa: F401  (fails early with the install hint when the extra is missing)
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.storage.blob import ExponentialRetry as SyncExponentialRetry
from azure.storage.blob.aio import ExponentialRetry

from olivine.datastores.objectstore import (
    ObjectStoreDatastore,
    RetrySettings,
    block_pool,
    check_options,
    env_or,
    split_root,
)
from olivine.datastores.redact import secret_values
from olivine.errors import ConfigError

logger = logging.getLogger(__name__)
_DFS_HOST = re.compile(r"^(?P<container>[^@/]+)@(?P<account>[^./]+)\.(dfs|blob)\.core\.windows\.net$")
_SECRET_OPTIONS = ("connection_string", "account_key", "sas_token")
_KNOWN = {
    "account_name",
    "account_host",
    "anon",
    "max_concurrency",
    "connection_timeout_s",
    "read_timeout_s",
    *_SECRET_OPTIONS,
}


class AzureBlobDatastore(ObjectStoreDatastore):
    """A datastore in an Azure Blob container (or Azurite)."""

    scheme = "az"
    # Fewer, larger blocks than the other object stores: each request costs the service (Azurite
    # most of all) more than its bytes do. Two in flight per file plus the one being read: 48 MiB of
    # memory per file uploading (8 MiB x (4 + 1) was 40).
    block_bytes: ClassVar[int] = 16 << 20
    file_concurrency: int = 2

    @classmethod
    def open_url(cls, url: str, options: dict[str, Any]) -> AzureBlobDatastore:
        from adlfs import AzureBlobFileSystem

        opts = dict(options)
        retry = RetrySettings.pop_from(opts)
        check_options("az", opts, _KNOWN)
        url = _account_in_host(url, opts)
        container, prefix = split_root(url, ("az", "abfs", "abfss"))
        creds = _credentials(opts)
        fs = AzureBlobFileSystem(
            **creds,
            account_host=opts.get("account_host"),
            anon=bool(opts.get("anon", False)),
            max_concurrency=int(opts.get("max_concurrency", 4)),
            connection_timeout=int(opts.get("connection_timeout_s", 20)),
            read_timeout=int(opts.get("read_timeout_s", 120)),
            skip_instance_cache=True,
            use_listings_cache=False,
            assume_container_exists=True,
        )
        fs.service_client = _service_client(fs, retry)
        root = f"{container}/{prefix}" if prefix else container
        store = cls(fs, root, secrets=secret_values(creds))
        store._retry = retry
        # Blocks of one file staged at once (the upload's window: memory is this many blocks per file).
        store.file_concurrency = int(opts.get("max_concurrency", cls.file_concurrency))
        store._pool_size = cls.put_concurrency * (store.file_concurrency + 1)
        return store

    _retry: RetrySettings = RetrySettings()
    _pool_size: int = 40
    _client: Any = None
    _client_lock: ClassVar[threading.Lock] = threading.Lock()

    def _url_of(self, full: str) -> str:
        return f"az://{full.lstrip('/')}"

    async def _list_prefix(self, container: str, prefix: str) -> list[str]:
        client = self.fs.service_client.get_container_client(container)
        return [item.name async for item in client.walk_blobs(name_starts_with=prefix, delimiter="/")]

    # -- writes: the synchronous storage client, called from the writing threads -------------------
    def connect(self) -> None:
        """Make the write client now (otherwise it is made on first use)."""
        self._writer()

    def _writer(self) -> Any:
        """The synchronous BlobServiceClient for writes, made once per datastore."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = _sync_service_client(self.fs, self._retry, self._pool_size)
        return self._client

    def _blob(self, full: str) -> Any:
        container, path, _ = self.fs.split_path(full)
        return self._writer().get_blob_client(container, path)

    def _put_object(self, full: str, data: bytes, *, exclusive: bool) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        try:
            # overwrite=False is If-None-Match: * (the service answers it atomically). adlfs marks
            # files so (its listings read the flag): the same as its own uploads.
            self._blob(full).upload_blob(
                data, length=len(data), overwrite=not exclusive, metadata={"is_directory": "false"}
            )
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise FileExistsError(full) from exc

    def _begin_blocks(self, full: str) -> _BlockUpload:
        # A fresh id prefix per upload: two writers racing for one name never commit each other's blocks.
        return _BlockUpload(self._blob(full), uuid.uuid4().hex)

    def _submit_block(self, upload: _BlockUpload, index: int, data: bytes) -> Future[str]:
        return block_pool().submit(self._stage_block, upload, index, data)

    def _stage_block(self, upload: _BlockUpload, index: int, data: bytes) -> str:
        block_id = base64.b64encode(f"{upload.prefix}-{index:06d}".encode()).decode()
        upload.client.stage_block(block_id, data, length=len(data))
        return block_id

    def _finish_blocks(self, upload: _BlockUpload, parts: list[Any], exclusive: bool) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        condition = {"match_condition": MatchConditions.IfMissing} if exclusive else {}
        try:
            upload.client.commit_block_list(parts, metadata={"is_directory": "false"}, **condition)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise FileExistsError(upload.client.blob_name) from exc

    def _ensure_container(self) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        container = self.root.split("/", 1)[0]
        try:
            self._writer().create_container(container)
            logger.info("created container %s", self._url_of(container))
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if exc.status_code != 403:  # a SAS for one container may not create one: assume it is there
                raise


def _account_in_host(url: str, opts: dict[str, Any]) -> str:
    """``abfs://<container>@<account>.dfs.core.windows.net/x`` -> ``abfs://<container>/x``, noting the
    account in ``opts``."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    match = _DFS_HOST.match(host)
    if not match:
        return url
    opts.setdefault("account_name", match["account"])
    return f"{scheme}://{match['container']}/{path}"


def _credentials(opts: dict[str, Any]) -> dict[str, Any]:
    """adlfs keyword arguments for the credential, from the options or the standard variables."""
    connection_string = env_or(opts, "connection_string", "AZURE_STORAGE_CONNECTION_STRING")
    if connection_string and not opts.get("account_name"):
        return {"connection_string": str(connection_string)}
    account = env_or(opts, "account_name", "AZURE_STORAGE_ACCOUNT_NAME")
    if not account:
        raise ConfigError(
            "az:// datastore: no Azure Storage account; set AZURE_STORAGE_CONNECTION_STRING or "
            "AZURE_STORAGE_ACCOUNT_NAME (with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, or "
            "neither for DefaultAzureCredential), or the datastore's options in the hosts file"
        )
    creds: dict[str, Any] = {"account_name": str(account)}
    key = env_or(opts, "account_key", "AZURE_STORAGE_ACCOUNT_KEY")
    sas = env_or(opts, "sas_token", "AZURE_STORAGE_SAS_TOKEN")
    if key:
        creds["account_key"] = str(key)
    elif sas:
        creds["sas_token"] = str(sas)
    return creds


def _service_client(fs: Any, retry: RetrySettings) -> Any:
    """An async BlobServiceClient like the one adlfs builds, with our retry policy and timeouts (for
    reads and listings through adlfs)."""
    from azure.storage.blob.aio import BlobServiceClient

    block = AzureBlobDatastore.block_bytes
    kwargs: dict[str, Any] = {
        # Uploads above one block are staged by the datastore itself (_stage_block); this keeps any
        # other SDK upload as bounded, each block read into bytes first so a retry can resend it.
        "max_single_put_size": block,
        "max_block_size": block,
        "use_byte_buffer": True,
        "retry_policy": _CappedRetry(retry),
        **fs._timeout_kwargs,
    }
    if fs.connection_string:
        return BlobServiceClient.from_connection_string(fs.connection_string, **kwargs)
    account_url = fs.account_url
    credential = fs.credential or fs.account_key
    if credential is None and fs.sas_token:
        account_url += fs.sas_token if fs.sas_token.startswith("?") else f"?{fs.sas_token}"
    return BlobServiceClient(account_url, credential=credential, **kwargs)


def _sync_service_client(fs: Any, retry: RetrySettings, pool_size: int) -> Any:
    """A synchronous BlobServiceClient with the same account, credential, retry policy and timeouts as
    :func:`_service_client`, whose connection pool holds ``pool_size`` connections (every file and
    block in flight; the default of 10 would open and drop connections)."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.blob import BlobServiceClient
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    # As azure-core's own session: the SDK's retry policy retries, urllib3 does not.
    adapter = HTTPAdapter(
        pool_maxsize=pool_size, max_retries=Retry(total=False, redirect=False, raise_on_status=False)
    )
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    transport = RequestsTransport(session=session, session_owner=False, **fs._timeout_kwargs)
    block = AzureBlobDatastore.block_bytes
    kwargs: dict[str, Any] = {
        "max_single_put_size": block,
        "max_block_size": block,
        "retry_policy": _CappedRetrySync(retry),
        "transport": transport,
    }
    if fs.connection_string:
        return BlobServiceClient.from_connection_string(fs.connection_string, **kwargs)
    account_url = fs.account_url
    # adlfs keeps a synchronous twin of the async credentials it makes (DefaultAzureCredential, ...).
    credential = getattr(fs, "sync_credential", None) or fs.account_key
    if credential is None and fs.sas_token:
        account_url += fs.sas_token if fs.sas_token.startswith("?") else f"?{fs.sas_token}"
    return BlobServiceClient(account_url, credential=credential, **kwargs)


@dataclass(frozen=True)
class _BlockUpload:
    client: Any  # azure.storage.blob.BlobClient
    prefix: str


class _Capped:
    """Backoff doubling from ``backoff_s`` up to ``max_backoff_s`` for the storage retry policies."""

    _settings: RetrySettings

    def __init__(self, retry: RetrySettings) -> None:
        n = retry.attempts - 1
        super().__init__(  # type: ignore[call-arg]
            retry_total=n, retry_connect=n, retry_read=n, retry_status=n, random_jitter_range=0
        )
        self._settings = retry

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        backoff = self._settings.backoff_s * (2 ** settings["count"])
        return float(min(backoff, self._settings.max_backoff_s) * random.uniform(0.8, 1.0))


class _CappedRetry(_Capped, ExponentialRetry):
    """The async storage retry policy (reads, listings), with :class:`_Capped` backoff, that also
    retries 429 (the storage SDK treats every 4xx but 408 as final)."""

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[override]
        settings = self.configure_retries(request)
        while True:
            try:
                response: PipelineResponse = await self.next.send(request)  # type: ignore[misc]
            except AzureError as err:
                if isinstance(err, ClientAuthenticationError) or not self.increment(
                    settings, request=request.http_request, error=err
                ):
                    raise
                await self.sleep(settings, request.context.transport)
                continue
            status = response.http_response.status_code
            if _retriable(status) and self.increment(
                settings, request=request.http_request, response=response.http_response
            ):
                await self.sleep(settings, request.context.transport)
                continue
            response.http_response.location_mode = settings["mode"]
            return response


class _CappedRetrySync(_Capped, SyncExponentialRetry):
    """The synchronous twin of :class:`_CappedRetry` (writes)."""

    def send(self, request: PipelineRequest) -> PipelineResponse:
        settings = self.configure_retries(request)
        while True:
            try:
                response: PipelineResponse = self.next.send(request)
            except AzureError as err:
                if isinstance(err, ClientAuthenticationError) or not self.increment(
                    settings, request=request.http_request, error=err
                ):
                    raise
                self.sleep(settings, request.context.transport)
                continue
            status = response.http_response.status_code
            if _retriable(status) and self.increment(
                settings, request=request.http_request, response=response.http_response
            ):
                self.sleep(settings, request.context.transport)
                continue
            response.http_response.location_mode = settings["mode"]
            return response


def _retriable(status: int) -> bool:
    return status in (408, 429) or (status >= 500 and status not in (501, 505))
