"""Opening a job's datastore and its exports from a job spec or an export URL; seeding a resumed cache."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.datastores import seeding
from olivine.datastores.base import Datastore
from olivine.datastores.layout import ExportLayout
from olivine.datastores.local import is_local_url, local_path_is_absolute
from olivine.errors import DatastoreError, HostError, JobNotFoundError
from olivine.jobs.records import JobRecord, JobSpec

if TYPE_CHECKING:
    from olivine.jobs.profiles import Profiles

logger = logging.getLogger(__name__)


def spec_options(spec: JobSpec) -> dict[str, Any]:
    """The datastore options of a job: the spec's public ones plus, when it names a hosts-file profile,
    that profile's options with their credentials, from the hosts file of the machine the worker runs
    on (read here, never copied into the job folder)."""
    options = dict(spec.datastore_options)
    if spec.datastore_profile:
        from olivine.jobs.profiles import Profiles

        options.update(Profiles().datastore(spec.datastore_profile).options)
    return options


def open_job_export(job: JobRecord, profiles: Profiles | None = None) -> ExportLayout:
    """The export of a job in the store, from its record alone (no job folder, no spec).

    Credentials come from ``profiles`` (default: the user's hosts file) when the job's datastore is a
    hosts-file datastore.

    Raises:
        JobNotFoundError: the job never got an export.
    """
    if job.export_root is None:
        raise JobNotFoundError(f"job {job.job_id} has no export (its submission did not get that far)")
    options = dict(job.datastore_options)
    name = job.datastore_name
    if name:
        from olivine.jobs.profiles import Profiles

        profiles = profiles or Profiles()
        if profiles.has_datastore(name):
            options.update(profiles.datastore(name).options)
    return open_export_url(job.export_root, options)


def open_spec_export(spec: JobSpec) -> tuple[Datastore, ExportLayout, dict[str, Any]]:
    """The datastore, export layout and options of a job spec."""
    options = spec_options(spec)
    # The submitter made local paths absolute; the worker runs elsewhere (its job folder) and must not
    # resolve a relative one against it: that would export to a second, different folder.
    if is_local_url(spec.datastore_url) and not local_path_is_absolute(spec.datastore_url):
        raise HostError(f"job {spec.job_id}: its datastore URL {spec.datastore_url} is relative; resubmit it")
    datastore = Datastore.from_url(spec.datastore_url, options)
    return datastore, ExportLayout.from_folder(datastore, spec.export_timestamp, spec.workflow_id), options


def open_export_url(url: str, options: dict[str, Any] | None = None) -> ExportLayout:
    """The export at ``<datastore url>/<yyyy-mm-dd-hh-mm-ss>/<workflow_id>``.

    Raises:
        DatastoreError: the URL does not end in a timestamp folder and a workflow id.
    """
    base, sep, rest = url.rstrip("/").rpartition("/")
    base, sep2, folder = base.rpartition("/")
    if not (sep and sep2 and rest and folder):
        raise DatastoreError(
            f"'{url}' is not an export URL (<datastore>/<yyyy-mm-dd-hh-mm-ss>/<workflow_id>)"
        )
    if base.endswith("://"):  # an export at the root of a datastore: "file:///<ts>/<id>"
        base += "/"
    datastore = Datastore.from_url(base or "/", options)
    return ExportLayout.from_folder(datastore, folder, rest)


def seed_cache(source: ExportLayout, cache_root: Path, scratch: Path) -> int:
    """Download the ``cache/`` of an earlier export into ``cache_root`` (the workflow's cache folder),
    treating it as untrusted (:mod:`olivine.datastores.seeding`): corrupt or ill-named entries are
    dropped (cache misses), never followed, never fatal. Returns the number of files seeded."""
    return seeding.seed_cache(source, cache_root, scratch).files


def latest_cache_export(datastore: Datastore, workflow_id: str) -> ExportLayout | None:
    """The newest export of ``workflow_id`` that can seed a new run (see
    :func:`olivine.datastores.seeding.latest_seed`: not empty, readable, not dated in the future)."""
    return seeding.latest_seed(datastore, workflow_id)
