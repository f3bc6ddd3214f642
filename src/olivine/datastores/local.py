"""The ``file://`` datastore (plain paths too): a folder on this machine or a mounted share.

Writes go to a temporary name in the target folder and are moved into place, so a reader never sees a
partial file. Create-only writes publish with :func:`os.link`, which fails if the name exists: atomic
between processes on local filesystems and on NFS (the classic NFS lock primitive). Where hard links are
not supported, the name is claimed with ``O_CREAT | O_EXCL`` and the content moved over it (still one
winner; a reader may briefly see the empty claim). There is no fsync: a file is atomic against a crash of
the writer, durability against power loss is left to the OS (as with ``cp``).
"""

from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from fsspec.implementations.local import LocalFileSystem

from olivine.datastores.base import Datastore
from olivine.datastores.files import CHUNK_BYTES, TEMP_MARK, Chunk
from olivine.datastores.paths import default_datastore_dir
from olivine.datastores.redact import scrub_url
from olivine.digests import RecordedDigest
from olivine.errors import ConfigError, DatastoreError

# errno values meaning "this filesystem cannot hard-link", after which the O_EXCL fallback is used.
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}
T = TypeVar("T")


def local_path_of(url: str, base: Path | None = None) -> Path:
    """The absolute folder a ``file://`` URL or a plain path names (``~`` expanded; a relative path is
    relative to ``base``, default the current folder).

    Raises:
        DatastoreError: a ``file://`` URL with a query string or fragment.
    """
    if url.lower().startswith("file://"):
        if "@" in urlsplit(url).netloc:
            raise ConfigError(f"a file:// datastore URL takes no user name or password: {scrub_url(url)}")
        parts = urlsplit(url)
        if parts.query or parts.fragment:
            raise DatastoreError(f"a file:// datastore URL takes no query string: {scrub_url(url)}")
        # Like fsspec, everything after "file://" is the path: file:///abs, file://relative, file://~/x.
        url = unquote(url[len("file://") :])
    path = Path(url).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return path.resolve()


def is_local_url(url: str) -> bool:
    """Whether ``url`` names a local folder (a ``file://`` URL or a plain path)."""
    return "://" not in url or url.lower().startswith("file://")


def local_path_is_absolute(url: str) -> bool:
    """Whether a ``file://`` URL or plain path names an absolute path (``~`` counts as absolute)."""
    path = unquote(url[len("file://") :]) if url.lower().startswith("file://") else url
    return path.startswith(("/", "~"))


def absolute_url(url: str, base: Path) -> str:
    """``url`` with a relative local path made absolute against ``base`` (other URLs unchanged).

    The one place a relative datastore path is resolved: the submitter calls it before anything is
    recorded, so the job store, the job spec, status and fetch and the worker all name one folder.
    """
    from olivine.config.datastores import url_credentials_problem

    problem = url_credentials_problem(url)
    if problem:
        raise ConfigError(f"datastore URL {scrub_url(url)}: the URL {problem}")
    if not is_local_url(url):
        return url
    return local_path_of(url, base).as_uri()


class LocalDatastore(Datastore):
    """A datastore in a local folder.

    Args:
        root: the folder; created on the first write.
    """

    scheme = "file"
    atomic_create = True
    # Copies are CPU-bound (hashing) once the page cache absorbs the writes: one per core.
    put_concurrency = max(2, min(4, os.cpu_count() or 1))

    def __init__(self, root: str | Path) -> None:
        super().__init__(LocalFileSystem(), Path(root).expanduser().resolve().as_posix())

    @classmethod
    def open_url(cls, url: str, options: dict[str, Any]) -> LocalDatastore:
        if options:
            raise ConfigError(f"file:// datastores take no options; got {', '.join(sorted(options))}")
        return cls(local_path_of(url))

    @classmethod
    def default(cls) -> LocalDatastore:
        """The per-user default datastore (see :func:`olivine.datastores.paths.default_datastore_dir`)."""
        return cls(default_datastore_dir())

    def _write(self, full: str, chunks: Iterable[Chunk], *, exclusive: bool) -> None:
        def fill(fd: int) -> None:
            for chunk in chunks:
                _write_all(fd, chunk)

        _publish(self._inside(full, create=True), fill, exclusive=exclusive)

    def _write_file(
        self, full: str, local: Path, *, exclusive: bool, recorded: RecordedDigest | None = None
    ) -> tuple[int, str]:
        target = self._inside(full, create=True)
        return _publish(target, lambda fd: copy_hashed(local, fd, recorded), exclusive=exclusive)

    def _open_read(self, full: str) -> io.BufferedIOBase:
        return open(self._inside(full), "rb")

    def _read(self, full: str) -> bytes:
        return self._inside(full).read_bytes()

    def _inside(self, full: str, *, create: bool = False) -> Path:
        """``full`` checked to stay inside the root through no symbolic link (a datastore is shared:
        a link planted in it must not make Olivine write to, or export, a file elsewhere). With
        ``create``, missing folders are created user-private (0700)."""
        target = Path(full)
        root = self.root or "/"
        parent = target.parent
        if create and not parent.is_dir():
            _make_private_dirs(parent)
        rel = os.path.relpath(parent, root)
        outside = rel == os.pardir or rel.startswith(os.pardir + os.sep)
        if outside or os.path.realpath(parent) != os.path.normpath(os.path.join(root, rel)):
            raise DatastoreError(
                f"{self.url_for(self._rel_of(full))}: a folder on its path is a symbolic link or lies "
                "outside the datastore; refusing to follow it"
            )
        if not create and os.path.islink(target):
            raise DatastoreError(
                f"{self.url_for(self._rel_of(full))}: is a symbolic link; refusing to follow it"
            )
        return target

    def _exists(self, full: str) -> bool:
        return os.path.exists(full)

    def _url_of(self, full: str) -> str:
        return Path(full).as_uri()


