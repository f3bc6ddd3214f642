"""Fault injection: tiny workflows on the LocalWorker host, faults struck inside running jobs, damage counted.

Each fault is a (kind, point) pair. The point is where inside a job it strikes, found from the job's own
progress lines in its log (bench/fault_points.py: no hook in the product): during a pass, during an
evaluation, during the final export, or during the final commit (after the verdict line: seal,
status.json, local status), at a random moment within how long that point lasted in a calibration run.
Where each fault actually landed is read back from the log and reported.

Kinds (bench/fault_lane.py):

    sigkill, sigterm     SIGKILL / SIGTERM of the worker's process group
    cache_delete         delete a random file of the job's local cache
    cache_corrupt        flip a byte of a random file of the job's local cache
    export_delete        delete a random file of the job's export on the datastore
    export_corrupt       flip a byte of an exported file after the job ended; the next run seeds from it
    unwritable           the export folder cannot be written for 0.3-3 s
    resume_race          SIGKILL, then two ``olivine resume`` processes at once
    clean_cache          a second foreground run with clean_cache: true on the same cache_dir
    bad_row              another job's row in jobs.db becomes garbage while this job runs
    storage_stop         the object-store server (Azurite for az://, moto for s3://) stops for 0.5-5 s
    storage_kill         the server stops, the worker is SIGKILLed while it is down, status is asked
                         while it is down; then the server starts again

After each fault: wait for the end, reconcile (``status`` = the host's monitor, then ``doctor --fix``),
resume a job that failed or was cancelled, and check:

    consistent          store, sealed manifest, the export's status.json and the exported log's last
                        verdict agree (foreground clean_cache runs: exit code vs output)
    false SUCCEEDED     a job (or a foreground run) reported success after reconciliation but its output
                        does not verify (one that doctor --fix marked damaged says so: not counted)
    lost                a failed job could not be recovered by ``resume``, or a SUCCEEDED job's export
                        does not verify when the fault did not touch the export
    detected            an export corruption that ``fetch`` refused (expected)

A bench error (an exception of the bench, a hung command) is retried with a fresh job, and reported
apart: it is not a fault. Lanes run in parallel, each in its own OLIVINE_HOME (faults of one lane never
reach another's jobs); storage faults run in lane 0, which owns the servers.

    flock /work/.bench.lock .venv/bin/python bench/faults.py [--faults 200] [--seed 11] [--lanes 4]
          [--kinds sigkill,sigterm,...] [--json OUT] [--keep] [--doc]

Exit 0: no inconsistent state, nothing lost, no false SUCCEEDED; 1: some; 3: none, but bench errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import load_average, write_doc_block

BENCH = Path(__file__).resolve().parent
ALL = ("pass", "evaluation", "export", "commit")
RUNNING = ("pass", "evaluation", "export")
KINDS: dict[str, tuple[str, ...]] = {
    "sigkill": ALL,
    "sigterm": ALL,
    "cache_delete": RUNNING,
    "cache_corrupt": RUNNING,
    "export_delete": ALL,
    "export_corrupt": ("after the end",),
    "unwritable": ALL,
    "resume_race": ALL,
    "clean_cache": RUNNING,
    "bad_row": ("evaluation",),
    "storage_stop": ALL,
    "storage_kill": ALL,
}
STORAGE = ("storage_stop", "storage_kill")
LANDED = "landed (by the job log at the moment of the fault)"


def make_plan(faults: int, seed: int, kinds: list[str], lanes: int) -> list[list[dict[str, Any]]]:
    """Every (kind, point) pair in turn, shuffled; storage faults in lane 0, the rest spread so that
    every lane gets about as many faults."""
    rng = random.Random(seed)
    pairs = [(k, p) for k in kinds for p in KINDS[k]]
    entries = []
    while len(entries) < faults:
        batch = pairs[:]
        rng.shuffle(batch)
        entries += batch
    plan: list[list[dict[str, Any]]] = [[] for _ in range(lanes)]
    for i, (kind, point) in enumerate(entries[:faults]):
        entry = {"index": i, "kind": kind, "point": point, "seed": rng.randrange(1 << 30)}
        if kind in STORAGE or lanes == 1:
            plan[0].append(entry)
        else:
            others = range(1, lanes)
            plan[min(others, key=lambda n: (len(plan[n]), n))].append(entry)
    # Lane 0 takes other faults too while it has fewer than its share.
    share = faults // lanes
    for lane in range(1, lanes):
        while len(plan[0]) < share and len(plan[lane]) > share:
            plan[0].append(plan[lane].pop())
    return plan


def run(args: argparse.Namespace, root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    plan = make_plan(args.faults, args.seed, args.kinds, args.lanes)
    procs = []
    outs = []
    for n, entries in enumerate(plan):
        if not entries:
            continue
        lane_root = root / f"lane{n}"
        lane_root.mkdir(parents=True)
        plan_file = lane_root / "plan.json"
        plan_file.write_text(json.dumps(entries))
        out = lane_root / "results.jsonl"
        out.touch()
        outs.append(out)
        log = open(lane_root / "lane.log", "w")  # noqa: SIM115 (the child owns it)
        command = [sys.executable, str(BENCH / "fault_lane.py"), "--root", str(lane_root)]
        command += ["--plan", str(plan_file), "--out", str(out)]
        procs.append(
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=lane_root,
            )
        )
        log.close()
    start = time.monotonic()
    loads = []
    done = 0
    while any(p.poll() is None for p in procs):
        time.sleep(5)
        loads.append(load_average()[0])
        now = sum(max(0, len(o.read_text().splitlines()) - 1) for o in outs)
        if now != done:
            done = now
            print(f"[{done}/{args.faults}] {time.monotonic() - start:.0f}s", flush=True)
    records, calibrations = [], []
    for out, proc in zip(outs, procs, strict=True):
        lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        calibrations += [r["calibration"] for r in lines if "calibration" in r]
        records += [r for r in lines if "calibration" not in r]
        if proc.returncode != 0:
            log = out.parent / "lane.log"
            print(f"lane {out.parent.name} exited {proc.returncode}:\n{log.read_text()[-2000:]}")
    return sorted(records, key=lambda r: r["index"]), calibrations, max(loads or [0.0])


def summarize(records: list[dict[str, Any]]) -> tuple[dict[str, Any], Counter[str], list[str]]:
    counts: Counter[str] = Counter()
    problems: list[str] = []
    for record in records:
        if "bench_error" in record:
            counts["bench_errors"] += 1
            problems.append(f"bench error in {record['kind']}@{record['point']}: {record['bench_error'][-1]}")
            continue
        counts["faults"] += 1
        counts[f"kind:{record['kind']}"] += 1
        counts[f"point:{record['kind']}@{record['point']}->{record['landed']}"] += 1
        counts["bench_retries"] += len(record.get("bench_retries", []))
        counts.update(record["counts"])
        problems += [f"{record['kind']}@{record['point']}: {p}" for p in record["problems"]]
    landed = Counter({k[len("landed:") :]: v for k, v in counts.items() if k.startswith("landed:")})
    summary = {
        "faults injected": counts["faults"],
        LANDED: dict(sorted(landed.items())),
        "jobs recovered by resume": counts["recovered_by_resume"],
        "states consistent (store/manifest/status.json/log)": counts["consistent"],
        "states inconsistent after reconciliation": counts["inconsistent"],
        "artifacts lost": counts["lost"],
        "false SUCCEEDED": counts["false_succeeded"],
        "export damage detected by fetch": counts["export_damage_detected"],
        "SUCCEEDED exports damaged after the seal, marked by doctor --fix": counts["damage_marked"],
        "bench errors (not faults; retried)": counts["bench_errors"] + counts["bench_retries"],
    }
    return summary, counts, problems


def markdown(summary: dict[str, Any], counts: Counter[str], command: str, wall_s: float, load: float) -> str:
    kinds = ", ".join(f"{k[5:]} {v}" for k, v in sorted(counts.items()) if k.startswith("kind:"))
    states = ", ".join(f"{k[6:]} {v}" for k, v in sorted(counts.items()) if k.startswith("state:"))
    lines = [
        "### Fault injection (bench/faults.py)",
        "",
        f"`{command}`: {wall_s / 60:.1f} min, peak 1-min load {load:.1f} (2 cores).",
        "",
        "| count | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in summary.items() if not isinstance(v, dict)),
        "",
        f"Landed: {', '.join(f'{k} {v}' for k, v in summary[LANDED].items())}.",
        f"Kinds: {kinds}. Final states of the struck jobs: {states}.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=200, help="faults to inject (default 200)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--lanes", type=int, default=4, help="parallel lanes (default 4)")
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS))
    parser.add_argument("--json", type=Path, help="also write the counts and problems here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--doc", action="store_true", help="write the result into BENCHMARKS.md")
    args = parser.parse_args()
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind(s) {unknown}; known: {', '.join(KINDS)}")
    root = Path(tempfile.mkdtemp(prefix="olivine-faults-"))
    started = time.monotonic()
    try:
        records, calibrations, load = run(args, root)
    finally:
        if not args.keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(root)
        else:
            print(f"work folder kept: {root}")
    wall_s = time.monotonic() - started
    summary, counts, problems = summarize(records)
    for problem in problems:
        print(f"  ! {problem}")
    print(f"calibration (point durations, s): {json.dumps(calibrations)}")
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(f"wall: {wall_s:.0f}s, peak 1-min load {load:.1f}, uptime: {os.getloadavg()}")
    print("details:", json.dumps(dict(sorted(counts.items()))))
    command = "bench/faults.py " + " ".join(sys.argv[1:])
    if args.json:
        doc = {"summary": summary, "counts": counts, "problems": problems, "records": records}
        args.json.write_text(json.dumps(doc, indent=2))
    if args.doc:
        write_doc_block("faults", markdown(summary, counts, command, wall_s, load))
    bad = summary["states inconsistent after reconciliation"] + summary["artifacts lost"]
    if bad + summary["false SUCCEEDED"]:
        return 1
    return 3 if counts["bench_errors"] else 0  # the counts hold, but some planned faults did not run


if __name__ == "__main__":
    raise SystemExit(main())
