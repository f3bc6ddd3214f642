"""Job records and their state machine (modelled on Ray Jobs' ``JobStatus`` / ``JobInfo``).

A job moves ``PENDING -> RUNNING -> SUCCEEDED | FAILED | CANCELLED``; it may also fail or be cancelled
while still pending. Terminal states are final: every writer (the worker, the CLI's cancel, the monitor)
goes through :meth:`JobRecord.evolve`, so a late writer cannot resurrect a finished job.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from olivine.errors import (
    HostError,
    OlivineError,
    UserCodeExitError,
    UserInputError,
    WorkflowCancelledError,
    WorkflowError,
)


class JobStatus(str, Enum):
    """Where a job is in its life."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        """True for states a job never leaves (succeeded, failed, cancelled)."""
        return self in _TERMINAL

    def can_become(self, new: JobStatus) -> bool:
        """Whether ``self -> new`` is a legal transition (staying in a non-terminal state is)."""
        return new in _NEXT[self] or (new is self and not self.is_terminal())


_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
_NEXT: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class ErrorKind(str, Enum):
    """Who a failure belongs to, so users can tell their own mistakes from the machine's."""

    USER = "user"  # the config or its files: fix and resubmit
    WORKFLOW = "workflow"  # a pass, metric or data loader failed while running
    INFRASTRUCTURE = "infrastructure"  # the worker died, a datastore or the job store failed
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


def classify(exc: BaseException) -> tuple[JobStatus, ErrorKind, str]:
    """Final state, error kind and message for an exception that ended a job."""
    if isinstance(exc, WorkflowCancelledError | KeyboardInterrupt):
        return JobStatus.CANCELLED, ErrorKind.CANCELLED, "cancelled"
    if isinstance(exc, UserInputError | UserCodeExitError):
        return JobStatus.FAILED, ErrorKind.USER, str(exc)
    if isinstance(exc, WorkflowError):
        return JobStatus.FAILED, ErrorKind.WORKFLOW, str(exc)
    if isinstance(exc, OlivineError):
        return JobStatus.FAILED, ErrorKind.INFRASTRUCTURE, str(exc)
    return JobStatus.FAILED, ErrorKind.INFRASTRUCTURE, f"internal error: {type(exc).__name__}: {exc}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_job_id() -> str:
    """A short id users can type: ``job-`` and 10 random hex digits."""
    return f"job-{secrets.token_hex(5)}"


_TIME_FIELDS = ("created_at", "started_at", "ended_at")


