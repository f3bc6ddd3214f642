"""The worker status (``status.json``): one typed, versioned model, the channel back from a worker.

The worker writes it (into its job folder and to the export on the datastore) whenever the job's state
or progress changes, and rewrites it every ``heartbeat_s`` while it lives. Every host's monitor reads it
back into the job record (:func:`apply_status`); re-attaching from a datastore alone reads the exported
copy. Schema ``olivine.status/1``; readers ignore keys they do not know (a newer worker may add some)
and refuse another major version.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from olivine.errors import HostError
from olivine.jobs.records import ErrorKind, JobRecord, JobStatus

SCHEMA = "olivine.status/1"
_MAJOR = SCHEMA.rsplit("/", 1)[0] + "/1"


@dataclass(frozen=True)
class Progress:
    """Passes of the current chain done/total; search candidates done/total (total None: unknown)."""

    done: int = 0
    total: int = 0
    candidates_done: int = 0
    candidates_total: int | None = None


@dataclass(frozen=True)
class Best:
    """The best candidate so far and its metrics (``{"<metric>-<sub>": value}``)."""

    candidate_id: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Best:
        return cls(str(data["candidate_id"]), dict(data.get("metrics") or {}))


@dataclass(frozen=True)
class WorkerStatus:
    """What a worker says about its job. A frozen value: change it with :meth:`evolve`."""

    job_id: str
    workflow_id: str
    state: JobStatus = JobStatus.PENDING
    message: str = ""
    error_kind: ErrorKind | None = None
    current_pass: str | None = None
    phase: str | None = None
    progress: Progress = field(default_factory=Progress)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best: Best | None = None
    started_at: str | None = None
    ended_at: str | None = None
    updated_at: str | None = None
    heartbeat_s: float = 30.0
    paths: dict[str, str] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)

    def evolve(self, **changes: Any) -> WorkerStatus:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        out["error_kind"] = self.error_kind.value if self.error_kind else None
        return {"schema": SCHEMA, **out}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, where: str = "status.json") -> WorkerStatus:
        """Read a status document; keys this version does not know are ignored.

        Raises:
            HostError: another schema major version, or a field of the wrong shape.
        """
        schema = data.get("schema", SCHEMA)  # documents from before the schema key are version 1
        if schema != SCHEMA and not str(schema).startswith(_MAJOR + "."):
            raise HostError(f"{where}: schema '{schema}' is not supported (this Olivine reads {SCHEMA})")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        # A status the monitor wrote for a worker that never ran may lack the ids; the export names them.
        values.setdefault("job_id", "")
        values.setdefault("workflow_id", "")
        try:
            values["state"] = JobStatus(values.get("state") or JobStatus.PENDING)
            if values.get("error_kind"):
                values["error_kind"] = ErrorKind(values["error_kind"])
            progress = values.get("progress") or {}
            values["progress"] = Progress(
                **{k: v for k, v in progress.items() if k in {f.name for f in dataclasses.fields(Progress)}}
            )
            if values.get("best"):
                values["best"] = Best.from_json(values["best"])
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise HostError(f"{where}: not a worker status: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> WorkerStatus | None:
        """The status in a local file, or None when there is none yet (or it is being replaced)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise HostError(f"cannot read the worker status {path}: {exc}") from exc
        return cls.from_json(data, where=str(path)) if isinstance(data, dict) else None

    def write(self, path: Path) -> None:
        """Write to a local file atomically (readers never see half a document)."""
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        os.replace(tmp, path)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def apply_status(job: JobRecord, status: WorkerStatus) -> JobRecord:
    """``job`` as its worker's status describes it: state, message, error kind, times and progress.

    A terminal record never changes (the verdict of a cancel or the monitor stands); a worker that
    reports a final state for a job still PENDING here passes through RUNNING.
    """
    if job.state.is_terminal() or status.job_id != job.job_id:
        return job
    progress: dict[str, Any] = {
        "current_pass": status.current_pass,
        "phase": status.phase,
        "progress_done": status.progress.done,
        "progress_total": status.progress.total,
        "candidates_done": status.progress.candidates_done,
        "candidates_total": status.progress.candidates_total,
        "best_metrics": status.best_metrics,
        "best_candidate": status.best.candidate_id if status.best else None,
    }
    new = job.evolve(**progress)
    if status.state is JobStatus.PENDING or status.state is job.state:
        return new
    started = _time(status.started_at)
    if new.state is JobStatus.PENDING and status.state is not JobStatus.CANCELLED:
        new = new.evolve(state=JobStatus.RUNNING, **({"started_at": started} if started else {}))
    if status.state is JobStatus.RUNNING:
        return new.evolve(message=status.message or new.message)
    ended = _time(status.ended_at)
    return new.evolve(
        state=status.state,
        message=status.message,
        error_kind=status.error_kind,
        current_pass=None,
        **({"ended_at": ended} if ended else {}),
    )
