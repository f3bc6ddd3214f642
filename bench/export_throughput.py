"""Exporter throughput vs a plain ``shutil.copy`` of the same files to the same disk, in two cases.

Usage: ``python bench/export_throughput.py [--mb 200] [--rounds 5] [--cache DIR]``

1. **Cold files** (sha256 computed at export): a tree like a workflow cache (a few large model files,
   some medium, many small JSON-sized ones) written by someone else, exported with
   :class:`olivine.datastores.Exporter` into a ``file://`` datastore (index and manifest included). The
   exporter hashes every byte as well as copying it; a sha256 costs about twice a kernel copy here, so
   on 2 cores this is bounded near 0.67x of ``shutil.copy``, whatever the pipelining.
2. **Engine cache** (sha256 recorded at commit): the same files committed as pass runs through
   :meth:`olivine.engine.cache.WorkflowCache.commit_run`, which hashes them once (timed and printed
   separately: the cost moved from export to commit), then exported the way the worker does
   (:func:`olivine.jobs.progress.export_cache`), which copies them without hashing.

3. **Workflow cache** (only with ``--cache DIR``): a real engine cache folder (``<cache_dir>/<workflow_id>``,
   e.g. the MiniLM example's after a run: three ~90 MB models and a few JSON records), exported the way
   the worker does. ``bench/run_all.py`` passes the cache of its end-to-end Olivine run.

Rounds are interleaved: copy and export for each case, copy first in even rounds and export first in odd
ones, so neither always runs right after the other's writes and deletions. Prints MB/s (median of the
rounds), the ratios (target >= 0.8) and the CPU seconds each used: on a shared machine the wall-clock
ratio moves with the load, the CPU cost does not.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from olivine.datastores import Exporter, claim_export
from olivine.datastores.local import LocalDatastore
from olivine.engine.cache import WorkflowCache
from olivine.jobs.progress import export_cache
from olivine.model.handle import ModelHandle

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def plan_files(total_mb: int) -> list[tuple[str, int]]:
    """``(relative path, size)`` of ~``total_mb``: 60% in 2 large, 30% in 20 medium, 10% in 200 small."""
    total = total_mb << 20
    plan = [(2, int(total * 0.6) // 2), (20, int(total * 0.3) // 20), (200, int(total * 0.1) // 200)]
    return [
        (f"run{group}/{i // 50}/file{i}.bin", size)
        for group, (count, size) in enumerate(plan)
        for i in range(count)
    ]


def make_tree(root: Path, files: list[tuple[str, int]]) -> int:
    """Write random files as planned; returns the bytes written."""
    for rel, size in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    return sum(size for _, size in files)


def make_cache(base: Path, files: list[tuple[str, int]]) -> tuple[WorkflowCache, float, float]:
    """Commit the planned files as pass runs (one run per folder of the plan), as the engine does.

    Returns the cache and the wall and CPU seconds its ``commit_run`` calls took (they hash every file).
    """
    cache = WorkflowCache(base / "cache", "bench")
    by_run: dict[str, list[tuple[str, int]]] = {}
    for rel, size in files:
        folder, name = rel.rsplit("/", 1)
        by_run.setdefault(folder, []).append((name, size))
    commit_s = commit_cpu = 0.0
    for folder, members in by_run.items():
        staging = cache.new_run_dir()
        for name, size in members:  # the pass writes its model files
            (staging / "model" / name).write_bytes(os.urandom(size))
        model = ModelHandle("onnx", {"model_path": str(staging / "model")})
        key = hashlib.sha256(folder.encode()).hexdigest()
        t0, c0 = time.perf_counter(), time.process_time()
        cache.commit_run(key, staging, model, {"pass_name": folder})
        commit_s += time.perf_counter() - t0
        commit_cpu += time.process_time() - c0
    return cache, commit_s, commit_cpu


def copy_tree(src: Path, dst: Path) -> None:
    for folder, _, names in os.walk(src):
        target = dst / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(Path(folder, name), target / name)


class Case:
    """Interleaved rounds of ``shutil.copy`` vs the exporter for one source folder."""

    def __init__(self, label: str, src: Path, export: Callable[[Exporter, Path], object]) -> None:
        self.label = label
        self.src = src
        self.export = export
        self.copy_s: list[float] = []
        self.export_s: list[float] = []
        self.copy_cpu: list[float] = []
        self.export_cpu: list[float] = []

    def round(self, base: Path, datastore: LocalDatastore, minute: int) -> None:
        """One copy and one export; odd rounds export first, so neither always follows the other."""
        phases = [self._copy_phase, self._export_phase]
        for phase in phases if minute % 2 == 0 else reversed(phases):
            os.sync()  # each phase starts with no dirty pages left by the other
            phase(base, datastore, minute)

    def _copy_phase(self, base: Path, datastore: LocalDatastore, minute: int) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        copy_tree(self.src, base / "copy")
        self.copy_s.append(time.perf_counter() - t0)
        self.copy_cpu.append(time.process_time() - c0)
        shutil.rmtree(base / "copy")

    def _export_phase(self, base: Path, datastore: LocalDatastore, minute: int) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        layout = claim_export(datastore, "bench", START + timedelta(minutes=minute))
        exporter = Exporter(datastore, layout)
        self.export(exporter, self.src)
        exporter.finalize({"status": "succeeded"}, register_asset=False)
        self.export_s.append(time.perf_counter() - t0)
        self.export_cpu.append(time.process_time() - c0)
        shutil.rmtree(base / "store" / layout.folder)

    def ratio(self) -> float:
        return statistics.median(self.copy_s) / statistics.median(self.export_s)

    def print(self, mb: float) -> None:
        for name, times in (("shutil.copy", self.copy_s), ("exporter", self.export_s)):
            rounds = ", ".join(f"{mb / s:.0f}" for s in times)
            label = f"{name} ({self.label}):"
            print(f"{label:<32} {mb / statistics.median(times):.0f} MB/s (rounds: {rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, help="also export this cache (<cache_dir>/<workflow_id>)")
    args = parser.parse_args()
    if args.cache is not None and not (args.cache / "runs").is_dir():
        parser.error(f"--cache {args.cache}: not an engine cache folder (no runs/ in it)")
    with tempfile.TemporaryDirectory(prefix="olivine-bench-") as tmp:
        base = Path(tmp)
        files = plan_files(args.mb)
        nbytes = make_tree(base / "src", files)
        cache, commit_s, commit_cpu = make_cache(base, files)
        datastore = LocalDatastore(base / "store")
        cold = Case("cold files", base / "src", lambda ex, src: ex.export_tree(src, "cache"))
        warm = Case("engine cache", cache.root, lambda ex, src: export_cache(ex, src, "cache"))
        real = Case("workflow cache", args.cache, lambda ex, src: export_cache(ex, src, "cache"))
        cases = [cold, warm] + ([real] if args.cache is not None else [])
        for r in range(args.rounds):
            for i, case in enumerate(cases):
                # minute: a fresh export folder per round; its parity alternates copy-first / export-first.
                case.round(base, datastore, 2 * (len(cases) * r + i) + r % 2)
        mb = nbytes / (1 << 20)
        print(f"files: {mb:.0f} MB in {len(files)} files")
        cold.print(mb)
        warm.print(mb)
        if args.cache is not None:
            real_files = [p for p in args.cache.rglob("*") if p.is_file()]
            real_mb = sum(p.stat().st_size for p in real_files) / (1 << 20)
            print(f"workflow cache {args.cache}: {real_mb:.0f} MB in {len(real_files)} files")
            real.print(real_mb)
            print(f"ratio exporter/copy, workflow cache (a real run's): {real.ratio():.2f} (target >= 0.80)")
        print(
            f"commit_run hashing (engine cache, once per run): {commit_s:.2f} s, CPU {commit_cpu:.2f} s "
            f"({mb / commit_s:.0f} MB/s)"
        )
        print(f"ratio exporter/copy, cold files (sha256 at export): {cold.ratio():.2f} (target >= 0.80)")
        print(
            f"ratio exporter/copy, engine cache (sha256 recorded at commit): {warm.ratio():.2f} "
            "(target >= 0.80)"
        )
        print(
            "CPU s (median): "
            + "; ".join(
                f"{case.label}: shutil.copy {statistics.median(case.copy_cpu):.2f}, "
                f"exporter {statistics.median(case.export_cpu):.2f}"
                for case in cases
            )
            + f"; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        )


if __name__ == "__main__":
    main()
