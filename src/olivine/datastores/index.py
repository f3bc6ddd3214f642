"""The export index: which files an export holds, with sizes and sha256, kept on the datastore.

It is append-only like everything else in an export: each flush writes a new segment
``.olivine/index/<nnnnnn>.json`` with a create-only write, so a restarted exporter (or another machine)
can load the union of segments and skip what is already there, and a fetch of an export that never
finished (no manifest) can still verify every file.

Reading stays bounded on object stores, where each segment is a round trip: every
:data:`CHECKPOINT_EVERY`-th segment is a checkpoint, ``<nnnnnn>.full.json``, holding the whole index up
to it, so a reader lists the folder once and reads the newest checkpoint plus the segments after it
(at most ``1 + 1 + CHECKPOINT_EVERY`` requests, whatever the export's length).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from olivine.datastores.base import Datastore
from olivine.datastores.files import FileEntry, json_bytes
from olivine.datastores.layout import ExportLayout
from olivine.errors import DatastoreError

#: A checkpoint (the whole index) is written instead of a plain segment at every multiple of this.
CHECKPOINT_EVERY = 16
_FULL = ".full.json"


def _number(name: str) -> int | None:
    head = name.split(".", 1)[0]
    return int(head) if head.isdigit() and name.endswith(".json") else None


def load_index(datastore: Datastore, layout: ExportLayout) -> tuple[dict[str, FileEntry], int]:
    """All entries of the export's index by path (relative to the export root), and the number the
    next segment should get. One listing, then the newest checkpoint and the segments after it."""
    names = datastore.ls(layout.index)
    numbered = sorted((n, name) for name in names if (n := _number(name)) is not None)
    if not numbered:
        return {}, 1
    start = max((n for n, name in numbered if name.endswith(_FULL)), default=0)
    entries: dict[str, FileEntry] = {}
    for n, name in numbered:
        if n < start or (n == start and not name.endswith(_FULL)):
            continue
        rel = f"{layout.index}/{name}"
        try:
            data = json.loads(datastore.read_bytes(rel))
            for item in data["files"]:
                entry = FileEntry.from_json(item)
                entries[entry.path] = entry
        except (ValueError, KeyError, TypeError) as exc:
            raise DatastoreError(f"corrupt export index segment {datastore.url_for(rel)}: {exc}") from exc
    return entries, numbered[-1][0] + 1


def read_index(datastore: Datastore, layout: ExportLayout) -> dict[str, FileEntry]:
    """All entries of the export's index by path (relative to the export root)."""
    return load_index(datastore, layout)[0]


def write_segment(
    datastore: Datastore,
    layout: ExportLayout,
    entries: Iterable[FileEntry],
    seq: int,
    whole: Mapping[str, FileEntry] | None = None,
) -> int:
    """Write ``entries`` as a new segment numbered ``seq`` or the first free number after it; at a
    checkpoint number with ``whole`` (the whole index, ``entries`` included), write that instead.

    Returns:
        The number to use for the next segment.
    """
    batch = sorted(entries, key=lambda e: e.path)
    while True:
        full = whole is not None and seq % CHECKPOINT_EVERY == 0
        files = sorted(whole.values(), key=lambda e: e.path) if full and whole is not None else batch
        name = f"{seq:06d}{_FULL}" if full else f"{seq:06d}.json"
        body = json_bytes({"files": [e.to_json() for e in files]})
        if datastore.put_if_absent(f"{layout.index}/{name}", body):
            return seq + 1
        seq += 1  # another exporter of the same export took this number
