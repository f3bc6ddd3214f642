"""The ``LocalSystem`` host: runs the job in the foreground, in this process, as Olive did.

It goes through the same worker code as a detached host (unpack the bundle, run the engine, export to
the datastore), so a ``workflow_host`` of type LocalSystem behaves like any other host except that
:meth:`LocalSystemHost.submit` returns only when the workflow has ended.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from olivine.errors import HostError, NotSupportedError
from olivine.jobs.abandoned import close_export
from olivine.jobs.bundle import Bundle
from olivine.jobs.records import JobRecord, JobSpec, JobStatus
from olivine.hosts.local_process import LocalProcessHost
from olivine.hosts.process import job_process_alive, process_start_ticks

logger = logging.getLogger(__name__)


class LocalSystemHost(LocalProcessHost):
    """Runs each job in the calling process and returns when it ends."""

    type_name = "LocalSystem"
    detached = False

    def describe(self) -> str:
        return f"host '{self.name}' (LocalSystem: runs in the foreground, in this process)"

    def submit(self, bundle: Bundle, job: JobRecord, spec: JobSpec) -> JobRecord:
        from olivine.jobs.worker import run_job

        if job.job_dir is None:
            raise HostError(f"job {job.job_id} has no job folder")
        logger.info(
            "host '%s' is a LocalSystem: running job %s in the foreground in this process (pid %d); "
            "it stops if this process ends",
            self.name,
            job.job_id,
            os.getpid(),
        )
        self.store.update(
            job.job_id,
            pid=os.getpid(),
            host_info={**job.host_info, "pid_start_ticks": process_start_ticks(os.getpid())},
        )
        log_file = Path(job.log_path) if job.log_path else None
        run_job(Path(job.job_dir), spec=spec, log_file=log_file)
        return self.store.get(job.job_id)

    def cancel(self, job_id: str, *, timeout_s: float | None = None) -> JobRecord:
        job = self.status(job_id)
        if job.state.is_terminal():
            return job
        if job_process_alive(job):
            raise NotSupportedError(
                f"job {job.job_id} runs in the foreground of process {job.pid} (LocalSystem host); "
                "stop it with Ctrl-C in that terminal"
            )
        # Never started: nothing to stop; its claimed export is sealed as cancelled.
        final = self.store.update(
            job.job_id, strict=False, state=JobStatus.CANCELLED, message="cancelled before it started"
        )
        if final.state is JobStatus.CANCELLED:
            close_export(final)
        return final
