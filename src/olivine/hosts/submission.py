"""Submitting a workflow to a host (and resubmitting a job to resume it).

:func:`submit` picks the host and the datastore, persists a ``PENDING`` record first (idempotent per
submission id), claims the export folder, builds the bundle in the job folder, writes ``job.json`` and
hands the job to the host.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olivine.config.systems import LocalWorkerConfig, SystemConfig
from olivine.datastores.base import Datastore
from olivine.datastores.layout import claim_export, timestamp_folder
from olivine.datastores.paths import default_datastore_dir
from olivine.datastores.redact import scrub_url
from olivine.engine.resolve import ResolvedWorkflow, load_workflow
from olivine.errors import JobNotFoundError, ReferenceNotFoundError
from olivine.hosts import bundle as bundles
from olivine.hosts.base import Host, host_for, host_of
from olivine.hosts.jobs import JobRecord, JobSpec, classify, new_job_id, utc_now
from olivine.hosts.profiles import Profiles
from olivine.hosts.store import JobStore

#: The host used when neither the call, the workflow (``workflow_host``) nor the hosts file names one.
DEFAULT_HOST = "local-worker"


@dataclass(frozen=True)
class DatastoreChoice:
    """Where a job exports. ``options`` hold no credentials; ``profile`` names the hosts-file entry that
    has them."""

    name: str | None
    url: str
    options: dict[str, Any]
    profile: str | None = None


@dataclass(frozen=True)
class SubmitPlan:
    """What a submission does; all of it is known before anything is written (``--dry-run``)."""

    workflow_id: str
    host: str
    detached: bool
    datastore_url: str
    export_root: str
    resume_from: str | None
    entries: tuple[bundles.BundleEntry, ...]

    def describe(self) -> str:
        lines = [
            f"workflow '{self.workflow_id}' -> {self.host}",
            f"export to {self.export_root}",
        ]
        if self.resume_from:
            lines.append(f"resume from the cache of {self.resume_from}")
        return "\n".join([*lines, bundles.describe(self.entries, self.workflow_id)])


@dataclass(frozen=True)
class Submission:
    """The result of :func:`submit`: the job (None for a dry run) and whether this call created it
    (False: the submission id already had this job, and nothing was launched again)."""

    plan: SubmitPlan
    job: JobRecord | None = None
    created: bool = False


def submit(
    workflow: ResolvedWorkflow | str | Path,
    *,
    host_name: str | None = None,
    datastore: str | None = None,
    resume_from: str | None = None,
    submission_id: str | None = None,
    dry_run: bool = False,
    store: JobStore | None = None,
    profiles: Profiles | None = None,
) -> Submission:
    """Submit a workflow to a host.

    Args:
        workflow: a resolved workflow or a config file path.
        host_name: a system in the workflow's ``systems`` or a host in the hosts file; default the
            workflow's ``workflow_host``, then the hosts file's ``default_host``, then a LocalWorker.
        datastore: a datastore name (the workflow's ``datastores``, then the hosts file) or a URL;
            default the host's ``datastores``, then ``default_datastore``, then the local default.
        resume_from: a job id or export URL whose exported cache seeds this run.
        submission_id: idempotency key: submitting again with it returns the same job.
        dry_run: only plan (hash and size the files); write and launch nothing.
        store: the job store (default: the user's).
        profiles: the hosts file (default: the user's).
    """
    wf = workflow if isinstance(workflow, ResolvedWorkflow) else load_workflow(workflow)
    store = store or JobStore.default()
    profiles = profiles or Profiles()
    name = host_name or wf.config.workflow_host or profiles.data.default_host or DEFAULT_HOST
    host = host_for(name, _host_config(wf, name, profiles), store)
    choice = _datastore(
        wf, datastore or host.default_datastore() or profiles.data.default_datastore, profiles
    )
    return _submit(wf, host, choice, _resume_source(resume_from, store), submission_id, dry_run, profiles)


def resume(
    job_id: str,
    *,
    host_name: str | None = None,
    datastore: str | None = None,
    submission_id: str | None = None,
    store: JobStore | None = None,
    profiles: Profiles | None = None,
) -> Submission:
    """Run a job's workflow again (from its bundle) as a new job seeded with the cache it exported."""
    store = store or JobStore.default()
    profiles = profiles or Profiles()
    old = store.get(job_id)
    if old.export_root is None or old.job_dir is None:
        raise JobNotFoundError(f"job {old.job_id} never exported anything to resume from")
    wf = bundles.unpack(Path(old.job_dir) / "bundle")
    if host_name is None:
        host = host_of(old, store)
    else:
        host = host_for(host_name, _host_config(wf, host_name, profiles), store)
    choice = _datastore(wf, datastore or old.datastore_name or old.datastore_url, profiles)
    return _submit(wf, host, choice, old.export_root, submission_id, False, profiles)


def _submit(
    wf: ResolvedWorkflow,
    host: Host,
    choice: DatastoreChoice,
    resume_from: str | None,
    submission_id: str | None,
    dry_run: bool,
    profiles: Profiles,
) -> Submission:
    now = utc_now()
    planned = f"{scrub_url(choice.url).rstrip('/')}/{timestamp_folder(now)}/{wf.workflow_id}"
    if dry_run:
        return Submission(_plan(wf, host, choice, planned, resume_from, bundles.plan(wf)))
    store = host.store
    job_id = new_job_id()
    job_dir = store.job_dir(job_id)
    record, created = store.create(
        JobRecord(
            job_id=job_id,
            submission_id=submission_id or f"sub-{uuid.uuid4().hex}",
            workflow_id=wf.workflow_id,
            host_name=host.name,
            host_type=host.type_name,
            host_config=host.config.model_dump(mode="json"),
            created_at=now,
            datastore_name=choice.name,
            datastore_url=scrub_url(choice.url),
            resume_from=resume_from,
            log_path=str(job_dir / "job.log"),
            job_dir=str(job_dir),
            message="preparing the bundle",
        )
    )
    if not created:
        return Submission(
            _plan(wf, host, choice, record.export_root or planned, resume_from, ()),
            host_of(record, store).status(record.job_id),
            created=False,
        )
    try:
        options = dict(choice.options)
        if choice.profile:
            options.update(profiles.datastore(choice.profile).options)
        layout = claim_export(Datastore.from_url(choice.url, options), wf.workflow_id, now, claim_id=job_id)
        built = bundles.build(wf, job_dir / "bundle")
        spec = JobSpec(
            job_id=job_id,
            workflow_id=wf.workflow_id,
            bundle="bundle",
            datastore_url=choice.url,
            datastore_options=choice.options,
            datastore_profile=choice.profile,
            hosts_file=str(profiles.path) if choice.profile else None,
            export_timestamp=layout.folder,
            resume_from=resume_from,
            store_path=str(store.path),
        )
        _write_private(job_dir / "job.json", spec.to_json())
        record = store.update(job_id, export_root=layout.url, message="submitted")
    except BaseException as exc:
        # Whatever stopped the submission (Ctrl-C included), the record must not stay PENDING forever.
        state, kind, message = classify(exc)
        store.update(job_id, strict=False, state=state, error_kind=kind, message=message)
        raise
    job = host.submit(built, record, spec)
    return Submission(_plan(wf, host, choice, layout.url, resume_from, built.entries), job, created=True)


def _plan(
    wf: ResolvedWorkflow,
    host: Host,
    choice: DatastoreChoice,
    export_root: str,
    resume_from: str | None,
    entries: tuple[bundles.BundleEntry, ...],
) -> SubmitPlan:
    return SubmitPlan(
        wf.workflow_id,
        host.describe(),
        host.detached,
        scrub_url(choice.url),
        export_root,
        resume_from,
        entries,
    )


def _host_config(wf: ResolvedWorkflow, name: str, profiles: Profiles) -> SystemConfig:
    if name in wf.config.systems:
        return wf.config.systems[name]
    if profiles.has_host(name):
        return profiles.host(name)
    if name == DEFAULT_HOST:
        return LocalWorkerConfig()
    defined = sorted(set(wf.config.systems) | set(profiles.data.hosts))
    raise ReferenceNotFoundError(
        f"host '{name}' is neither a system of the workflow nor a host in {profiles.path} "
        f"(defined: {', '.join(defined) or 'none'})"
    )


def _datastore(wf: ResolvedWorkflow, name: str | None, profiles: Profiles) -> DatastoreChoice:
    if name is None:
        return DatastoreChoice(None, default_datastore_dir().as_uri(), {})
    if name in wf.config.datastores:
        config = wf.config.datastores[name]
        return DatastoreChoice(name, config.url, config.options)
    if profiles.has_datastore(name):
        profile = profiles.datastore(name)
        return DatastoreChoice(name, profile.url, profile.public_options(), profile=name)
    if "://" in name:
        return DatastoreChoice(name, name, {})
    if name.startswith(("/", "~", ".")):
        # A plain path is made absolute here: the worker runs in its job folder, not in this cwd.
        return DatastoreChoice(name, Path(name).expanduser().resolve().as_uri(), {})
    defined = sorted(set(wf.config.datastores) | set(profiles.data.datastores))
    raise ReferenceNotFoundError(
        f"datastore '{name}' is neither in the workflow's datastores nor in {profiles.path} "
        f"(defined: {', '.join(defined) or 'none'}); a URL works too"
    )


def _resume_source(resume_from: str | None, store: JobStore) -> str | None:
    """A job id becomes that job's export root; anything else is taken as an export URL."""
    if resume_from is None or "/" in resume_from:
        return resume_from
    old = store.get(resume_from)
    if old.export_root is None:
        raise JobNotFoundError(f"job {old.job_id} has no export to resume from")
    return old.export_root


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
