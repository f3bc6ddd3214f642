"""Exporter throughput vs a plain ``shutil.copy`` of the same files to the same disk.

Usage: ``python bench/export_throughput.py [--mb 200] [--rounds 3]``

Builds a tree like a workflow cache (a few large model files, some medium, many small JSON-sized
ones) in a temporary folder, then in interleaved rounds copies it with ``shutil.copy`` and exports it
with :class:`olivine.datastores.Exporter` into a ``file://`` datastore (including the index and the
manifest). Prints MB/s of each (median of the rounds), the ratio (target >= 0.8), and the CPU
seconds each used: on a shared machine the wall-clock ratio moves with the load, the CPU cost does not.
The exporter hashes every byte (sha256) as well as copying it, so it needs a second idle core to keep
up with ``shutil.copy`` (which lets the kernel copy with ``sendfile``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from olivine.datastores import Exporter, claim_export
from olivine.datastores.local import LocalDatastore


def make_tree(root: Path, total_mb: int) -> int:
    """Write ~``total_mb`` of random files: 60% in 2 large, 30% in 20 medium, 10% in 200 small."""
    total = total_mb << 20
    plan = [(2, int(total * 0.6) // 2), (20, int(total * 0.3) // 20), (200, int(total * 0.1) // 200)]
    written = 0
    for group, (count, size) in enumerate(plan):
        for i in range(count):
            path = root / f"run{group}" / f"{i // 50}" / f"file{i}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(size))
            written += size
    return written


def copy_tree(src: Path, dst: Path) -> None:
    for folder, _, names in os.walk(src):
        target = dst / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(Path(folder, name), target / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="olivine-bench-") as tmp:
        base = Path(tmp)
        nbytes = make_tree(base / "src", args.mb)
        datastore = LocalDatastore(base / "store")
        copy_s, export_s, copy_cpu, export_cpu = [], [], [], []
        start = datetime(2024, 1, 1, tzinfo=timezone.utc)
        for r in range(args.rounds):
            os.sync()  # each phase starts with no dirty pages left by the other
            t0, c0 = time.perf_counter(), time.process_time()
            copy_tree(base / "src", base / f"copy{r}")
            copy_s.append(time.perf_counter() - t0)
            copy_cpu.append(time.process_time() - c0)
            os.sync()
            t0, c0 = time.perf_counter(), time.process_time()
            layout = claim_export(datastore, "bench", start + timedelta(minutes=r))
            exporter = Exporter(datastore, layout)
            exporter.export_tree(base / "src", "cache")
            exporter.finalize({"status": "succeeded"}, register_asset=False)
            export_s.append(time.perf_counter() - t0)
            export_cpu.append(time.process_time() - c0)
            # Free the page cache pressure of this round before the next one.
            shutil.rmtree(base / f"copy{r}")
            shutil.rmtree(base / "store" / layout.folder)
        mb = nbytes / (1 << 20)
        copy_mbs = mb / statistics.median(copy_s)
        export_mbs = mb / statistics.median(export_s)
        print(f"files: {mb:.0f} MB in {sum(1 for _ in (base / 'src').rglob('*.bin'))} files")
        print(f"shutil.copy: {copy_mbs:.0f} MB/s (rounds: {', '.join(f'{mb / s:.0f}' for s in copy_s)})")
        print(f"exporter:    {export_mbs:.0f} MB/s (rounds: {', '.join(f'{mb / s:.0f}' for s in export_s)})")
        print(f"ratio exporter/copy: {export_mbs / copy_mbs:.2f} (target >= 0.80)")
        print(
            f"CPU s (median): shutil.copy {statistics.median(copy_cpu):.2f}, "
            f"exporter {statistics.median(export_cpu):.2f}; load average {os.getloadavg()[0]:.2f} "
            f"on {os.cpu_count()} CPUs"
        )


if __name__ == "__main__":
    main()
