"""What a submission does (its plan, shown by ``--dry-run``) and what it returned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from olivine.datastores.redact import scrub_url
from olivine.jobs import bundle as bundles
from olivine.jobs.records import JobRecord

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.hosts.base import Host
    from olivine.jobs.choice import DatastoreChoice


@dataclass(frozen=True)
class SubmitPlan:
    """What a submission does; all of it is known before anything is written (``--dry-run``)."""

    workflow_id: str
    host: str
    detached: bool
    datastore_url: str
    export_root: str
    resume_from: str | None
    entries: tuple[bundles.BundleEntry, ...]

    def describe(self) -> str:
        lines = [
            f"workflow '{self.workflow_id}' -> {self.host}",
            f"export to {self.export_root}",
        ]
        if self.resume_from:
            lines.append(f"seeding cache from {self.resume_from}")
        return "\n".join([*lines, bundles.describe(self.entries, self.workflow_id)])


@dataclass(frozen=True)
class Submission:
    """The result of a submission: the job (None for a dry run) and whether this call created it
    (False: the submission id already had this job, and nothing was launched again)."""

    plan: SubmitPlan
    job: JobRecord | None = None
    created: bool = False


def plan_of(
    wf: ResolvedWorkflow,
    host: Host,
    choice: DatastoreChoice,
    export_root: str,
    resume_from: str | None,
    entries: tuple[bundles.BundleEntry, ...],
) -> SubmitPlan:
    """The plan of submitting ``wf`` to ``host``, exporting to ``export_root``."""
    return SubmitPlan(
        wf.workflow_id,
        host.describe(),
        host.detached,
        scrub_url(choice.url),
        export_root,
        resume_from,
        entries,
    )
