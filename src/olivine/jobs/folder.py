"""The job folder: the one place that knows its layout.

The submitter creates it (spec and bundle); the worker runs in it (on the submitter's machine for the
local hosts, on a cluster node for Ray, where it is the job's ``working_dir``)::

    job.json          the job spec (:class:`olivine.jobs.records.JobSpec`), no secrets
    bundle/           the workflow bundle (or bundle.tar, downloaded by a worker elsewhere)
    job.log           the worker's log
    shipped/          the spec alone, for a worker elsewhere that downloads the bundle from the datastore
    status.json       the worker's status (:class:`olivine.jobs.status.WorkerStatus`), rewritten as it runs
    cancel            present when a cancel was asked for before the worker started
    cache/ output/    the engine's cache and output folder
    unpacked/ seed/   a bundle tar unpacked; an earlier export's cache being downloaded
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from olivine.jobs.records import JobRecord


@dataclass(frozen=True)
class JobFolder:
    """Paths inside one job folder."""

    root: Path

    @classmethod
    def of(cls, job: JobRecord) -> JobFolder | None:
        """The submitter's folder of ``job``, or None for a record without one."""
        return cls(Path(job.job_dir)) if job.job_dir else None

    @property
    def spec(self) -> Path:
        return self.root / "job.json"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def bundle_tar(self) -> Path:
        return self.root / "bundle.tar"

    @property
    def log(self) -> Path:
        return self.root / "job.log"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def cancel_marker(self) -> Path:
        return self.root / "cancel"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def cache_root(self, workflow_id: str) -> Path:
        """The engine's cache folder of the workflow (what is exported as ``cache/``)."""
        return self.cache / workflow_id

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def shipped(self) -> Path:
        """What a host ships to a worker elsewhere when the bundle goes through the datastore: a
        folder with only a spec that names the uploaded bundle."""
        return self.root / "shipped"

    @property
    def unpacked(self) -> Path:
        return self.root / "unpacked"

    @property
    def seed(self) -> Path:
        return self.root / "seed"

    #: The bundle path a spec names, relative to the folder.
    BUNDLE_REL = "bundle"
