"""The functions :mod:`olivine.api` calls.

Jobs in the local store: submit, resume, status, list_jobs, logs, cancel, wait, fetch. Every function
after submission finds the job's host from its record (the host's config is stored in it), so callers
never need to know which kind of host runs a job.

From a datastore alone (any machine that can read it, no job record): remote_status, remote_logs,
assets_list, assets_show.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from olivine.datastores.layout import ExportLayout
from olivine.datastores.manifest import Which
from olivine.datastores.manifest import fetch as fetch_export
from olivine.errors import JobNotFoundError
from olivine.hosts.base import host_of
from olivine.hosts.catalog import AssetSummary, AssetVersion, assets_list, assets_show
from olivine.hosts.jobs import JobRecord, JobStatus
from olivine.hosts.profiles import Profiles
from olivine.hosts.remote import job_export_logs, remote_logs, remote_status
from olivine.hosts.store import JobStore
from olivine.hosts.submission import DEFAULT_HOST, Submission, SubmitPlan, resume, submit

__all__ = [
    "DEFAULT_HOST",
    "AssetSummary",
    "AssetVersion",
    "Submission",
    "SubmitPlan",
    "assets_list",
    "assets_show",
    "cancel",
    "export_file",
    "fetch",
    "host_of",
    "list_jobs",
    "logs",
    "remote_logs",
    "remote_status",
    "resume",
    "status",
    "submit",
    "wait",
]


def status(job_id: str, *, store: JobStore | None = None) -> JobRecord:
    """The job's record, reconciled by its host's monitor (a dead worker shows as FAILED)."""
    store = store or JobStore.default()
    job = store.get(job_id)
    return host_of(job, store).status(job.job_id)


def list_jobs(
    *,
    states: tuple[JobStatus, ...] | None = None,
    workflow_id: str | None = None,
    limit: int | None = None,
    store: JobStore | None = None,
) -> list[JobRecord]:
    """Jobs, newest first; unfinished ones are reconciled by their host's monitor first."""
    store = store or JobStore.default()
    for job in store.list(states=(JobStatus.PENDING, JobStatus.RUNNING)):
        host_of(job, store).refresh(job)
    return store.list(states=states, workflow_id=workflow_id, limit=limit)


def logs(job_id: str, *, follow: bool = False, store: JobStore | None = None) -> Iterator[str]:
    """The job's log lines; with ``follow``, until the job ends.

    When the job's local log file is gone (its job folder was deleted), the log its worker exported to
    the datastore is read instead; exported logs arrive in batches while the job runs.

    Raises:
        JobNotFoundError: no such job.
    """
    store = store or JobStore.default()
    job = store.get(job_id)
    host = host_of(job, store)
    # A PENDING job's log file may not exist yet (the host creates it when it launches the worker).
    gone = job.log_path is not None and not Path(job.log_path).is_file()
    if gone and job.export_root is not None and job.state is not JobStatus.PENDING:
        finished = (lambda: host.status(job.job_id).state.is_terminal()) if follow else None
        return job_export_logs(job, finished)
    return host.logs(job.job_id, follow=follow)


def cancel(job_id: str, *, timeout_s: float | None = None, store: JobStore | None = None) -> JobRecord:
    """Cancel the job (graceful stop, forced after ``timeout_s`` or the host's grace period)."""
    store = store or JobStore.default()
    job = store.get(job_id)
    return host_of(job, store).cancel(job.job_id, timeout_s=timeout_s)


def wait(job_id: str, *, timeout_s: float | None = None, store: JobStore | None = None) -> JobRecord:
    """Block until the job ends (or ``timeout_s`` passes); return its record."""
    store = store or JobStore.default()
    job = store.get(job_id)
    return host_of(job, store).wait(job.job_id, timeout_s=timeout_s)


def fetch(
    job_or_url: str,
    dest: str | Path,
    *,
    which: Which = "output",
    datastore: str | None = None,
    store: JobStore | None = None,
    profiles: Profiles | None = None,
) -> list[Path]:
    """Download (and verify against the manifest) a job's export: ``output``, ``cache`` or ``all``.

    Args:
        job_or_url: a job id, or an export URL ``<datastore>/<timestamp>/<workflow_id>``.
        dest: local folder; files land at ``dest/<output|cache|logs>/...``.
        which: the part to download.
        datastore: for a URL, the hosts-file datastore whose options (credentials) open it.
    """
    layout = _export_layout(job_or_url, datastore, store, profiles)
    return fetch_export(layout.datastore, layout, which, Path(dest))


def export_file(
    job_or_url: str,
    rel: str,
    *,
    datastore: str | None = None,
    store: JobStore | None = None,
    profiles: Profiles | None = None,
) -> bytes | None:
    """One file of a job's export (``rel`` relative to the export root), or None when it is not there (yet).

    ``job_or_url`` and ``datastore`` are as for :func:`fetch`.
    """
    layout = _export_layout(job_or_url, datastore, store, profiles)
    path = layout.path(rel)
    if not layout.datastore.exists(path):
        return None
    return layout.datastore.read_bytes(path)


def _export_layout(
    job_or_url: str, datastore: str | None, store: JobStore | None, profiles: Profiles | None
) -> ExportLayout:
    from olivine.hosts.exports import open_export_url, open_spec_export
    from olivine.hosts.worker import read_spec

    if "/" in job_or_url:
        profiles = profiles or Profiles()
        options = profiles.datastore(datastore).options if datastore else {}
        return open_export_url(job_or_url, options)
    job = (store or JobStore.default()).get(job_or_url)
    if job.job_dir is None or not (Path(job.job_dir) / "job.json").is_file():
        raise JobNotFoundError(f"job {job.job_id} has no job spec to find its export")
    _, layout, _ = open_spec_export(read_spec(Path(job.job_dir)))
    return layout
