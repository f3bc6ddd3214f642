"""What the object-store datastores (``az://``, ``s3://``) share: streamed block uploads with a
create-only commit, single-request small writes, listings without a stat first, and retry settings.

Both backends drive an fsspec filesystem (adlfs, s3fs) for reads and listings. Writes go through
synchronous hooks (:meth:`ObjectStoreDatastore._put_object` and the block hooks) that call the service's
synchronous SDK client (azure-storage-blob, botocore) from the writing threads, and from one shared pool
(:func:`block_pool`) for the blocks of large files, as the SDKs' own uploads do: the filesystems' single
event-loop thread would serialise every request's Python work (building, signing, hashing). The rules of
:mod:`olivine.datastores.base` hold: a file appears complete or not at all (a single put, or blocks /
parts committed in one request at the end), and a create-only write is a conditional request
(``If-None-Match: *``) that the service answers atomically, so :attr:`atomic_create` is True.

Memory stays bounded whatever the file size: a write holds at most :attr:`file_concurrency` blocks in
flight plus the one being read (:attr:`block_bytes` each), a read at most one read-ahead block. A file is
read once: hashed in the thread that reads it while its earlier blocks upload.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from olivine.datastores.base import Datastore
from olivine.datastores.files import TEMP_MARK, Chunk
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
    """Base of the blob/object-store backends. Subclasses build the filesystem (for reads and
    listings) and implement the synchronous write hooks (:meth:`_put_object`, :meth:`_begin_blocks`,
    :meth:`_submit_block`, :meth:`_finish_blocks`, and :meth:`_drop_blocks` if the service keeps
    unfinished uploads) with the service's synchronous SDK client; they may override
    :meth:`_ensure_container`."""

    atomic_create = True
    check_before_put = False
    # Each copy mostly waits on the network.
    put_concurrency = 8
    #: Writes up to this size are one request; larger ones stream as blocks (parts) of this size.
    block_bytes: ClassVar[int] = 8 << 20
    #: Blocks (parts) of one large file uploaded at once (a backend option may change it per datastore).
    file_concurrency: int = 4

    def __init__(self, fs: Any, root: str, *, secrets: Iterable[str] = ()) -> None:
        super().__init__(fs, root, secrets=secrets)
        self._container_ready = False
        self._container_lock = threading.Lock()

    # -- writes -----------------------------------------------------------------------------------
    def _write(self, full: str, chunks: Iterable[Chunk], *, exclusive: bool) -> None:
        """One put when everything fits in a block; otherwise a block upload through
        :meth:`_upload_blocks`. ``chunks`` are consumed (and, by the caller, hashed) in this thread
        while earlier blocks are in flight, so a file is read once."""
        self._container_once()
        blocks = _blocks(chunks, self.block_bytes)
        first = next(blocks, b"")
        second = next(blocks, None)
        if second is None:
            self._put_object(full, first, exclusive=exclusive)
            return
        head = [first, second]
        del first, second  # only the upload's window may keep blocks alive
        self._upload_blocks(full, _drain(head, blocks), exclusive=exclusive)

    def _write_file(
        self, full: str, local: Path, *, exclusive: bool, recorded: RecordedDigest | None = None
    ) -> tuple[int, str]:
        """Read the file once, in blocks: one block or less is one request; a larger file is a block
        upload whose blocks are hashed in this thread while earlier ones are in flight. A ``recorded``
        sha256 that the file's stat matches before and after is used instead of hashing. What is
        returned always describes what was stored (bytes read, or the stored object re-hashed if the
        file changed during a recorded-digest copy)."""
        with open(local, "rb") as src:
            before = os.fstat(src.fileno())
            trusted = recorded is not None and recorded.matches(before)
            reader = _FileBlocks(src, self.block_bytes, None if trusted else hashlib.sha256())
            first = reader.read()
            second = reader.read() if len(first) == self.block_bytes else b""
            self._container_once()
            if not second:
                self._put_object(full, first, exclusive=exclusive)
            else:
                head = [first, second]
                del first, second  # only the upload's window may keep blocks alive
                self._upload_blocks(full, reader.rest(head), exclusive=exclusive)
            size = reader.size
            digest = reader.digest
            after = os.fstat(src.fileno())
        if digest is not None:
            return size, digest.hexdigest()
        assert recorded is not None
        if recorded.matches(after) and size == recorded.size:
            return size, recorded.sha256
        return self._hash_stored(full)  # the file changed while it was copied unhashed

    def _upload_blocks(self, full: str, blocks: Iterable[bytes], *, exclusive: bool) -> None:
        """Upload ``blocks`` as one object, all or nothing: at most :attr:`file_concurrency` blocks in
        flight (a sliding window, so memory stays bounded), committed in order by one final request
        (create-only when ``exclusive``: FileExistsError if the name is taken). On any failure the
        upload is aborted and nothing appears."""
        upload = self._begin_blocks(full)
        pending: deque[concurrent.futures.Future[Any]] = deque()
        parts: list[Any] = []
        try:
            for index, block in enumerate(blocks):
                if len(pending) >= self.file_concurrency:
                    parts.append(pending.popleft().result())
                pending.append(self._submit_block(upload, index, block))
                del block  # the window alone holds the bytes
            while pending:
                parts.append(pending.popleft().result())
            self._finish_blocks(upload, parts, exclusive)
        except BaseException:
            for future in pending:
                future.cancel()
            concurrent.futures.wait(pending)
            try:
                self._drop_blocks(upload)
            except Exception as exc:  # the service may be the reason we are here
                logger.debug("could not abort the upload of %s: %s", full, exc)
            raise

    # -- write hooks: synchronous, called from the writing thread (each backend implements them) ----
    def _put_object(self, full: str, data: bytes, *, exclusive: bool) -> None:
        """Store ``data`` at ``full`` in one request (create-only when ``exclusive``: FileExistsError)."""
        raise NotImplementedError

    def _begin_blocks(self, full: str) -> Any:
        """Begin a block upload to ``full``; returns the backend's handle for it."""
        raise NotImplementedError

    def _submit_block(self, upload: Any, index: int, data: bytes) -> concurrent.futures.Future[Any]:
        """Start uploading block ``index`` (from 0), usually on :func:`block_pool`; the future's
        result is what :meth:`_finish_blocks` needs."""
        raise NotImplementedError

    def _finish_blocks(self, upload: Any, parts: list[Any], exclusive: bool) -> None:
        """Publish the blocks in order as the object (FileExistsError if ``exclusive`` and taken)."""
        raise NotImplementedError

    def _drop_blocks(self, upload: Any) -> None:
        """Drop an unfinished upload (default: nothing; the service discards uncommitted blocks)."""

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
        # One listing request per page (a missing folder lists as empty): the fsspec listing of a
        # missing prefix costs two more (is it a file? a folder marker?).
        container, _, key = full.strip("/").partition("/")
        prefix = f"{key}/" if key else ""
        names = self._names_under(container, prefix)
        return [f"{container}/{name}" for name in names if name.rstrip("/") != prefix.rstrip("/")]

    def _names_under(self, container: str, prefix: str) -> list[str]:
        """Keys and sub-prefixes (ending in ``/``) directly under ``prefix`` in ``container``; by
        default :meth:`_list_prefix` on the filesystem's event loop."""
        from fsspec.asyn import sync

        names: list[str] = sync(self.fs.loop, self._list_prefix, container, prefix)
        return names

    async def _list_prefix(self, container: str, prefix: str) -> list[str]:
        """The coroutine behind the default :meth:`_names_under`."""
        raise NotImplementedError

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


