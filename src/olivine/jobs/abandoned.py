"""Closing the export of a job that ended without its worker's wrap-up (the worker died or never ran).

A host's monitor (:meth:`olivine.hosts.base.Host.monitor`) fails such a job in the job store; this module
does on the datastore what the worker would have done at its end, with what the worker left behind
(its exported status, and its job folder when it ran on this machine):
export the finished cache and the rest of the log, write the final ``status.json``, seal the export with
``manifest.json`` and register it as a data-asset version. Readers of the datastore elsewhere then see
the failure instead of a job that seems to run forever, and a resume can seed from the sealed cache.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from olivine.datastores.exporter import Exporter
from olivine.datastores.files import json_bytes
from olivine.datastores.layout import BOOKKEEPING_DIR
from olivine.datastores.manifest import read_manifest
from olivine.errors import OlivineError
from olivine.jobs.exports import open_job_export
from olivine.jobs.folder import JobFolder
from olivine.jobs.progress import export_cache
from olivine.jobs.records import JobRecord, utc_now
from olivine.jobs.status import WorkerStatus

if TYPE_CHECKING:
    from olivine.jobs.profiles import Profiles

logger = logging.getLogger(__name__)

_MARKER = f"{BOOKKEEPING_DIR}/closed-by-monitor.json"


def close_export(
    job: JobRecord, folder: JobFolder | None = None, profiles: Profiles | None = None, *, retry: bool = False
) -> bool:
    """Seal the export of ``job`` (already terminal in the store) with its final state.

    It acts at most once per export: a create-only marker lets only the first of several monitors
    write, and an export the worker sealed itself is left alone. Datastore (and local file) errors are
    logged, not raised: the job store already holds the verdict, and monitoring must keep working when
    the datastore is unreachable.

    Args:
        job: the job, with its final state.
        folder: the job folder the worker ran in, when it is on this machine: its finished cache and
            the rest of its log are exported too. None for a worker elsewhere (what it exported is all
            there is).
        profiles: the hosts file with the datastore's credentials (default: the user's).
        retry: close it even when an earlier attempt left its marker (that attempt failed part-way,
            e.g. on an unwritable datastore; every write here is idempotent). For ``olivine doctor --fix``.

    Returns:
        Whether this call closed the export.
    """
    if job.export_root is None:
        return False  # the submission never got as far as an export
    try:
        layout = open_job_export(job, profiles)
        datastore = layout.datastore
        if read_manifest(datastore, layout) is not None:
            return False
        claim = {"job_id": job.job_id, "closed_at": utc_now().isoformat(), "message": job.message}
        if not datastore.put_if_absent(layout.path(_MARKER), json_bytes(claim)) and not retry:
            return False
        exporter = Exporter(datastore, layout)
        # The log's last verdict must agree with the seal: the worker may have logged a verdict it
        # never committed (killed between the line and the manifest).
        when = utc_now().isoformat(timespec="seconds")
        verdict = f"{when} ERROR olivine.monitor: job {job.job_id} {job.state.value}: {job.message}\n"
        if folder is not None:
            cache_root = folder.cache_root(job.workflow_id)
            if cache_root.is_dir():
                export_cache(exporter, cache_root, "cache")
            if folder.root.is_dir():
                with open(folder.log, "a", encoding="utf-8") as log:
                    log.write(verdict)
                exporter.export_log(folder.log, "worker")
        else:
            exporter.append_log(verdict, "worker")
        status = _final_status(layout.read_status(), job)
        exporter.finalize({"status": status, "job_id": job.job_id}, register_asset=True)
        exporter.write_status(status)  # last: a reader that sees the final status finds the export sealed
    except (OlivineError, OSError, ValueError) as exc:
        logger.warning("job %s: could not close its export %s: %s", job.job_id, job.export_root, exc)
        return False
    logger.info("job %s: export %s sealed as %s", job.job_id, job.export_root, job.state)
    return True


def _final_status(last: dict[str, Any] | None, job: JobRecord) -> dict[str, Any]:
    """The last status the worker published (progress, best metrics), with the job's final verdict."""
    status = WorkerStatus.from_json(last) if last else WorkerStatus(job.job_id, job.workflow_id)
    return status.evolve(
        state=job.state,
        message=job.message,
        error_kind=job.error_kind,
        current_pass=None,
        ended_at=(job.ended_at or utc_now()).isoformat(),
        updated_at=utc_now().isoformat(),
    ).to_json()
