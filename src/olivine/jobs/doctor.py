"""``olivine doctor [--fix]``: check the job store, the local caches and the datastores, repair what can be.

What it checks, and what ``--fix`` does about it:

=====================  =========================================================  ==========================
area                   problem                                                    fix
=====================  =========================================================  ==========================
store                  the SQLite file is damaged, or empty beside job folders    keep it as
                                                                                  ``jobs.db.corrupt-<time>``,
                                                                                  rebuild from job folders
store                  a row that does not parse                                  rebuild it from its folder
                                                                                  (or drop it, kept aside)
job                    unfinished in the store but its worker is gone             the monitor records it
job                    over in the store, its export not sealed                   seal it with the verdict
job                    sealed ``status.json`` disagrees with the manifest         rewrite it from the manifest
job                    the store says FAILED (infrastructure: the monitor's        the store follows the seal
                       guess) but the job sealed its export with another verdict  (the commit point)
job                    SUCCEEDED, but its exported output (or whole export) is    mark the record damaged
                       gone or changed                                            (state kept; status, list
                                                                                  and fetch say what is lost)
permissions            store / job folder readable by others                      chmod 0600 / 0700
cache                  corrupt run record, model outside its run, changed files   remove it (a cache miss)
export                 damaged / missing files, unreadable manifest or index,     reported (exports are
                       future-dated folders, asset records pointing elsewhere     append-only)
=====================  =========================================================  ==========================

The job store is rebuilt from each job folder's ``record.json`` (written at submission) and its worker's
``status.json``; the damaged file is kept, never deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from olivine.errors import OlivineError
from olivine.jobs.folder import JobFolder
from olivine.jobs.records import ErrorKind, JobRecord, JobStatus, utc_now
from olivine.jobs.store import JobStore

logger = logging.getLogger(__name__)

RECORD_NAME = "record.json"
#: Audit findings that mean an exported file is not what the manifest sealed.
_DAMAGE_KINDS = ("missing", "size", "sha256")


@dataclass
class Finding:
    """One problem: the area, where, what; ``fixed`` when ``--fix`` repaired it."""

    area: str
    where: str
    problem: str
    fixed: bool = False

    def __str__(self) -> str:
        return f"{'fixed' if self.fixed else 'problem'}: {self.area}: {self.where}: {self.problem}"

    def to_json(self) -> dict[str, Any]:
        return {"area": self.area, "where": self.where, "problem": self.problem, "fixed": self.fixed}


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def add(self, area: str, where: str, problem: str, fixed: bool = False) -> Finding:
        finding = Finding(area, where, problem, fixed)
        self.findings.append(finding)
        return finding

    @property
    def open_problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.fixed]


def write_record(folder: JobFolder, job: JobRecord) -> None:
    """Keep a copy of the job's record in its folder (user-private), so the store can be rebuilt."""
    path = folder.root / RECORD_NAME
    tmp = path.with_name(f".{RECORD_NAME}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(job.to_json(), fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def run_doctor(
    store: JobStore,
    *,
    fix: bool = False,
    cache_dirs: tuple[Path, ...] = (),
    datastores: tuple[str, ...] = (),
    hashes: bool = False,
) -> Report:
    """Check (and with ``fix`` repair) the job store, its jobs, caches and datastores."""
    report = Report()
    _check_store_file(store, report, fix)
    jobs = _check_rows(store, report, fix)
    report.checked["jobs"] = len(jobs)
    _check_permissions(store, report, fix)
    for job in jobs:
        _check_job(store, job, report, fix, hashes)
    caches = [*cache_dirs, *(JobFolder(store.job_dir(j.job_id)).cache for j in jobs)]
    report.checked["caches"] = sum(_check_cache_dir(Path(c), report, fix) for c in caches)
    _check_datastores(store, jobs, datastores, report, fix, hashes)
    return report


# -- the store file ------------------------------------------------------------------------------
def _check_store_file(store: JobStore, report: Report, fix: bool) -> None:
    problem = _store_problem(store)
    if problem is None:
        return
    finding = report.add("store", str(store.path), problem)
    if fix:
        kept, count = rebuild_store(store)
        finding.fixed = True
        finding.problem += f"; rebuilt from {count} job folder(s), the damaged file kept as {kept.name}"


