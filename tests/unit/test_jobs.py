"""Job states follow a guarded state machine; records round-trip through JSON."""

from __future__ import annotations

import pytest

from olivine.errors import HostError
from olivine.jobs.records import ErrorKind, JobRecord, JobSpec, JobStatus, new_job_id


def _record(**changes: object) -> JobRecord:
    base = JobRecord(
        job_id="job-0123456789",
        submission_id="sub-1",
        workflow_id="wf",
        host_name="worker",
        host_type="LocalWorker",
    )
    return base.evolve(**changes) if changes else base


def test_job_status_is_terminal_only_for_final_states() -> None:
    terminal = {s for s in JobStatus if s.is_terminal()}
    assert terminal == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (JobStatus.PENDING, JobStatus.RUNNING),
        (JobStatus.PENDING, JobStatus.FAILED),
        (JobStatus.PENDING, JobStatus.CANCELLED),
        (JobStatus.RUNNING, JobStatus.RUNNING),
        (JobStatus.RUNNING, JobStatus.SUCCEEDED),
        (JobStatus.RUNNING, JobStatus.FAILED),
        (JobStatus.RUNNING, JobStatus.CANCELLED),
    ],
)
def test_job_status_allows_forward_transitions(old: JobStatus, new: JobStatus) -> None:
    assert old.can_become(new)


@pytest.mark.parametrize("final", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_job_status_terminal_states_are_final(final: JobStatus) -> None:
    assert not any(final.can_become(other) for other in JobStatus)


def test_job_status_refuses_success_without_running() -> None:
    assert not JobStatus.PENDING.can_become(JobStatus.SUCCEEDED)
    assert not JobStatus.RUNNING.can_become(JobStatus.PENDING)


def test_job_record_evolve_raises_on_illegal_transition() -> None:
    done = _record(state=JobStatus.RUNNING).evolve(state=JobStatus.SUCCEEDED)
    with pytest.raises(HostError, match="SUCCEEDED -> RUNNING"):
        done.evolve(state=JobStatus.RUNNING)


def test_job_record_evolve_stamps_start_and_end_times() -> None:
    running = _record(state="RUNNING")
    assert running.started_at is not None and running.ended_at is None
    failed = running.evolve(state="FAILED", error_kind="workflow", message="pass 'q' failed")
    assert failed.ended_at is not None and failed.ended_at >= running.started_at
    assert failed.error_kind is ErrorKind.WORKFLOW


def test_job_record_evolve_sets_error_kind_when_cancelled() -> None:
    assert _record(state=JobStatus.CANCELLED).error_kind is ErrorKind.CANCELLED


def test_job_record_evolve_rejects_unknown_fields() -> None:
    with pytest.raises(HostError, match="statu"):
        _record().evolve(statu="RUNNING")


def test_job_record_round_trips_through_json() -> None:
    record = _record(state=JobStatus.RUNNING, best_metrics={"acc-accuracy_score": 0.9}, progress_done=1)
    again = JobRecord.from_json(record.to_json())
    assert again == record


def test_job_record_from_json_ignores_fields_of_newer_versions() -> None:
    data = _record().to_json() | {"added_later": 1}
    assert JobRecord.from_json(data).job_id == "job-0123456789"


def test_job_spec_rejects_unknown_keys() -> None:
    spec = JobSpec(
        job_id="j", workflow_id="wf", bundle="bundle", datastore_url="file:///x", export_timestamp="t"
    )
    assert JobSpec.from_json(spec.to_json()) == spec
    with pytest.raises(HostError, match="unknown key"):
        JobSpec.from_json(spec.to_json() | {"account_key": "x"})


def test_new_job_id_is_short_and_unique() -> None:
    ids = {new_job_id() for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("job-") and len(i) == 14 for i in ids)