def _publish(target: Path, fill: Callable[[int], T], *, exclusive: bool) -> T:
    """Write a temporary file beside ``target`` with ``fill(fd)``, then move it into place."""
    tmp = target.with_name(f".{target.name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")
    # Read-write: copy_hashed maps the copy to hash it. User-private (0600): share a datastore folder
    # with a team through group permissions set on purpose, not by default.
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            result = fill(fd)
        finally:
            os.close(fd)
        if exclusive:
            _publish_exclusive(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        # After a hard link the temporary name is a second link to the file: drop it.
        tmp.unlink(missing_ok=True)
    return result


def _publish_exclusive(tmp: Path, target: Path) -> None:
    """Give ``tmp``'s content the name ``target`` unless it exists (then FileExistsError)."""
    try:
        os.link(tmp, target)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    os.replace(tmp, target)


def _make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents with mode 0700 (``os.makedirs`` applies the mode to
    the last folder only)."""
    missing = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        if current == current.parent:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue


def _write_all(fd: int, data: Chunk) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def copy_hashed(local: Path, dst_fd: int, recorded: RecordedDigest | None = None) -> tuple[int, str]:
    """Copy ``local`` into ``dst_fd`` and return ``(size, sha256)`` of the copied bytes.

    The kernel copies (``sendfile``, what makes ``shutil.copy`` fast), then the hash reads the copy,
    which is still in the page cache, through a memory map: no byte passes through a Python buffer.
    Hashing the copy rather than the source means the hash describes exactly what is stored, and the
    map is of our own temporary file, which nobody truncates (a map of a file truncated meanwhile
    would kill the process with SIGBUS). The source's size and mtime are checked around the copy; if
    it changed meanwhile, the copy is redone.

    With a ``recorded`` digest (:mod:`olivine.digests`) that the source's stat matches before and after
    the copy, the copy is not hashed: the recorded sha256 is returned. A stale record is ignored.
    """
    with open(local, "rb") as src:
        fd = src.fileno()
        for _ in range(3):
            before = os.fstat(fd)
            trusted = recorded is not None and recorded.matches(before)
            if before.st_size <= _SMALL_FILE_BYTES and not trusted:
                data = src.read()
                _write_all(dst_fd, data)
                return len(data), hashlib.sha256(data).hexdigest()
            copied = _kernel_copy(fd, dst_fd, before.st_size)
            after = os.fstat(fd)
            if copied == before.st_size and (after.st_size, after.st_mtime_ns) == (
                copied,
                before.st_mtime_ns,
            ):
                if recorded is not None and trusted and recorded.matches(after):
                    return copied, recorded.sha256
                return copied, _hash_fd(dst_fd, copied)
            # Changed under us: start over on an empty destination.
            os.ftruncate(dst_fd, 0)
            os.lseek(dst_fd, 0, os.SEEK_SET)
            src.seek(0)
    raise DatastoreError(f"{local} kept changing while it was being exported")


_SMALL_FILE_BYTES = 1 << 20


def _hash_fd(fd: int, size: int) -> str:
    """sha256 of the first ``size`` bytes of ``fd`` (opened for reading)."""
    try:
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
            # One update over the whole map; hashlib releases the GIL meanwhile.
            return hashlib.sha256(mapped).hexdigest()
    except (OSError, ValueError):
        pass  # a filesystem without mmap support: read it
    digest = hashlib.sha256()
    offset = 0
    while offset < size and (data := os.pread(fd, min(CHUNK_BYTES, size - offset), offset)):
        digest.update(data)
        offset += len(data)
    return digest.hexdigest()


def _kernel_copy(src_fd: int, dst_fd: int, size: int) -> int:
    """Copy ``size`` bytes from offset 0 of ``src_fd`` to ``dst_fd``; returns the bytes copied."""
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(dst_fd, src_fd, offset, min(size - offset, 1 << 30))
            if sent == 0:
                return offset
            offset += sent
        return offset
    except OSError as exc:
        if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
    # No sendfile between these files (some filesystems refuse it): plain reads and writes.
    while offset < size and (data := os.pread(src_fd, min(CHUNK_BYTES, size - offset), offset)):
        _write_all(dst_fd, data)
        offset += len(data)
    return offset
