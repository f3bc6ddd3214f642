"""Closing the export of a job that ended without its worker's wrap-up (the worker died or never ran).

The monitor (:func:`olivine.hosts.process.mark_if_dead`) fails such a job in the job store; this module
does on the datastore what the worker would have done at its end, from the job folder it left behind:
export the finished cache and the rest of the log, write the final ``status.json``, seal the export with
``manifest.json`` and register it as a data-asset version. Readers of the datastore elsewhere then see
the failure instead of a job that seems to run forever, and a resume can seed from the sealed cache.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from olivine.datastores.exporter import Exporter
from olivine.datastores.files import json_bytes
from olivine.datastores.layout import BOOKKEEPING_DIR
from olivine.datastores.manifest import read_manifest
from olivine.errors import OlivineError
from olivine.jobs.exports import open_spec_export
from olivine.jobs.records import JobRecord, utc_now
from olivine.jobs.progress import export_cache
from olivine.jobs.worker import read_spec

logger = logging.getLogger(__name__)

_MARKER = f"{BOOKKEEPING_DIR}/closed-by-monitor.json"


def close_export(job: JobRecord) -> bool:
    """Seal the export of ``job`` (already terminal in the store) with its final state.

    It acts at most once per export: a create-only marker lets only the first of several monitors
    (two ``olivine status`` calls at the same moment) write, and an export the worker sealed itself
    is left alone. Datastore (and local file) errors are logged, not raised: the job store already
    holds the verdict, and ``status`` must keep working when the datastore is unreachable.

    Returns:
        Whether this call closed the export.
    """
    if job.job_dir is None or job.export_root is None or not (Path(job.job_dir) / "job.json").is_file():
        return False  # the submission never got as far as an export
    job_dir = Path(job.job_dir)
    try:
        spec = read_spec(job_dir)
        datastore, layout, _ = open_spec_export(spec)
        if read_manifest(datastore, layout) is not None:
            return False
        claim = {"job_id": job.job_id, "closed_at": utc_now().isoformat(), "message": job.message}
        if not datastore.put_if_absent(layout.path(_MARKER), json_bytes(claim)):
            return False
        exporter = Exporter(datastore, layout)
        cache_root = job_dir / "cache" / spec.workflow_id
        if cache_root.is_dir():
            export_cache(exporter, cache_root, "cache")
        log = job_dir / spec.log_file
        if log.is_file():
            exporter.export_log(log, "worker")
        status = _final_status(layout.read_status(), job)
        exporter.write_status(status)
        exporter.finalize({"status": status, "job_id": job.job_id}, register_asset=True)
    except (OlivineError, OSError, ValueError) as exc:
        logger.warning("job %s: could not close its export %s: %s", job.job_id, job.export_root, exc)
        return False
    logger.info("job %s: export %s sealed as %s", job.job_id, job.export_root, job.state)
    return True


def _final_status(last: dict[str, Any] | None, job: JobRecord) -> dict[str, Any]:
    """The last status the worker published (progress, best metrics), with the job's final verdict."""
    status: dict[str, Any] = dict(last or {"job_id": job.job_id, "workflow_id": job.workflow_id})
    status.update(
        state=job.state.value,
        message=job.message,
        error_kind=job.error_kind.value if job.error_kind else None,
        current_pass=None,
        ended_at=(job.ended_at or utc_now()).isoformat(),
        updated_at=utc_now().isoformat(),
    )
    return status
