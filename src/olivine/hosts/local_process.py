"""What the hosts that run a job as a process on this machine share: the monitor and the local files.

The worker runs in the job folder here, so the monitor reads its ``status.json`` there (no network) and
the process table tells a dead worker from a live one; its log is the folder's ``job.log``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from olivine.errors import HostError
from olivine.hosts.base import Host
from olivine.hosts.process import death_of, submitter_info
from olivine.jobs.folder import JobFolder
from olivine.jobs.reconcile import sealed_status
from olivine.jobs.records import ErrorKind, JobRecord, JobStatus
from olivine.jobs.status import WorkerStatus, apply_status

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow


class LocalProcessHost(Host):
    """Base of ``LocalSystem`` and ``LocalWorker``: a job is a process here, its folder a folder here."""

    def new_host_info(self) -> dict[str, object]:
        return {"submitter": submitter_info()}

    def search_spread(self, wf: ResolvedWorkflow) -> dict[str, Any] | None:
        """With ``search_workers``, the job's search runs its candidates in worker processes on this
        machine (see :mod:`olivine.engine.pool_executor`); refused where it cannot do what it promises."""
        from olivine.engine.pool_executor import local_spread

        in_workflow = self.name in wf.config.systems
        key = f"{'systems' if in_workflow else 'hosts'}.{self.name}.search_workers"
        file = str(wf.config_path) if in_workflow and wf.config_path else None
        settings = local_spread(wf, self.config, key, file)
        return settings.to_json() if settings is not None else None

    def worker_folder(self, job: JobRecord) -> JobFolder | None:
        return JobFolder.of(job)

    def observe(self, job: JobRecord) -> JobRecord:
        if job.state.is_terminal():
            return job
        observed = self._with_status(job)
        if observed.state.is_terminal():
            return observed
        verdict = death_of(observed)
        if verdict is None:
            return observed
        # The worker may have written its final status just before it exited: read it once more.
        again = self._with_status(job)
        if again.state.is_terminal():
            return again
        # Killed after it sealed its export but before its local status said so: the sealed manifest
        # is the commit point, so its verdict stands (datastore first, then the store).
        sealed = sealed_status(job)
        if sealed is not None:
            return apply_status(again, sealed)
        return again.evolve(state=JobStatus.FAILED, error_kind=ErrorKind.INFRASTRUCTURE, message=verdict)

    def _with_status(self, job: JobRecord) -> JobRecord:
        folder = JobFolder.of(job)
        if folder is None:
            return job
        try:
            status = WorkerStatus.read(folder.status)
        except HostError:
            return job  # a status from another Olivine: the process table still tells life from death
        return apply_status(job, status) if status is not None else job

    def logs(self, job_id: str, *, follow: bool = False) -> Iterator[str]:
        job = self.store.get(job_id)
        folder = JobFolder.of(job)
        if folder is None:
            return iter(())
        # The job folder was deleted: the log the worker exported is all there is.
        if not folder.log.is_file() and job.export_root is not None and job.state is not JobStatus.PENDING:
            return self._export_lines(job, follow)
        return self._file_lines(folder.log, job.job_id, follow)

    def _cancel_unstarted(self, job: JobRecord, message: str) -> JobRecord:
        """Cancel a job that has no live worker: the marker stops a worker started after this."""
        folder = JobFolder.of(job)
        if folder is not None and folder.root.is_dir():
            folder.cancel_marker.touch()
        final = self.store.update(job.job_id, strict=False, state=JobStatus.CANCELLED, message=message)
        if final.state is JobStatus.CANCELLED:
            self.close_export(final)
        return final
