"""S3 datastores: ``s3://<bucket>/<prefix>`` through s3fs (any S3-compatible service).

Credentials are botocore's own: the standard variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``), ``AWS_PROFILE`` / the ``profile`` option, the shared credentials and config
files, instance roles; or ``key`` / ``secret`` / ``token`` in the datastore's options in the user's
hosts file. Never in a workflow file (refused there) and never in a message (scrubbed).

Options: ``endpoint_url`` (default ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``), ``region``
(default botocore's: ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile), ``profile``, the retry
options of :class:`~olivine.datastores.objectstore.RetrySettings`, ``connection_timeout_s`` /
``read_timeout_s``.

Requests are retried by botocore's ``standard`` mode (429, 500, 502, 503, 504, throttling codes,
connection errors) with capped exponential backoff. Create-only writes use ``If-None-Match: *`` on the
put or on the multipart completion, which S3 (since 2024) and moto answer atomically.

Large reads and recursive listings go through s3fs. Writes (single puts and multipart uploads), small
reads and one-level listings go through a synchronous botocore client with the same credentials,
endpoint, region and retry settings, called from the writing threads (and the shared
:func:`~olivine.datastores.objectstore.block_pool` for the parts of large files), as boto3's own
transfers do: s3fs runs every request on one event-loop thread, where botocore's per-request work
(serialising, signing, the body's checksums) would queue behind each other's. The body's sha256 (for
the SigV4 signature; botocore skips it only over HTTPS with a checksum) and CRC32 are botocore's
defaults, unchanged; a multipart upload declares CRC32 as boto3's does, so the service also checks the
parts' composite CRC32 at the completion.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar

import s3fs  # noqa: F401  (fails early with the install hint when the extra is missing)

from olivine.datastores.objectstore import (
    ObjectStoreDatastore,
    RetrySettings,
    block_pool,
    check_options,
    env_or,
    split_root,
)
from olivine.datastores.redact import secret_values

logger = logging.getLogger(__name__)
_SECRET_OPTIONS = ("key", "secret", "token")
_KNOWN = {"endpoint_url", "region", "profile", "connection_timeout_s", "read_timeout_s", *_SECRET_OPTIONS}
_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class S3Datastore(ObjectStoreDatastore):
    """A datastore in an S3 bucket (or an S3-compatible server)."""

    scheme = "s3"

    @classmethod
    def open_url(cls, url: str, options: dict[str, Any]) -> S3Datastore:
        from s3fs import S3FileSystem

        opts = dict(options)
        retry = RetrySettings.pop_from(opts)
        check_options("s3", opts, _KNOWN)
        bucket, prefix = split_root(url, ("s3",))
        client_kwargs: dict[str, Any] = {}
        endpoint = env_or(opts, "endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        if endpoint:
            client_kwargs["endpoint_url"] = str(endpoint)
        if opts.get("region"):
            client_kwargs["region_name"] = str(opts["region"])
        config = {
            # botocore counts the first try as an attempt; backoff is its own (capped at 20 s).
            "retries": {"max_attempts": retry.attempts, "mode": "standard"},
            "connect_timeout": float(opts.get("connection_timeout_s", 20)),
            "read_timeout": float(opts.get("read_timeout_s", 120)),
        }
        creds = {k: str(opts[k]) for k in _SECRET_OPTIONS if opts.get(k)}
        profile = opts.get("profile")
        fs = S3FileSystem(
            **creds,
            profile=profile,
            client_kwargs=client_kwargs,
            config_kwargs=config,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        fs.retries = retry.attempts  # s3fs's own loop around botocore's, for errors botocore passes up
        secrets = secret_values(creds) + [v for n in _ENV_SECRETS if (v := os.environ.get(n))]
        root = f"{bucket}/{prefix}" if prefix else bucket
        store = cls(fs, root, secrets=secrets)
        store._client_args = _ClientArgs(
            profile=str(profile) if profile else None,
            kwargs={
                **client_kwargs,
                **{_CLIENT_CREDENTIALS[k]: v for k, v in creds.items()},
            },
            config={**config, "max_pool_connections": cls.put_concurrency * (cls.file_concurrency + 1)},
        )
        return store

    _client_args: _ClientArgs | None = None
    _client: Any = None
    _client_lock: ClassVar[threading.Lock] = threading.Lock()

    def connect(self) -> None:
        """Make the clients now (otherwise they are made on first use)."""
        self.fs.connect()
        self._writer()

    # -- writes: a synchronous botocore client, called from the writing threads ---------------------
    def _writer(self) -> Any:
        """The botocore client for writes (and small reads), made once per datastore."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    assert self._client_args is not None
                    self._client = _make_client(self._client_args)
        return self._client

    def _call(self, operation: str, *, exclusive: bool = False, **kwargs: Any) -> Any:
        """``operation`` with botocore's errors as s3fs gives them (a taken name on a create-only
        request is FileExistsError)."""
        from botocore.exceptions import ClientError
        from s3fs.errors import translate_boto_error

        try:
            return getattr(self._writer(), operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if exclusive and (code == "PreconditionFailed" or status == 412):
                raise FileExistsError(kwargs.get("Key", "")) from exc
            raise translate_boto_error(exc) from exc

    def _put_object(self, full: str, data: bytes, *, exclusive: bool) -> None:
        bucket, key, _ = self.fs.split_path(full)
        condition = {"IfNoneMatch": "*"} if exclusive else {}
        self._call("put_object", exclusive=exclusive, Bucket=bucket, Key=key, Body=data, **condition)

    def _begin_blocks(self, full: str) -> _PartUpload:
        bucket, key, _ = self.fs.split_path(full)
        # As boto3's own transfers do (s3transfer): unless checksums are turned off for this client
        # (``request_checksum_calculation = when_required``), declare CRC32 for the upload, so each
        # part's CRC32 (which botocore sends anyway) is kept and the completion's composite CRC32 is
        # checked by the service. Without it the service computes a full-object CRC64NVME itself.
        crc = self._writer().meta.config.request_checksum_calculation == "when_supported"
        algorithm: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if crc else {}
        mpu = self._call("create_multipart_upload", Bucket=bucket, Key=key, **algorithm)
        return _PartUpload(bucket, key, str(mpu["UploadId"]), crc)

    def _submit_block(self, upload: _PartUpload, index: int, data: bytes) -> Future[dict[str, Any]]:
        return block_pool().submit(self._upload_part, upload, index + 1, data)

    def _upload_part(self, upload: _PartUpload, number: int, data: bytes) -> dict[str, Any]:
        checksum: dict[str, Any] = {"ChecksumAlgorithm": "CRC32"} if upload.crc32 else {}
        out = self._call(
            "upload_part",
            Bucket=upload.bucket,
            Key=upload.key,
            UploadId=upload.upload_id,
            PartNumber=number,
            Body=data,
            **checksum,
        )
        part = {"PartNumber": number, "ETag": out["ETag"]}
        if upload.crc32 and out.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = out["ChecksumCRC32"]
        return part

    def _finish_blocks(self, upload: _PartUpload, parts: list[Any], exclusive: bool) -> None:
        # If-None-Match on the completion: S3 (and moto) answer it atomically.
        self._call(
            "complete_multipart_upload",
            exclusive=exclusive,
            Bucket=upload.bucket,
            Key=upload.key,
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": parts},
            **({"IfNoneMatch": "*"} if exclusive else {}),
        )

    def _drop_blocks(self, upload: _PartUpload) -> None:
        self._call("abort_multipart_upload", Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id)

    def _url_of(self, full: str) -> str:
        return f"s3://{full.lstrip('/')}"

    # -- small reads and listings: the same client (s3fs's first requests on a new filesystem cost
    # ~0.1 s each while it builds its client); large reads (get_file, hashing) stay on s3fs ---------
    def _read(self, full: str) -> bytes:
        bucket, key, _ = self.fs.split_path(full)
        body = self._call("get_object", Bucket=bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def _ensure_container(self) -> None:
        from botocore.exceptions import ClientError

        bucket = self.root.split("/", 1)[0]
        try:
            self._writer().head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 403:  # may not look at the bucket, may write to it: assume it is there
                return
            if status != 404:
                raise
            logger.info("creating %s", self._url_of(bucket))
            self.fs.mkdir(bucket)  # s3fs knows the region's LocationConstraint

    def _names_under(self, container: str, prefix: str) -> list[str]:
        names: list[str] = []
        token: dict[str, Any] = {}
        while True:
            page = self._call("list_objects_v2", Bucket=container, Prefix=prefix, Delimiter="/", **token)
            names += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            names += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return names
            token = {"ContinuationToken": page["NextContinuationToken"]}


@dataclass(frozen=True)
class _PartUpload:
    bucket: str
    key: str
    upload_id: str
    crc32: bool  # the upload declared CRC32: every part's checksum goes into the completion


#: Option names of the credentials -> botocore's create_client arguments.
_CLIENT_CREDENTIALS = {
    "key": "aws_access_key_id",
    "secret": "aws_secret_access_key",
    "token": "aws_session_token",
}


@dataclass(frozen=True)
class _ClientArgs:
    """What the write client is made from: the same as s3fs's client (credentials included, so this is
    never printed)."""

    profile: str | None
    kwargs: dict[str, Any]
    config: dict[str, Any]

    def __repr__(self) -> str:
        return "_ClientArgs(...)"


_shared_lock = threading.Lock()
_loader: Any = None


def _make_client(args: _ClientArgs) -> Any:
    """A botocore S3 client; a fresh session each time (credentials resolved now, as s3fs does), but one
    shared loader, so the service model is parsed once per process."""
    import botocore.session
    from botocore.config import Config

    global _loader
    with _shared_lock:
        session = botocore.session.Session(profile=args.profile)
        if _loader is None:
            _loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _loader)
        return session.create_client("s3", config=Config(**args.config), **args.kwargs)
