"""A job's progress while its worker runs: incremental export and status, driven by engine events.

:class:`JobReporter` keeps the worker's status (:mod:`olivine.jobs.status`) in two places: its job folder
and ``status.json`` on the datastore (readable from anywhere); the worker never touches a job store.
:class:`JobListener` is the engine listener: each finished pass run and each evaluation record is
exported as soon as it exists, so a worker that dies or is cancelled leaves every finished step on
the datastore.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
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
from olivine.errors import DatastoreError
from olivine.jobs.folder import JobFolder
from olivine.jobs.records import ErrorKind, JobSpec, JobStatus, utc_now
from olivine.jobs.status import Best, WorkerStatus

if TYPE_CHECKING:
    from olivine.config.evaluators import EvaluatorConfig

logger = logging.getLogger("olivine.worker")

_STAGING_PREFIX = ".staging-"  # the engine cache's in-progress run folders: never exported
_RUN_RECORD = "run.json"  # a cached pass run's record; the engine treats a run with one as finished
_PHASE_PUBLISH_S = 2.0  # phases change often (every timing round); publish them at most this often


def skip_unfinished(path: Path) -> bool:
    """Exporter filter: temporary files and the cache's staging folders (runs still being written)."""
    return default_skip(path) or any(part.startswith(_STAGING_PREFIX) for part in path.parts)


def export_cache(exporter: Exporter, local_dir: Path, rel_prefix: str) -> None:
    """Export a cache folder (or one run of it) with every ``run.json`` after the files beside it.

    A worker killed in the middle of an export then never leaves a run record on the datastore whose
    model files are missing, which a resumed run would take for a finished pass.
    """
    # The engine's shared working artifacts (olivine.engine.shared) are no result: not exported.
    shared = local_dir / "shared"

    def skip(path: Path) -> bool:
        return skip_unfinished(path) or path.is_relative_to(shared)

    exporter.export_tree(local_dir, rel_prefix, skip=lambda p: skip(p) or p.name == _RUN_RECORD)
    exporter.export_tree(local_dir, rel_prefix, skip=lambda p: skip(p) or p.name != _RUN_RECORD)


class JobReporter:
    """Writes the job's :class:`~olivine.jobs.status.WorkerStatus` to the job folder and the datastore.

    The local copy (``status.json`` in the job folder) is what a host whose worker runs on its machine
    reads back; the exported copy is the channel for every other reader. It is also rewritten every
    ``heartbeat_s`` while the worker lives (``updated_at`` moves), so a reader elsewhere can tell a
    silent worker from a dead one.

    Args:
        spec: the job.
        folder: the job folder the worker runs in.
    """

    def __init__(self, spec: JobSpec, folder: JobFolder) -> None:
        self.spec = spec
        self.folder = folder
        self.exporter: Exporter | None = None
        # The engine thread changes the status while the log shipper publishes it.
        self._lock = threading.Lock()
        self.status = WorkerStatus(
            job_id=spec.job_id,
            workflow_id=spec.workflow_id,
            heartbeat_s=spec.log_export_interval_s,
            worker={"pid": os.getpid(), "host": socket.gethostname()},
        )

    def start(self) -> bool:
        """Mark the job RUNNING; False when a cancel was asked for before the worker started."""
        if self.folder.cancel_marker.exists():
            self._set(
                state=JobStatus.CANCELLED,
                error_kind=ErrorKind.CANCELLED,
                message="cancelled before it started",
                ended_at=utc_now().isoformat(),
            )
            self.finish()
            return False
        self._set(state=JobStatus.RUNNING, message="running", started_at=utc_now().isoformat())
        self.finish()
        return True

    def attach(self, exporter: Exporter) -> None:
        self.exporter = exporter
        paths = {
            name: exporter.datastore.url_for(rel)
            for name, rel in (
                ("export_root", exporter.layout.root),
                ("cache", exporter.layout.cache),
                ("output", exporter.layout.output),
                ("logs", exporter.layout.logs),
            )
        }
        self._set(paths=paths)
        self.publish()

    def progress(self, *, publish: bool = True, **changes: Any) -> None:
        """Record progress and publish it (``publish`` false: keep it for the next write).

        Keys: ``current_pass``, ``phase``, ``best_metrics``, ``best`` (``{"candidate_id", "metrics"}``),
        and the counters ``progress_done``, ``progress_total``, ``progress_candidates_done``,
        ``progress_candidates_total``.
        """
        with self._lock:
            counters = {
                key.removeprefix("progress_"): changes.pop(key)
                for key in list(changes)
                if key.startswith("progress_")
            }
            if "best" in changes and changes["best"] is not None:
                best = changes["best"]
                changes["best"] = best if isinstance(best, Best) else Best.from_json(best)
            progress = dataclasses.replace(self.status.progress, **counters)
            self.status = self.status.evolve(progress=progress, **changes)
        if publish:
            self.publish()

    def publish(self) -> None:
        """Rewrite both copies of ``status.json``; a hiccup is logged, not fatal (the next write retries)."""
        snapshot = self._write_local()
        if self.exporter is None:
            return
        try:
            self.exporter.write_status(snapshot.to_json())
        except DatastoreError as exc:
            logger.warning("could not update status.json: %s", exc)

    def final_status(self, state: JobStatus, message: str, error_kind: ErrorKind | None) -> dict[str, Any]:
        """Set the final state (not yet published) and return the status document to seal the export with."""
        self._set(
            state=state,
            message=message,
            error_kind=error_kind,
            ended_at=utc_now().isoformat(),
            current_pass=None,
        )
        with self._lock:
            return self.status.evolve(updated_at=utc_now().isoformat()).to_json()

    def finish(self) -> None:
        """Write the status to the job folder only (the final state goes there after the export is
        sealed, so a local reader that sees it final knows the export is complete)."""
        self._write_local()

    def _write_local(self) -> WorkerStatus:
        """Stamp ``updated_at`` and write the job folder's copy; return the snapshot written."""
        with self._lock:
            self.status = self.status.evolve(updated_at=utc_now().isoformat())
            snapshot = self.status
        try:
            snapshot.write(self.folder.status)
        except OSError as exc:
            logger.warning("could not write %s: %s", self.folder.status, exc)
        return snapshot

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self.status = self.status.evolve(**changes)


class JobListener:
    """The engine listener of a worker: exports finished steps and reports progress.

    Progress is the engine's: candidates done / total, the best so far (ranked by the engine with
    :mod:`olivine.search.ranking`; this listener never ranks), and the phase. The phase also goes to
    ``current_pass`` and the candidates to ``progress.done``/``total``, for readers of those fields.

    Args:
        reporter: where progress goes.
        exporter: where finished cache entries go.
        evaluator: unused (kept for callers).
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
