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
    if isinstance(exc, UserInputError):
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
        pid: the worker's process id, for hosts that run one on this machine.
        submitter_pid / submitter_start_ticks / submitter_host: the process that created the record
            (pid, start time, host name), so the monitor can fail a job whose submission never
            finished because that process died before handing it to the host.
        host_info: host-specific facts (e.g. the worker's process start time), owned by the host module.
        datastore_name / datastore_url: where the job exports, as the user named it and as a URL
            (redacted: no credentials); ``export_root`` is the job's own
            ``<datastore>/<timestamp>/<workflow_id>`` folder in it.
        resume_from: the export root whose cache seeded this job.
        current_pass / progress_done / progress_total / best_metrics: progress while running.
        log_path / job_dir: local files of the job (the log and the folder with its spec and bundle).
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
    pid: int | None = None
    submitter_pid: int | None = None
    submitter_start_ticks: int | None = None
    submitter_host: str | None = None
    host_info: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    datastore_name: str | None = None
    datastore_url: str | None = None
    export_root: str | None = None
    resume_from: str | None = None
    current_pass: str | None = None
    progress_done: int = 0
    progress_total: int = 0
    best_metrics: dict[str, Any] = field(default_factory=dict)
    log_path: str | None = None
    job_dir: str | None = None

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


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run one job; written as ``job.json`` in the job folder. Holds no secrets.

    Attributes:
        job_id / workflow_id: the job and its workflow.
        bundle: the bundle folder or tar, relative to the job folder (or absolute).
        datastore_url / datastore_options: where to export; options without credentials.
        datastore_profile / hosts_file: the hosts-file entry to read credentials from, if any (the
            worker re-reads it, so credentials are never copied into the job folder).
        export_timestamp: the ``<yyyy-mm-dd-hh-mm-ss>`` level of the export layout.
        resume_from: the export root of an earlier job whose ``cache`` seeds this run.
        store_path: the job store to update, for workers on the submitter's machine.
        log_file: the worker's log, relative to the job folder; exported as log stream ``worker``.
        log_export_interval_s: how often the worker exports its log while running.
    """

    job_id: str
    workflow_id: str
    bundle: str
    datastore_url: str
    export_timestamp: str
    datastore_options: dict[str, Any] = field(default_factory=dict)
    datastore_profile: str | None = None
    hosts_file: str | None = None
    resume_from: str | None = None
    store_path: str | None = None
    log_file: str = "job.log"
    log_export_interval_s: float = 30.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HostError(f"job spec has unknown key(s) {', '.join(unknown)}: written by a newer Olivine?")
        return cls(**data)
