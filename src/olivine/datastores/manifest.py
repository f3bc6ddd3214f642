"""``manifest.json``: what an export holds, checked on the way back.

The manifest lists every exported file (path relative to the export root, size, sha256) and records the
resolved config without credentials, library versions, the final status and metrics. It is written
last, so its presence means the export is complete. :func:`fetch` downloads and verifies files;
:func:`verify` checks a fetched folder or the datastore copies against it. For an export that has no
manifest yet (still running, or the worker died) both fall back to the export index, which has the same
per-file facts.
"""

from __future__ import annotations

import functools
import json
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from olivine.datastores.base import Datastore
from olivine.datastores.files import FileEntry, clean_rel, hash_file
from olivine.datastores.index import read_index
from olivine.datastores.layout import ExportLayout
from olivine.datastores.redact import redact_config
from olivine.errors import DatastoreError

MANIFEST_FORMAT = "olivine-export/1"
Which = Literal["output", "cache", "all"]
_PREFIXES: dict[str, tuple[str, ...]] = {"output": ("output/",), "cache": ("cache/",), "all": ("",)}
# Distributions whose versions decide whether an artifact can be reproduced; read from metadata, so
# none of them is imported.
_VERSIONED = (
    "olivine",
    "fsspec",
    "pydantic",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "torch",
    "transformers",
    "adlfs",
    "s3fs",
)


def library_versions() -> dict[str, str]:
    """Python and the installed versions of the libraries that matter for an export."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> dict[str, str]:
    # Reading package metadata parses ~10 files (~25 ms); installed versions do not change while we run.
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_manifest(
    layout: ExportLayout,
    files: Iterable[FileEntry],
    *,
    config: Mapping[str, Any] | None = None,
    status: Any = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of an export as a JSON-ready dict.

    Args:
        layout: the export.
        files: every exported file, paths relative to the export root.
        config: the resolved run config; credentials are removed (see
            :func:`olivine.redaction.redact_config`).
        status: the final status (a state name or a status dict).
        metrics: final metrics (e.g. of the best model).
        extra: anything else to record, under ``"extra"`` (also redacted).
    """
    entries = sorted(files, key=lambda e: e.path)
    return {
        "format": MANIFEST_FORMAT,
        "workflow_id": layout.workflow_id,
        "timestamp": layout.folder,
        "root": layout.root,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": redact_config(status),
        "metrics": redact_config(dict(metrics or {})),
        "config": redact_config(dict(config)) if config is not None else None,
        "versions": library_versions(),
        "totals": {"files": len(entries), "bytes": sum(e.size for e in entries)},
        "files": [e.to_json() for e in entries],
        "extra": redact_config(dict(extra or {})),
    }


def read_manifest(datastore: Datastore, layout: ExportLayout) -> dict[str, Any] | None:
    """The export's manifest, or None if it was not written (yet)."""
    data = datastore.read_bytes_if_exists(layout.manifest)
    if data is None:
        return None
    try:
        manifest: dict[str, Any] = json.loads(data)
    except ValueError as exc:
        raise DatastoreError(f"corrupt manifest {datastore.url_for(layout.manifest)}: {exc}") from exc
    return manifest


def export_entries(datastore: Datastore, layout: ExportLayout, which: Which = "all") -> list[FileEntry]:
    """The files of ``which`` part of an export: from the manifest, or from the index without one."""
    if which not in _PREFIXES:
        raise ValueError(f"which must be one of {', '.join(_PREFIXES)}, got {which!r}")
    manifest = read_manifest(datastore, layout)
    if manifest is not None:
        entries = [FileEntry.from_json(item) for item in manifest["files"]]
    else:
        entries = list(read_index(datastore, layout).values())
    return sorted((e for e in entries if e.path.startswith(_PREFIXES[which])), key=lambda e: e.path)


@dataclass(frozen=True)
class Problem:
    """One way a copy differs from the manifest. ``kind``: missing, size, sha256 or unexpected."""

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


def verify(
    datastore: Datastore, layout: ExportLayout, local_dir: Path | None = None, which: Which = "all"
) -> list[Problem]:
    """Compare files with the manifest (index if no manifest); an empty list means all is well.

    Args:
        datastore: where the export is.
        layout: the export.
        local_dir: a fetched copy (files at ``local_dir/<path>``); None checks the datastore copies,
            including files that are on the datastore but not in the manifest.
        which: ``output``, ``cache`` or ``all``.
    """
    entries = export_entries(datastore, layout, which)
    if local_dir is not None:
        return [p for e in entries if (p := _check_local(Path(local_dir), e)) is not None]
    stored = {rel[len(layout.root) + 1 :]: size for rel, size in datastore.walk_files(layout.root)}
    problems = []
    for entry in entries:
        size = stored.pop(entry.path, None)
        if size is None:
            problems.append(Problem(entry.path, "missing", "not on the datastore"))
        elif size != entry.size:
            problems.append(Problem(entry.path, "size", f"{size} bytes, manifest says {entry.size}"))
        elif (digest := datastore.hash_of(layout.path(entry.path)).sha256) != entry.sha256:
            problems.append(Problem(entry.path, "sha256", f"{digest}, manifest says {entry.sha256}"))
    prefixes = _PREFIXES[which] if which != "all" else ("cache/", "output/", "logs/")
    for path in sorted(p for p in stored if p.startswith(prefixes)):
        problems.append(Problem(path, "unexpected", "on the datastore but not in the manifest"))
    return problems


def _check_local(local_dir: Path, entry: FileEntry) -> Problem | None:
    path = local_dir / clean_rel(entry.path)
    if not path.is_file():
        return Problem(entry.path, "missing", f"no file {path}")
    size, digest = hash_file(path)
    if size != entry.size:
        return Problem(entry.path, "size", f"{size} bytes, manifest says {entry.size}")
    if digest != entry.sha256:
        return Problem(entry.path, "sha256", f"{digest}, manifest says {entry.sha256}")
    return None


def fetch(datastore: Datastore, layout: ExportLayout, which: Which, to: Path) -> list[Path]:
    """Download ``which`` part of an export to ``to/<path relative to the export root>``, verified.

    Each file is written under a temporary name and moved into place only after its sha256 matched, so
    no final name ever holds a partial or wrong file. Files already present with the right sha256 are
    not downloaded again (a fetch can be resumed).

    Returns:
        The local paths, in manifest order.

    Raises:
        IntegrityError: a downloaded file does not match the manifest.
        DatastoreError: the export has no manifest and no index, or a download failed.
    """
    entries = export_entries(datastore, layout, which)
    if not entries and not datastore.exists(layout.root):
        raise DatastoreError(f"no export at {layout.url}")
    if not entries:
        sealed = datastore.exists(layout.manifest)
        raise DatastoreError(
            f"the export {layout.url} has no {which} files"
            + ("" if sealed else " (it has no manifest: its job has not finished, or ended without output)")
        )
    paths = []
    for entry in entries:
        dest = Path(to) / clean_rel(entry.path)
        if not (dest.is_file() and hash_file(dest) == (entry.size, entry.sha256)):
            datastore.get_file(layout.path(entry.path), dest, expected_sha256=entry.sha256)
        paths.append(dest)
    return paths
