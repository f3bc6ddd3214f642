"""A job's progress while its worker runs: incremental export and status, driven by engine events.

:class:`JobReporter` keeps one status in two places: the job store row (when the worker can reach the
submitter's store) and ``status.json`` on the datastore (readable from anywhere). :class:`JobListener`
is the engine listener: each finished pass run and each evaluation record is exported as soon as it
exists, so a worker that dies or is cancelled leaves every finished step on the datastore.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.datastores.exporter import Exporter, default_skip
from olivine.engine.events import (
    CandidateFinished,
    CandidateStarted,
    EngineEvent,
    EvaluationFinished,
    PassFailed,
    PassFinished,
    PhaseChanged,
    WorkflowFinished,
    WorkflowStarted,
)
from olivine.errors import DatastoreError, HostError
from olivine.hosts.jobs import ErrorKind, JobRecord, JobSpec, JobStatus, utc_now
from olivine.hosts.store import JobStore

if TYPE_CHECKING:
    from olivine.config.evaluators import EvaluatorConfig

_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(JobRecord))
_PHASE_PUBLISH_S = 2.0  # phases change often (every timing round); publish them at most this often

logger = logging.getLogger("olivine.worker")

_STAGING_PREFIX = ".staging-"  # the engine cache's in-progress run folders: never exported
_RUN_RECORD = "run.json"  # a cached pass run's record; the engine treats a run with one as finished


def skip_unfinished(path: Path) -> bool:
    """Exporter filter: temporary files and the cache's staging folders (runs still being written)."""
    return default_skip(path) or any(part.startswith(_STAGING_PREFIX) for part in path.parts)


def export_cache(exporter: Exporter, local_dir: Path, rel_prefix: str) -> None:
    """Export a cache folder (or one run of it) with every ``run.json`` after the files beside it.

    A worker killed in the middle of an export then never leaves a run record on the datastore whose
    model files are missing, which a resumed run would take for a finished pass.
    """
    exporter.export_tree(local_dir, rel_prefix, skip=lambda p: skip_unfinished(p) or p.name == _RUN_RECORD)
    exporter.export_tree(local_dir, rel_prefix, skip=lambda p: skip_unfinished(p) or p.name != _RUN_RECORD)


