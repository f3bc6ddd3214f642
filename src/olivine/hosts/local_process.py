"""What the hosts that run a job as a process on this machine share: the monitor and the local log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from olivine.hosts.base import Host
from olivine.jobs.records import JobRecord
from olivine.hosts.process import mark_if_dead


class LocalProcessHost(Host):
    """Base of ``LocalSystem`` and ``LocalWorker``: a job is a process here, its log a file here."""

    def refresh(self, job: JobRecord) -> JobRecord:
        return mark_if_dead(self.store, job)

    def logs(self, job_id: str, *, follow: bool = False) -> Iterator[str]:
        job = self.store.get(job_id)
        if job.log_path is None:
            return iter(())
        return self._file_lines(Path(job.log_path), job.job_id, follow)
