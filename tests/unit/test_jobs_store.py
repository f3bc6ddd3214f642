"""The SQLite job store: idempotent creation, guarded updates, safe concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from olivine.errors import HostError, JobNotFoundError
from olivine.jobs.records import JobRecord, JobStatus
from olivine.jobs.store import JobStore, default_store_path


def _record(job_id: str = "job-aaaaaaaaaa", submission_id: str = "sub-1", **changes: object) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        submission_id=submission_id,
        workflow_id="wf",
        host_name="worker",
        host_type="LocalWorker",
        **changes,  # type: ignore[arg-type]
    )


def test_job_store_default_path_is_under_olivine_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLIVINE_HOME", str(tmp_path))
    assert default_store_path() == tmp_path.resolve() / "jobs.db"


def test_job_store_uses_wal_mode(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.create(_record())
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_job_store_create_is_idempotent_per_submission_id(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    first, created = store.create(_record())
    again, created_again = store.create(_record(job_id="job-bbbbbbbbbb"))
    assert created and not created_again
    assert again.job_id == first.job_id
    assert [r.job_id for r in store.list()] == [first.job_id]


def test_job_store_get_accepts_a_unique_prefix(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.create(_record("job-abc0000000", "s1"))
    store.create(_record("job-abd0000000", "s2"))
    assert store.get("job-abc").job_id == "job-abc0000000"
    with pytest.raises(JobNotFoundError, match="more than one"):
        store.get("job-ab")
    with pytest.raises(JobNotFoundError, match="no job"):
        store.get("job-zzz")


def test_job_store_update_guards_transitions(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.create(_record())
    store.update("job-aaaaaaaaaa", state=JobStatus.RUNNING, current_pass="quant")
    done = store.update("job-aaaaaaaaaa", state=JobStatus.SUCCEEDED)
    with pytest.raises(HostError, match="illegal state change"):
        store.update("job-aaaaaaaaaa", state=JobStatus.FAILED)
    kept = store.update("job-aaaaaaaaaa", strict=False, state=JobStatus.CANCELLED, message="late cancel")
    assert kept == done and store.get("job-aaaaaaaaaa").state is JobStatus.SUCCEEDED
    assert store.get("job-aaaaaaaaaa").current_pass == "quant"


def test_job_store_list_filters_and_orders_newest_first(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    for i in range(3):
        store.create(_record(f"job-{i:010d}", f"s{i}"))
    store.update("job-0000000001", state=JobStatus.RUNNING)
    assert [r.job_id for r in store.list()] == ["job-0000000002", "job-0000000001", "job-0000000000"]
    assert [r.job_id for r in store.list(states=(JobStatus.RUNNING,))] == ["job-0000000001"]
    assert len(store.list(limit=2)) == 2


def _write_field(path: str, field: str, n: int) -> None:
    store = JobStore(path)
    for i in range(n):
        store.update("job-aaaaaaaaaa", **{field: i if field == "progress_done" else str(i)})


def test_job_store_keeps_every_writer_s_last_update_across_processes(tmp_path: Path) -> None:
    # Each process rewrites the whole record; without a transaction around read-modify-write one
    # process would put back another's stale field values.
    store = JobStore(tmp_path / "jobs.db")
    store.create(_record())
    ctx = multiprocessing.get_context("spawn")
    fields = ("message", "current_pass", "progress_done")
    procs = [ctx.Process(target=_write_field, args=(str(store.path), f, 60)) for f in fields]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    final = store.get("job-aaaaaaaaaa")
    assert (final.message, final.current_pass, final.progress_done) == ("59", "59", 59)


def _create(path: str, job_id: str, queue: multiprocessing.Queue[bool]) -> None:
    _, created = JobStore(path).create(_record(job_id, "same-submission"))
    queue.put(created)


def test_job_store_creates_one_job_when_processes_race_on_a_submission_id(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.db")
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[bool] = ctx.Queue()
    procs = [ctx.Process(target=_create, args=(path, f"job-{i:010d}", queue)) for i in range(4)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(60)
    assert results == [False, False, False, True]
    assert len(JobStore(path).list()) == 1


def test_job_store_wraps_sqlite_errors(tmp_path: Path) -> None:
    (tmp_path / "jobs.db").write_text("not a database")
    with pytest.raises(HostError, match="job store"):
        JobStore(tmp_path / "jobs.db").list()


def test_job_store_one_bad_row_is_skipped_by_list_and_named_by_get(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.create(_record())
    store.create(_record(job_id="job-bbbbbbbbbb", submission_id="sub-2"))
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE jobs SET record = '{not json' WHERE job_id = 'job-aaaaaaaaaa'")
    assert [r.job_id for r in store.list()] == ["job-bbbbbbbbbb"]
    assert store.get("job-bbbbbbbbbb").state is JobStatus.PENDING
    with pytest.raises(HostError, match=r"job-aaaaaaaaaa is unreadable.*doctor --fix"):
        store.get("job-aaaaaaaaaa")


def test_job_store_truncated_to_nothing_is_an_error_not_an_empty_store(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.create(_record())
    store.job_dir("job-aaaaaaaaaa").mkdir(parents=True)
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{store.path}{suffix}")
        if path.exists():
            path.write_bytes(b"")
    with pytest.raises(HostError, match="empty but 1 job folder"):
        JobStore(tmp_path / "jobs.db").list()


def test_job_store_damaged_file_names_doctor(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.create(_record())
    data = bytearray(store.path.read_bytes())
    data[:16] = b"garbage garbage!"
    store.path.write_bytes(bytes(data))
    with pytest.raises(HostError, match="doctor --fix"):
        JobStore(tmp_path / "jobs.db").list()


def test_job_store_file_is_user_private(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "home" / "jobs.db")
    store.create(_record())
    assert store.path.stat().st_mode & 0o077 == 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
_FIELDS = st.dictionaries(
    st.sampled_from(["job_id", "state", "error_kind", "created_at", "host_info", "progress_done", "job_dir"]),
    _JSON,
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.one_of(
        st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
        _JSON.map(json.dumps),
        _FIELDS.map(lambda f: json.dumps({**_record().to_json(), **f})),
    )
)
def test_job_store_mutated_row_never_breaks_other_jobs(tmp_path: Path, raw: str) -> None:
    store = JobStore(tmp_path / f"{uuid.uuid4().hex}.db")
    store.create(_record())
    store.create(_record(job_id="job-bbbbbbbbbb", submission_id="sub-2"))
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE jobs SET record = ? WHERE job_id = 'job-aaaaaaaaaa'", (raw,))
    assert "job-bbbbbbbbbb" in [r.job_id for r in store.list()]
    assert store.get("job-bbbbbbbbbb").job_id == "job-bbbbbbbbbb"
    try:
        got = store.get("job-aaaaaaaaaa")
    except HostError:
        return  # named, with the doctor hint
    assert got.job_id == "job-aaaaaaaaaa"


@pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="reads the kernel's lock table (Linux)")
def test_opening_a_store_again_keeps_the_locks_of_open_connections(tmp_path: Path) -> None:
    """A second JobStore on the same file (every API call makes one) must not open and close the file
    outside SQLite: that drops this process's POSIX locks, the open connections' too, and another
    process closing its last connection then deletes the WAL under them ("disk I/O error", "database
    disk image is malformed"; seen with two concurrent ``olivine resume`` beside a long-lived user)."""
    import os
    import sqlite3

    path = tmp_path / "jobs.db"
    JobStore(path).list()
    inode = f":{os.stat(path).st_ino} "

    def locks() -> list[str]:
        with open("/proc/locks") as table:
            return sorted(ln.split(":", 1)[1] for ln in table if f" {os.getpid()} " in ln and inode in ln)

    conn = sqlite3.connect(path)
    try:
        conn.execute("SELECT count(*) FROM jobs").fetchone()
        held = locks()
        assert held, "an open WAL connection holds a read lock on the database file"
        JobStore(path).list()
        assert locks() == held
    finally:
        conn.close()
