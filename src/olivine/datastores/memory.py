"""The ``memory://`` datastore: fsspec's in-process memory filesystem, for tests and dry runs.

It is not shared between processes. It stands in for object stores in tests: like a blob store it has
no real folders and stores each file with a single put, so the backend-independent code paths run
against something other than local files.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from typing import Any

from fsspec.implementations.memory import MemoryFileSystem

from olivine.datastores.base import Datastore
from olivine.datastores.files import Chunk
from olivine.errors import ConfigError

# One lock for the process-wide store: it makes the create-only check and the put one step.
_LOCK = threading.Lock()


class MemoryDatastore(Datastore):
    """A datastore in this process's memory (``memory://<root>``)."""

    scheme = "memory"
    atomic_create = True  # within the one process that can see it
    process_local = True

    def __init__(self, root: str) -> None:
        fs = MemoryFileSystem()
        super().__init__(fs, fs._strip_protocol(root))

    @classmethod
    def open_url(cls, url: str, options: dict[str, Any]) -> MemoryDatastore:
        if options:
            raise ConfigError(f"memory:// datastores take no options; got {', '.join(sorted(options))}")
        return cls(url)

    def _write(self, full: str, chunks: Iterable[Chunk], *, exclusive: bool) -> None:
        # Copy each chunk as it arrives: the reader reuses its buffer.
        data = b"".join(bytes(chunk) for chunk in chunks)
        with _LOCK:
            if exclusive and self.fs.exists(full):
                raise FileExistsError(full)
            self.fs.pipe_file(full, data)

    def _open_read(self, full: str) -> io.BufferedIOBase:
        # The memory filesystem hands out its stored file object itself; read a copy instead, so
        # concurrent readers do not share one file position.
        return io.BytesIO(self._read(full))

    def _url_of(self, full: str) -> str:
        return f"memory://{full.lstrip('/')}"
