"""Opening a job's datastore and its exports from a job spec or an export URL; seeding a resumed cache."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.datastores.base import Datastore
from olivine.datastores.files import clean_rel
from olivine.datastores.layout import ExportLayout, list_exports
from olivine.datastores.manifest import export_entries, fetch
from olivine.digests import RecordedDigest, read_digests, write_digests
from olivine.errors import DatastoreError, JobNotFoundError
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
    """Download the ``cache/`` of an earlier export into ``cache_root`` (the workflow's cache folder).

    Every file is verified against that export's manifest (or index) while it downloads, then moved into
    place (no second copy when ``scratch`` is on the same filesystem). The verified sha256 of each file
    is recorded beside the cache (:mod:`olivine.digests`), so exporting the seeded runs again does not
    hash them a second time. Returns the number of files.
    """
    entries = {clean_rel(e.path): e for e in export_entries(source.datastore, source, "cache")}
    files = fetch(source.datastore, source, "cache", scratch)
    fetched = scratch / "cache"
    records = read_digests(cache_root)  # a resumed job may have seeded before
    for path in files:
        rel = path.relative_to(fetched).as_posix()
        target = cache_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _move(path, target)
        entry = entries.get(f"cache/{rel}")
        if entry is not None:
            records[rel] = RecordedDigest.of(target.stat(), entry.sha256)
    if records:
        try:
            write_digests(cache_root, records)
        except OSError as exc:  # only an optimisation: without records the export hashes the files
            logger.warning("could not record the digests of the seeded cache: %s", exc)
    shutil.rmtree(scratch, ignore_errors=True)
    return len(files)


def _move(src: Path, dst: Path) -> None:
    """Move a file, copying when ``dst`` is on another filesystem."""
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copy2(src, dst)
        src.unlink()


def latest_cache_export(datastore: Datastore, workflow_id: str) -> ExportLayout | None:
    """The newest export of ``workflow_id`` whose ``cache/`` holds anything, or None.

    Exports whose cache is empty (a submission that failed before its worker ran, a job that has not
    finished a step yet) are passed over: seeding from them would seed nothing. Every export holds the
    whole cache of its run, seeded entries included, so the newest non-empty one is the best seed.
    """
    for layout in reversed(list_exports(datastore, workflow_id)):
        if export_entries(datastore, layout, "cache"):
            return layout
    return None
