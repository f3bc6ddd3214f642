"""Where an export lives: ``<datastore>/<yyyy-mm-dd-hh-mm-ss>/<workflow_id>/{cache,output,logs,...}``.

The timestamp is the UTC time of submission, to the second (the layout of the Olive remote-workflow docs,
not the ``<workflow_id>/<timestamp>`` order Olive's code wrote).

Same-second rule: a submission *claims* its folder by creating ``.olivine/claim.json`` in it with a
create-only write (:meth:`Datastore.put_if_absent`). If the folder is taken, the claim moves on to the
next second, so two submissions of one workflow in the same second get folders one second apart and the
later one's folder time is up to a few seconds after its submission time. A retry of the same
submission (same ``claim_id``) gets its own folder back. How race-free the claim is depends on the
backend (:attr:`Datastore.atomic_create`).
"""

from __future__ import annotations

import json
import re
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from olivine.datastores.base import Datastore
from olivine.datastores.files import json_bytes
from olivine.errors import DatastoreError

TIMESTAMP_FORMAT = "%Y-%m-%d-%H-%M-%S"
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$")
_WORKFLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: Bookkeeping folder inside an export root (claim marker, export index); not part of the manifest.
BOOKKEEPING_DIR = ".olivine"
#: Per-workflow export markers at the datastore root, so listing a workflow's exports is one request.
EXPORTS_DIR = f"{BOOKKEEPING_DIR}/exports"
#: Present once every export on a datastore has its marker (claims since then write one each).
MARKERS_FLAG = f"{BOOKKEEPING_DIR}/markers.json"
#: Datastore objects whose markers are known to be complete (checked once per object).
_MARKED: weakref.WeakSet[Datastore] = weakref.WeakSet()


