"""Re-attaching to a workflow from its datastore alone: status and logs without a job store record.

A worker writes its status (``status.json``) and its log (``logs/worker/<nnnnnn>.log`` chunks) to its
export, so any machine that can read the datastore can follow it: :func:`remote_status` and
:func:`remote_logs` need only the datastore and the workflow id. :func:`job_export_logs` reads the same
exported log for a job in the local store whose log file is gone.
"""

from __future__ import annotations

import codecs
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from olivine.datastores.base import Datastore
from olivine.datastores.layout import ExportLayout, latest_export, parse_timestamp_folder
from olivine.datastores.logs import log_chunks
from olivine.datastores.manifest import read_manifest
from olivine.errors import DatastoreError, JobNotFoundError
from olivine.jobs.choice import choose_datastore
from olivine.jobs.exports import open_job_export
from olivine.jobs.profiles import Profiles
from olivine.jobs.records import JobRecord, JobStatus, utc_now
from olivine.jobs.status import WorkerStatus

logger = logging.getLogger(__name__)

#: The log stream the worker writes (see :class:`olivine.jobs.worker._LogShipper`).
WORKER_STREAM = "worker"
_POLL_S = 1.0
# A running worker rewrites status.json every ``heartbeat_s``; after this many missed beats (and at
# least _STALE_MIN_S, for clock skew between machines) a non-final status is reported as stale.
_STALE_BEATS = 5
_STALE_MIN_S = 120.0


def find_export(
    datastore: str, workflow_id: str, timestamp: str | None = None, *, profiles: Profiles | None = None
) -> ExportLayout:
    """The export of ``workflow_id`` on a datastore: the one at ``timestamp``, else the newest.

    Args:
        datastore: a hosts-file datastore name, an fsspec URL or a local path.
        workflow_id: the workflow's id.
        timestamp: an export folder name, ``yyyy-mm-dd-hh-mm-ss``.
        profiles: the hosts file (default: the user's).

    Raises:
        JobNotFoundError: the workflow has no (such) export there.
        ReferenceNotFoundError: ``datastore`` is not a URL, a path or a hosts-file datastore.
    """
    profiles = profiles or Profiles()
    store = choose_datastore(datastore, profiles).open(profiles)
    if timestamp is None:
        layout = latest_export(store, workflow_id)
    elif parse_timestamp_folder(timestamp) is None:
        raise JobNotFoundError(f"'{timestamp}' is not an export timestamp (yyyy-mm-dd-hh-mm-ss)")
    else:
        # One request: the folder itself (an export made without a marker is found too).
        exists = store.exists(f"{timestamp}/{workflow_id}")
        layout = ExportLayout.from_folder(store, timestamp, workflow_id) if exists else None
    if layout is None:
        when = f" at {timestamp}" if timestamp else ""
        raise JobNotFoundError(f"no export of workflow '{workflow_id}'{when} on {store.url_for()}")
    return layout


def export_status(layout: ExportLayout) -> dict[str, Any]:
    """The export's ``status.json`` with where its parts are (URLs as this reader sees them).

    Keys added to what the worker wrote: ``workflow_id``, ``timestamp``, ``paths`` (``export_root``,
    ``cache``, ``output``, ``logs``, ``manifest``), ``sealed`` (the manifest exists: nothing more will
    be written) and ``stale`` (a non-final status whose worker stopped beating: it probably died with
    nobody left to record it).
    """
    datastore = layout.datastore
    raw = _read_json(datastore, layout.status)
    if raw is None:
        status: dict[str, Any] = {
            "state": JobStatus.PENDING.value,
            "message": "no status yet: the worker has not started",
        }
    else:
        status = WorkerStatus.from_json(raw, where=datastore.url_for(layout.status)).to_json()
    manifest = read_manifest(datastore, layout)
    sealed = manifest is not None
    verdict = manifest.get("status") if manifest is not None else None
    if sealed and not _is_final(status) and isinstance(verdict, dict):
        # The manifest is the commit point and carries the final status; status.json follows it a moment
        # later (or never, if that last write failed): a reader in between takes the manifest's verdict.
        status = WorkerStatus.from_json(verdict, where=datastore.url_for(layout.manifest)).to_json()
    doc: dict[str, Any] = {**status, "workflow_id": layout.workflow_id, "timestamp": layout.folder}
    doc["paths"] = {
        "export_root": layout.url,
        "cache": datastore.url_for(layout.cache),
        "output": datastore.url_for(layout.output),
        "logs": datastore.url_for(layout.logs),
        "manifest": datastore.url_for(layout.manifest),
    }
    doc["sealed"] = sealed
    doc["stale"] = not sealed and not _is_final(status) and _silent_for_too_long(status)
    return doc


