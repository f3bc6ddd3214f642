"""The export index: which files an export holds, with sizes and sha256, kept on the datastore.

It is append-only like everything else in an export: each flush writes a new segment
``.olivine/index/<nnnnnn>.json`` with a create-only write, so a restarted exporter (or another machine)
can load the union of segments and skip what is already there, and a fetch of an export that never
finished (no manifest) can still verify every file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from olivine.datastores.base import Datastore
from olivine.datastores.files import FileEntry, json_bytes
from olivine.datastores.layout import ExportLayout
from olivine.errors import DatastoreError


def read_index(datastore: Datastore, layout: ExportLayout) -> dict[str, FileEntry]:
    """All entries of the export's index by path (relative to the export root)."""
    entries: dict[str, FileEntry] = {}
    for rel, _ in datastore.walk_files(layout.index):
        try:
            data = json.loads(datastore.read_bytes(rel))
            for item in data["files"]:
                entry = FileEntry.from_json(item)
                entries[entry.path] = entry
        except (ValueError, KeyError, TypeError) as exc:
            raise DatastoreError(f"corrupt export index segment {datastore.url_for(rel)}: {exc}") from exc
    return entries


def next_segment(datastore: Datastore, layout: ExportLayout) -> int:
    """The number after the highest existing segment (1 for a new export)."""
    numbers = [int(n.split(".", 1)[0]) for n in datastore.ls(layout.index) if n.split(".", 1)[0].isdigit()]
    return max(numbers, default=0) + 1


def write_segment(datastore: Datastore, layout: ExportLayout, entries: Iterable[FileEntry], seq: int) -> int:
    """Write ``entries`` as a new segment numbered ``seq`` or the first free number after it.

    Returns:
        The number to use for the next segment.
    """
    body = json_bytes({"files": [e.to_json() for e in sorted(entries, key=lambda e: e.path)]})
    while not datastore.put_if_absent(f"{layout.index}/{seq:06d}.json", body):
        seq += 1  # another exporter of the same export took this number
    return seq + 1
