"""Recorded digests: the sha256 of a file, hashed once when Olivine wrote it, trusted while its stat holds.

A folder Olivine commits (a cache run ``runs/<key>/``, the output folder) gets a sidecar file
:data:`DIGESTS_NAME` listing, for files under that folder (paths relative to it, ``/``-separated)::

    {"format": "olivine-digests/1",
     "files": {"model/model.onnx": {"size": 90871234, "mtime_ns": ..., "ctime_ns": ..., "ino": ...,
                                    "dev": ..., "sha256": "..."}}}

The exporter then copies such a file without hashing it again, using the recorded sha256 for the
manifest, when the file is provably unchanged since it was hashed.

Trust model (git's index, rsync's quick check): a file whose size, ``st_mtime_ns``, ``st_ctime_ns``, inode
and device all equal the recorded ones is taken to hold the recorded content. Any write, truncation,
replacement by rename, or ``os.utime`` (which moves ctime even when it restores mtime) breaks the match,
and the file is hashed as if there were no record. What it cannot see is a same-size rewrite within one
timestamp tick of the hashing (git's "racy clean" case) or a forged record: Olivine hashes a folder only
after it finished writing it and never writes a committed folder again, and ``olivine fetch`` checks every
file against the manifest, so a lie is refused on the way back. A miss only costs a hash; stat fields are
machine-local, so sidecars are local bookkeeping and are never exported.

Standard library only: the engine imports this module, and it must not pull in fsspec.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The sidecar's file name (a dot-name, so it is not mistaken for a model file).
DIGESTS_NAME = ".olivine-digests.json"
FORMAT = "olivine-digests/1"
#: Read size when hashing: 1 MiB stays in the CPU cache between the read and the hash.
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RecordedDigest:
    """A file's sha256 and the stat fields that vouch for it (see the module docstring)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    sha256: str

    @classmethod
    def of(cls, stat: os.stat_result, sha256: str) -> RecordedDigest:
        """The record of a file with ``stat`` whose content hashes to ``sha256``."""
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev, sha256)

    def matches(self, stat: os.stat_result) -> bool:
        """Whether a file with ``stat`` is provably the file this records (same content)."""
        return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev) == (
            self.size,
            self.mtime_ns,
            self.ctime_ns,
            self.ino,
            self.dev,
        )

    def sha256_if_unchanged(self, path: str | Path) -> str | None:
        """The recorded sha256 if ``path`` still matches the record, else None."""
        try:
            return self.sha256 if self.matches(os.stat(path)) else None
        except OSError:
            return None


def hash_recorded(path: str | Path) -> RecordedDigest:
    """Hash ``path`` and record it with the stat it had while being hashed.

    Raises:
        OSError: the file cannot be read, or it kept changing while it was hashed.
    """
    with open(path, "rb") as src:
        fd = src.fileno()
        for _ in range(3):
            before = os.fstat(fd)
            digest = hashlib.sha256()
            buf = bytearray(_CHUNK_BYTES)
            view = memoryview(buf)
            src.seek(0)
            while n := src.readinto(buf):
                digest.update(view[:n])
            after = os.fstat(fd)
            # Equal stats around the hash: the hash describes the content that stat vouches for.
            if RecordedDigest.of(before, "").matches(after):
                return RecordedDigest.of(after, digest.hexdigest())
    raise OSError(f"{path} kept changing while it was hashed")


def record_folder(folder: Path) -> dict[str, RecordedDigest]:
    """Hash every file under ``folder`` and write its sidecar (replacing any earlier one).

    Symlinks are not followed and not recorded (their target may change without their stat changing).
    Returns the records by path relative to ``folder``.
    """
    records = {rel: hash_recorded(folder / rel) for rel in _files_under(folder)}
    write_digests(folder, records)
    return records


def write_digests(folder: Path, records: Mapping[str, RecordedDigest]) -> Path:
    """Write ``folder``'s sidecar with ``records`` (paths relative to ``folder``), atomically."""
    path = folder / DIGESTS_NAME
    data = {"format": FORMAT, "files": {rel: asdict(records[rel]) for rel in sorted(records)}}
    fd, tmp = tempfile.mkstemp(prefix=f"{DIGESTS_NAME}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_digests(folder: Path) -> dict[str, RecordedDigest]:
    """The records of ``folder``'s sidecar; empty when it is missing, unreadable or of another format
    (no records only means files are hashed again)."""
    try:
        data: Any = json.loads((folder / DIGESTS_NAME).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}
        return {str(rel): _record_from_json(item) for rel, item in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def carry_digests(
    pairs: Mapping[Path, Path], source: Mapping[Path, RecordedDigest]
) -> dict[Path, RecordedDigest]:
    """Records for copies: ``pairs`` maps a copy to its source, ``source`` has the sources' records.

    A copy gets the source's sha256 when the source still matches its record now, after the copy
    (a byte copy does not change content); the copy's own stat vouches for it from then on.
    """
    carried: dict[Path, RecordedDigest] = {}
    for copy, original in pairs.items():
        record = source.get(original)
        if record is None or record.sha256_if_unchanged(original) is None:
            continue
        try:
            stat = os.stat(copy)
        except OSError:
            continue
        if stat.st_size == record.size:
            carried[copy] = RecordedDigest.of(stat, record.sha256)
    return carried


def _record_from_json(item: Mapping[str, Any]) -> RecordedDigest:
    return RecordedDigest(
        size=int(item["size"]),
        mtime_ns=int(item["mtime_ns"]),
        ctime_ns=int(item["ctime_ns"]),
        ino=int(item["ino"]),
        dev=int(item["dev"]),
        sha256=str(item["sha256"]),
    )


def _files_under(folder: Path) -> Iterator[str]:
    for parent, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(parent, name)
            if name != DIGESTS_NAME and path.is_file() and not path.is_symlink():
                yield path.relative_to(folder).as_posix()
