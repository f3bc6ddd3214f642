"""Submit-to-return and submit-to-running of the LocalWorker host, measured from the command line.

Each round submits a small workflow (an ONNX MLP, one quantization pass) with
``olivine run --config cfg.json --json`` in a fresh ``OLIVINE_HOME`` and times:
  - submit-to-return: process start to exit of the submitting command (what the user waits for);
  - submit-to-running: process start to the job record's ``started_at`` (the worker reported RUNNING).
Then it waits for the job to end (not timed) and stops nothing it did not start.

    .venv/bin/python bench/submit_latency.py [--rounds 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import MAIN_VENV, REPO, bench_env, median

OLIVINE = MAIN_VENV / "bin" / "olivine"


def _workflow(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import write_onnx_mlp

    cfg = {
        "workflow_id": "submit_bench",
        "input_model": write_onnx_mlp(folder / "mlp"),
        "systems": {"worker": {"type": "LocalWorker"}},
        "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
        "workflow_host": "worker",
    }
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def _one(folder: Path) -> tuple[float, float]:
    env = bench_env({"OLIVINE_HOME": str(folder / "home")})
    config = _workflow(folder)
    wall_start = time.time()
    start = time.perf_counter()
    done = subprocess.run(
        [str(OLIVINE), "run", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    returned = time.perf_counter() - start
    job = json.loads(done.stdout)["job_id"]
    deadline = time.time() + 300
    while True:
        status = json.loads(
            subprocess.run(
                [str(OLIVINE), "status", job, "--json"], capture_output=True, text=True, env=env, check=True
            ).stdout
        )
        if status["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.time() > deadline:
            break
        time.sleep(0.5)
    if status["state"] != "SUCCEEDED":
        raise RuntimeError(f"job {job} ended {status['state']}: {status.get('message')}")
    started = datetime.fromisoformat(status["started_at"]).timestamp()
    return returned, started - wall_start


def _ray_note() -> str:
    """Why there is no Ray row (yet): the Ray host is a later issue; this says whether Ray is installed."""
    import importlib.util

    from olivine.hosts.base import HOSTS

    if any("ray" in name.lower() for name in HOSTS.names()):
        return "host registered, but this script does not time it yet"
    installed = importlib.util.find_spec("ray") is not None
    return f"not measured: Olivine has no Ray host yet (ray {'is' if installed else 'is not'} installed here)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, metavar="OUT")
    args = parser.parse_args()
    returned: list[float] = []
    running: list[float] = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="olivine-submit-") as tmp:
            r, s = _one(Path(tmp))
        returned.append(r)
        running.append(s)
        print(f"round {index + 1}/{args.rounds}: submit-to-return {r:.2f} s, submit-to-running {s:.2f} s")
    summary = (
        f"LocalWorker: submit-to-return {median(returned):.2f} s, "
        f"submit-to-running {median(running):.2f} s (median of {args.rounds}). "
        f"Ray: {_ray_note()}"
    )
    print(summary)
    if args.json:
        goal = "submit returns within about a second"
        doc = {
            "summary": summary,
            "goal": goal,
            "status": "met" if median(returned) <= 1.0 else "not met",
            "submit_to_return_s": returned,
            "submit_to_running_s": running,
        }
        args.json.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
