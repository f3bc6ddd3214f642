"""Seeding a workflow cache from an earlier export, treating the export as untrusted input.

A datastore is shared: the export that seeds a run may have been written by another user, a tool, or a
machine that died half-way, and its files may have rotted since. So:

* a manifest or index that cannot be read seeds nothing (with one warning), and the run goes on;
* an entry whose path is not a plain relative path under ``cache/`` is skipped, never followed;
* files are verified against the recorded sha256 while they download; a cache *unit* (one
  ``runs/<key>/`` folder, one ``evaluations/<key>.json``, one ``failures/<key>.json``) with a missing or
  corrupt file is dropped as a whole, so the run is a cache miss and is redone, never half-seeded;
* an export folder dated in the future (a clock that was wrong, or a folder planted to stay "newest"
  forever) is not a seed.

The engine's cache then checks each run record it reads (:meth:`olivine.engine.cache.WorkflowCache.load_run`
refuses model paths outside the run folder).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from olivine.datastores.base import Datastore
from olivine.datastores.files import FileEntry, clean_rel
from olivine.datastores.layout import ExportLayout, list_exports
from olivine.datastores.manifest import export_entries
from olivine.digests import RecordedDigest, read_digests, write_digests
from olivine.errors import DatastoreError

logger = logging.getLogger(__name__)

#: How far in the future an export folder may be dated and still count (claims move up to a couple of
#: minutes ahead on busy seconds, and clocks differ a little between machines).
FUTURE_SLACK = timedelta(minutes=10)
_UNIT_FOLDERS = {"runs": 2, "evaluations": 2, "failures": 2}


@dataclass
class SeedReport:
    """What :func:`seed_cache` did: files seeded, units dropped (with why), entries refused."""

    files: int = 0
    dropped_units: dict[str, str] = field(default_factory=dict)
    refused_paths: list[str] = field(default_factory=list)
    unreadable: str | None = None

    @property
    def clean(self) -> bool:
        return not (self.dropped_units or self.refused_paths or self.unreadable)


def unit_of(rel: str) -> str | None:
    """The cache unit a path inside a workflow cache folder belongs to (``runs/<key>``,
    ``evaluations/<file>``...), or None for a path that is no part of a workflow cache."""
    parts = rel.split("/")
    depth = _UNIT_FOLDERS.get(parts[0]) if parts else None
    if depth is None or len(parts) < depth:
        return None
    return "/".join(parts[:depth])


def _plan(entries: list[FileEntry], report: SeedReport) -> dict[str, list[tuple[str, FileEntry]]]:
    """Group the export's cache entries by unit, refusing paths that are not plain relative paths."""
    units: dict[str, list[tuple[str, FileEntry]]] = defaultdict(list)
    for entry in entries:
        try:
            rel = clean_rel(entry.path)
        except DatastoreError:
            report.refused_paths.append(entry.path)
            continue
        if not rel.startswith("cache/") or rel != entry.path.strip("/"):
            report.refused_paths.append(entry.path)
            continue
        inner = rel[len("cache/") :]  # the export's cache/ is the workflow's cache folder
        unit = unit_of(inner)
        if unit is None:
            report.refused_paths.append(entry.path)
            continue
        units[unit].append((inner, entry))
    return units


def seed_cache(source: ExportLayout, cache_root: Path, scratch: Path) -> SeedReport:
    """Download the verified, well-formed units of ``source``'s ``cache/`` into ``cache_root``.

    Args:
        source: the export to seed from.
        cache_root: the workflow's cache folder (``<cache_dir>/<workflow_id>``; the export's ``cache/``
            maps onto it).
        scratch: a folder for downloads; removed at the end.

    Returns:
        What was seeded and what was dropped. Problems are logged once, as one warning.
    """
    report = SeedReport()
    datastore = source.datastore
    try:
        entries = export_entries(datastore, source, "cache")
    except (DatastoreError, ValueError, KeyError, TypeError) as exc:
        report.unreadable = f"{type(exc).__name__}: {exc}"
        logger.warning("not seeding from %s: its manifest/index is unreadable (%s)", source.url, exc)
        return report
    units = _plan(entries, report)
    records = read_digests(cache_root) if cache_root.is_dir() else {}
    try:
        for unit, files in sorted(units.items()):
            problem = _download_unit(datastore, source, files, scratch)
            if problem is not None:
                report.dropped_units[unit] = problem
                continue
            for inner, entry in files:
                target = cache_root / inner
                target.parent.mkdir(parents=True, exist_ok=True)
                _move(scratch / inner, target)
                records[inner] = RecordedDigest.of(target.stat(), entry.sha256)
                report.files += 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if records:
        try:
            write_digests(cache_root, records)
        except OSError as exc:  # only an optimisation: without records the export hashes the files
            logger.warning("could not record the digests of the seeded cache: %s", exc)
    if not report.clean:
        dropped = ", ".join(f"{u} ({why})" for u, why in sorted(report.dropped_units.items())[:5])
        logger.warning(
            "seeding from %s: %d cache entr(ies) dropped as corrupt or missing (they will be rebuilt)%s%s",
            source.url,
            len(report.dropped_units),
            f": {dropped}" if dropped else "",
            f"; {len(report.refused_paths)} path(s) refused outside cache/" if report.refused_paths else "",
        )
    return report


def _download_unit(
    datastore: Datastore, source: ExportLayout, files: list[tuple[str, FileEntry]], scratch: Path
) -> str | None:
    """Download one unit's files into ``scratch``; why it cannot be used, or None."""
    for inner, entry in files:
        dest = scratch / inner
        try:
            datastore.get_file(source.path(entry.path), dest, expected_sha256=entry.sha256)
        except DatastoreError as exc:
            return str(exc).split(": ")[-1][:120] or type(exc).__name__
        if dest.stat().st_size != entry.size:
            return f"{inner}: size differs from the manifest"
    return None


def _move(src: Path, dst: Path) -> None:
    """Move a file, copying when ``dst`` is on another filesystem."""
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copy2(src, dst)
        src.unlink()


def latest_seed(datastore: Datastore, workflow_id: str, now: datetime | None = None) -> ExportLayout | None:
    """The newest export of ``workflow_id`` that can seed a new run, or None.

    Passed over: exports dated in the future (beyond :data:`FUTURE_SLACK`), exports whose cache is
    empty (nothing to seed), and exports whose manifest or index cannot be read (one warning each).
    """
    limit = (now or datetime.now(timezone.utc)) + FUTURE_SLACK
    for layout in reversed(list_exports(datastore, workflow_id)):
        if layout.timestamp > limit:
            logger.warning("ignoring export %s: it is dated in the future", layout.url)
            continue
        try:
            if export_entries(datastore, layout, "cache"):
                return layout
        except (DatastoreError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring export %s as a seed: %s", layout.url, exc)
    return None
