"""Wall time of the read commands on Ray jobs, before and after they moved from Ray's SDK to the Jobs REST
API: ``olivine status <finished job>``, ``olivine status <running job>`` and ``olivine list``.

"Before" is the ``src`` tree of a git revision (``--before``, default the commit before the move),
extracted to a temporary folder; "after" is this checkout's ``src``. Both run with the same venv, the
same ``OLIVINE_HOME`` and the same jobs on one local head (127.0.0.1, 2 CPUs, stopped by its PID) that
this script starts. Rounds interleave the variants (alternating which goes first); medians of
``--rounds`` are reported, with the load average before and after. Bytecode is compiled first for
both trees, as after a pip install.

    flock /work/.bench.lock .venv/bin/python bench/ray_cli.py [--rounds 5] [--before b155393] [--doc]

``--doc`` writes the table into BENCHMARKS.md (block ``ray-cli``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import MAIN_PYTHON, REPO, bench_env, load_average, median, write_doc_block

from ray_head import RayHead


def _env(src: Path, home: Path) -> dict[str, str]:
    return bench_env({"PYTHONPATH": f"{src}{os.pathsep}{REPO / 'tests'}", "OLIVINE_HOME": str(home)})


def _olivine(src: Path, home: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(MAIN_PYTHON), "-m", "olivine", *args], env=_env(src, home), capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"olivine {' '.join(args)} failed: {done.stderr[-2000:]}")
    return wall, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", default="b155393", help="git revision whose src is 'before'")
    parser.add_argument("--doc", action="store_true", help="write the result into BENCHMARKS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="olv-raycli-", dir="/tmp"))
    before = work / "before"
    before.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", args.before, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
    trees = {"before": before / "src", "after": REPO / "src"}
    for tree in trees.values():
        compileall.compile_dir(str(tree), quiet=1)
    head = RayHead(work / "head")
    (work / "head").mkdir()
    head.start()
    try:
        from conformance.host_suite import write_workflow

        home = work / "home"
        home.mkdir()
        (home / "hosts.yaml").write_text(f"hosts:\n  cluster: {{type: Ray, address: '{head.address}'}}\n")
        after = trees["after"]
        run = ("run", "--host", "cluster", "--json", "--config")
        done_job = json.loads(_olivine(after, home, *run, str(write_workflow(work / "quick")))[1])["job_id"]
        slow = write_workflow(work / "slow", workflow_id="slow", sleep_s=3600.0)
        running_job = json.loads(_olivine(after, home, *run, str(slow))[1])["job_id"]
        deadline = time.monotonic() + 120
        while True:
            states = {j["job_id"]: j["state"] for j in json.loads(_olivine(after, home, "list", "--json")[1])}
            if states == {done_job: "SUCCEEDED", running_job: "RUNNING"}:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs did not reach SUCCEEDED/RUNNING: {states}")
            time.sleep(1)
        commands = {
            "status (finished job)": ("status", done_job),
            "status (running job)": ("status", running_job),
            "list": ("list",),
        }
        for tree in trees.values():  # warm the page cache and bytecode of both
            for command in commands.values():
                _olivine(tree, home, *command)
        times: dict[tuple[str, str], list[float]] = {}
        load_before = load_average()
        for round_no in range(args.rounds):
            order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
            for label, command in commands.items():
                for variant in order:
                    wall, _ = _olivine(trees[variant], home, *command)
                    times.setdefault((label, variant), []).append(wall)
        load_after = load_average()
        _olivine(after, home, "cancel", running_job)
    finally:
        head.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average before {load_before}, after {load_after}; {args.rounds} rounds, medians")
    print(f"{'command':24} {'before (SDK)':>13} {'after (REST)':>13} {'after/before':>13}")
    rows = []
    for label in commands:
        b, a = median(times[(label, "before")]), median(times[(label, "after")])
        print(f"{label:24} {b:12.3f}s {a:12.3f}s {a / b:12.2f}x")
        rows.append(f"| `olivine {label}` | {b:.2f} | {a:.2f} | {a / b:.2f}x |")
    print(json.dumps({f"{k[0]} {k[1]}": v for k, v in times.items()}))
    if args.doc:
        after_rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_doc_block(
            "ray-cli",
            "\n".join(
                [
                    "## Read commands on Ray jobs: Ray's SDK vs the Jobs REST API (`bench/ray_cli.py`)",
                    "",
                    f"Run {when}: wall time of each command (a new process, as typed), before = `src` of "
                    f"{args.before} (status/list import `ray.job_submission`), after = {after_rev} (urllib "
                    f"only); one local head, the same jobs and `OLIVINE_HOME`; {args.rounds} interleaved "
                    f"rounds, medians. Load average before {load_before}, after {load_after} (2 CPUs, "
                    "shared).",
                    "",
                    "| command | before (s) | after (s) | after/before |",
                    "| --- | --- | --- | --- |",
                    *rows,
                ]
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
