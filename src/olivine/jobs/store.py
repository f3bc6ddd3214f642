"""The local job store: one SQLite file shared by the CLI, the api and every worker process.

Each operation opens its own short-lived connection and, when it writes, holds one ``BEGIN IMMEDIATE``
transaction: read the row, apply :meth:`JobRecord.evolve` (the transition guard), write it back. WAL mode
lets readers (``olivine status``) run while a worker writes. The record is stored as JSON beside a few
indexed columns, so a new field needs no schema migration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from olivine.errors import HostError, JobNotFoundError
from olivine.jobs.records import JobRecord, JobStatus, utc_now

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    submission_id TEXT NOT NULL UNIQUE,
    workflow_id TEXT NOT NULL,
    host_name TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
"""
_BUSY_TIMEOUT_S = 30.0
_REPORTED: set[str] = set()


def _hint(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return "; the file is damaged: run 'olivine doctor --fix' (it keeps a copy and rebuilds the store)"
    return ""


def _encode(record: JobRecord) -> str:
    """The stored form of a record: credentials in free text (an error message) are scrubbed here,
    at the boundary, whatever wrote them."""
    from olivine.datastores.redact import redact_config

    return json.dumps(redact_config(record.to_json()))


def default_store_path() -> Path:
    """``$OLIVINE_HOME/jobs.db`` when ``OLIVINE_HOME`` is set, else ``jobs.db`` in the user data folder."""
    from olivine.datastores.paths import user_data_dir

    return user_data_dir() / "jobs.db"


class JobStore:
    """Job records in a SQLite file; job folders (spec, bundle, log) in ``jobs/`` beside it.

    Args:
        path: the database file; created (with its folder) on first use.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False

    @classmethod
    def default(cls) -> JobStore:
        return cls(default_store_path())

    @property
    def jobs_dir(self) -> Path:
        return self.path.parent / "jobs"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            if not self._ready:
                self._init()
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise HostError(f"job store {self.path}: {exc}{_hint(exc)}") from exc
        except OSError as exc:
            raise HostError(f"job store {self.path}: {exc.strerror or exc}") from exc
        try:
            if write:
                conn.execute("BEGIN IMMEDIATE")
            yield conn
            if write:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise HostError(f"job store {self.path}: {exc}{_hint(exc)}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def _init(self, *, rebuilding: bool = False) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # User-private: job records name paths, datastores and (scrubbed) messages of one user.
        # Created here only when missing: opening and closing the file outside SQLite would drop every
        # POSIX lock this process holds on it, its open connections' too; another process closing its
        # last connection then takes itself for the last one, checkpoints and deletes the WAL under
        # them ("disk I/O error", "database disk image is malformed": measured with two concurrent
        # `olivine resume` beside a long-lived API user).
        if not self.path.exists():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        if self.path.stat().st_size == 0 and not rebuilding:
            folders = [p for p in self.jobs_dir.iterdir() if p.is_dir()] if self.jobs_dir.is_dir() else []
            if folders:
                raise HostError(
                    f"job store {self.path} is empty but {len(folders)} job folder(s) exist beside it: it "
                    "was truncated or replaced; run 'olivine doctor --fix' to rebuild it from the folders"
                )
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            # WAL: readers never block the worker's writes; NORMAL sync is durable enough in WAL mode.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        finally:
            conn.close()
        self._ready = True

    def create(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """Persist a new record; with a known ``submission_id`` return that job instead.

        Returns:
            ``(record, created)``: ``created`` is False when the submission id already had a job, which
            the caller must then not launch again.
        """
        now = utc_now().isoformat()
        with self._connect(write=True) as conn:
            row = conn.execute(
                "SELECT record, job_id FROM jobs WHERE submission_id = ?", (record.submission_id,)
            ).fetchone()
            if row is not None:
                return self._decode(row[0], str(row[1])), False
            conn.execute(
                "INSERT INTO jobs (job_id, submission_id, workflow_id, host_name, state, created_at, "
                "updated_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.job_id,
                    record.submission_id,
                    record.workflow_id,
                    record.host_name,
                    record.state.value,
                    record.created_at.isoformat(),
                    now,
                    _encode(record),
                ),
            )
        return record, True

    def get(self, job_id: str) -> JobRecord:
        """The job with this id, or the only job whose id starts with it.

        Raises:
            JobNotFoundError: no job (or more than one) matches.
        """
        with self._connect() as conn:
            return self._get(conn, job_id)

    def _get(self, conn: sqlite3.Connection, job_id: str) -> JobRecord:
        rows = conn.execute("SELECT job_id, record FROM jobs WHERE job_id = ?", (job_id,)).fetchall()
        if not rows and job_id:
            pattern = job_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = conn.execute(
                "SELECT job_id, record FROM jobs WHERE job_id LIKE ? ESCAPE '\\' LIMIT 2", (pattern,)
            ).fetchall()
        if len(rows) != 1:
            what = "no job" if not rows else "more than one job"
            raise JobNotFoundError(f"{what} matches '{job_id}' in the job store {self.path}")
        return self._decode(rows[0][1], str(rows[0][0]))

    def _decode(self, text: Any, job_id: str) -> JobRecord:
        """A stored record, or HostError naming the job when its row is unreadable (one bad row is
        that job's problem only: :meth:`list` skips it, ``olivine doctor --fix`` repairs it)."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            record = JobRecord.from_json(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise HostError(
                f"job store {self.path}: the record of job {job_id} is unreadable ({type(exc).__name__}); "
                "run 'olivine doctor --fix'"
            ) from None
        if record.job_id != job_id:
            raise HostError(
                f"job store {self.path}: the row of job {job_id} holds the record of another job; "
                "run 'olivine doctor --fix'"
            )
        return record

    def find_by_submission(self, submission_id: str) -> JobRecord | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT record, job_id FROM jobs WHERE submission_id = ?", (submission_id,)
            ).fetchone()
        return self._decode(row[0], row[1]) if row else None

    def list(
        self,
        *,
        states: tuple[JobStatus, ...] | None = None,
        workflow_id: str | None = None,
        host_name: str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Jobs, newest first, optionally filtered."""
        where: list[str] = []
        args: list[Any] = []
        if states:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(JobStatus(s).value for s in states)
        if workflow_id:
            where.append("workflow_id = ?")
            args.append(workflow_id)
        if host_name:
            where.append("host_name = ?")
            args.append(host_name)
        sql = "SELECT job_id, record FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._connect() as conn:
            rows = conn.execute(sql, args).fetchall()
        records = []
        for job_id, text in rows:
            try:
                records.append(self._decode(text, str(job_id)))
            except HostError as exc:
                if str(job_id) not in _REPORTED:  # once per process: list runs in loops
                    _REPORTED.add(str(job_id))
                    logger.warning("%s; it is left out", exc)
        return records

    def update(self, job_id: str, *, strict: bool = True, **changes: Any) -> JobRecord:
        """Apply ``changes`` to the stored record in one transaction (state changes are guarded).

        Args:
            job_id: the exact job id.
            strict: when False, an illegal state change (typically: the job already ended) leaves the
                record as it is and returns it, so racing writers (cancel vs. the worker finishing) need
                no error handling; the caller compares the returned state.
            **changes: :class:`JobRecord` fields.

        Raises:
            HostError: ``strict`` and the state change is illegal.
        """
        with self._connect(write=True) as conn:
            current = self._get(conn, job_id)
            try:
                new = current.evolve(**changes)
            except HostError:
                if strict or "state" not in changes:
                    raise
                logger.debug(
                    "job %s: ignored change to %s (already %s)", job_id, changes["state"], current.state
                )
                return current
            conn.execute(
                "UPDATE jobs SET state = ?, updated_at = ?, record = ? WHERE job_id = ?",
                (new.state.value, utc_now().isoformat(), _encode(new), current.job_id),
            )
        return new

    def correct(self, record: JobRecord) -> JobRecord:
        """Replace a stored record as a whole, past the state machine: for ``olivine doctor --fix`` when
        the job's sealed export proves the stored verdict wrong (a monitor that could not read the
        datastore recorded a worker that had committed as dead)."""
        with self._connect(write=True) as conn:
            current = self._get(conn, record.job_id)
            conn.execute(
                "UPDATE jobs SET state = ?, updated_at = ?, record = ? WHERE job_id = ?",
                (record.state.value, utc_now().isoformat(), _encode(record), current.job_id),
            )
        return record

    def sync(self, observed: JobRecord) -> tuple[JobRecord, JobRecord]:
        """Persist what a monitor observed (:meth:`JobRecord.take_status`) in one transaction.

        Idempotent: nothing is written when the stored record already says it.

        Returns:
            ``(before, after)``: the stored record before and after the update.
        """
        with self._connect(write=True) as conn:
            current = self._get(conn, observed.job_id)
            new = current.take_status(observed)
            if new != current:
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ?, record = ? WHERE job_id = ?",
                    (new.state.value, utc_now().isoformat(), _encode(new), current.job_id),
                )
        return current, new
