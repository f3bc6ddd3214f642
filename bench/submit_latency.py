"""Submit-to-return and submit-to-running of the LocalWorker and Ray hosts, from the command line.

Each round submits a small workflow (an ONNX MLP, one quantization pass) with
``olivine run --config cfg.json --json`` and times:
  - submit-to-return: process start to exit of the submitting command (what the user waits for);
  - submit-to-running: process start to the job's ``started_at`` (the worker reported RUNNING).
Then it waits for the job to end (not timed).

LocalWorker rounds each use a fresh ``OLIVINE_HOME``. Ray rounds share one (a local head this script
starts on 127.0.0.1 with 2 CPUs and stops by its PID): the first submission to a cluster runs the
"is Olivine importable there" check job, so it is timed separately ("first") and the rounds after it
are the warm figure users see day to day.

    .venv/bin/python bench/submit_latency.py [--rounds 5] [--hosts localworker,ray] [--json OUT]

Olivine's modules are byte-compiled first and the commands run with bytecode caching on, as after a pip
install (pip compiles at install time); an environment with ``PYTHONDONTWRITEBYTECODE=1`` would
otherwise recompile every module on every command (about 0.25 s more here).
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
from typing import Any

from common import MAIN_VENV, REPO, bench_env, load_average, median

OLIVINE = MAIN_VENV / "bin" / "olivine"
GOAL = "submit returns within about a second"


def _workflow(folder: Path, system: dict[str, Any]) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import write_onnx_mlp

    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "workflow_id": "submit_bench",
        "input_model": write_onnx_mlp(folder / "mlp"),
        "systems": {"host": system},
        "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
        "workflow_host": "host",
    }
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def _env(home: Path) -> dict[str, str]:
    env = bench_env({"OLIVINE_HOME": str(home)})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _compile() -> None:
    """Byte-compile the olivine package the commands import (as pip does at install)."""
    import compileall

    import olivine

    compileall.compile_dir(str(Path(olivine.__file__).parent), quiet=1)


def _one(folder: Path, home: Path, system: dict[str, Any]) -> tuple[float, float]:
    env = _env(home)
    config = _workflow(folder, system)
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


def _rounds(label: str, rounds: int, home_of: Any, system: dict[str, Any]) -> tuple[list[float], list[float]]:
    returned: list[float] = []
    running: list[float] = []
    for index in range(rounds):
        with tempfile.TemporaryDirectory(prefix="olivine-submit-") as tmp:
            r, s = _one(Path(tmp) / "wf", home_of(Path(tmp)), system)
        returned.append(r)
        running.append(s)
        print(f"{label} round {index + 1}/{rounds}: submit-to-return {r:.2f} s, submit-to-running {s:.2f} s")
    return returned, running


def _ray(rounds: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    from ray_head import RayHead

    with tempfile.TemporaryDirectory(prefix="olv-rb-", dir="/tmp") as tmp:
        head = RayHead(Path(tmp))
        head.start()
        try:
            home = Path(tmp) / "home"
            system = {"type": "Ray", "address": head.address}
            first = _rounds("Ray (first, with the cluster check)", 1, lambda _: home, system)
            warm = _rounds("Ray", rounds, lambda _: home, system)
        finally:
            head.stop()
    return {
        "first_submit_to_return_s": first[0][0],
        "first_submit_to_running_s": first[1][0],
        "submit_to_return_s": warm[0],
        "submit_to_running_s": warm[1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hosts", default="localworker,ray", help="comma-separated: localworker, ray")
    parser.add_argument("--json", type=Path, metavar="OUT")
    args = parser.parse_args()
    hosts = {h.strip().lower() for h in args.hosts.split(",")}
    _compile()
    doc: dict[str, Any] = {"goal": GOAL, "load_before": load_average()}
    parts = []
    if "localworker" in hosts:
        returned, running = _rounds(
            "LocalWorker", args.rounds, lambda tmp: tmp / "home", {"type": "LocalWorker"}
        )
        doc.update(submit_to_return_s=returned, submit_to_running_s=running)
        parts.append(
            f"LocalWorker: submit-to-return {median(returned):.2f} s, "
            f"submit-to-running {median(running):.2f} s"
        )
    if "ray" in hosts:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            parts.append("Ray: not measured (ray is not installed: pip install 'olivine[ray]')")
        else:
            ray = _ray(args.rounds)
            doc["ray"] = ray
            parts.append(
                f"Ray: submit-to-return {median(ray['submit_to_return_s']):.2f} s, submit-to-running "
                f"{median(ray['submit_to_running_s']):.2f} s (first submission, with the cluster check: "
                f"{ray['first_submit_to_return_s']:.2f} s / {ray['first_submit_to_running_s']:.2f} s)"
            )
    doc["load_after"] = load_average()
    load = f"load average {doc['load_before'][0]} -> {doc['load_after'][0]}"
    summary = "; ".join(parts) + f" (medians of {args.rounds}; {load})."
    print(summary)
    if args.json:
        returns = [median(doc[k]) for k in ("submit_to_return_s",) if k in doc]
        if "ray" in doc:
            returns.append(median(doc["ray"]["submit_to_return_s"]))
        doc["summary"] = summary
        doc["status"] = "met" if returns and max(returns) <= 1.0 else "not met"
        args.json.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
