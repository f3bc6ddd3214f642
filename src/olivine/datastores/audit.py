"""Audit a datastore: is every export sealed, complete and consistent, and does the asset index hold?

Read-only: exports are append-only, so nothing found here is rewritten in place. What can be repaired
(sealing the export of a job that ended without its worker's wrap-up) is done by the job layer, which
knows the job; this module only reports. Each finding names the export and what is wrong:

* ``manifest``   the manifest is unreadable (the export cannot be fetched or seeded from)
* ``unsealed``   no manifest: the job is running, or ended without sealing it
* ``split``      ``status.json`` and the manifest disagree on the final state
* ``missing`` / ``size`` / ``sha256`` / ``unexpected``  a file differs from the manifest
* ``future``     an export folder dated in the future (never a seed; see :mod:`.seeding`)
* ``asset``      an asset-index record that is unreadable or points anywhere but its own export
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from olivine.datastores.assets import ASSETS_DIR
from olivine.datastores.base import Datastore
from olivine.datastores.layout import ExportLayout, parse_timestamp_folder
from olivine.datastores.manifest import export_entries, read_manifest
from olivine.datastores.seeding import FUTURE_SLACK
from olivine.errors import DatastoreError

_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@dataclass(frozen=True)
class Finding:
    """One problem: ``kind`` (see the module docstring), where (an export root or a path), detail."""

    kind: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.detail}"


def state_of(status: object) -> str | None:
    """The state in a status document (a dict with ``state``) or a bare state string."""
    if isinstance(status, dict):
        value = status.get("state")
        return str(value) if value is not None else None
    return str(status) if isinstance(status, str) else None


def exports_on(datastore: Datastore) -> list[ExportLayout]:
    """Every export on ``datastore`` (all workflows), oldest first."""
    found = []
    for folder in datastore.ls(""):
        if parse_timestamp_folder(folder) is None:
            continue
        for workflow_id in datastore.ls(folder):
            try:
                found.append(ExportLayout.from_folder(datastore, folder, workflow_id))
            except (ValueError, DatastoreError):
                continue  # not an export folder name: nothing Olivine wrote
    return sorted(found, key=lambda layout: (layout.timestamp, layout.workflow_id))


def audit_export(layout: ExportLayout, *, hashes: bool = False) -> list[Finding]:
    """Findings for one export; ``hashes`` also re-hashes every file (reads it all)."""
    datastore = layout.datastore
    url = layout.url
    try:
        manifest = read_manifest(datastore, layout)
    except DatastoreError as exc:
        return [Finding("manifest", url, str(exc).rsplit(": ", 1)[-1])]
    try:
        status = layout.read_status()
    except (DatastoreError, ValueError) as exc:
        status = None
        findings = [Finding("split", url, f"status.json is unreadable: {exc}")]
    else:
        findings = []
    if manifest is None:
        state = state_of(status)
        if (
            status is None
            and not datastore.walk_files(f"{layout.root}/cache")
            and not datastore.walk_files(f"{layout.root}/logs")
        ):
            return findings  # only a claim: its submission stopped before anything was exported
        findings.append(Finding("unsealed", url, f"no manifest; status.json says {state or 'nothing'}"))
        return findings
    sealed = state_of(manifest.get("status"))
    if status is not None and sealed in _TERMINAL and state_of(status) != sealed:
        findings.append(Finding("split", url, f"manifest says {sealed}, status.json says {state_of(status)}"))
    findings.extend(_file_findings(layout, hashes=hashes))
    return findings


def _file_findings(layout: ExportLayout, *, hashes: bool) -> list[Finding]:
    datastore = layout.datastore
    try:
        entries = export_entries(datastore, layout, "all")
    except (DatastoreError, ValueError, KeyError, TypeError) as exc:
        return [Finding("manifest", layout.url, f"its file list is unreadable: {exc}")]
    stored = {rel[len(layout.root) + 1 :]: size for rel, size in datastore.walk_files(layout.root)}
    findings = []
    for entry in entries:
        size = stored.pop(entry.path, None)
        where = f"{layout.url}/{entry.path}"
        if size is None:
            findings.append(Finding("missing", where, "listed in the manifest, not on the datastore"))
        elif size != entry.size:
            findings.append(Finding("size", where, f"{size} bytes, the manifest says {entry.size}"))
        elif hashes and datastore.hash_of(layout.path(entry.path)).sha256 != entry.sha256:
            findings.append(Finding("sha256", where, "content differs from the manifest"))
    for path in sorted(p for p in stored if p.startswith(("cache/", "output/"))):
        findings.append(
            Finding("unexpected", f"{layout.url}/{path}", "on the datastore, not in the manifest")
        )
    return findings


def audit_assets(datastore: Datastore) -> list[Finding]:
    """Asset-index records that are unreadable or point anywhere but ``<version>/<name>``."""
    findings = []
    for name in datastore.ls(ASSETS_DIR):
        for file in datastore.ls(f"{ASSETS_DIR}/{name}"):
            rel = f"{ASSETS_DIR}/{name}/{file}"
            version = file.removesuffix(".json")
            if not file.endswith(".json") or parse_timestamp_folder(version) is None:
                continue
            try:
                record = json.loads(datastore.read_bytes(rel))
                path = record["path"]
            except (DatastoreError, ValueError, KeyError, TypeError) as exc:
                findings.append(Finding("asset", datastore.url_for(rel), f"unreadable record: {exc}"))
                continue
            if path != f"{version}/{name}":
                findings.append(
                    Finding("asset", datastore.url_for(rel), f"points to {path!r}, not its export")
                )
            elif not datastore.exists(path):
                findings.append(Finding("asset", datastore.url_for(rel), "its export is gone"))
    return findings


def audit_datastore(
    datastore: Datastore, *, hashes: bool = False, now: datetime | None = None
) -> list[Finding]:
    """Every finding on ``datastore``: each export, future-dated folders, the asset index."""
    limit = (now or datetime.now(timezone.utc)) + FUTURE_SLACK
    findings = []
    for layout in exports_on(datastore):
        if layout.timestamp > limit:
            findings.append(Finding("future", layout.url, "dated in the future: never used as a seed"))
        findings.extend(audit_export(layout, hashes=hashes))
    findings.extend(audit_assets(datastore))
    return findings
