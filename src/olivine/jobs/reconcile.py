"""Reconciling the job store with the datastore: which one holds a job's truth, and when.

Commit order (README, "Trust and failure model"): a worker exports its files, then seals the export
with ``manifest.json`` (the commit point; it carries the final status), then writes ``status.json`` on
the datastore, and only then its local status, which the host's monitor copies into the job store. So:

* a sealed manifest's final state is the job's verdict; the store follows it (a worker killed between
  sealing and its local status is not "died", it finished: :func:`sealed_status`);
* a job the store holds terminal whose export is not sealed (a dead worker; a datastore that was
  unwritable at the end) is sealed by the monitor with the store's verdict
  (:func:`olivine.jobs.abandoned.close_export`), and ``olivine doctor --fix`` retries that later;
* ``status.json`` on the datastore is a readable copy: when it disagrees with the manifest, doctor
  rewrites it from the manifest.
"""

from __future__ import annotations

import logging

from olivine.datastores.manifest import read_manifest
from olivine.errors import OlivineError
from olivine.jobs.exports import open_job_export
from olivine.jobs.records import JobRecord
from olivine.jobs.status import WorkerStatus

logger = logging.getLogger(__name__)


def sealed_status(job: JobRecord) -> WorkerStatus | None:
    """The final status in the sealed manifest of ``job``'s export, or None (not sealed, unreadable,
    not this job's, not final)."""
    if job.export_root is None:
        return None
    try:
        layout = open_job_export(job)
        manifest = read_manifest(layout.datastore, layout)
        if manifest is None or not isinstance(manifest.get("status"), dict):
            return None
        status = WorkerStatus.from_json(manifest["status"], where=layout.manifest)
    except (OlivineError, OSError, ValueError) as exc:
        logger.debug("job %s: no sealed status readable: %s", job.job_id, exc)
        return None
    if status.job_id != job.job_id or not status.state.is_terminal():
        return None
    return status
