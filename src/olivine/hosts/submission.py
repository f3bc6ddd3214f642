"""Submitting a workflow to a host (and resubmitting a job to resume it).

:func:`submit` picks the host and the datastore, persists a ``PENDING`` record first (idempotent per
submission id, with the submitting process's identity for the monitor), finds the export that seeds the
cache (the workflow's newest export on that datastore, unless ``fresh``), claims a new export folder,
builds the bundle in the job folder, writes ``job.json`` and hands the job to the host.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from olivine.config.systems import LocalWorkerConfig, SystemConfig
from olivine.datastores.base import Datastore
from olivine.datastores.layout import claim_export, timestamp_folder
from olivine.datastores.redact import scrub_url
from olivine.engine.resolve import ResolvedWorkflow, load_workflow
from olivine.errors import JobNotFoundError, OlivineError, ReferenceNotFoundError, UserInputError
from olivine.hosts.base import Host, host_for, host_of
from olivine.hosts.plan import Submission, SubmitPlan, plan_of
from olivine.jobs import bundle as bundles
from olivine.jobs.choice import DatastoreChoice, choose_datastore
from olivine.jobs.doctor import write_record
from olivine.jobs.exports import latest_cache_export
from olivine.jobs.folder import JobFolder
from olivine.jobs.profiles import Profiles
from olivine.jobs.records import JobRecord, JobSpec, classify, new_job_id, utc_now
from olivine.jobs.store import JobStore
from olivine.jobs.worker import write_spec

logger = logging.getLogger(__name__)

#: The host used when neither the call, the workflow (``workflow_host``) nor the hosts file names one.
DEFAULT_HOST = "local-worker"

__all__ = ["DEFAULT_HOST", "Submission", "SubmitPlan", "resume", "submit"]


def submit(
    workflow: ResolvedWorkflow | str | Path,
    *,
    host_name: str | None = None,
    datastore: str | None = None,
    resume_from: str | None = None,
    fresh: bool = False,
    submission_id: str | None = None,
    dry_run: bool = False,
    store: JobStore | None = None,
    profiles: Profiles | None = None,
) -> Submission:
    """Submit a workflow to a host.

    Unless ``fresh`` (or an explicit ``resume_from``), the run is seeded with the cache of the newest
    export of the same ``workflow_id`` on the chosen datastore, so passes that already finished there are
    cache hits, not re-runs. The new run still gets its own ``<timestamp>`` folder; earlier exports are
    only read.

    Args:
        workflow: a resolved workflow or a config file path.
        host_name: a system in the workflow's ``systems`` or a host in the hosts file; default the
            workflow's ``workflow_host``, then the hosts file's ``default_host``, then a LocalWorker.
        datastore: a datastore name (the workflow's ``datastores``, then the hosts file) or a URL;
            default the host's ``datastores``, then ``default_datastore``, then the local default.
        resume_from: a job id or export URL whose exported cache seeds this run.
        fresh: do not seed the cache from this workflow's latest export (finished passes run again).
        submission_id: idempotency key: submitting again with it returns the same job.
        dry_run: only plan (hash and size the files; list the datastore's exports); write and launch
            nothing.
        store: the job store (default: the user's).
        profiles: the hosts file (default: the user's).

    Raises:
        UserInputError: ``fresh`` together with ``resume_from``.
    """
    if fresh and resume_from:
        raise UserInputError("fresh and resume_from exclude each other: a fresh run is seeded with nothing")
    wf = workflow if isinstance(workflow, ResolvedWorkflow) else load_workflow(workflow)
    store = store or JobStore.default()
    profiles = profiles or Profiles()
    name = host_name or wf.config.workflow_host or profiles.data.default_host or DEFAULT_HOST
    host = host_for(name, _host_config(wf, name, profiles), store)
    store_name = datastore or host.default_datastore() or profiles.data.default_datastore
    choice = (store_name and host.resolve_datastore(store_name, profiles, wf, dry_run=dry_run)) or (
        choose_datastore(store_name, profiles, wf)
    )
    source = _resume_source(resume_from, store)
    # A workflow that wipes its cache at start would throw the seed away: do not download it.
    auto_seed = not fresh and source is None and not wf.config.engine.clean_cache
    return _submit(wf, host, choice, source, submission_id, dry_run, profiles, auto_seed=auto_seed)


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
    folder = JobFolder.of(old)
    if old.export_root is None or folder is None:
        raise JobNotFoundError(f"job {old.job_id} never exported anything to resume from")
    wf = bundles.unpack(folder.bundle)
    if host_name is None:
        host = host_of(old, store)
    else:
        host = host_for(host_name, _host_config(wf, host_name, profiles), store)
    choice = choose_datastore(datastore or old.datastore_name or old.datastore_url, profiles, wf)
    return _submit(wf, host, choice, old.export_root, submission_id, False, profiles, auto_seed=False)


def _submit(
    wf: ResolvedWorkflow,
    host: Host,
    choice: DatastoreChoice,
    resume_from: str | None,
    submission_id: str | None,
    dry_run: bool,
    profiles: Profiles,
    *,
    auto_seed: bool,
) -> Submission:
    now = utc_now()
    spread = host.search_spread(wf)
    planned = f"{scrub_url(choice.url).rstrip('/')}/{timestamp_folder(now)}/{wf.workflow_id}"
    if host.detached and Datastore.backend_for(choice.url).process_local:
        raise UserInputError(
            f"datastore {scrub_url(choice.url)} lives in this process's memory; {host.describe()} runs the "
            "job in another process, so its export would vanish: use a file:// (or cloud) datastore"
        )
    if dry_run:
        if auto_seed:
            try:
                resume_from = _seed_source(choice.open(profiles), wf.workflow_id)
            except OlivineError as exc:  # e.g. a datastore only the host's service can resolve
                logger.info("a dry run does not look for a cache to seed from here: %s", exc)
        preview = JobSpec(
            job_id="job-dry-run",
            workflow_id=wf.workflow_id,
            bundle=JobFolder.BUNDLE_REL,
            datastore_url=choice.url,
            datastore_options=choice.options,
            export_timestamp=timestamp_folder(now),
            resume_from=resume_from,
            search_spread=spread,
        )
        details = host.dry_run_details(preview)
        return Submission(plan_of(wf, host, choice, planned, resume_from, bundles.plan(wf), details))
    store = host.store
    host.check()
    job_id = new_job_id()
    folder = JobFolder(store.job_dir(job_id))
    record, created = store.create(_new_record(wf, host, choice, job_id, folder, submission_id, resume_from))
    if not created:
        return Submission(
            plan_of(wf, host, choice, record.export_root or planned, record.resume_from, ()),
            host_of(record, store).status(record.job_id),
            created=False,
        )
    try:
        datastore = choice.open(profiles)
        if auto_seed:
            # Looked up before claiming, so the new (empty) folder is never its own seed.
            resume_from = _seed_source(datastore, wf.workflow_id)
            if resume_from is not None:
                store.update(job_id, resume_from=resume_from)
        layout = claim_export(datastore, wf.workflow_id, now, claim_id=job_id)
        # User-private job folder (spec, bundle, log, cache, output): only its owner may read it.
        store.jobs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.root.mkdir(mode=0o700, exist_ok=True)
        built = bundles.build(wf, folder.bundle)
        spec = JobSpec(
            job_id=job_id,
            workflow_id=wf.workflow_id,
            bundle=JobFolder.BUNDLE_REL,
            datastore_url=choice.url,
            datastore_options=choice.options,
            datastore_profile=choice.profile,
            export_timestamp=layout.folder,
            resume_from=resume_from,
            search_spread=spread,
        )
        write_spec(folder.root, spec)
        record = store.update(job_id, export_root=layout.url, message="submitted")
        write_record(folder, record)  # lets `olivine doctor --fix` rebuild a damaged job store
    except BaseException as exc:
        # Whatever stopped the submission (Ctrl-C included), the record must not stay PENDING forever.
        state, kind, message = classify(exc)
        store.update(job_id, strict=False, state=state, error_kind=kind, message=message)
        raise
    job = host.submit(built, record, spec)
    return Submission(plan_of(wf, host, choice, layout.url, resume_from, built.entries), job, created=True)


def _new_record(
    wf: ResolvedWorkflow,
    host: Host,
    choice: DatastoreChoice,
    job_id: str,
    folder: JobFolder,
    submission_id: str | None,
    resume_from: str | None,
) -> JobRecord:
    """The PENDING record, with the host's own facts (e.g. the submitting process, for its monitor)."""
    return JobRecord(
        job_id=job_id,
        submission_id=submission_id or f"sub-{uuid.uuid4().hex}",
        workflow_id=wf.workflow_id,
        host_name=host.name,
        host_type=host.type_name(),
        host_config=host.config.model_dump(mode="json"),
        created_at=utc_now(),
        datastore_name=choice.name,
        datastore_url=scrub_url(choice.url),
        datastore_options=choice.options,
        resume_from=resume_from,
        host_info=host.new_host_info(),
        job_dir=str(folder.root),
        message="preparing the bundle",
    )


def _seed_source(datastore: Datastore, workflow_id: str) -> str | None:
    """The export URL whose cache seeds a resubmission of ``workflow_id``, or None for a first run."""
    layout = latest_cache_export(datastore, workflow_id)
    if layout is None:
        return None
    logger.info("seeding cache from %s", layout.url)
    return layout.url


def _host_config(wf: ResolvedWorkflow, name: str, profiles: Profiles) -> SystemConfig:
    if name in wf.config.systems:
        return wf.config.systems[name]
    if profiles.has_host(name):
        # A hosts-file host without a workspace of its own takes the workflow's (Olive's azureml_client).
        config: SystemConfig = profiles.host(name).with_azureml_client(wf.config.azureml_client)  # type: ignore[assignment]
        return config
    if name == DEFAULT_HOST:
        return LocalWorkerConfig()
    defined = sorted(set(wf.config.systems) | set(profiles.data.hosts))
    raise ReferenceNotFoundError(
        f"host '{name}' is neither a system of the workflow nor a host in {profiles.path} "
        f"(defined: {', '.join(defined) or 'none'})"
    )


def _resume_source(resume_from: str | None, store: JobStore) -> str | None:
    """A job id becomes that job's export root; anything else is taken as an export URL."""
    if resume_from is None or "/" in resume_from:
        return resume_from
    old = store.get(resume_from)
    if old.export_root is None:
        raise JobNotFoundError(f"job {old.job_id} has no export to resume from")
    return old.export_root
