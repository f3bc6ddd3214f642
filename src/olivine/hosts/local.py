"""The ``LocalSystem`` host: runs the job in the foreground, in this process, as Olive did.

It goes through the same worker code as a detached host (unpack the bundle, run the engine, export to
the datastore), so a ``workflow_host`` of type LocalSystem behaves like any other host except that
:meth:`LocalSystemHost.submit` returns only when the workflow has ended.
"""

from __future__ import annotations

import logging
import os

from olivine.config.systems import LocalSystemConfig
from olivine.errors import HostError, NotSupportedError
from olivine.hosts.local_process import LocalProcessHost
from olivine.hosts.process import job_process_alive, process_start_ticks, worker_pid
from olivine.jobs.bundle import Bundle
from olivine.jobs.folder import JobFolder
from olivine.jobs.records import JobRecord, JobSpec

logger = logging.getLogger(__name__)


class LocalSystemHost(LocalProcessHost):
    """Runs each job in the calling process and returns when it ends."""

    config_type = LocalSystemConfig
    detached = False

    def describe(self) -> str:
        return f"host '{self.name}' (LocalSystem: runs in the foreground, in this process)"

    def submit(self, bundle: Bundle, job: JobRecord, spec: JobSpec) -> JobRecord:
        from olivine.jobs.worker import run_job

        folder = JobFolder.of(job)
        if folder is None:
            raise HostError(f"job {job.job_id} has no job folder")
        logger.info(
            "host '%s' is a LocalSystem: running job %s in the foreground in this process (pid %d); "
            "it stops if this process ends",
            self.name,
            job.job_id,
            os.getpid(),
        )
        pid = os.getpid()
        self.store.update(
            job.job_id, host_info={**job.host_info, "pid": pid, "pid_start_ticks": process_start_ticks(pid)}
        )
        run_job(folder.root, spec=spec, log_file=folder.log)
        return self.monitor(self.store.get(job.job_id))

    def cancel(self, job_id: str, *, timeout_s: float | None = None) -> JobRecord:
        job = self.monitor(self.store.get(job_id))
        if job.state.is_terminal():
            return job
        if job_process_alive(job):
            raise NotSupportedError(
                f"job {job.job_id} runs in the foreground of process {worker_pid(job)} (LocalSystem host); "
                "stop it with Ctrl-C in that terminal"
            )
        # Never started: nothing to stop; its claimed export is sealed as cancelled.
        return self._cancel_unstarted(job, "cancelled before it started")
