"""Exports registered as data assets, as the CLI lists them (over :mod:`olivine.datastores.assets`).

Each sealed export is version ``<yyyy-mm-dd-hh-mm-ss>`` of the asset ``<workflow_id>``. Failed and
cancelled exports are versions too, with their state, because users look for them to resume or inspect
them; a version's ``state`` tells a finished model from a partial cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from olivine.datastores import assets
from olivine.jobs.choice import DatastoreChoice, choose_datastore
from olivine.jobs.profiles import Profiles


@dataclass(frozen=True)
class AssetVersion:
    """One version of an asset: an export, by its timestamp, with its final state and URL."""

    version: str
    state: str | None
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "state": self.state, "url": self.url}


@dataclass(frozen=True)
class AssetSummary:
    """An asset (a workflow id) and its versions, oldest first."""

    name: str
    versions: tuple[AssetVersion, ...]

    @property
    def latest(self) -> AssetVersion:
        return self.versions[-1]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "versions": [v.to_json() for v in self.versions]}


def default_datastore(profiles: Profiles) -> DatastoreChoice:
    """Where a submission without ``--host`` or ``--datastore`` exports: the hosts file's
    ``default_datastore``, else its default host's datastore, else the local default datastore."""
    name = profiles.data.default_datastore
    host = profiles.data.default_host
    if name is None and host is not None and profiles.has_host(host):
        name = profiles.host(host).default_datastore()
    return choose_datastore(name, profiles)


def assets_list(datastore: str | None = None, *, profiles: Profiles | None = None) -> list[AssetSummary]:
    """Every asset on a datastore with its versions and their states, by name.

    Every sealed export is listed: SUCCEEDED ones and also FAILED and CANCELLED ones (each version has
    its ``state``), because their cache is what a resume starts from. The worker registers its export
    when it seals it, whatever the outcome; the monitor does it for a worker that died.

    Args:
        datastore: a hosts-file datastore name, a URL or a path; default :func:`default_datastore`.
        profiles: the hosts file (default: the user's).
    """
    profiles = profiles or Profiles()
    choice = choose_datastore(datastore, profiles) if datastore else default_datastore(profiles)
    store = choice.open(profiles)
    summaries = []
    for asset in assets.list_assets(store):
        versions = tuple(
            AssetVersion(v, _state(record), record["url"])
            for v in asset.versions
            for record in [assets.show(store, asset.name, v)]
        )
        summaries.append(AssetSummary(asset.name, versions))
    return summaries


def assets_show(
    name: str,
    version: str | None = None,
    datastore: str | None = None,
    *,
    profiles: Profiles | None = None,
) -> dict[str, Any]:
    """One version of an asset (default: the newest, whatever its state) as its registered record:
    ``name``, ``version``, ``path``, ``url``, ``summary`` (status, metrics, totals) and ``state``.

    Raises:
        JobNotFoundError: no such asset or version on the datastore.
    """
    profiles = profiles or Profiles()
    choice = choose_datastore(datastore, profiles) if datastore else default_datastore(profiles)
    record = assets.show(choice.open(profiles), name, version)
    return {**record, "state": _state(record)}


def _state(record: dict[str, Any]) -> str | None:
    status = record.get("summary", {}).get("status")
    if isinstance(status, dict):
        state = status.get("state")
        return str(state) if state is not None else None
    return str(status) if status is not None else None
