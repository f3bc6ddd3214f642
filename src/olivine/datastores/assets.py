"""The data-asset index: each export is version ``<timestamp>`` of the asset ``<workflow_id>``.

As Azure ML registers an exported workflow as a data asset, Olivine keeps the index on the datastore
itself, ``assets/<workflow_id>/<yyyy-mm-dd-hh-mm-ss>.json``, so every machine that can read the
datastore sees the same assets. Beside each record, an empty ``<version>.<state>.state`` names the
version's final state, so :func:`catalog` answers from one listing of ``assets/`` (one request on an
object store) instead of one read per version. A version, once registered, is immutable (append-only
rule); the record stores the export path relative to the datastore, and :func:`show` adds the URL as
seen by the reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from olivine.datastores.base import Datastore
from olivine.datastores.files import json_bytes
from olivine.datastores.layout import ExportLayout, parse_timestamp_folder, timestamp_folder
from olivine.datastores.redact import redact_config
from olivine.errors import JobNotFoundError

ASSETS_DIR = "assets"
_STATE_SUFFIX = ".state"
_STATE = re.compile(r"^[A-Za-z_]+$")


class Asset(NamedTuple):
    """An asset name and its versions, oldest first."""

    name: str
    versions: tuple[str, ...]


def _version(timestamp: datetime | str) -> str:
    if isinstance(timestamp, datetime):
        return timestamp_folder(timestamp)
    if parse_timestamp_folder(timestamp) is None:
        raise ValueError(f"asset version must be a yyyy-mm-dd-hh-mm-ss timestamp, got {timestamp!r}")
    return timestamp


def register(
    datastore: Datastore, workflow_id: str, timestamp: datetime | str, summary: Mapping[str, Any]
) -> dict[str, Any]:
    """Register the export ``<timestamp>/<workflow_id>`` as a version of the asset ``workflow_id``.

    Registering the same version with the same summary again is a no-op.

    Args:
        datastore: the datastore holding the export.
        workflow_id: the asset name.
        timestamp: the export's timestamp (aware datetime or its folder name).
        summary: what to show for this version (status, metrics, sizes); credentials are removed.

    Returns:
        The stored record.

    Raises:
        DatastoreError: the version is already registered with a different summary.
    """
    version = _version(timestamp)
    layout = ExportLayout.from_folder(datastore, version, workflow_id)
    record = {"name": workflow_id, "version": version, "path": layout.root, "summary": redact_config(summary)}
    datastore.put_bytes(f"{ASSETS_DIR}/{workflow_id}/{version}.json", json_bytes(record))
    state = state_of(record)
    if state and _STATE.match(state):
        datastore.put_bytes(f"{ASSETS_DIR}/{workflow_id}/{version}.{state}{_STATE_SUFFIX}", b"")
    return record


def state_of(record: Mapping[str, Any]) -> str | None:
    """The final state a version record's summary names (``SUCCEEDED``, ``FAILED``, ...), if any."""
    status = record.get("summary", {}).get("status")
    if isinstance(status, Mapping):
        status = status.get("state")
    return str(status) if status is not None else None


def catalog(datastore: Datastore) -> dict[str, list[tuple[str, str | None]]]:
    """Every asset's versions with their states, oldest first, from one listing of ``assets/``.

    A version registered without a state marker (by an older Olivine) has its record read.
    """
    versions: dict[str, dict[str, str | None]] = {}
    states: dict[tuple[str, str], str] = {}
    for rel, _ in datastore.walk_files(ASSETS_DIR):
        parts = rel.split("/")
        if len(parts) != 3:
            continue
        name, file = parts[1], parts[2]
        if file.endswith(".json") and parse_timestamp_folder(file[: -len(".json")]):
            versions.setdefault(name, {})[file[: -len(".json")]] = None
        elif file.endswith(_STATE_SUFFIX):
            version, _, marked = file[: -len(_STATE_SUFFIX)].partition(".")
            states[(name, version)] = marked
    out: dict[str, list[tuple[str, str | None]]] = {}
    for name in sorted(versions):
        rows: list[tuple[str, str | None]] = []
        for version in sorted(versions[name]):
            state = states.get((name, version))
            if state is None:
                state = state_of(json.loads(datastore.read_bytes(f"{ASSETS_DIR}/{name}/{version}.json")))
            rows.append((version, state))
        out[name] = rows
    return out


def _versions(datastore: Datastore, name: str) -> tuple[str, ...]:
    names = (v.removesuffix(".json") for v in datastore.ls(f"{ASSETS_DIR}/{name}") if v.endswith(".json"))
    return tuple(sorted(v for v in names if parse_timestamp_folder(v)))


def list_assets(datastore: Datastore) -> list[Asset]:
    """Every asset on ``datastore`` with its versions, by name (one listing)."""
    return [Asset(name, tuple(v for v, _ in rows)) for name, rows in catalog(datastore).items() if rows]


def show(datastore: Datastore, name: str, version: str | None = None) -> dict[str, Any]:
    """One version of an asset (the latest when ``version`` is None), with its ``url`` added.

    Raises:
        JobNotFoundError: no such asset or version on this datastore.
    """
    versions = _versions(datastore, name)
    if not versions:
        raise JobNotFoundError(f"no data asset '{name}' on {datastore.url_for()}")
    chosen = versions[-1] if version is None else _version(version)
    if chosen not in versions:
        raise JobNotFoundError(
            f"data asset '{name}' has no version {chosen}; versions: {', '.join(versions)}"
        )
    record: dict[str, Any] = json.loads(datastore.read_bytes(f"{ASSETS_DIR}/{name}/{chosen}.json"))
    record["url"] = datastore.url_for(str(record.get("path", f"{chosen}/{name}")))
    return record
