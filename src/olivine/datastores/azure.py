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
import uuid
from dataclasses import dataclass
from typing import Any

import adlfs  # noqa: F401  (fails early with the install hint when the extra is missing)
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.storage.blob.aio import ExponentialRetry

from olivine.datastores.objectstore import (
    ObjectStoreDatastore,
    RetrySettings,
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
        return cls(fs, root, secrets=secret_values(creds))

    def _url_of(self, full: str) -> str:
        return f"az://{full.lstrip('/')}"

    async def _list_prefix(self, container: str, prefix: str) -> list[str]:
        client = self.fs.service_client.get_container_client(container)
        return [item.name async for item in client.walk_blobs(name_starts_with=prefix, delimiter="/")]

    async def _start_blocks(self, full: str) -> _BlockUpload:
        container, path, _ = self.fs.split_path(full)
        # A fresh id prefix per upload: two writers racing for one name never commit each other's blocks.
        return _BlockUpload(self.fs.service_client.get_blob_client(container, path), uuid.uuid4().hex)

    async def _stage_block(self, upload: _BlockUpload, index: int, data: bytes) -> str:
        block_id = base64.b64encode(f"{upload.prefix}-{index:06d}".encode()).decode()
        await upload.client.stage_block(block_id, data, length=len(data))
        return block_id

    async def _commit_blocks(self, upload: _BlockUpload, parts: list[Any], exclusive: bool) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        condition = {"match_condition": MatchConditions.IfMissing} if exclusive else {}
        try:
            # adlfs marks files so (its listings read the flag): the same as its own uploads.
            await upload.client.commit_block_list(parts, metadata={"is_directory": "false"}, **condition)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise FileExistsError(upload.client.blob_name) from exc

    def _ensure_container(self) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError
        from fsspec.asyn import sync

        container = self.root.split("/", 1)[0]

        async def create() -> None:
            try:
                await self.fs.service_client.create_container(container)
                logger.info("created container %s", self._url_of(container))
            except ResourceExistsError:
                pass
            except HttpResponseError as exc:
                if exc.status_code != 403:  # a SAS for one container may not create one: assume it is there
                    raise

        sync(self.fs.loop, create)


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
    """An async BlobServiceClient like the one adlfs builds, with our retry policy and timeouts."""
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


@dataclass(frozen=True)
class _BlockUpload:
    client: Any  # azure.storage.blob.aio.BlobClient
    prefix: str


class _CappedRetry(ExponentialRetry):
    """The storage retry policy, with backoff doubling from ``backoff_s`` up to ``max_backoff_s``, that
    also retries 429 (the storage SDK treats every 4xx but 408 as final)."""

    def __init__(self, retry: RetrySettings) -> None:
        n = retry.attempts - 1
        super().__init__(retry_total=n, retry_connect=n, retry_read=n, retry_status=n, random_jitter_range=0)
        self._settings = retry

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        backoff = self._settings.backoff_s * (2 ** settings["count"])
        return float(min(backoff, self._settings.max_backoff_s) * random.uniform(0.8, 1.0))

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


def _retriable(status: int) -> bool:
    return status in (408, 429) or (status >= 500 and status not in (501, 505))
