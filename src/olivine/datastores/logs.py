"""Logs on a datastore: each stream is a folder of numbered chunks, ``logs/<stream>/<nnnnnn>.log``.

Object stores cannot append to a file, and exports are append-only anyway, so a growing log is shipped
as new chunks; reading a stream concatenates them in order. A stream is fed either by
:meth:`Exporter.append_log` or by :meth:`Exporter.export_log` of one growing file, not both.
"""

from __future__ import annotations

import re

from olivine.datastores.base import Datastore
from olivine.datastores.layout import ExportLayout

_STREAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_stream(stream: str) -> str:
    """Return ``stream`` if it is a valid stream name (one folder name), else raise ValueError."""
    if not _STREAM.match(stream):
        raise ValueError(f"invalid log stream name {stream!r}: use letters, digits, '_', '.', '-'")
    return stream


def chunk_path(layout: ExportLayout, stream: str, seq: int) -> str:
    """Datastore-relative path of chunk ``seq`` of ``stream``."""
    return f"{layout.logs}/{check_stream(stream)}/{seq:06d}.log"


def log_streams(datastore: Datastore, layout: ExportLayout) -> list[str]:
    """Names of the export's log streams, sorted."""
    return datastore.ls(layout.logs)


def log_chunks(datastore: Datastore, layout: ExportLayout, stream: str) -> list[tuple[str, int]]:
    """``(datastore-relative path, size)`` of each chunk of ``stream``, in order; for followers."""
    prefix = f"{layout.logs}/{check_stream(stream)}"
    return [(rel, size) for rel, size in datastore.walk_files(prefix) if rel.endswith(".log")]


def read_log(datastore: Datastore, layout: ExportLayout, stream: str) -> str:
    """The whole text of ``stream`` (chunks concatenated; undecodable bytes replaced)."""
    data = b"".join(datastore.read_bytes(rel) for rel, _ in log_chunks(datastore, layout, stream))
    return data.decode("utf-8", errors="replace")
