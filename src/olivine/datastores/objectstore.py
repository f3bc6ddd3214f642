"""What the object-store datastores (``az://``, ``s3://``) share: streamed block uploads with a
create-only commit, single-request small writes, listings without a stat first, and retry settings.

Both backends drive an fsspec filesystem (adlfs, s3fs) through its synchronous API. The rules of
:mod:`olivine.datastores.base` hold: a file appears complete or not at all (a single put, or blocks /
parts committed in one request at the end), and a create-only write is a conditional request
(``If-None-Match: *``) that the service answers atomically, so :attr:`atomic_create` is True.

Memory stays bounded whatever the file size: a write holds at most one block (:attr:`block_bytes`) plus
one read chunk, a read at most one read-ahead block.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from olivine.datastores.base import Datastore
from olivine.datastores.files import TEMP_MARK, Chunk, hash_file, iter_chunks
from olivine.digests import RecordedDigest
from olivine.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrySettings:
    """How hard a backend retries a request that failed transiently (429, 500, 503, a reset or refused
    connection) before the error reaches the caller. Options ``retries`` and ``retry_backoff_s``.

    The default rides out an outage of about a minute: backoff doubles from ``backoff_s`` up to
    ``max_backoff_s`` between ``attempts`` tries.
    """

    attempts: int = 10
    backoff_s: float = 0.5
    max_backoff_s: float = 15.0

    @classmethod
    def pop_from(cls, options: dict[str, Any]) -> RetrySettings:
        """Take ``retries`` / ``retry_backoff_s`` / ``retry_max_backoff_s`` out of ``options``."""
        defaults = cls()
        try:
            attempts = int(options.pop("retries", defaults.attempts))
            backoff = float(options.pop("retry_backoff_s", defaults.backoff_s))
            cap = float(options.pop("retry_max_backoff_s", defaults.max_backoff_s))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"datastore retry options must be numbers: {exc}") from None
        if attempts < 1 or backoff < 0 or cap < backoff:
            raise ConfigError(
                "datastore option 'retries' must be >= 1 and 0 <= 'retry_backoff_s' <= 'retry_max_backoff_s'"
            )
        return cls(attempts, backoff, cap)


class ObjectStoreDatastore(Datastore):
    """Base of the blob/object-store backends. Subclasses build the filesystem and may override
    :meth:`_ensure_container` and :meth:`_discard`."""

    atomic_create = True
    check_before_put = False
    # Each copy mostly waits on the network.
    put_concurrency = 8
    #: Writes up to this size are one request; larger ones stream as blocks (parts) of this size.
    block_bytes: ClassVar[int] = 8 << 20
    #: Blocks (parts) of one large file uploaded at once.
    file_concurrency: ClassVar[int] = 4

    def __init__(self, fs: Any, root: str, *, secrets: Iterable[str] = ()) -> None:
        super().__init__(fs, root, secrets=secrets)
        self._container_ready = False
        self._container_lock = threading.Lock()

    # -- writes -----------------------------------------------------------------------------------
    def _write(self, full: str, chunks: Iterable[Chunk], *, exclusive: bool) -> None:
        self._container_once()
        it = iter(chunks)
        head = bytearray()
        for chunk in it:
            head += chunk
            if len(head) > self.block_bytes:
                break
        else:
            # Everything fits in one request.
            self.fs.pipe_file(full, bytes(head), mode="create" if exclusive else "overwrite")
            return
        f = self.fs.open(full, "xb" if exclusive else "wb", block_size=self.block_bytes)
        try:
            f.write(head)
            del head
            for chunk in it:
                f.write(chunk)
            f.close()  # commits the block list / completes the multipart upload, conditionally
        except BaseException:
            self._discard(f)
            raise

    def _discard(self, f: Any) -> None:
        """Drop an unfinished upload without committing it (closing it would publish a partial file)."""
        try:
            f.discard()
        except Exception as exc:  # the service may be the reason we are here
            logger.debug("could not abort the upload of %s: %s", getattr(f, "path", "?"), exc)
        f.closed = True

    def _container_once(self) -> None:
        if self._container_ready:
            return
        with self._container_lock:
            if not self._container_ready:
                self._ensure_container()
                self._container_ready = True

    def _ensure_container(self) -> None:
        """Create the container (bucket) of :attr:`root` if it does not exist."""
        container = self.root.split("/", 1)[0]
        if not self.fs.exists(container):
            logger.info("creating %s", self._url_of(container))
            self.fs.mkdir(container)

    def _write_file(
        self, full: str, local: Path, *, exclusive: bool, recorded: RecordedDigest | None = None
    ) -> tuple[int, str]:
        """A file above one block is hashed first (or its recorded sha256 used), then uploaded by the
        SDK's own concurrent block / part upload (:attr:`file_concurrency` blocks in flight): faster than
        streaming one block at a time, and as bounded. The file's stat is checked around the upload; if
        it changed meanwhile, what was stored is hashed instead."""
        before = os.stat(local)
        if before.st_size <= self.block_bytes:
            return super()._write_file(full, local, exclusive=exclusive, recorded=recorded)
        if recorded is not None and recorded.matches(before):
            size, digest = recorded.size, recorded.sha256
        else:
            size, digest = hash_file(local)
        self._container_once()
        self._put_large(full, local, exclusive=exclusive)
        after = os.stat(local)
        if (after.st_size, after.st_mtime_ns) != (
            before.st_size,
            before.st_mtime_ns,
        ) or after.st_size != size:
            return self._hash_stored(full)
        return size, digest

    def _put_large(self, full: str, local: Path, *, exclusive: bool) -> None:
        """Upload a local file above one block, all or nothing (create-only when ``exclusive``)."""
        with open(local, "rb") as src:
            self._write(full, iter_chunks(src), exclusive=exclusive)

    # -- reads ------------------------------------------------------------------------------------
    def _read(self, full: str) -> bytes:
        # One GET: a concurrent ranged read would first ask for the size (a second request).
        return bytes(self.fs.cat_file(full, max_concurrency=1))

    def _read_if_exists(self, full: str) -> bytes | None:
        try:
            return self._read(full)
        except FileNotFoundError:
            return None

    def _list_names(self, full: str) -> list[str]:
        # One listing request: a missing prefix lists as empty on an object store.
        try:
            entries = self.fs.ls(full, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        prefix = full.rstrip("/") + "/"
        return [str(e["name"]) for e in entries if str(e["name"]).rstrip("/").startswith(prefix)]

    def _list_files(self, full: str) -> list[tuple[str, int]]:
        try:
            found = self.fs.find(full, detail=True, withdirs=False)
        except FileNotFoundError:
            return []
        prefix = full.rstrip("/") + "/"
        return [
            (str(name), int(info["size"]))
            for name, info in found.items()
            if info.get("type") == "file"
            and str(name).startswith(prefix)
            and TEMP_MARK not in str(name).rsplit("/", 1)[-1]
        ]


def split_root(url: str, schemes: tuple[str, ...]) -> tuple[str, str]:
    """``(container, prefix)`` of ``<scheme>://<container>/<prefix>``.

    Raises:
        ConfigError: no container, a query string, or ``..`` in the path.
    """
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in schemes or not rest:
        expected = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"expected {expected}<container>/<prefix>, got {url}")
    if "?" in rest or "#" in rest:
        raise ConfigError(
            f"a {scheme}:// datastore URL takes no query string (put credentials in the environment or "
            "the hosts file)"
        )
    container, _, prefix = rest.partition("/")
    parts = [p for p in prefix.split("/") if p not in ("", ".")]
    if not container or ".." in parts:
        raise ConfigError(f"invalid {scheme}:// datastore URL (need <container>/<prefix>, no '..')")
    return container, "/".join(parts)


_RETRY_OPTIONS = ("retries", "retry_backoff_s", "retry_max_backoff_s")


def check_options(scheme: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse option names a backend does not know (typos would silently change nothing)."""
    allowed = sorted({*known, *_RETRY_OPTIONS})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown {scheme}:// datastore option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def env_or(options: Mapping[str, Any], key: str, *env_names: str) -> Any:
    """``options[key]`` if given, else the first set environment variable of ``env_names``."""
    if options.get(key) not in (None, ""):
        return options[key]
    for name in env_names:
        value = os.environ.get(name)
        if value:
            return value
    return None
