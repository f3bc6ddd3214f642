"""The content-addressed workflow cache.

Layout under ``<cache_dir>/<workflow_id>/``::

    runs/<run_key>/run.json        a finished pass run (its config, input model id, versions, timing)
    runs/<run_key>/model/...       the run's output model; its id is the run key
    runs/<run_key>/.olivine-digests.json   sha256 and stat of the run's files, recorded at commit
    failures/<run_key>.json        the last failure of a run; never a cache hit, so the run is retried
    evaluations/<eval_key>.json    metrics of one model under one evaluator

Every write is atomic: a run is assembled in a temporary folder beside its final place and renamed into
it; JSON records are written to a temporary file and renamed. A half-written run is never visible.

A run's files are hashed once, when it is committed (they are still in the page cache), and recorded
beside them (:mod:`olivine.digests`), so exporting the cache copies them without hashing them again.
A cache without these records (older, or seeded from an export) works the same; its files are hashed
when exported.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olivine.digests import DIGESTS_NAME, hash_recorded, read_digests, record_folder
from olivine.errors import CacheError
from olivine.model.handle import PATH_KEYS, ModelHandle

logger = logging.getLogger(__name__)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it: a reader never sees half a
    file, and a symbolic link planted at ``path`` is replaced, not followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _confinement_problem(model: ModelHandle, run_dir: Path) -> str | None:
    """Why ``model`` may not be used from ``run_dir``: a path outside it (absolute, ``..`` or through a
    symbolic link) or a model file that is missing. None when it is fine."""
    base = run_dir.resolve()
    for key in PATH_KEYS:
        value = model.config.get(key)
        if not value:
            continue
        path = Path(str(value))
        if not path.resolve().is_relative_to(base):
            return f"{key} points outside the run folder"
        if key == "model_path" and not path.exists():
            return f"{key} does not exist"
    return None


def _run_problem(run_dir: Path) -> str | None:
    """Why the committed run in ``run_dir`` cannot be used (None when it can)."""
    try:
        record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        model = ModelHandle.from_json(record["model"], relative_to=run_dir)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable record ({type(exc).__name__}: {exc})"
    problem = _confinement_problem(model, run_dir)
    if problem is not None:
        return problem
    for rel, recorded in read_digests(run_dir).items():
        path = run_dir / rel
        try:
            if recorded.sha256_if_unchanged(path) is None and hash_recorded(path).sha256 != recorded.sha256:
                return f"{rel}: content differs from what was committed"
        except OSError:
            return f"{rel}: missing"
    return None


@dataclass(frozen=True)
class CachedRun:
    key: str
    record: dict[str, Any]
    model: ModelHandle
    run_dir: Path


class WorkflowCache:
    def __init__(self, root: Path, workflow_id: str) -> None:
        self.root = root / workflow_id
        self.runs = self.root / "runs"
        self.failures = self.root / "failures"
        self.evaluations = self.root / "evaluations"
        try:
            for folder in (self.runs, self.failures, self.evaluations):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the cache folder {self.root}: {exc.strerror}") from exc

    # -- pass runs -------------------------------------------------------------------------------
    def load_run(self, key: str) -> CachedRun | None:
        """The committed run ``key``, or None (a miss).

        A cache may be seeded from an export another user wrote, so a record is untrusted input: one
        that cannot be read, or whose model paths lead outside its own run folder (or to nothing), is
        reported once, moved out of the way and treated as a miss; the run is redone and replaces it.
        """
        run_dir = self.runs / key
        record_path = run_dir / "run.json"
        if not record_path.is_file():
            return None
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError("run.json is not a JSON object")
            model = ModelHandle.from_json(record["model"], relative_to=run_dir)
            problem = _confinement_problem(model, run_dir)
        except FileNotFoundError:
            return None  # removed meanwhile (a concurrent clean_cache): a miss
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problem = f"unreadable record ({type(exc).__name__}: {exc})"
        if problem is not None:
            self._quarantine(run_dir, problem)
            return None
        return CachedRun(key=key, record=record, model=model, run_dir=run_dir)

    def _quarantine(self, run_dir: Path, problem: str) -> None:
        """Move a corrupt run folder out of the way (atomically: readers see a miss) and remove it."""
        logger.warning("cache entry %s is corrupt and is ignored (it will be rebuilt): %s", run_dir, problem)
        aside = self.runs / f".corrupt-{uuid.uuid4().hex}"
        try:
            os.rename(run_dir, aside)
        except OSError:
            return  # already moved or replaced by another process
        shutil.rmtree(aside, ignore_errors=True)

    def new_run_dir(self) -> Path:
        """An empty staging folder for a run; pass it to :meth:`commit_run` when the run succeeded."""
        staging = self.runs / f".staging-{uuid.uuid4().hex}"
        (staging / "model").mkdir(parents=True)
        return staging

    def commit_run(self, key: str, staging: Path, model: ModelHandle, record: dict[str, Any]) -> CachedRun:
        final = self.runs / key
        # The model's paths point into the staging folder; store them relative so the rename keeps them.
        record = {**record, "key": key, "status": "succeeded", "model": model.to_json(relative_to=staging)}
        write_json_atomic(staging / "run.json", record)
        # Last write into the folder: the records vouch for the files as they are committed.
        try:
            record_folder(staging)
        except OSError as exc:  # only an optimisation: without records the export hashes the files
            (staging / DIGESTS_NAME).unlink(missing_ok=True)
            logger.warning("could not record the digests of run %s: %s", key, exc)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "run.json").is_file():
                shutil.rmtree(final, ignore_errors=True)
                os.rename(staging, final)
            else:  # another process finished the same run first; its result is equivalent
                shutil.rmtree(staging, ignore_errors=True)
        (self.failures / f"{key}.json").unlink(missing_ok=True)
        cached = self.load_run(key)
        if cached is None:
            raise CacheError(f"run {key} vanished from the cache right after it was written")
        return cached

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def record_failure(self, key: str, record: dict[str, Any]) -> Path:
        path = self.failures / f"{key}.json"
        write_json_atomic(path, {**record, "key": key, "status": "failed", "failed_at": time.time()})
        return path

    # -- evaluations -----------------------------------------------------------------------------
    def load_evaluation(self, key: str) -> dict[str, Any] | None:
        path = self.evaluations / f"{key}.json"
        if not path.is_file():
            return None
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data

    def store_evaluation(self, key: str, record: dict[str, Any]) -> Path:
        path = self.evaluations / f"{key}.json"
        write_json_atomic(path, {**record, "key": key})
        return path

    def clean(self, *, evaluations_only: bool = False) -> None:
        target = self.evaluations if evaluations_only else self.root
        shutil.rmtree(target, ignore_errors=True)
        for folder in (self.runs, self.failures, self.evaluations):
            folder.mkdir(parents=True, exist_ok=True)

    def audit(self, *, fix: bool = False, staging_older_than_s: float = 3600) -> list[str]:
        """Problems of this workflow cache, one line each; with ``fix`` they are repaired (corrupt runs
        and evaluations removed, so they are rebuilt as cache misses; old staging folders swept).

        A run is corrupt when its record is unreadable, its model path leaves the run folder or is
        missing, or a file its digests sidecar recorded changed content; a shared artifact
        (:mod:`olivine.engine.shared`) when its file changed since it was written.
        """
        problems: list[str] = []
        for run_dir in sorted(p for p in self.runs.iterdir() if p.is_dir()) if self.runs.is_dir() else []:
            if run_dir.name.startswith((".staging-", ".corrupt-")):
                if time.time() - run_dir.stat().st_mtime > staging_older_than_s:
                    problems.append(f"{run_dir}: leftover of a run that never finished")
                    if fix:
                        shutil.rmtree(run_dir, ignore_errors=True)
                continue
            problem = _run_problem(run_dir)
            if problem is not None:
                problems.append(f"{run_dir}: {problem}")
                if fix:
                    self._quarantine(run_dir, problem)
        for path in sorted(self.evaluations.glob("*.json")) if self.evaluations.is_dir() else []:
            try:
                if not isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: unreadable evaluation ({exc})")
                if fix:
                    path.unlink(missing_ok=True)
        from olivine.engine.shared import audit_shared  # it builds on this module

        return problems + audit_shared(self.root, fix=fix)

    def sweep_staging(self, *, older_than_s: float = 6 * 3600) -> None:
        """Remove staging folders left by a process that died mid-run (old ones only: a concurrent
        process may be filling a young one)."""
        now = time.time()
        shared = self.root / "shared"  # olivine.engine.shared's staging folders too
        for leftover in [*self.runs.glob(".staging-*"), *shared.glob(".staging-*")]:
            try:
                if now - leftover.stat().st_mtime > older_than_s:
                    shutil.rmtree(leftover, ignore_errors=True)
            except OSError:
                continue