def _store_problem(store: JobStore) -> str | None:
    if not store.path.exists():
        return None
    folders = _job_folders(store)
    if store.path.stat().st_size == 0:
        return f"empty but {len(folders)} job folder(s) exist (truncated?)" if folders else None
    try:
        with sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, timeout=30) as conn:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            rows = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    except sqlite3.Error as exc:
        return f"unreadable ({exc})"
    if verdict != "ok":
        return f"damaged ({verdict})"
    if rows == 0 and folders:
        return f"holds no jobs but {len(folders)} job folder(s) exist (replaced?)"
    return None


def _job_folders(store: JobStore) -> list[Path]:
    if not store.jobs_dir.is_dir():
        return []
    return sorted(p for p in store.jobs_dir.iterdir() if p.is_dir() and p.name.startswith("job-"))


def rebuild_store(store: JobStore) -> tuple[Path, int]:
    """Keep the store file aside and build a new one from the job folders; returns (kept file, jobs)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    kept = store.path.with_name(f"{store.path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{store.path}{suffix}")
        if src.exists():
            os.replace(src, Path(f"{kept}{suffix}"))
    fresh = JobStore(store.path)
    fresh._init(rebuilding=True)  # empty on purpose, beside job folders: that is what is rebuilt here
    count = 0
    for folder in _job_folders(store):
        record = record_from_folder(JobFolder(folder))
        if record is not None:
            fresh.create(record)
            count += 1
    return kept, count


def record_from_folder(folder: JobFolder) -> JobRecord | None:
    """The job's record as its folder remembers it (``record.json``) and its worker last said it."""
    from olivine.jobs.status import WorkerStatus, apply_status

    try:
        record = JobRecord.from_json(json.loads((folder.root / RECORD_NAME).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    try:
        status = WorkerStatus.read(folder.status)
    except OlivineError:
        status = None
    if status is not None:
        record = apply_status(record, status)
        pid = status.worker.get("pid")
        if pid is not None and "pid" not in record.host_info:
            record = record.evolve(host_info={**record.host_info, "pid": pid})
    return record


# -- rows ------------------------------------------------------------------------------------------
def _check_rows(store: JobStore, report: Report, fix: bool) -> list[JobRecord]:
    """The readable jobs; unreadable rows are reported, and with ``fix`` rebuilt or set aside."""
    try:
        with sqlite3.connect(store.path, timeout=30) as conn:
            rows = conn.execute("SELECT job_id, record FROM jobs").fetchall()
    except sqlite3.Error as exc:
        report.add("store", str(store.path), f"cannot read its rows ({exc})")
        return []
    jobs = []
    for job_id, text in rows:
        try:
            jobs.append(store._decode(text, str(job_id)))
            continue
        except OlivineError:
            pass
        finding = report.add("store", f"job {job_id}", "its row does not parse")
        if fix:
            finding.fixed, how = _repair_row(store, str(job_id), text)
            finding.problem += f"; {how}"
            if finding.fixed:
                with contextlib.suppress(OlivineError):
                    jobs.append(store.get(str(job_id)))
    return jobs


def _repair_row(store: JobStore, job_id: str, text: Any) -> tuple[bool, str]:
    record = record_from_folder(JobFolder(store.job_dir(job_id)))
    with sqlite3.connect(store.path, timeout=30) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS quarantine (job_id TEXT, record TEXT, moved_at TEXT)")
        conn.execute("INSERT INTO quarantine VALUES (?, ?, ?)", (job_id, str(text), utc_now().isoformat()))
        conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
    if record is None or record.job_id != job_id:
        return True, "no job folder to rebuild it from: the row was moved to the quarantine table"
    store.create(record)
    return True, "rebuilt from its job folder (the bad row kept in the quarantine table)"


# -- jobs ------------------------------------------------------------------------------------------
def _check_job(store: JobStore, job: JobRecord, report: Report, fix: bool, hashes: bool = False) -> None:
    from olivine.hosts.base import host_of

    try:
        host = host_of(job, store)
        observed = host.observe(job)
    except OlivineError as exc:
        report.add("job", job.job_id, f"its host cannot be asked ({exc})")
        return
    if not job.state.is_terminal() and observed.state.is_terminal():
        # A worker that ended on its own is only waiting for the monitor to record it (no problem); one
        # whose process died needs the monitor to record the failure and seal its export.
        finding = None
        if observed.error_kind is ErrorKind.INFRASTRUCTURE:
            problem = f"recorded {job.state.value}, but its worker is gone: {observed.message}"
            finding = report.add("job", job.job_id, problem)
        if fix:
            job = host.monitor(job)
            if finding is not None:
                finding.fixed = job.state.is_terminal()
        else:
            job = observed  # what the store will say once the monitor runs
    if not job.state.is_terminal() or job.export_root is None:
        return
    _check_sealed(store, host, job, report, fix, hashes)


def _check_sealed(
    store: JobStore, host: Any, job: JobRecord, report: Report, fix: bool, hashes: bool
) -> None:
    from olivine.datastores.files import json_bytes
    from olivine.datastores.manifest import read_manifest
    from olivine.jobs.abandoned import close_export
    from olivine.jobs.exports import open_job_export

    try:
        layout = open_job_export(job)
        manifest = read_manifest(layout.datastore, layout)
        status = layout.read_status()
    except (OlivineError, ValueError) as exc:
        report.add("job", job.job_id, f"its export cannot be read ({exc})")
        return
    if manifest is None and job.state is JobStatus.SUCCEEDED:
        # The worker seals before it reports success: no manifest now means the export was removed.
        # Sealing it again would claim an output that is not there.
        _check_claims(store, job, report, fix, [f"its sealed export {layout.url} is gone (no manifest)"])
        return
    if manifest is None:
        finding = report.add(
            "job", job.job_id, f"{job.state.value} but its export {layout.url} is not sealed"
        )
        if fix:
            finding.fixed = close_export(job, host.worker_folder(job), retry=True)
        return
    if job.state is JobStatus.SUCCEEDED:
        _check_claims(store, job, report, fix, _output_damage(layout, hashes))
    sealed = manifest.get("status") if isinstance(manifest.get("status"), dict) else None
    sealed_state = sealed.get("state") if sealed else None
    if sealed_state != job.state.value:
        finding = report.add(
            "job", job.job_id, f"the store says {job.state.value}, the sealed export {sealed_state}"
        )
        if fix and sealed is not None:
            finding.fixed = _adopt_sealed(store, job, sealed)
            if finding.fixed:
                finding.problem += "; the store now follows the seal (the commit point)"
    if sealed is not None and (status or {}).get("state") != sealed_state:
        finding = report.add(
            "job", job.job_id, f"status.json says {(status or {}).get('state')}, the manifest {sealed_state}"
        )
        if fix:
            try:
                layout.datastore.put_bytes(layout.status, json_bytes(sealed), overwrite=True)
                finding.fixed = True
            except OlivineError as exc:
                finding.problem += f"; could not rewrite it: {exc}"


def _adopt_sealed(store: JobStore, job: JobRecord, sealed: dict[str, Any]) -> bool:
    """Make the store follow this job's sealed verdict when the store's own verdict was the monitor's
    "infrastructure" guess (the worker gone, the datastore unreadable at that moment). The manifest is
    the commit point: a worker that sealed its export finished, whatever happened to it afterwards."""
    import dataclasses

    from olivine.jobs.status import WorkerStatus, apply_status

    try:
        status = WorkerStatus.from_json(sealed)
    except (OlivineError, ValueError, TypeError, KeyError):
        return False
    if status.job_id != job.job_id or not status.state.is_terminal():
        return False
    if job.error_kind is not ErrorKind.INFRASTRUCTURE:
        return False  # a user's cancel or a recorded failure of the workflow is not overruled here
    reopened = dataclasses.replace(job, state=JobStatus.RUNNING, error_kind=None, ended_at=None)
    store.correct(apply_status(reopened, status))
    return True


def _output_damage(layout: Any, hashes: bool) -> list[str]:
    """What is wrong with the output part of a sealed export (missing, resized, changed files)."""
    from olivine.datastores.audit import audit_export

    prefix = f"{layout.url}/output/"
    return [
        f"{f.where[len(layout.url) + 1 :]} {f.detail}"
        for f in audit_export(layout, hashes=hashes)
        if f.where.startswith(prefix) and f.kind in _DAMAGE_KINDS
    ]


def _check_claims(store: JobStore, job: JobRecord, report: Report, fix: bool, damage: list[str]) -> None:
    """A SUCCEEDED job whose claimed output is gone: report it; ``fix`` marks the record (state kept)."""
    if not damage:
        if job.damage is not None:
            finding = report.add("job", job.job_id, "marked damaged, but its output verifies again")
            if fix:
                store.update(job.job_id, damage=None)
                finding.fixed = True
        return
    detail = damage[0] + (f" (and {len(damage) - 1} more)" if len(damage) > 1 else "")
    if job.damage is not None:
        return  # marked already: status, list and fetch say so
    finding = report.add("job", job.job_id, f"SUCCEEDED, but its output is lost: {detail}")
    if fix:
        store.update(job.job_id, damage=f"output lost after the job ended: {detail}")
        finding.fixed = True
        finding.problem += "; marked damaged (state kept)"


def _check_permissions(store: JobStore, report: Report, fix: bool) -> None:
    paths = [(store.path, 0o600), *((p, 0o700) for p in _job_folders(store))]
    if store.jobs_dir.is_dir():
        paths.append((store.jobs_dir, 0o700))
    for path, private in paths:
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            finding = report.add("permissions", str(path), "readable by other users")
            if fix:
                os.chmod(path, private)
                finding.fixed = True


# -- caches and datastores -------------------------------------------------------------------------
def _check_cache_dir(cache_dir: Path, report: Report, fix: bool) -> int:
    """Audit every workflow cache under ``cache_dir``; returns how many were checked."""
    from olivine.engine.cache import WorkflowCache

    if not cache_dir.is_dir():
        return 0
    count = 0
    for workflow in sorted(p for p in cache_dir.iterdir() if p.is_dir() and (p / "runs").is_dir()):
        count += 1
        for problem in WorkflowCache(cache_dir, workflow.name).audit(fix=fix):
            report.add("cache", str(workflow), problem, fixed=fix)
    return count


def _check_datastores(
    store: JobStore, jobs: list[JobRecord], named: tuple[str, ...], report: Report, fix: bool, hashes: bool
) -> None:
    from olivine.datastores.audit import audit_datastore
    from olivine.datastores.local import LocalDatastore
    from olivine.jobs.choice import choose_datastore
    from olivine.jobs.profiles import Profiles

    profiles = Profiles()
    opened: dict[str, Any] = {}
    try:
        default = LocalDatastore.default()
        if Path(default.root).is_dir():
            opened[default.url_for()] = default
    except OlivineError:
        pass
    for name in named:
        try:
            ds = choose_datastore(name, profiles).open(profiles)
        except OlivineError as exc:
            report.add("export", name, f"cannot open the datastore ({exc})")
            continue
        opened[ds.url_for()] = ds
    report.checked["datastores"] = len(opened)
    for url, datastore in opened.items():
        try:
            findings = audit_datastore(datastore, hashes=hashes)
        except OlivineError as exc:
            report.add("export", url, f"cannot be audited ({exc})")
            continue
        for finding in findings:
            if finding.kind == "unsealed" and _unsealed_is_running(finding.where, jobs):
                continue  # a job of this store is still running there: not a problem
            if finding.kind in ("unsealed", "split") and _owned(finding.where, jobs):
                continue  # a job of this store: checked (and fixed) above with its verdict
            if finding.kind in _DAMAGE_KINDS and "/output/" in finding.where and _owned(finding.where, jobs):
                continue  # a job's output: reported (and marked) with the job above
            report.add("export", finding.where, f"{finding.kind}: {finding.detail}")


def _owned(where: str, jobs: list[JobRecord]) -> bool:
    return any(j.export_root and where.startswith(j.export_root.rstrip("/")) for j in jobs)


def _unsealed_is_running(where: str, jobs: list[JobRecord]) -> bool:
    return any(
        j.export_root and where.startswith(j.export_root.rstrip("/")) and not j.state.is_terminal()
        for j in jobs
    )