@dataclass(frozen=True)
class JobRecord:
    """Everything Olivine knows about one submitted workflow. A frozen value: change it with :meth:`evolve`.

    Attributes:
        job_id: Olivine's id for the job (``job-...``).
        submission_id: the idempotency key; submitting twice with it yields this same job.
        host_name / host_type / host_config: the host (its system config, no secrets) that runs the job.
        state / message / error_kind: the status; ``error_kind`` is set for failed and cancelled jobs.
        host_info: host-specific facts, owned by the host module and read by nobody else (a local
            worker's pid and start time, the submitting process; a Ray head's address).
        datastore_name / datastore_url / datastore_options: where the job exports, as the user named it
            and as a URL with its options (redacted: no credentials); ``export_root`` is the job's own
            ``<datastore>/<timestamp>/<workflow_id>`` folder in it.
        resume_from: the export root whose cache seeded this job.
        current_pass / phase / progress_done / progress_total / candidates_done / candidates_total /
            best_metrics / best_candidate: progress while running, as the worker reported it in its
            status (:class:`olivine.jobs.status.WorkerStatus`).
        job_dir: the submitter's job folder (spec and bundle; :class:`olivine.jobs.folder.JobFolder`).
        damage: set by ``olivine doctor --fix`` when what a finished job claims is gone (a SUCCEEDED
            job's exported output deleted or changed since): the state stays what the run ended in,
            and status, list and fetch say what was lost instead of pointing at it.
    """

    job_id: str
    submission_id: str
    workflow_id: str
    host_name: str
    host_type: str
    host_config: dict[str, Any] = field(default_factory=dict)
    state: JobStatus = JobStatus.PENDING
    message: str = ""
    error_kind: ErrorKind | None = None
    host_info: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    datastore_name: str | None = None
    datastore_url: str | None = None
    datastore_options: dict[str, Any] = field(default_factory=dict)
    export_root: str | None = None
    resume_from: str | None = None
    current_pass: str | None = None
    phase: str | None = None
    progress_done: int = 0
    progress_total: int = 0
    candidates_done: int = 0
    candidates_total: int | None = None
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_candidate: str | None = None
    job_dir: str | None = None
    damage: str | None = None

    @property
    def progress(self) -> tuple[int, int]:
        return self.progress_done, self.progress_total

    def evolve(self, **changes: Any) -> JobRecord:
        """A copy with ``changes`` applied; a state change is checked and time-stamped.

        Raises:
            HostError: the state change is not allowed (e.g. out of a terminal state).
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise HostError(f"unknown job record field(s): {', '.join(unknown)}")
        new_state = changes.get("state")
        if new_state is not None:
            new_state = JobStatus(new_state)
            if not self.state.can_become(new_state):
                raise HostError(f"job {self.job_id}: illegal state change {self.state} -> {new_state}")
            changes["state"] = new_state
            if new_state is JobStatus.RUNNING and self.started_at is None:
                changes.setdefault("started_at", utc_now())
            if new_state.is_terminal():
                changes.setdefault("ended_at", utc_now())
                if new_state is JobStatus.CANCELLED:
                    changes.setdefault("error_kind", ErrorKind.CANCELLED)
        if changes.get("error_kind") is not None:
            changes["error_kind"] = ErrorKind(changes["error_kind"])
        return dataclasses.replace(self, **changes)

    def take_status(self, observed: JobRecord) -> JobRecord:
        """This record with the status fields of ``observed`` (what a monitor saw), if the change is legal.

        Only :data:`STATUS_FIELDS` are taken, so a host's own writes (``host_info``) made meanwhile stay;
        a terminal record stays as it is, and a PENDING one passes through RUNNING to a final state.
        """
        if self.state.is_terminal():
            return self
        changes = {name: getattr(observed, name) for name in STATUS_FIELDS}
        for name in _TIME_FIELDS:
            if changes.get(name, 0) is None:
                del changes[name]  # evolve stamps it
        new = self
        if observed.state is JobStatus.SUCCEEDED and self.state is JobStatus.PENDING:
            new = new.evolve(state=JobStatus.RUNNING, started_at=observed.started_at)
        if not new.state.can_become(observed.state):
            return self
        return new.evolve(**changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (times in ISO 8601 UTC, enums as their values)."""
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        out["error_kind"] = self.error_kind.value if self.error_kind else None
        for name in _TIME_FIELDS:
            value = getattr(self, name)
            out[name] = value.isoformat() if value else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        # Ignore fields a newer Olivine wrote, so an older CLI can still read the store.
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = JobStatus(values.get("state", JobStatus.PENDING))
        if values.get("error_kind"):
            values["error_kind"] = ErrorKind(values["error_kind"])
        for name in _TIME_FIELDS:
            if values.get(name):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


#: The fields a monitor observes (from a worker's status, a process table or a cluster's job state).
STATUS_FIELDS = (
    "state",
    "message",
    "error_kind",
    "started_at",
    "ended_at",
    "current_pass",
    "phase",
    "progress_done",
    "progress_total",
    "candidates_done",
    "candidates_total",
    "best_metrics",
    "best_candidate",
)


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run one job; written as ``job.json`` in the job folder. Holds no secrets.

    Attributes:
        job_id / workflow_id: the job and its workflow.
        bundle: the bundle folder or tar, relative to the job folder (or absolute).
        bundle_url: when set, the worker downloads the bundle (a tar) from this datastore path
            first (hosts whose job folder cannot carry it, e.g. Ray's ``working_dir`` limit).
        bundle_sha256: the tar's sha256, checked after the download.
        datastore_url / datastore_options: where to export; options without credentials.
        datastore_profile: the hosts-file datastore to read credentials from, if any: the worker looks
            it up in the hosts file of the machine it runs on, so credentials are never copied into
            the job folder (and never point at the submitter's files).
        export_timestamp: the ``<yyyy-mm-dd-hh-mm-ss>`` level of the export layout.
        resume_from: the export root of an earlier job whose ``cache`` seeds this run.
        log_export_interval_s: how often the worker exports its log while running.
        search_spread: how the worker spreads a search's candidates
            (:class:`olivine.engine.executor.SpreadSettings`); None: one after another.
    """

    job_id: str
    workflow_id: str
    bundle: str
    datastore_url: str
    export_timestamp: str
    bundle_url: str | None = None
    bundle_sha256: str | None = None
    datastore_options: dict[str, Any] = field(default_factory=dict)
    datastore_profile: str | None = None
    resume_from: str | None = None
    log_export_interval_s: float = 30.0
    search_spread: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HostError(f"job spec has unknown key(s) {', '.join(unknown)}: written by a newer Olivine?")
        return cls(**data)
