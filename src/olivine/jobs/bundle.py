"""A workflow bundle: the resolved config plus a copy of every local file it reads.

Layout (a folder, or the same as an uncompressed tar)::

    bundle.json                  entries: config keys, name, kind, sha256, sizes
    workflow.json                the resolved config; every local path is ``files/<sha256>/<name>``
    files/<sha256>/<name>        a file (with its ONNX external-data files beside it) or a folder tree

Entries are content-addressed, so a file referenced twice is stored once, and :func:`unpack` checks each
against its hash. The worker loads ``workflow.json`` from the unpacked folder: every path then points
inside the bundle, never at the submitter's originals.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from olivine.datastores.base import Datastore
from olivine.engine.resolve import ResolvedWorkflow, load_workflow, replace_strings
from olivine.errors import HostError, OlivineError

BUNDLE_FORMAT = 1
_CHUNK = 1 << 20
_ENTRY_PATH = re.compile(r"^files/[0-9a-f]{64}/[^/\\]+$")


@dataclass(frozen=True)
class BundleEntry:
    """One local file or folder of the workflow, as stored in the bundle."""

    keys: tuple[str, ...]  # the config key paths that refer to it
    source: str  # the submitter's path (informational: nothing reads it after bundling)
    kind: Literal["file", "dir"]
    name: str
    sha256: str
    size_bytes: int
    file_count: int
    companions: tuple[str, ...] = ()  # files stored beside a file entry (ONNX external data)

    @property
    def path(self) -> str:
        return f"files/{self.sha256}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": self.path}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BundleEntry:
        values = {k: v for k, v in data.items() if k != "path"}
        entry = cls(
            **{**values, "keys": tuple(values["keys"]), "companions": tuple(values.get("companions", ()))}
        )
        if data.get("path", entry.path) != entry.path:
            raise ValueError(f"entry path {data['path']!r} does not match its hash and name")
        return entry


@dataclass(frozen=True)
class Bundle:
    """A built (or unpacked) bundle folder."""

    root: Path
    workflow_id: str
    entries: tuple[BundleEntry, ...]

    @property
    def size_bytes(self) -> int:
        return sum(e.size_bytes for e in self.entries)

    @classmethod
    def load(cls, root: str | Path) -> Bundle:
        root = Path(root)
        try:
            data = json.loads((root / "bundle.json").read_text(encoding="utf-8"))
            entries = tuple(BundleEntry.from_json(e) for e in data["entries"])
            return cls(root=root, workflow_id=str(data["workflow_id"]), entries=entries)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HostError(f"{root} is not a readable workflow bundle: {exc}") from exc

    def describe(self) -> str:
        return describe(self.entries, self.workflow_id)

    def to_tar(self, path: str | Path) -> Path:
        """Write the bundle as an uncompressed tar (model weights barely compress).

        The tar is reproducible (sorted members, no times, owners or modes of the submitter's files):
        the same bundle content always gives the same bytes, so an upload keyed by its sha256 happens once.
        """
        path = Path(path)
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in ("bundle.json", "workflow.json", "files"):
                tar.add(self.root / name, arcname=name, filter=_reproducible)
        return path


def _reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    info.pax_headers = {}
    return info


def plan(workflow: ResolvedWorkflow) -> tuple[BundleEntry, ...]:
    """The entries a bundle of ``workflow`` would hold, hashed but not copied (for ``--dry-run``)."""
    try:
        return tuple(_entry(keys, path, None) for path, keys in _sources(workflow).items())
    except OSError as exc:
        raise HostError(f"cannot read the workflow's files: {exc}") from exc


def build(workflow: ResolvedWorkflow, dest: str | Path) -> Bundle:
    """Copy ``workflow`` and its local files into the folder ``dest`` (created; must be empty)."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise HostError(f"bundle folder {root} is not empty")
    sources = _sources(workflow)
    try:
        entries = tuple(_entry(keys, path, root / "files") for path, keys in sources.items())
    except OSError as exc:
        raise HostError(f"cannot copy the workflow's files into the bundle {root}: {exc}") from exc
    mapping: dict[str, str] = {}
    for path, entry in zip(sources, entries, strict=True):
        # A folder may be written with a trailing slash; both spellings name the same entry.
        mapping[str(path)] = mapping[f"{path}{os.sep}"] = entry.path
    config = replace_strings(workflow.to_json(), mapping)
    # The bundle is what a host runs: it must not ask to be submitted again.
    config.pop("workflow_host", None)
    _write_json(root / "workflow.json", config)
    _write_json(
        root / "bundle.json",
        {
            "format": BUNDLE_FORMAT,
            "workflow_id": workflow.workflow_id,
            "config": "workflow.json",
            "total_bytes": sum(e.size_bytes for e in entries),
            "entries": [e.to_json() for e in entries],
        },
    )
    return Bundle(root=root, workflow_id=workflow.workflow_id, entries=entries)


def unpack(source: str | Path, dest: str | Path | None = None) -> ResolvedWorkflow:
    """Check a bundle (folder or tar) and load its workflow, every path inside the bundle.

    Args:
        source: a bundle folder or tar file.
        dest: where to put it; required for a tar. A folder is copied there, or used in place when
            ``dest`` is None or the folder itself.

    Raises:
        HostError: unsafe member (absolute path, ``..``, link, device), hash mismatch, or a config path
            that points outside the bundle.
    """
    source = Path(source)
    if source.is_file():
        if dest is None:
            raise HostError("unpacking a bundle tar needs a destination folder")
        root = Path(dest)
        _extract_tar(source, root)
    elif source.is_dir():
        root = source if dest is None or Path(dest).resolve() == source.resolve() else Path(dest)
        if root != source:
            _reject_links(source)
            shutil.copytree(source, root, dirs_exist_ok=True)
    else:
        raise HostError(f"bundle {source} does not exist")
    _reject_links(root)
    bundle = Bundle.load(root)
    for entry in bundle.entries:
        _verify(root, entry)
    workflow = load_workflow(root / "workflow.json")
    inside = root.resolve()
    for key, path in workflow.local_files():
        if not path.resolve().is_relative_to(inside):
            raise HostError(f"bundle config key '{key}' points outside the bundle: {path}")
    return workflow


def describe(entries: tuple[BundleEntry, ...], workflow_id: str) -> str:
    """Human-readable contents: one line per entry with its size, file count and hash prefix."""
    total = sum(e.size_bytes for e in entries)
    lines = [
        f"bundle of workflow '{workflow_id}': {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
        f"{format_size(total)}"
    ]
    for e in entries:
        files = f"{e.file_count} file{'s' if e.file_count != 1 else ''}"
        lines.append(
            f"  {', '.join(e.keys)}: {e.name} ({e.kind}, {files}, {format_size(e.size_bytes)}, "
            f"sha256 {e.sha256[:12]}) from {e.source}"
        )
    return "\n".join(lines)


def format_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _sources(workflow: ResolvedWorkflow) -> dict[Path, tuple[str, ...]]:
    """Each distinct local path and the config keys that refer to it, in config order."""
    out: dict[Path, tuple[str, ...]] = {}
    for key, path in workflow.local_files():
        out[path] = (*out.get(path, ()), key)
    return out


def _members(path: Path) -> tuple[Literal["file", "dir"], list[tuple[str, Path]], tuple[str, ...]]:
    """(kind, [(relative name, file)], companions) of a source path; symlinks are followed."""
    if path.is_dir():
        return "dir", list(_walk(path, path.name)), ()
    if not path.is_file():
        raise HostError(f"workflow file {path} disappeared before it could be bundled")
    companions: list[Path] = []
    if path.suffix.lower() == ".onnx":
        from olivine.model.handle import external_data_files

        companions = external_data_files(path)
    items = [(path.name, path)] + [(c.name, c) for c in companions]
    return "file", items, tuple(c.name for c in companions)


def _walk(folder: Path, prefix: str, seen: frozenset[Path] = frozenset()) -> Iterator[tuple[str, Path]]:
    real = folder.resolve()
    if real in seen:
        raise HostError(f"symlink loop under {folder}")
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        rel = f"{prefix}/{child.name}"
        if child.is_dir():
            yield from _walk(child, rel, seen | {real})
        elif child.is_file():
            yield rel, child


def _entry(keys: tuple[str, ...], path: Path, files_dir: Path | None) -> BundleEntry:
    kind, items, companions = _members(path)
    staging = files_dir / f".tmp-{uuid.uuid4().hex}" if files_dir is not None else None
    listing: list[tuple[str, str, int]] = []
    for rel, file in items:
        listing.append((rel, *_hash_copy(file, staging / rel if staging else None)))
    digest = listing[0][1] if kind == "file" and len(listing) == 1 else _tree_hash(listing)
    if staging is not None and files_dir is not None:
        final = files_dir / digest
        if final.exists():  # the same content was already bundled under another key
            shutil.rmtree(staging)
        else:
            if kind == "dir" and not items:
                (staging / path.name).mkdir(parents=True)
            os.replace(staging, final)
    return BundleEntry(
        keys=keys,
        source=str(path),
        kind=kind,
        name=path.name,
        sha256=digest,
        size_bytes=sum(size for _, _, size in listing),
        file_count=len(listing),
        companions=companions,
    )


def _hash_copy(src: Path, dst: Path | None) -> tuple[str, int]:
    """sha256 and size of ``src``, copying it to ``dst`` in the same read when given."""
    digest = hashlib.sha256()
    size = 0
    if dst is not None:
        dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin, dst.open("xb") if dst is not None else open(os.devnull, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            fout.write(chunk)
    return digest.hexdigest(), size


def _tree_hash(listing: list[tuple[str, str, int]]) -> str:
    # Names are relative to the entry's own folder name, so a renamed folder with the same content keeps
    # its hash only if the name matches too (the name is part of what the worker sees).
    lines = "".join(f"{rel}\0{sha}\0{size}\n" for rel, sha, size in sorted(listing))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _verify(root: Path, entry: BundleEntry) -> None:
    if not _ENTRY_PATH.match(entry.path) or entry.name in (".", ".."):
        raise HostError(f"bundle entry path '{entry.path}' is not allowed")
    base = root / "files" / entry.sha256
    target = base / entry.name
    if entry.kind == "dir":
        items = list(_walk(target, entry.name)) if target.is_dir() else []
    else:
        items = [(n, base / n) for n in (entry.name, *entry.companions)]
    missing = [rel for rel, p in items if not p.is_file()]
    if missing or (entry.kind == "dir" and not target.is_dir()):
        raise HostError(
            f"bundle entry {entry.path} is incomplete (missing: {', '.join(missing) or entry.name})"
        )
    listing = [(rel, *_hash_copy(p, None)) for rel, p in items]
    digest = listing[0][1] if entry.kind == "file" and len(listing) == 1 else _tree_hash(listing)
    if digest != entry.sha256:
        raise HostError(f"bundle entry {entry.path} does not match its sha256 (corrupt or modified)")


def _reject_links(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if os.path.islink(os.path.join(dirpath, name)):
                raise HostError(f"bundle contains a symlink: {os.path.join(dirpath, name)}")


def _extract_tar(path: Path, dest: Path) -> None:
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if (
                    member.name.startswith(("/", "\\"))
                    or ".." in parts
                    or not (member.isfile() or member.isdir())
                ):
                    raise HostError(f"bundle {path} has an unsafe member: {member.name!r}")
            dest.mkdir(parents=True, exist_ok=True)
            # The "data" filter also refuses absolute paths, links out of dest and special files.
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise HostError(f"cannot unpack bundle {path}: {exc}") from exc


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


#: Where bundles uploaded for workers elsewhere live on a datastore (content-addressed: one per sha256).
BUNDLES_DIR = "bundles"


def upload_bundle(datastore: Datastore, bundle: Bundle, scratch: Path) -> tuple[str, str]:
    """Upload ``bundle`` as a tar to ``bundles/<sha256>.tar`` once; return ``(path, sha256)``.

    The tar is written in ``scratch`` (a file path) and hashed; a bundle with the same content that is
    already on the datastore is not uploaded again.
    """
    tar = bundle.to_tar(scratch)
    digest, _ = _hash_copy(tar, None)
    rel = f"{BUNDLES_DIR}/{digest}.tar"
    if not datastore.exists(rel):
        datastore.put_file(tar, rel)
    return rel, digest


def download_bundle(datastore: Datastore, rel: str, sha256: str | None, dest: Path) -> Path:
    """Download the bundle tar at ``rel`` to ``dest``, checked against ``sha256``.

    Raises:
        HostError: the path is not a bundle path, or the download does not match.
    """
    wrong_hash = sha256 is not None and not rel.endswith(f"/{sha256}.tar")
    if wrong_hash or not re.fullmatch(rf"{BUNDLES_DIR}/[0-9a-f]{{64}}\.tar", rel):
        raise HostError(f"bundle path '{rel}' is not allowed (expected {BUNDLES_DIR}/<sha256>.tar)")
    try:
        datastore.get_file(rel, dest, expected_sha256=sha256)
    except OlivineError as exc:
        raise HostError(f"cannot download the bundle {datastore.url_for(rel)}: {exc}") from exc
    return dest
