"""Export a workflow's cache, outputs, logs and status to its folder on a datastore, incrementally.

The exporter is called while the workflow runs (e.g. on each finished pass) and once at the end:

* :meth:`Exporter.export_tree` copies only what is new. It remembers, per file, the local size and
  mtime it exported, so an unchanged file costs one ``stat``; a file it has not seen is hashed once,
  while it is copied. The same facts go to the on-datastore index (:mod:`olivine.datastores.index`), so
  a restarted exporter skips what a previous one shipped.
* Files whose sha256 Olivine recorded when it wrote them (a sidecar :data:`olivine.digests.DIGESTS_NAME`
  in a folder of the tree, e.g. each cache run) are not hashed at all while their stat matches the
  record: the export is a plain copy. Sidecars themselves are local bookkeeping and never exported.
* ``status.json`` is the one mutable file, rewritten atomically by :meth:`Exporter.write_status`.
* Logs are shipped as append-only chunks (:mod:`olivine.datastores.logs`).
* :meth:`Exporter.finalize` writes ``manifest.json`` last, then registers the data asset; after it the
  export is sealed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olivine.datastores import assets
from olivine.datastores.base import Datastore
from olivine.datastores.files import CHUNK_BYTES, TEMP_MARK, FileEntry, clean_rel, hash_file, json_bytes
from olivine.datastores.index import load_index, write_segment
from olivine.datastores.layout import BOOKKEEPING_DIR, ExportLayout
from olivine.datastores.logs import check_stream, chunk_path, log_chunks
from olivine.datastores.manifest import build_manifest
from olivine.datastores.redact import redact_config
from olivine.digests import DIGESTS_NAME, RecordedDigest, read_digests
from olivine.errors import DatastoreError

logger = logging.getLogger(__name__)

#: Names :meth:`Exporter.export_tree` skips by default: files still being written by their producer
#: (temporary and partial files) and lock files. A half-written temp file must never be exported.
DEFAULT_SKIP = ("*.tmp", "*.tmp-*", ".*.tmp*", "*.part", "*.partial", "*.lock", f"*{TEMP_MARK}*")
_RESERVED_FILES = {"manifest.json", "status.json"}
_RESERVED_DIRS = (f"{BOOKKEEPING_DIR}/", "logs/")
_Seen = tuple[str, int, int]  # (local path, size, mtime_ns) of a file as it was exported
#: Log chunks exported meanwhile are added to the export index at least this often.
LOG_INDEX_INTERVAL_S = 120.0


@dataclass
class TreeExport:
    """What one :meth:`Exporter.export_tree` call did."""

    copied: list[FileEntry] = field(default_factory=list)
    skipped: int = 0

    @property
    def bytes_copied(self) -> int:
        return sum(e.size for e in self.copied)


# One regex for all patterns: this runs for every file of every export.
_DEFAULT_SKIP_RE = re.compile("|".join(fnmatch.translate(os.path.normcase(p)) for p in DEFAULT_SKIP))


def default_skip(path: Path) -> bool:
    """Whether ``path``'s name matches :data:`DEFAULT_SKIP`."""
    return _DEFAULT_SKIP_RE.match(os.path.normcase(path.name)) is not None


