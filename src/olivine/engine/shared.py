"""Shared intermediate artifacts of pass runs (:class:`olivine.passes.base.SharedSteps`).

Some passes start with a step that depends on their input model and a few parameters only, not on the
rest of their config: quantization pre-processing (symbolic shape inference, onnxruntime's optimizer,
ONNX shape inference) is the same for every quantization candidate of a search. The step's output is
kept here, so 18 candidates pre-process the graph once, not 18 times (Olive keeps it in the pass
instance's temporary folder for the same reason; here it also survives a resumed run and is shared by
every process that uses the cache).

Layout under the workflow cache folder::

    shared/<key>/shared.json    what the artifact is (name, params, input model id, versions, its file,
                                the sha256 of each of its files: a changed byte is a cache miss, never input)
    shared/<key>/...            the artifact's files
    shared/.staging-<uuid>/     an artifact being written (renamed into place when complete)

The key hashes the input model id, the step's name and parameters and the library versions. Writes are
atomic like the runs'; processes that need the same artifact at once (a local worker pool's candidates)
wait for the one making it (a ``flock`` per cache folder and key, in a per-user folder of the temp dir,
released when its process dies), and a writer that
races anyway (a filesystem without ``flock``) loses the rename and uses the winner's files.
The folder is a working cache, not a result: it is not exported with the cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from olivine.digests import hash_recorded
from olivine.engine.cache import write_json_atomic
from olivine.engine.keys import hash_json
from olivine.redaction import redact_config

logger = logging.getLogger("olivine.engine")

SHARED_FOLDER = "shared"
_HELD: set[str] = set()  # keys whose lock this process holds
_RECORD = "shared.json"


class SharedStore:
    """Every shared artifact under one workflow cache folder; remembers in this process what it made or
    found, and the steps that failed (a failed step is not retried for every candidate)."""

    def __init__(self, cache_root: Path) -> None:
        self.root = cache_root / SHARED_FOLDER
        self._found: dict[str, Path] = {}
        self._failed: dict[str, BaseException] = {}

    def for_model(self, model_id: str, versions: Mapping[str, str]) -> SharedSteps:
        """The view a pass run from ``model_id`` gets (:attr:`PassContext.shared`)."""
        return SharedSteps(self, model_id, dict(versions))

    def get_or_make(self, key: str, record: dict[str, Any], make: Callable[[Path], Path]) -> Path:
        if key in self._failed:
            raise self._failed[key]
        if key in self._found and self._found[key].is_file():
            return self._found[key]
        found = self._load(key)
        if found is None:
            with self._making(key):
                found = self._load(key)  # another process may have made it while this one waited
                if found is None:
                    try:
                        found = self._make(key, record, make)
                    except Exception as exc:
                        self._failed[key] = exc
                        raise
        self._found[key] = found
        return found

    @contextmanager
    def _making(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` (a ``flock``: it dies with its process), so that processes of one
        search that need the same artifact at once (a local worker pool) make it once; the others wait
        and use it. Not taken again by a process that holds it already."""
        if key in _HELD:
            yield
            return
        folder = Path(tempfile.gettempdir()) / f"olivine-shared-locks-{os.getuid()}"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = hashlib.sha256(f"{self.root.resolve()}\n{key}".encode()).hexdigest()[:40]
        fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                logger.info("shared artifact %s is being made by another process: waiting for it", key[:12])
                fcntl.flock(fd, fcntl.LOCK_EX)
            _HELD.add(key)
            try:
                yield
            finally:
                _HELD.discard(key)
        finally:
            os.close(fd)

    def _load(self, key: str) -> Path | None:
        """The artifact's file when ``key`` is complete and its file lies inside its folder."""
        folder = self.root / key
        try:
            record = json.loads((folder / _RECORD).read_text(encoding="utf-8"))
            file = (folder / str(record["file"])).resolve()
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("shared artifact %s is unreadable and is rebuilt: %s", folder, exc)
            self._remove(folder)
            return None
        problem = artifact_problem(folder, record, file)
        if problem is not None:
            logger.warning("shared artifact %s %s; it is rebuilt", folder, problem)
            self._remove(folder)
            return None
        return file

    def _make(self, key: str, record: dict[str, Any], make: Callable[[Path], Path]) -> Path:
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            written = make(staging).resolve()
            if not written.is_relative_to(staging.resolve()) or not written.is_file():
                raise ValueError(f"a shared step wrote no file inside its folder ({written})")
            rel = written.relative_to(staging.resolve()).as_posix()
            files = _digests(staging)
            write_json_atomic(staging / _RECORD, {**record, "key": key, "file": rel, "files": files})
            final = self.root / key
            try:
                os.rename(staging, final)
            except OSError:  # another process committed the same artifact first: use its files
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        found = self._load(key)
        if found is None:
            raise OSError(f"shared artifact {key} vanished right after it was written")
        return found

    def _remove(self, folder: Path) -> None:
        aside = self.root / f".staging-{uuid.uuid4().hex}"
        try:
            os.rename(folder, aside)
        except OSError:
            return
        shutil.rmtree(aside, ignore_errors=True)


def artifact_problem(folder: Path, record: dict[str, Any], file: Path) -> str | None:
    """Why the artifact in ``folder`` cannot be used (its file is outside it, missing, or not the
    content it was written with), or None."""
    if not file.is_relative_to(folder.resolve()) or not file.is_file():
        return "names a file outside it or none"
    if _digests(folder) != record.get("files"):
        return "holds files that changed since it was written"
    return None


def _digests(folder: Path) -> dict[str, str]:
    """The sha256 of every file of an artifact folder (its record aside)."""
    return {
        p.relative_to(folder).as_posix(): hash_recorded(p).sha256
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != _RECORD
    }


def audit_shared(cache_root: Path, *, fix: bool = False) -> list[str]:
    """Problems of the shared artifacts under a workflow cache folder; ``fix`` removes those (a cache
    miss: the next run that needs one rebuilds it)."""
    store = SharedStore(cache_root)
    problems = []
    folders = sorted(p for p in store.root.iterdir() if p.is_dir()) if store.root.is_dir() else []
    for folder in (f for f in folders if not f.name.startswith(".staging-")):
        try:
            record = json.loads((folder / _RECORD).read_text(encoding="utf-8"))
            problem = artifact_problem(folder, record, (folder / str(record["file"])).resolve())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"is unreadable ({exc})"
        if problem is not None:
            problems.append(f"{folder}: shared artifact {problem}")
            if fix:
                store._remove(folder)
    return problems


class SharedSteps:
    """The shared artifacts of one input model (implements :class:`olivine.passes.base.SharedSteps`)."""

    def __init__(self, store: SharedStore, model_id: str, versions: dict[str, str]) -> None:
        self.store = store
        self.model_id = model_id
        self.versions = versions

    def get_or_make(self, name: str, params: Mapping[str, Any], make: Callable[[Path], Path]) -> Path:
        record = {"name": name, "params": dict(params), "model_id": self.model_id, "versions": self.versions}
        # The key is of every parameter; what is written down leaves credentials out.
        return self.store.get_or_make(
            hash_json(record), {**record, "params": redact_config(record["params"])}, make
        )