class _FileBlocks:
    """Blocks of an open file, each read with one call, hashed (when a digest is given) and counted."""

    def __init__(self, src: Any, block_bytes: int, digest: Any) -> None:
        self._src = src
        self._block_bytes = block_bytes
        self.digest = digest
        self.size = 0

    def read(self) -> bytes:
        data: bytes = self._src.read(self._block_bytes)
        if self.digest is not None:
            self.digest.update(data)
        self.size += len(data)
        return data

    def rest(self, head: list[bytes]) -> Iterator[bytes]:
        """The blocks already read (``head``, dropped from it as they go), then the rest of the file."""
        while head:
            yield head.pop(0)
        while block := self.read():
            yield block


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def block_pool() -> ThreadPoolExecutor:
    """Threads that upload the blocks (parts) of large files, shared by every object-store datastore
    of the process: as many as the files in flight times each file's window."""
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = ObjectStoreDatastore.put_concurrency * ObjectStoreDatastore.file_concurrency
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="olivine-block")
        return _pool


def _drain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    """The blocks of ``head`` (dropped from it as they go), then ``rest``."""
    while head:
        yield head.pop(0)
    yield from rest


def _blocks(chunks: Iterable[Chunk], size: int) -> Iterator[bytes]:
    """``chunks`` regrouped into blocks of exactly ``size`` bytes (the last one shorter, or b"" for no
    data at all). Chunks are copied as they arrive (they may be reused buffers)."""
    buf = bytearray()
    for chunk in chunks:
        view = memoryview(chunk)
        while len(view):
            take = min(size - len(buf), len(view))
            buf += view[:take]
            view = view[take:]
            if len(buf) == size:
                yield bytes(buf)
                buf.clear()
    if buf:
        yield bytes(buf)


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
