"""The worker status model (schema olivine.status/1) and how a monitor reads it back into a record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olivine.errors import HostError
from olivine.jobs.records import ErrorKind, JobRecord, JobStatus
from olivine.jobs.status import SCHEMA, Best, Progress, WorkerStatus, apply_status


def _status(**changes: object) -> WorkerStatus:
    return WorkerStatus("job-0123456789", "wf").evolve(**changes)


def _record(**changes: object) -> JobRecord:
    return JobRecord("job-0123456789", "sub", "wf", "box", "LocalWorker").evolve(**changes)


def test_worker_status_round_trips_through_json_with_its_schema(tmp_path: Path) -> None:
    status = _status(
        state=JobStatus.RUNNING,
        phase="candidate 3/12: running pass quant",
        progress=Progress(done=1, total=2, candidates_done=2, candidates_total=12),
        best=Best("c0002", {"latency-avg": 1.5}),
    )
    doc = status.to_json()
    assert doc["schema"] == SCHEMA == "olivine.status/1"
    assert doc["progress"] == {"done": 1, "total": 2, "candidates_done": 2, "candidates_total": 12}
    assert doc["best"] == {"candidate_id": "c0002", "metrics": {"latency-avg": 1.5}}
    status.write(tmp_path / "status.json")
    assert WorkerStatus.read(tmp_path / "status.json") == status
    assert WorkerStatus.read(tmp_path / "missing.json") is None


def test_worker_status_ignores_unknown_keys_and_refuses_another_major_version() -> None:
    doc = _status(state=JobStatus.RUNNING).to_json()
    assert WorkerStatus.from_json({**doc, "added_later": 1}).state is JobStatus.RUNNING
    with pytest.raises(HostError, match=r"status.json: schema 'olivine.status/2' is not supported"):
        WorkerStatus.from_json({**doc, "schema": "olivine.status/2"})
    with pytest.raises(HostError, match="not a worker status"):
        WorkerStatus.from_json({**doc, "state": "EXPLODED"})


def test_worker_status_reads_a_document_written_before_the_schema_key() -> None:
    old = {"job_id": "j", "workflow_id": "wf", "state": "SUCCEEDED", "progress": {"done": 1, "total": 1}}
    status = WorkerStatus.from_json(json.loads(json.dumps(old)))
    assert status.state is JobStatus.SUCCEEDED and status.progress == Progress(1, 1)


def test_apply_status_takes_progress_and_passes_a_pending_job_through_running() -> None:
    status = _status(
        state=JobStatus.SUCCEEDED,
        message="succeeded",
        started_at="2030-01-01T00:00:00+00:00",
        ended_at="2030-01-01T00:01:00+00:00",
        progress=Progress(done=2, total=2, candidates_done=4, candidates_total=4),
        best=Best("c0003", {"acc": 0.9}),
        best_metrics={"acc": 0.9},
    )
    job = apply_status(_record(), status)
    assert job.state is JobStatus.SUCCEEDED and job.message == "succeeded"
    assert job.started_at is not None and job.started_at.isoformat() == "2030-01-01T00:00:00+00:00"
    assert job.ended_at is not None and job.ended_at.isoformat() == "2030-01-01T00:01:00+00:00"
    assert (job.progress_done, job.candidates_done, job.candidates_total) == (2, 4, 4)
    assert job.best_candidate == "c0003" and job.best_metrics == {"acc": 0.9}


def test_apply_status_never_changes_a_terminal_record_or_another_job() -> None:
    cancelled = _record().evolve(state=JobStatus.CANCELLED, message="cancelled")
    assert apply_status(cancelled, _status(state=JobStatus.SUCCEEDED)) == cancelled
    pending = _record()
    assert apply_status(pending, WorkerStatus("job-other", "wf", state=JobStatus.FAILED)) == pending


def test_apply_status_keeps_the_error_kind_of_a_failure() -> None:
    failed = apply_status(
        _record(), _status(state=JobStatus.FAILED, message="pass failed", error_kind=ErrorKind.WORKFLOW)
    )
    assert failed.state is JobStatus.FAILED and failed.error_kind is ErrorKind.WORKFLOW