def remote_status(
    datastore: str, workflow_id: str, *, timestamp: str | None = None, profiles: Profiles | None = None
) -> dict[str, Any]:
    """The status of a workflow's newest export (or the one at ``timestamp``), from the datastore alone.

    Works on any machine that can read the datastore, with no job store record. See
    :func:`export_status` for the keys.
    """
    return export_status(find_export(datastore, workflow_id, timestamp, profiles=profiles))


def remote_logs(
    datastore: str,
    workflow_id: str,
    *,
    timestamp: str | None = None,
    follow: bool = False,
    profiles: Profiles | None = None,
    poll_s: float = _POLL_S,
) -> Iterator[str]:
    """The exported log lines of a workflow's newest export (or the one at ``timestamp``).

    With ``follow``, keep polling the exported log until the export's status is final (or stale: the
    worker stopped beating; a warning is logged). A running worker ships its log every
    ``log_export_interval_s`` (30 s by default), so lines arrive in batches.
    """
    layout = find_export(datastore, workflow_id, timestamp, profiles=profiles)
    return follow_log(layout, (lambda: _export_finished(layout)) if follow else None, poll_s=poll_s)


def job_export_logs(
    job: JobRecord, finished: Callable[[], bool] | None, *, profiles: Profiles | None = None
) -> Iterator[str]:
    """The exported log of a job in the local store (when its worker's log is not readable here).

    Raises:
        JobNotFoundError: the job never got an export.
    """
    return follow_log(open_job_export(job, profiles), finished)


def follow_log(
    layout: ExportLayout,
    finished: Callable[[], bool] | None,
    *,
    stream: str = WORKER_STREAM,
    poll_s: float = _POLL_S,
) -> Iterator[str]:
    """Lines of an exported log stream; with ``finished``, poll for new chunks until it returns true.

    ``finished`` is asked before each read, so the read after it first says true still catches the
    last chunks (the worker ships its log before it writes its final status).
    """
    datastore = layout.datastore
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    partial, consumed = "", 0
    while True:
        done = finished is None or finished()
        chunks = log_chunks(datastore, layout, stream)
        for rel, _ in chunks[consumed:]:
            lines = (partial + decoder.decode(datastore.read_bytes(rel))).split("\n")
            partial = lines.pop()
            yield from (line.rstrip("\r") for line in lines)
        consumed = len(chunks)
        if done:
            if partial:
                yield partial.rstrip("\r")
            return
        time.sleep(poll_s)


def _export_finished(layout: ExportLayout) -> bool:
    status = _read_json(layout.datastore, layout.status)
    if status is not None and _is_final(status):
        return True
    if _silent_for_too_long(status or {}):
        logger.warning(
            "no news from the worker of %s for a long time (it probably died); stopped following",
            layout.url,
        )
        return True
    return False


def _is_final(status: dict[str, Any]) -> bool:
    try:
        return JobStatus(status.get("state")).is_terminal()
    except ValueError:
        return False


def _silent_for_too_long(status: dict[str, Any]) -> bool:
    """Whether the worker's last status update is older than its heartbeat allows.

    An export without a status is never stale: its job may wait in a host's queue for a long time.
    """
    beat_s = float(status.get("heartbeat_s") or 30.0)
    last = _parse_time(status.get("updated_at"))
    if last is None:
        return False
    return utc_now() - last > timedelta(seconds=max(_STALE_MIN_S, _STALE_BEATS * beat_s))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _read_json(datastore: Datastore, rel: str) -> dict[str, Any] | None:
    """A JSON object from the datastore, or None if absent; a corrupt one is an error."""
    if not datastore.exists(rel):
        return None
    try:
        data = json.loads(datastore.read_bytes(rel))
    except ValueError as exc:
        raise DatastoreError(f"{datastore.url_for(rel)} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else None


def is_stale(status: WorkerStatus) -> bool:
    """Whether a non-final status has missed so many heartbeats that its worker is probably gone."""
    return not status.state.is_terminal() and _silent_for_too_long(status.to_json())


def read_export_status(layout: ExportLayout) -> WorkerStatus | None:
    """The worker status of an export as a typed value, or None when the worker wrote none yet."""
    raw = _read_json(layout.datastore, layout.status)
    return WorkerStatus.from_json(raw, where=layout.datastore.url_for(layout.status)) if raw else None