class Exporter:
    """Exports into one :class:`ExportLayout`. Thread-safe; one exporter per export at a time.

    Args:
        datastore: where to export.
        layout: the export's folder (usually from :func:`olivine.datastores.layout.claim_export`).
    """

    def __init__(self, datastore: Datastore, layout: ExportLayout) -> None:
        self.datastore = datastore
        self.layout = layout
        self._lock = threading.RLock()  # index, seen files, log counters, finalized flag
        self._status_lock = threading.Lock()
        self._index: dict[str, FileEntry] | None = None
        self._next_segment = 1
        self._seen: dict[str, _Seen] = {}
        self._log_seq: dict[str, int] = {}
        self._log_offset: dict[str, int] = {}
        self._last_status: dict[str, Any] | None = None
        self._finalized = False
        self._unindexed_logs: list[FileEntry] = []
        self._indexed_at = time.monotonic()

    # -- files ------------------------------------------------------------------------------------
    def export_file(self, local: str | Path, rel_under_root: str) -> FileEntry:
        """Export one file to ``<export root>/<rel_under_root>``; a no-op if it is already there.

        Raises:
            DatastoreError: the path already holds different content, is reserved (``manifest.json``,
                ``status.json``, ``logs/``, ``.olivine/``), or the export is finalized.
        """
        rel = self._checked(rel_under_root)
        with self._lock:
            self._check_open()
            seen, known = self._plan(Path(local), rel)
        if known is not None:
            return known
        entry = self._copy(Path(local), rel)
        self._record([(entry, seen)])
        return entry

    def export_tree(
        self, local_dir: str | Path, rel_prefix: str = "", *, skip: Callable[[Path], bool] = default_skip
    ) -> TreeExport:
        """Export every file under ``local_dir`` to ``<export root>/<rel_prefix>/...``, skipping what
        was already exported unchanged and names for which ``skip`` is true.

        New files are copied concurrently (``datastore.put_concurrency`` at a time, largest first). If
        one fails, the others still finish and are recorded, so a retry copies only what is missing.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise DatastoreError(f"cannot export {root}: not a folder")
        prefix = clean_rel(rel_prefix)
        result = TreeExport()
        todo: list[tuple[Path, str, _Seen]] = []
        files, recorded = _files_under(root)
        with self._lock:
            self._check_open()
            for path in files:
                if skip(path):
                    continue
                rel = self._checked(f"{prefix}/{path.relative_to(root).as_posix()}")
                seen, known = self._plan(path, rel, recorded.get(path))
                if known is not None:
                    result.skipped += 1
                else:
                    todo.append((path, rel, seen))
        # Copy without holding the lock, so status and log writes from other threads go on meanwhile.
        done: list[tuple[FileEntry, _Seen]] = []
        try:
            for entry, seen in self._copy_all(todo, recorded):
                done.append((entry, seen))
                result.copied.append(entry)
        finally:
            # Record what was copied even if a later file failed, so a retry skips it.
            self._record(done)
        return result

    def restore_missing(self, rel_prefix: str) -> list[str]:
        """Check that what was exported under ``rel_prefix`` is still on the datastore (one listing) and
        copy a missing file again from its local source when that still holds the same content; the
        seal then claims only files that are there.

        Returns:
            The paths (under the export root) that are missing or differ and could not be restored.
        """
        prefix = clean_rel(rel_prefix)
        with self._lock:
            self._check_open()
            wanted = {rel: e for rel, e in self._load().items() if rel.startswith(f"{prefix}/")}
            seen = dict(self._seen)
        root = self.layout.root
        stored = {
            rel[len(root) :].lstrip("/"): size
            for rel, size in self.datastore.walk_files(self.layout.path(prefix))
        }
        lost = []
        for rel, entry in sorted(wanted.items()):
            if stored.get(rel) == entry.size:
                continue
            source = Path(seen[rel][0]) if rel in seen else None
            if (
                rel in stored
                or source is None
                or not source.is_file()
                or hash_file(source)[1] != entry.sha256
            ):
                lost.append(rel)
                continue
            logger.warning("%s vanished from the datastore after its export: copying it again", rel)
            self._copy(source, rel)
        return lost

    def _plan(
        self, local: Path, rel: str, recorded: RecordedDigest | None = None
    ) -> tuple[_Seen, FileEntry | None]:
        """The local file's identity, and the index entry if the file is already exported unchanged."""
        try:
            stat = local.stat()
        except OSError as exc:
            raise DatastoreError(f"cannot export {local}: {exc.strerror or exc}") from exc
        seen = (str(local), stat.st_size, stat.st_mtime_ns)
        known = self._load().get(rel)
        if known is None or self._seen.get(rel) == seen:
            return seen, known
        sha256 = recorded.sha256 if recorded is not None and recorded.matches(stat) else None
        if known.size == stat.st_size and (sha256 or hash_file(local)[1]) == known.sha256:
            self._seen[rel] = seen
            return seen, known
        raise DatastoreError(
            f"refusing to overwrite {self.datastore.url_for(self.layout.path(rel))} with {local}: "
            "it was exported with different content and exports are append-only"
        )

    def _copy(self, local: Path, rel: str, recorded: RecordedDigest | None = None) -> FileEntry:
        stored = self.datastore.put_file(local, self.layout.path(rel), recorded=recorded)
        return FileEntry(rel, stored.size, stored.sha256)

    def _copy_all(
        self, todo: list[tuple[Path, str, _Seen]], recorded: Mapping[Path, RecordedDigest]
    ) -> Iterator[tuple[FileEntry, _Seen]]:
        workers = min(self.datastore.put_concurrency, len(todo))
        if workers <= 1:
            for path, rel, seen in todo:
                yield self._copy(path, rel, recorded.get(path)), seen
            return
        first_error: BaseException | None = None
        # Largest first (seen[1] is the size): a big file started last would leave its upload alone
        # at the end, with the other workers idle; small files fill in around the big ones instead.
        by_size = sorted(todo, key=lambda item: item[2][1], reverse=True)
        with ThreadPoolExecutor(workers, thread_name_prefix="olivine-export") as pool:
            futures = [
                (pool.submit(self._copy, path, rel, recorded.get(path)), seen) for path, rel, seen in by_size
            ]
            for future, seen in futures:
                if future.cancelled():
                    continue
                try:
                    entry = future.result()
                except Exception as exc:
                    if first_error is None:
                        first_error = exc
                        for pending, _ in futures:
                            pending.cancel()
                    continue
                yield entry, seen
        if first_error is not None:
            raise first_error

    def _record(self, done: list[tuple[FileEntry, _Seen]]) -> None:
        """Add copied files to the in-memory index and write them as one on-datastore index segment."""
        if not done:
            return
        with self._lock:
            self._check_open()  # finalize ran while these were copied: they are not in the manifest
            index = self._load()
            for entry, seen in done:
                index[entry.path] = entry
                self._seen[entry.path] = seen
            self._flush(entry for entry, _ in done)

    # -- status and logs --------------------------------------------------------------------------
    def write_status(self, status: Mapping[str, Any]) -> None:
        """Replace ``status.json`` atomically (credentials removed). Allowed even after finalize."""
        clean = redact_config(dict(status))
        with self._status_lock:
            self.datastore.put_bytes(self.layout.status, json_bytes(clean), overwrite=True)
            self._last_status = clean

    def append_log(self, text: str | bytes, stream: str = "worker") -> FileEntry | None:
        """Append ``text`` to log ``stream`` as a new chunk; returns its entry (None if empty)."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        if not data:
            return None
        with self._lock:
            self._check_open()
            seq = self._log_seq.get(stream) or self._first_free_chunk(stream)
            while not self.datastore.put_if_absent(chunk_path(self.layout, stream, seq), data):
                seq += 1
            self._log_seq[stream] = seq + 1
            rel = chunk_path(self.layout, stream, seq)[len(self.layout.root) + 1 :]
            entry = FileEntry(rel, len(data), hashlib.sha256(data).hexdigest())
            self._load()[rel] = entry
            # A chunk costs one request; its index entry rides with the next segment (files, or at
            # most every LOG_INDEX_INTERVAL_S): the manifest has every chunk either way.
            self._unindexed_logs.append(entry)
            if time.monotonic() - self._indexed_at >= LOG_INDEX_INTERVAL_S:
                self._flush([])
            return entry

    def export_log(self, local_log_file: str | Path, stream: str | None = None) -> int:
        """Ship what was appended to a growing local log file since the last call.

        Args:
            local_log_file: the log file.
            stream: the stream name; default the file's stem (``worker.log`` -> ``worker``).

        Returns:
            The number of bytes shipped.
        """
        path = Path(local_log_file)
        name = check_stream(stream or re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip("._-") or "log")
        with self._lock:
            offset = self._log_offset.get(name)
            if offset is None:
                offset = sum(size for _, size in log_chunks(self.datastore, self.layout, name))
            size = path.stat().st_size
            if size < offset:
                logger.warning(
                    "log %s shrank below what was exported; shipping it again from the start", path
                )
                offset = 0
            shipped = 0
            with open(path, "rb") as src:
                src.seek(offset)
                while shipped < size - offset and (
                    data := src.read(min(CHUNK_BYTES, size - offset - shipped))
                ):
                    self.append_log(data, name)
                    shipped += len(data)
            self._log_offset[name] = offset + shipped
            return shipped

    def _first_free_chunk(self, stream: str) -> int:
        names = [rel.rsplit("/", 1)[-1] for rel, _ in log_chunks(self.datastore, self.layout, stream)]
        return max((int(n.split(".", 1)[0]) for n in names if n.split(".", 1)[0].isdigit()), default=0) + 1

    # -- the end ----------------------------------------------------------------------------------
    def finalize(
        self, manifest_extra: Mapping[str, Any] | None = None, *, register_asset: bool = True
    ) -> dict[str, Any]:
        """Write ``manifest.json`` (last file of the export), register the data asset, seal the export.

        Args:
            manifest_extra: ``status`` (default: the last status written), ``config`` (the resolved run
                config; credentials are removed), ``metrics``, and any other keys (kept under ``extra``).
            register_asset: also register the export as version ``<timestamp>`` of asset ``<workflow_id>``.

        Returns:
            The manifest.
        """
        extra = dict(manifest_extra or {})
        with self._lock:
            self._check_open()
            status = extra.pop("status", None)
            manifest = build_manifest(
                self.layout,
                self._load().values(),
                config=extra.pop("config", None),
                status=self._last_status if status is None else status,
                metrics=extra.pop("metrics", None),
                extra=extra,
            )
            self.datastore.put_bytes(self.layout.manifest, json_bytes(manifest))
            self._finalized = True
        if register_asset:
            summary = {k: manifest[k] for k in ("status", "metrics", "totals")}
            assets.register(self.datastore, self.layout.workflow_id, self.layout.folder, summary)
        return manifest

    # -- helpers ----------------------------------------------------------------------------------
    def _load(self) -> dict[str, FileEntry]:
        if self._index is None:
            self._index, self._next_segment = load_index(self.datastore, self.layout)
        return self._index

    def _flush(self, entries: Iterable[FileEntry]) -> None:
        """Write ``entries`` and the log chunks not yet indexed as one index segment."""
        batch = [*self._unindexed_logs, *entries]
        if batch:
            self._next_segment = write_segment(
                self.datastore, self.layout, batch, self._next_segment, whole=self._load()
            )
        self._unindexed_logs = []
        self._indexed_at = time.monotonic()

    def _checked(self, rel: str) -> str:
        clean = clean_rel(rel)
        if not clean or clean in _RESERVED_FILES or f"{clean}/".startswith(_RESERVED_DIRS):
            raise DatastoreError(
                f"'{rel}' is reserved in an export (manifest.json, status.json, logs/, {BOOKKEEPING_DIR}/)"
            )
        return clean

    def _check_open(self) -> None:
        if self._finalized:
            raise DatastoreError(f"the export {self.layout.url} is finalized; it takes no more files")


def _files_under(root: Path) -> tuple[list[Path], dict[Path, RecordedDigest]]:
    """Files under ``root`` in a stable order (symlinked folders are not followed: no cycles), and the
    digests recorded by the sidecars among them (which are not in the list)."""
    found: list[Path] = []
    recorded: dict[Path, RecordedDigest] = {}
    folders = [root]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        subfolders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(folder / entry.name)
            elif entry.name == DIGESTS_NAME:
                recorded.update((folder / rel, record) for rel, record in read_digests(folder).items())
            elif entry.is_file():
                found.append(folder / entry.name)
        folders.extend(reversed(subfolders))
    return found, recorded