def timestamp_folder(dt: datetime) -> str:
    """``yyyy-mm-dd-hh-mm-ss`` of ``dt`` in UTC.

    Raises:
        ValueError: ``dt`` is naive (its time zone would be a guess).
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("export timestamps must be timezone-aware, e.g. datetime.now(timezone.utc)")
    return dt.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_timestamp_folder(name: str) -> datetime | None:
    """The UTC datetime a timestamp folder name stands for, or None if ``name`` is not one."""
    if not _TIMESTAMP.match(name):
        return None
    try:
        return datetime.strptime(name, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


@dataclass(frozen=True)
class ExportLayout:
    """The paths of one export, relative to the datastore root.

    Args:
        datastore: the datastore the export lives on (not part of equality).
        timestamp: submission time; normalised to UTC whole seconds.
        workflow_id: the workflow's id (one folder name).
    """

    datastore: Datastore = field(compare=False, repr=False)
    timestamp: datetime
    workflow_id: str

    def __post_init__(self) -> None:
        if not _WORKFLOW_ID.match(self.workflow_id):
            raise ValueError(f"invalid workflow_id {self.workflow_id!r} for an export folder")
        timestamp_folder(self.timestamp)  # refuses naive datetimes
        utc = self.timestamp.astimezone(timezone.utc).replace(microsecond=0)
        object.__setattr__(self, "timestamp", utc)

    @classmethod
    def from_folder(cls, datastore: Datastore, folder: str, workflow_id: str) -> ExportLayout:
        """The layout for an existing ``<folder>/<workflow_id>`` (``folder`` is a timestamp folder)."""
        ts = parse_timestamp_folder(folder)
        if ts is None:
            raise DatastoreError(f"'{folder}' is not a yyyy-mm-dd-hh-mm-ss export folder")
        return cls(datastore, ts, workflow_id)

    @property
    def folder(self) -> str:
        return timestamp_folder(self.timestamp)

    @property
    def root(self) -> str:
        return f"{self.folder}/{self.workflow_id}"

    def path(self, rel: str) -> str:
        """``rel`` (relative to the export root) as a path relative to the datastore root."""
        return f"{self.root}/{rel.strip('/')}" if rel.strip("/") else self.root

    @property
    def cache(self) -> str:
        return self.path("cache")

    @property
    def output(self) -> str:
        return self.path("output")

    @property
    def logs(self) -> str:
        return self.path("logs")

    @property
    def manifest(self) -> str:
        return self.path("manifest.json")

    @property
    def status(self) -> str:
        return self.path("status.json")

    @property
    def claim(self) -> str:
        return self.path(f"{BOOKKEEPING_DIR}/claim.json")

    @property
    def index(self) -> str:
        return self.path(f"{BOOKKEEPING_DIR}/index")

    @property
    def url(self) -> str:
        """Printable URL of the export root (no credentials)."""
        return self.datastore.url_for(self.root)

    def read_status(self) -> dict[str, Any] | None:
        """The current ``status.json``, or None if none was written yet."""
        data = self.datastore.read_bytes_if_exists(self.status)
        if data is None:
            return None
        status: dict[str, Any] = json.loads(data)
        return status


def claim_export(
    datastore: Datastore,
    workflow_id: str,
    submitted_at: datetime | None = None,
    *,
    claim_id: str | None = None,
    max_tries: int = 120,
) -> ExportLayout:
    """Reserve the export folder of a submission (see the module docstring for the same-second rule).

    Args:
        datastore: where the export goes.
        workflow_id: the workflow's id.
        submitted_at: submission time (aware); default now.
        claim_id: identifies the submission (e.g. the job id) so a retry gets its folder back;
            default a random id.
        max_tries: how many consecutive seconds to try before giving up.

    Returns:
        The claimed layout.

    Raises:
        DatastoreError: no free second within ``max_tries`` (or the datastore failed).
    """
    start = (submitted_at or datetime.now(timezone.utc)).replace(microsecond=0)
    claim_id = claim_id or uuid.uuid4().hex
    ensure_markers(datastore)
    body = {"claim_id": claim_id, "workflow_id": workflow_id, "submitted_at": start.isoformat()}
    marker = json_bytes({"claim_id": claim_id})
    for second in range(max_tries):
        layout = ExportLayout(datastore, start + timedelta(seconds=second), workflow_id)
        # One listing of the second's folder tells whether the export folder exists (a folder that
        # exists without our claim is taken, even if some other tool made it); a free one is claimed
        # with a create-only write. The claim is read only when the folder is there: a retry of this
        # submission gets its folder (and marker) back, also when it won a race against us.
        free = workflow_id not in datastore.ls(layout.folder)
        claimed = free and datastore.put_if_absent(layout.claim, json_bytes(body))
        if claimed or _owner(layout) == claim_id:
            datastore.put_if_absent(_marker(workflow_id, layout.folder), marker)
            return layout
    raise DatastoreError(
        f"no free export folder for '{workflow_id}' within {max_tries} s after {timestamp_folder(start)} "
        f"on {datastore.url_for()}"
    )


def _owner(layout: ExportLayout) -> str | None:
    data = layout.datastore.read_bytes_if_exists(layout.claim)
    if data is None:
        return None
    try:
        owner = json.loads(data).get("claim_id")
    except (ValueError, AttributeError):
        return None
    return str(owner) if owner is not None else None


def list_exports(datastore: Datastore, workflow_id: str) -> list[ExportLayout]:
    """Every export of ``workflow_id`` on ``datastore``, oldest first.

    Bounded on any datastore Olivine has claimed an export on since markers exist: one listing of the
    markers ``.olivine/exports/<workflow_id>/<timestamp>.json`` that each claim leaves at the datastore
    root, plus (when there are none) one read of the datastore's :data:`MARKERS_FLAG`, which says that
    every export on it has its marker. Only a datastore that never saw a marker-era claim (no flag) is
    scanned: its top-level timestamp folders, each checked for a ``<workflow_id>`` subfolder; the next
    claim on it backfills the markers (:func:`ensure_markers`), so that happens once.
    """
    marked = [n.removesuffix(".json") for n in datastore.ls(f"{EXPORTS_DIR}/{workflow_id}")]
    folders = [n for n in marked if parse_timestamp_folder(n) is not None]
    if not folders and datastore.read_bytes_if_exists(MARKERS_FLAG) is None:  # one GET
        folders = [
            name
            for name in datastore.ls("")
            if parse_timestamp_folder(name) is not None and datastore.exists(f"{name}/{workflow_id}")
        ]
    found = [ExportLayout.from_folder(datastore, name, workflow_id) for name in folders]
    return sorted(found, key=lambda layout: layout.timestamp)


def ensure_markers(datastore: Datastore) -> None:
    """Make sure every export on ``datastore`` has its marker, so listings stay one request.

    One read when the datastore's :data:`MARKERS_FLAG` exists (remembered per datastore object).
    Otherwise, once per datastore: every ``<timestamp>/<workflow_id>`` folder gets its marker
    (create-only, so concurrent claimers do not collide), then the flag is written. Exports written
    later by an Olivine without markers would not be listed (they can still be opened by timestamp).
    """
    if datastore in _MARKED:
        return
    if datastore.read_bytes_if_exists(MARKERS_FLAG) is None:
        for folder in datastore.ls(""):
            if parse_timestamp_folder(folder) is None:
                continue
            for workflow_id in datastore.ls(folder):
                if _WORKFLOW_ID.match(workflow_id):
                    datastore.put_if_absent(_marker(workflow_id, folder), json_bytes({"backfilled": True}))
        datastore.put_if_absent(MARKERS_FLAG, json_bytes({"markers": 1}))
    _MARKED.add(datastore)


def _marker(workflow_id: str, folder: str) -> str:
    return f"{EXPORTS_DIR}/{workflow_id}/{folder}.json"


def latest_export(datastore: Datastore, workflow_id: str) -> ExportLayout | None:
    """The newest export of ``workflow_id``, or None."""
    exports = list_exports(datastore, workflow_id)
    return exports[-1] if exports else None
