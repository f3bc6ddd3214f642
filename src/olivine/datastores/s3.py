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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import s3fs  # noqa: F401  (fails early with the install hint when the extra is missing)

from olivine.datastores.objectstore import (
    ObjectStoreDatastore,
    RetrySettings,
    check_options,
    env_or,
    split_root,
)
from olivine.datastores.redact import secret_values

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
        fs = S3FileSystem(
            **creds,
            profile=opts.get("profile"),
            client_kwargs=client_kwargs,
            config_kwargs=config,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        fs.retries = retry.attempts  # s3fs's own loop around botocore's, for errors botocore passes up
        secrets = secret_values(creds) + [v for n in _ENV_SECRETS if (v := os.environ.get(n))]
        root = f"{bucket}/{prefix}" if prefix else bucket
        return cls(fs, root, secrets=secrets)

    def _url_of(self, full: str) -> str:
        return f"s3://{full.lstrip('/')}"

    async def _list_prefix(self, container: str, prefix: str) -> list[str]:
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = await self.fs._call_s3(
                "list_objects_v2", Bucket=container, Prefix=prefix, Delimiter="/", **token
            )
            names += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            names += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return names
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def _start_blocks(self, full: str) -> _PartUpload:
        bucket, key, _ = self.fs.split_path(full)
        mpu = await self.fs._call_s3("create_multipart_upload", Bucket=bucket, Key=key)
        return _PartUpload(bucket, key, str(mpu["UploadId"]))

    async def _stage_block(self, upload: _PartUpload, index: int, data: bytes) -> dict[str, Any]:
        number = index + 1
        out = await self.fs._call_s3(
            "upload_part",
            Bucket=upload.bucket,
            Key=upload.key,
            UploadId=upload.upload_id,
            PartNumber=number,
            Body=data,
        )
        return {"PartNumber": number, "ETag": out["ETag"]}

    async def _commit_blocks(self, upload: _PartUpload, parts: list[Any], exclusive: bool) -> None:
        # If-None-Match on the completion: S3 (and moto) answer it atomically; s3fs maps 412 to
        # FileExistsError.
        await self.fs._call_s3(
            "complete_multipart_upload",
            Bucket=upload.bucket,
            Key=upload.key,
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": parts},
            **({"IfNoneMatch": "*"} if exclusive else {}),
        )

    async def _abort_blocks(self, upload: _PartUpload) -> None:
        await self.fs._call_s3(
            "abort_multipart_upload", Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id
        )


@dataclass(frozen=True)
class _PartUpload:
    bucket: str
    key: str
    upload_id: str
