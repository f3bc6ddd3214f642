"""The functions :mod:`olivine.api` calls.

Jobs in the local store: submit, resume, status, list_jobs, logs, cancel, wait, fetch, monitor. Every
function after submission finds the job's host from its record (the host's config is stored in it), so
callers never need to know which kind of host runs a job. ``status``, ``list_jobs`` and ``logs`` only
read; ``monitor`` (and ``wait``, ``cancel``) record what the hosts observe.

From a datastore alone (any machine that can read it, no job record): remote_status, remote_logs,
assets_list, assets_show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from olivine.datastores.layout import ExportLayout
from olivine.datastores.manifest import Which
from olivine.datastores.manifest import fetch as fetch_export
from olivine.errors import UserInputError
from olivine.hosts.base import Host, host_of
from olivine.hosts.submission import DEFAULT_HOST, Submission, SubmitPlan, resume, submit
from olivine.jobs.catalog import AssetSummary, AssetVersion, assets_list, assets_show
from olivine.jobs.profiles import Profiles
from olivine.jobs.records import JobRecord, JobStatus
from olivine.jobs.remote import remote_logs, remote_status
from olivine.jobs.store import JobStore

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
    "monitor",
    "remote_logs",
    "remote_status",
    "resume",
    "status",
    "submit",
    "wait",
]


def status(job_id: str, *, store: JobStore | None = None) -> JobRecord:
    """The job as its host sees it now (a dead worker shows as FAILED). Writes nothing."""
    store = store or JobStore.default()
    job = store.get(job_id)
    return host_of(job, store).observe(job)


def list_jobs(
    *,
    states: tuple[JobStatus, ...] | None = None,
    workflow_id: str | None = None,
    limit: int | None = None,
    store: JobStore | None = None,
) -> list[JobRecord]:
    """Jobs, newest first, as their hosts see them now. Writes nothing.

    Unfinished jobs are observed one host at a time (:meth:`Host.observe_all`): a host behind a
    service is asked once for all its jobs, not once per job.
    """
    store = store or JobStore.default()
    jobs = store.list(workflow_id=workflow_id, limit=None if states else limit)
    observed = {job.job_id: job for job in jobs}
    for host, group in _by_host([j for j in jobs if not j.state.is_terminal()], store):
        observed.update((j.job_id, j) for j in host.observe_all(group))
    result = [observed[j.job_id] for j in jobs if not states or observed[j.job_id].state in states]
    return result[:limit] if limit is not None else result


def monitor(job_id: str | None = None, *, store: JobStore | None = None) -> list[JobRecord]:
    """The monitor, as an explicit step: record what the hosts observe for one job (or every unfinished
    one) and seal the exports of jobs whose worker died. Idempotent; returns the monitored records."""
    store = store or JobStore.default()
    jobs = [store.get(job_id)] if job_id else store.list(states=(JobStatus.PENDING, JobStatus.RUNNING))
    return [host_of(job, store).monitor(job) for job in jobs]


def _by_host(jobs: list[JobRecord], store: JobStore) -> list[tuple[Host, list[JobRecord]]]:
    groups: dict[str, list[JobRecord]] = {}
    for job in jobs:
        key = json.dumps([job.host_name, job.host_config], sort_keys=True)
        groups.setdefault(key, []).append(job)
    return [(host_of(group[0], store), group) for group in groups.values()]


def logs(job_id: str, *, follow: bool = False, store: JobStore | None = None) -> Iterator[str]:
    """The job's log lines; with ``follow``, until the job ends. The job's host decides where they come
    from (a local file, a cluster's job logs, or the log the worker exported to the datastore).

    Raises:
        JobNotFoundError: no such job.
    """
    store = store or JobStore.default()
    job = store.get(job_id)
    return host_of(job, store).logs(job.job_id, follow=follow)


def cancel(job_id: str, *, timeout_s: float | None = None, store: JobStore | None = None) -> JobRecord:
    """Cancel the job (graceful stop, forced after ``timeout_s`` or the host's grace period)."""
    store = store or JobStore.default()
    job = store.get(job_id)
    return host_of(job, store).cancel(job.job_id, timeout_s=timeout_s)


def wait(job_id: str, *, timeout_s: float | None = None, store: JobStore | None = None) -> JobRecord:
    """Block until the job ends (or ``timeout_s`` passes); return its record (monitored)."""
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
    if "/" not in job_or_url and which == "output":
        # Only a SUCCEEDED job has an output; say so rather than "fetched 0 files".
        job = status(job_or_url, store=store)  # as its host sees it now, not a stale record
        if job.state is not JobStatus.SUCCEEDED:
            raise UserInputError(
                f"job {job.job_id} is {job.state.value}: it has no output to fetch "
                "(--cache or --all fetch what it exported)"
            )
        if job.damage is not None:  # found by olivine doctor; it clears the mark if the files return
            raise UserInputError(f"job {job.job_id} SUCCEEDED, but its {job.damage}")
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
    from olivine.jobs.exports import open_export_url, open_job_export

    profiles = profiles or Profiles()
    if "/" in job_or_url:
        options = profiles.datastore(datastore).options if datastore else {}
        return open_export_url(job_or_url, options)
    return open_job_export((store or JobStore.default()).get(job_or_url), profiles)
