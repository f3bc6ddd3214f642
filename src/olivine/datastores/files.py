"""Files as Olivine stores them: entries with sha256, chunked hashing copies, path and JSON rules."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olivine.errors import DatastoreError

#: Copy buffer: large enough that per-call overhead vanishes, small enough to stay in the CPU cache
#: between the read and the hash (1 MiB hashed ~40% faster than 4 MiB here).
CHUNK_BYTES = 1 << 20
#: Block size for reading remote files (fewer round trips; the hash still sees CHUNK_BYTES pieces).
REMOTE_BLOCK_BYTES = 8 << 20
#: Marks in-flight temporary files; listings skip names that contain it.
TEMP_MARK = ".olivine-tmp-"

Chunk = bytes | bytearray | memoryview


@dataclass(frozen=True)
class FileEntry:
    """One stored file: path (relative to whatever the caller lists it against), size and sha256."""

    path: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileEntry:
        return cls(path=str(data["path"]), size=int(data["size"]), sha256=str(data["sha256"]))


class HashingChunks:
    """Wraps a chunk iterator, hashing and counting what flows through (so a copy hashes only once)."""

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self._chunks = chunks
        self._hash = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[Chunk]:
        for chunk in self._chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class CountingChunks:
    """Wraps a chunk iterator, counting the bytes that flow through (a copy whose sha256 is known)."""

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self._chunks = chunks
        self.size = 0

    def __iter__(self) -> Iterator[Chunk]:
        for chunk in self._chunks:
            self.size += len(chunk)
            yield chunk


def iter_chunks(src: io.BufferedIOBase, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Read ``src`` in chunks into one reused buffer. A chunk is valid until the next is requested."""
    # Plain reads first: a small file then never allocates (and zeroes) the big reusable buffer.
    for _ in range(2):
        data = src.read(chunk_bytes)
        if not data:
            return
        yield data
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    while True:
        n = src.readinto(buf)
        if not n:
            return
        yield view[:n]


def hash_file(path: str | Path) -> tuple[int, str]:
    """``(size, sha256)`` of a local file."""
    with open(path, "rb") as src:
        hashing = HashingChunks(iter_chunks(src))
        for _ in hashing:
            pass
    return hashing.size, hashing.sha256


def json_bytes(value: Any) -> bytes:
    """Stable, readable JSON for files Olivine writes to a datastore (sorted keys, so equal content
    gives equal bytes and the append-only check treats a rewrite as a no-op)."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()


def clean_rel(rel: str) -> str:
    """Normalise a datastore-relative path (``a//b/./c`` -> ``a/b/c``); refuse ``..`` and backslashes."""
    if "\\" in rel or "\x00" in rel:
        raise DatastoreError(f"invalid datastore path {rel!r}: use '/' separators")
    parts = [p for p in rel.strip("/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DatastoreError(f"invalid datastore path {rel!r}: '..' is not allowed")
    return "/".join(parts)