class JobReporter:
    """Writes the job's status to the job store and to ``status.json`` on the datastore.

    ``status.json`` is also rewritten every ``heartbeat_s`` while the worker lives (its ``updated_at``
    moves), so a reader elsewhere can tell a silent worker from a dead one (``heartbeat_s`` is in it).

    Args:
        spec: the job.
        store: the job store, or None for workers that cannot reach it.
    """

    def __init__(self, spec: JobSpec, store: JobStore | None) -> None:
        self.spec = spec
        self.store = store
        self.exporter: Exporter | None = None
        # The engine thread changes the status while the log shipper publishes it.
        self._lock = threading.Lock()
        self.status: dict[str, Any] = {
            "job_id": spec.job_id,
            "workflow_id": spec.workflow_id,
            "state": JobStatus.PENDING.value,
            "message": "",
            "error_kind": None,
            "current_pass": None,
            "phase": None,
            "progress": {"done": 0, "total": 0, "candidates_done": 0, "candidates_total": None},
            "best": None,
            "best_metrics": {},
            "started_at": None,
            "ended_at": None,
            "heartbeat_s": spec.log_export_interval_s,
        }

    def start(self, pid: int) -> bool:
        """Mark the job RUNNING; False when it already ended (cancelled before the worker started)."""
        self.status.update(state=JobStatus.RUNNING.value, started_at=utc_now().isoformat())
        if self.store is None:
            return True
        record = self.store.update(
            self.spec.job_id, strict=False, state=JobStatus.RUNNING, pid=pid, message="running"
        )
        return record.state is JobStatus.RUNNING

    def attach(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.status["paths"] = {
            name: exporter.datastore.url_for(rel)
            for name, rel in (
                ("export_root", exporter.layout.root),
                ("cache", exporter.layout.cache),
                ("output", exporter.layout.output),
                ("logs", exporter.layout.logs),
            )
        }
        self.publish()

    def progress(self, *, publish: bool = True, **changes: Any) -> None:
        """Record progress (``phase``, ``progress_candidates_done``/``progress_candidates_total``, ``best``,
        and the job record's ``current_pass``, ``progress_done``/``progress_total``, ``best_metrics``);
        ``publish`` false keeps it for the next status write."""
        with self._lock:
            for key, value in changes.items():
                if key.startswith("progress_"):
                    self.status["progress"] = {
                        **self.status["progress"],
                        key.removeprefix("progress_"): value,
                    }
                else:
                    self.status[key] = value
        if not publish:
            return
        recorded = {k: v for k, v in changes.items() if k in _RECORD_FIELDS}
        if self.store is not None and recorded:
            try:
                self.store.update(self.spec.job_id, **recorded)
            except HostError as exc:  # progress is advisory: a busy job store must not fail the workflow
                logger.warning("could not record progress in the job store: %s", exc)
        self.publish()

    def publish(self) -> None:
        """Rewrite ``status.json``; a datastore hiccup is logged, not fatal (the next write retries)."""
        if self.exporter is None:
            return
        with self._lock:
            snapshot = {**self.status, "updated_at": utc_now().isoformat()}
        try:
            self.exporter.write_status(snapshot)
        except DatastoreError as exc:
            logger.warning("could not update status.json: %s", exc)

    def final_status(self, state: JobStatus, message: str, error_kind: ErrorKind | None) -> dict[str, Any]:
        with self._lock:
            self.status.update(
                state=state.value,
                message=message,
                error_kind=error_kind.value if error_kind else None,
                ended_at=utc_now().isoformat(),
                current_pass=None,
            )
            return {**self.status, "updated_at": utc_now().isoformat()}

    def finish(self, state: JobStatus, message: str, error_kind: ErrorKind | None) -> None:
        """Set the final state in the job store (after the export is sealed)."""
        if self.store is not None:
            self.store.update(
                self.spec.job_id,
                strict=False,
                state=state,
                message=message,
                error_kind=error_kind,
                current_pass=None,
            )


class JobListener:
    """The engine listener of a worker: exports finished steps and reports progress.

    Progress is the engine's: candidates done / total, the best so far (ranked by the engine with
    :mod:`olivine.search.ranking`; this listener never ranks), and the phase. For the job record (and
    ``olivine status`` until it reads the typed status), the phase also goes to ``current_pass`` and the
    candidates to ``progress_done``/``progress_total``.

    Args:
        reporter: where progress goes.
        exporter: where finished cache entries go.
        evaluator: the workflow's evaluator (unused; kept for callers).
    """

    def __init__(
        self, reporter: JobReporter, exporter: Exporter, evaluator: EvaluatorConfig | None = None
    ) -> None:
        self.reporter = reporter
        self.exporter = exporter
        self.cache_root: Path | None = None
        self.candidates_done = 0
        self.export_failures = 0
        self._phase_published = 0.0
        self._phase_stage = ""

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, WorkflowStarted):
            self.cache_root = event.cache_dir
            self.reporter.progress(progress_candidates_done=0, progress_done=0)
        elif isinstance(event, PhaseChanged):
            # A new stage (another candidate, pass or metric) is published at once; repeats within a
            # stage (timing rounds, heartbeats) at most every few seconds.
            now, stage = time.monotonic(), ":".join(event.phase.split(":")[:2]).split(" round ")[0]
            publish = stage != self._phase_stage or now - self._phase_published >= _PHASE_PUBLISH_S
            if publish:
                self._phase_published, self._phase_stage = now, stage
            self.reporter.progress(publish=publish, phase=event.phase, current_pass=event.phase[:200])
        elif isinstance(event, CandidateStarted):
            self.reporter.progress(
                publish=False, progress_candidates_total=event.total, progress_total=event.total or 0
            )
        elif isinstance(event, PassFinished):
            self._export(event.run_dir)
        elif isinstance(event, (PassFailed, EvaluationFinished)):
            self._export(event.record_path)
        elif isinstance(event, CandidateFinished):
            self.candidates_done += 1
            best = None
            if event.best_id is not None:
                values = {k: v.get("value") for k, v in event.best_metrics.items()}
                best = {"candidate_id": event.best_id, "metrics": values}
            self.reporter.progress(
                progress_candidates_done=self.candidates_done,
                progress_candidates_total=event.total,
                progress_done=self.candidates_done,
                progress_total=event.total or self.candidates_done,
                best=best,
                best_metrics=event.best_metrics,
            )
        elif isinstance(event, WorkflowFinished):
            self.reporter.progress(current_pass=None, phase=None, best_metrics=event.metrics)

    def _export(self, path: Path) -> None:
        if self.cache_root is None:
            return
        rel = f"cache/{path.relative_to(self.cache_root).as_posix()}"
        try:
            if path.is_dir():
                export_cache(self.exporter, path, rel)
            else:
                self.exporter.export_file(path, rel)
        except DatastoreError as exc:
            # Keep running: the final export of the whole cache tries again.
            self.export_failures += 1
            logger.warning("incremental export of %s failed: %s", rel, exc)
