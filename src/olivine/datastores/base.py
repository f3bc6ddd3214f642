"""The datastore contract: an fsspec filesystem plus a root, with append-only, hash-while-copying writes.

Every backend (``file://``, ``memory://``, ``az://``/``abfs://``, ``s3://``) is one small subclass,
registered by scheme in :data:`BACKENDS`. It implements :meth:`Datastore.open_url` and may override the
private primitives ``_write`` (all-or-nothing, optionally create-only), ``_write_file``, ``_open_read``,
``_read``, ``_exists`` and ``_url_of``; everything else (append-only checks, hashing, error wrapping,
scrubbing) lives here once. A backend passes ``tests/conformance/datastore_suite.py``.

Write rules:

* Files are append-only: writing to a path that holds different content raises
  :class:`~olivine.errors.DatastoreError`; the same content is a no-op. ``put_bytes(..., overwrite=True)``
  is the one exception, for the single mutable file of an export (``status.json``).
* Every write returns the stored file's size and sha256. Files are hashed while they are copied, unless
  the caller passes the sha256 recorded when Olivine wrote the file (:mod:`olivine.digests`) and the
  file's stat proves it unchanged since; then the copy is a plain copy.
* A file appears complete or not at all: the local backend writes a temporary name and moves it into
  place; object stores commit a single put (or a block list) at close.
* :meth:`Datastore.put_if_absent` is a create-only write; :attr:`Datastore.atomic_create` says whether a
  backend makes it race-free between machines (the local backend does, with a hard link; the generic
  fallback checks, then writes, and is not).
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from olivine.datastores.files import (
    REMOTE_BLOCK_BYTES,
    TEMP_MARK,
    Chunk,
    CountingChunks,
    FileEntry,
    HashingChunks,
    clean_rel,
    hash_file,
    iter_chunks,
)
from olivine.datastores.redact import scrub_text, scrub_url, secret_values
from olivine.digests import RecordedDigest
from olivine.errors import ConfigError, DatastoreError, IntegrityError, OlivineError
from olivine.registry import Registry

if TYPE_CHECKING:
    from olivine.config.datastores import DatastoreConfig


class Datastore:
    """A folder on some storage, addressed by paths relative to its root.

    Args:
        fs: the fsspec filesystem.
        root: the root inside ``fs`` (``/abs/path`` locally, ``container/prefix`` on blob storage).
        secrets: credential values the backend was opened with; they are scrubbed from every message.
    """

    #: URL scheme of the backend, used by :meth:`url_for`.
    scheme: ClassVar[str] = ""
    #: Whether :meth:`put_if_absent` is atomic against concurrent writers (other processes or machines).
    atomic_create: ClassVar[bool] = False
    #: How many files the exporter copies at once (network backends gain from more).
    put_concurrency: ClassVar[int] = 8
    #: Whether writes check for an existing file first. Where a check is a round trip (object stores)
    #: the create-only write itself is the check: it fails with FileExistsError and costs nothing more.
    check_before_put: ClassVar[bool] = True
    #: True when only this process can see the data (``memory://``): no use to a worker elsewhere.
    process_local: ClassVar[bool] = False

    def __init__(self, fs: Any, root: str, *, secrets: Iterable[str] = ()) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self._secrets = tuple(secrets)

    # -- construction -----------------------------------------------------------------------------
    @staticmethod
    def from_url(url: str, options: Mapping[str, Any] | None = None) -> Datastore:
        """Open the datastore at ``url`` (a plain path means ``file://``) with backend ``options``.

        Raises:
            NotSupportedError: no backend for the URL's scheme.
            MissingDependencyError: the backend's extra is not installed (message has the pip hint).
            DatastoreError: the backend could not be opened (message scrubbed of credentials).
        """
        from olivine.config.datastores import url_credentials_problem

        problem = url_credentials_problem(url)
        if problem:
            raise ConfigError(f"datastore URL {scrub_url(url)}: the URL {problem}")
        scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
        backend = BACKENDS.get(scheme)
        opts = dict(options or {})
        try:
            return backend.open_url(url, opts)
        except OlivineError:
            raise
        except Exception as exc:
            secrets = secret_values(opts)
            message = scrub_text(f"cannot open datastore {url}: {type(exc).__name__}: {exc}", secrets)
            raise DatastoreError(message) from _safe_cause(exc, secrets)

    @staticmethod
    def backend_for(url: str) -> type[Datastore]:
        """The backend class of ``url``'s scheme (a plain path means ``file://``), not opened."""
        scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
        return BACKENDS.get(scheme)

    @staticmethod
    def from_config(config: DatastoreConfig) -> Datastore:
        """Open the datastore a :class:`~olivine.config.datastores.DatastoreConfig` describes."""
        return Datastore.from_url(config.url, config.options)

    @classmethod
    def open_url(cls, url: str, options: dict[str, Any]) -> Datastore:
        """Backend hook for :meth:`from_url`: build the filesystem and root from ``url``."""
        raise NotImplementedError(f"{cls.__name__} does not implement open_url")

    # -- paths ------------------------------------------------------------------------------------
    def fs_path(self, rel: str) -> str:
        """The path of ``rel`` inside :attr:`fs` (for tools and tests that need the raw filesystem)."""
        clean = clean_rel(rel)
        if not clean:
            return self.root or "/"
        return f"{self.root}/{clean}"

    def _rel_of(self, full: str) -> str:
        full = full.rstrip("/")
        return full[len(self.root) + 1 :] if full.startswith(self.root + "/") else full

    def url_for(self, rel: str = "") -> str:
        """A printable URL of ``rel``; never contains credentials (user-info and query are dropped)."""
        return scrub_text(scrub_url(self._url_of(self.fs_path(rel))), self._secrets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url_for()!r})"

    # -- writes -----------------------------------------------------------------------------------
    def put_file(self, local: str | Path, rel: str, *, recorded: RecordedDigest | None = None) -> FileEntry:
        """Copy a local file to ``rel`` (hashing while copying); same content already there is a no-op.

        Args:
            local: the file.
            rel: where to put it.
            recorded: the file's sha256 as recorded when it was written (:mod:`olivine.digests`). If the
                file still matches the record's stat, it is copied without hashing and the recorded
                sha256 is returned; otherwise (a stale record) it is hashed as without one.

        Raises:
            DatastoreError: ``rel`` holds different content (append-only), or the copy failed.
        """
        rel = self._file_rel(rel)
        full = self.fs_path(rel)
        if not Path(local).is_file():
            raise DatastoreError(f"cannot put {local} to {self.url_for(rel)}: no such local file")
        with self._errors("put", rel):
            if self.check_before_put and self._exists(full):
                return self._same_file_or_refuse(Path(local), rel, recorded)
            try:
                size, digest = self._write_file(full, Path(local), exclusive=True, recorded=recorded)
            except FileExistsError:
                return self._same_file_or_refuse(Path(local), rel, recorded)
            return FileEntry(rel, size, digest)

    def put_bytes(self, rel: str, data: bytes, *, overwrite: bool = False) -> FileEntry:
        """Write ``data`` to ``rel``. Without ``overwrite`` the append-only rule of :meth:`put_file`
        applies; with it the file is replaced atomically (readers see the old or the new content)."""
        rel = self._file_rel(rel)
        full = self.fs_path(rel)
        entry = FileEntry(rel, len(data), hashlib.sha256(data).hexdigest())
        with self._errors("put", rel):
            if overwrite:
                self._write(full, [data], exclusive=False)
                return entry
            if not self.check_before_put or not self._exists(full):
                try:
                    self._write(full, [data], exclusive=True)
                    return entry
                except FileExistsError:
                    pass
            if self._read(full) != data:
                raise self._refusal(rel)
            return entry

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Create ``rel`` with ``data`` unless it exists; True if this call created it.

        Race semantics: see :attr:`atomic_create`. Where it is True, of concurrent callers exactly one
        gets True and the file holds that caller's bytes.
        """
        rel = self._file_rel(rel)
        with self._errors("create", rel):
            try:
                self._write(self.fs_path(rel), [data], exclusive=True)
            except FileExistsError:
                return False
            return True

    # -- reads ------------------------------------------------------------------------------------
    def get_file(self, rel: str, local: str | Path, *, expected_sha256: str | None = None) -> FileEntry:
        """Download ``rel`` to ``local``, hashing while copying.

        The bytes go to a temporary name beside ``local`` and are moved into place only when complete
        (and, with ``expected_sha256``, verified), so ``local`` never holds a partial file.

        Raises:
            IntegrityError: the content does not hash to ``expected_sha256``.
            DatastoreError: ``rel`` is missing or the copy failed.
        """
        rel = self._file_rel(rel)
        local = Path(local)
        tmp = local.with_name(f".{local.name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")
        try:
            with self._errors("get", rel):
                local.parent.mkdir(parents=True, exist_ok=True)
                with self._open_read(self.fs_path(rel)) as src, open(tmp, "wb") as dst:
                    hashing = HashingChunks(iter_chunks(src))
                    for chunk in hashing:
                        dst.write(chunk)
            if expected_sha256 is not None and hashing.sha256 != expected_sha256:
                raise IntegrityError(
                    f"{self.url_for(rel)}: sha256 {hashing.sha256} does not match the expected "
                    f"{expected_sha256}; the file was not written to {local}"
                )
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return FileEntry(rel, hashing.size, hashing.sha256)

    def read_bytes(self, rel: str) -> bytes:
        """The content of ``rel``."""
        rel = self._file_rel(rel)
        with self._errors("read", rel):
            return self._read(self.fs_path(rel))

    def hash_of(self, rel: str) -> FileEntry:
        """Size and sha256 of ``rel``, streamed (the file is not held in memory)."""
        rel = self._file_rel(rel)
        with self._errors("hash", rel):
            size, digest = self._hash_stored(self.fs_path(rel))
        return FileEntry(rel, size, digest)

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` is a file or a (non-empty, on object stores) folder."""
        rel = clean_rel(rel)
        with self._errors("stat", rel):
            return self._exists(self.fs_path(rel))

    def read_bytes_if_exists(self, rel: str) -> bytes | None:
        """The content of file ``rel``, or None if there is none (one request on an object store)."""
        rel = self._file_rel(rel)
        with self._errors("read", rel):
            return self._read_if_exists(self.fs_path(rel))

    def ls(self, rel: str = "") -> list[str]:
        """Names (not paths) of the entries directly under ``rel``, sorted; ``[]`` if it is missing."""
        rel = clean_rel(rel)
        with self._errors("list", rel):
            entries = self._list_names(self.fs_path(rel))
        names = {str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries}
        return sorted(n for n in names if n and TEMP_MARK not in n)

    def walk_files(self, rel: str = "") -> list[tuple[str, int]]:
        """Every file under ``rel`` as ``(path relative to the datastore root, size)``, sorted."""
        rel = clean_rel(rel)
        with self._errors("walk", rel):
            found = self._list_files(self.fs_path(rel))
        files = [
            (self._rel_of(name), size) for name, size in found if TEMP_MARK not in name.rsplit("/", 1)[-1]
        ]
        return sorted(files)

    # -- backend primitives (override per backend) ------------------------------------------------
    def _write(self, full: str, chunks: Iterable[Chunk], *, exclusive: bool) -> None:
        """Store ``chunks`` at ``full``, all or nothing; ``exclusive`` raises FileExistsError if present.

        A chunk is only valid until the next is requested: copy it if you keep it. This generic
        version's exclusive check is not atomic; backends with conditional writes override it.
        """
        if exclusive and self.fs.exists(full):
            raise FileExistsError(full)
        self.fs.makedirs(self.fs._parent(full), exist_ok=True)
        with self.fs.open(full, "wb") as dst:
            for chunk in chunks:
                dst.write(chunk)

    def _write_file(
        self, full: str, local: Path, *, exclusive: bool, recorded: RecordedDigest | None = None
    ) -> tuple[int, str]:
        """Copy a local file to ``full`` like :meth:`_write`, returning ``(size, sha256)`` of what was
        stored. Hashes the chunks as they stream to the backend, so the file is read once; with a
        ``recorded`` digest that the file's stat still matches, it does not hash at all."""
        with open(local, "rb") as src:
            if recorded is None or not recorded.matches(os.fstat(src.fileno())):
                hashing = HashingChunks(iter_chunks(src))
                self._write(full, hashing, exclusive=exclusive)
                return hashing.size, hashing.sha256
            counted = CountingChunks(iter_chunks(src))
            self._write(full, counted, exclusive=exclusive)
            if counted.size == recorded.size and recorded.matches(os.fstat(src.fileno())):
                return recorded.size, recorded.sha256
        # The file changed while it was stored: describe what the backend holds now.
        return self._hash_stored(full)

    def _open_read(self, full: str) -> io.BufferedIOBase:
        f: io.BufferedIOBase = self.fs.open(full, "rb", block_size=REMOTE_BLOCK_BYTES)
        return f

    def _read(self, full: str) -> bytes:
        return bytes(self.fs.cat_file(full))

    def _hash_stored(self, full: str) -> tuple[int, str]:
        with self._open_read(full) as src:
            hashing = HashingChunks(iter_chunks(src))
            for _ in hashing:
                pass
        return hashing.size, hashing.sha256

    def _read_if_exists(self, full: str) -> bytes | None:
        return self._read(full) if self._exists(full) else None

    def _exists(self, full: str) -> bool:
        return bool(self.fs.exists(full))

    def _list_names(self, full: str) -> list[str]:
        """Paths (inside :attr:`fs`) of the entries directly under folder ``full``; [] if missing."""
        if not self._exists(full):
            return []
        return [str(e["name"]) for e in self.fs.ls(full, detail=True)]

    def _list_files(self, full: str) -> list[tuple[str, int]]:
        """``(path inside fs, size)`` of every file under folder ``full``; [] if missing."""
        if not self._exists(full):
            return []
        found = self.fs.find(full, detail=True)
        return [(str(name), int(info["size"])) for name, info in found.items() if info.get("type") == "file"]

    def _url_of(self, full: str) -> str:
        return f"{self.scheme}://{full.lstrip('/')}"

    # -- helpers ----------------------------------------------------------------------------------
    def _file_rel(self, rel: str) -> str:
        clean = clean_rel(rel)
        if not clean:
            raise DatastoreError(f"a file path is required, got {rel!r}")
        return clean

    def _same_file_or_refuse(self, local: Path, rel: str, recorded: RecordedDigest | None) -> FileEntry:
        known = recorded.sha256_if_unchanged(local) if recorded is not None else None
        size, digest = hash_file(local) if recorded is None or known is None else (recorded.size, known)
        if self.hash_of(rel) != FileEntry(rel, size, digest):
            raise self._refusal(rel)
        return FileEntry(rel, size, digest)

    def _refusal(self, rel: str) -> DatastoreError:
        return DatastoreError(
            f"refusing to overwrite {self.url_for(rel)}: it holds different content and exports are "
            "append-only"
        )

    @contextmanager
    def _errors(self, op: str, rel: str) -> Iterator[None]:
        """Wrap backend exceptions in DatastoreError with a message scrubbed of credentials."""
        try:
            yield
        except OlivineError:
            raise
        except FileNotFoundError as exc:
            raise DatastoreError(f"{op} {self.url_for(rel)}: not found") from _safe_cause(exc, self._secrets)
        except Exception as exc:
            message = scrub_text(
                f"{op} {self.url_for(rel)} failed: {type(exc).__name__}: {exc}", self._secrets
            )
            raise DatastoreError(message) from _safe_cause(exc, self._secrets)


def _safe_cause(exc: BaseException, secrets: Iterable[str]) -> BaseException | None:
    """``exc`` to chain as the cause, or None when its text (or its own causes') holds a credential:
    a traceback printed with ``--verbose`` must not leak what the message hides."""
    secrets = tuple(secrets)
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{seen} {seen.args!r}"
        if scrub_text(text, secrets) != text:
            return None
        seen = seen.__cause__ or seen.__context__
    return exc


#: Backends by URL scheme; the cloud ones need their extra (the registry gives the pip hint).
BACKENDS: Registry[type[Datastore]] = Registry("datastore scheme")
BACKENDS.register("file", "olivine.datastores.local:LocalDatastore")
BACKENDS.register("memory", "olivine.datastores.memory:MemoryDatastore")
for _scheme in ("az", "abfs", "abfss"):
    BACKENDS.register(_scheme, "olivine.datastores.azure:AzureBlobDatastore", extra="azure")
BACKENDS.register("s3", "olivine.datastores.s3:S3Datastore", extra="s3")
# azureml://datastores/<name>: resolved through the workspace to the az:// datastore it is.
BACKENDS.register("azureml", "olivine.datastores.azureml:AzureMLDatastore", extra="azureml")
