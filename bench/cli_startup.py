"""CLI start-up time: ``olivine --help`` vs ``olive --help``, plus ``olivine status`` / ``olivine list``.

Usage: ``.venv/bin/python bench/cli_startup.py [--runs 10] [--json OUT]``

Every command runs ``--runs`` times, interleaved (one of each per round), wall time from process start
to exit; reported as medians. A command that does not exist in this Olivine (or exits non-zero on its
first try) is reported as skipped with its exit code. ``python -c pass`` in Olivine's venv is the floor.
``olivine status`` and ``olivine list`` need a job: when the given ``OLIVINE_HOME`` has none, one is made
first by running a one-node ONNX workflow through the ``LocalSystem`` host (not timed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MAIN_PYTHON, MAIN_VENV, OLIVE_VENV, bench_env, median, ratio, run_timed

OLIVINE = str(MAIN_VENV / "bin" / "olivine")
OLIVE = str(OLIVE_VENV / "bin" / "olive")


def commands() -> dict[str, list[str]]:
    """Label -> argv of every command timed."""
    return {
        "python -c pass (floor)": [str(MAIN_PYTHON), "-c", "pass"],
        "olivine --help": [OLIVINE, "--help"],
        "olive --help": [OLIVE, "--help"],
        "olivine list": [OLIVINE, "list"],
        "olivine status": [OLIVINE, "status"],
    }


def make_job(folder: Path, env: dict[str, str]) -> None:
    """Run a one-node ONNX workflow (y = x + 1) through the LocalSystem host, so the job store has a job.

    Raises:
        RuntimeError: the run failed (its output is in the message).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    one = numpy_helper.from_array(np.ones((1, 4), dtype=np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "add_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (folder / "model").mkdir(exist_ok=True)
    onnx.save_model(model, str(folder / "model" / "model.onnx"))
    config = {
        "workflow_id": "cli-bench",
        "input_model": {"type": "ONNXModel", "model_path": "model/model.onnx"},
        "systems": {"local_system": {"type": "LocalSystem"}},
        "workflow_host": "local_system",
        "output_dir": "output",
        "cache_dir": "cache",
    }
    (folder / "cli-bench.json").write_text(json.dumps(config), encoding="utf-8")
    log = folder / "cli-bench.log"
    done = run_timed([OLIVINE, "run", "--config", "cli-bench.json"], cwd=folder, env=env, log=log)
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"could not make a job for `olivine status` (exit {done.returncode}):\n{tail}")


def measure_cli(
    runs: int = 10, *, olivine_home: Path | None = None, include_olive: bool = True
) -> dict[str, Any]:
    """Median wall seconds of each command, and the ratio ``olivine --help`` / ``olive --help``.

    Commands run in a scratch directory with :data:`common.BENCH_ENV`. ``olivine list``/``status`` read
    the job store in ``olivine_home`` (``OLIVINE_HOME``); without one, or when it holds no job, a scratch
    home gets one job from :func:`make_job` first.
    """
    cmds = commands()
    if not include_olive or not Path(OLIVE).exists():
        cmds.pop("olive --help")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="olivine-cli-bench-") as scratch:
        home = olivine_home if olivine_home and (olivine_home / "jobs.db").is_file() else None
        env = bench_env({"OLIVINE_HOME": str(home or Path(scratch) / "olivine-home")})
        if home is None:
            make_job(Path(scratch), env)
        active: dict[str, list[str]] = {}
        for label, argv in cmds.items():
            if not Path(argv[0]).exists():
                results[label] = {"skipped": f"{argv[0]} not found"}
                continue
            first = run_timed(argv, cwd=Path(scratch), env=env)  # also warms the page cache
            if first.returncode != 0:
                results[label] = {"skipped": f"exit code {first.returncode}"}
                continue
            active[label] = argv
            results[label] = {"samples_s": []}
        for _ in range(runs):
            for label, argv in active.items():
                timed = run_timed(argv, cwd=Path(scratch), env=env)
                results[label]["samples_s"].append(round(timed.wall_s, 4))
    for data in results.values():
        if data.get("samples_s"):
            data["median_s"] = round(median(data["samples_s"]), 4)
    ours = results.get("olivine --help", {}).get("median_s")
    theirs = results.get("olive --help", {}).get("median_s")
    home = str(olivine_home) if olivine_home else None
    return {"runs": runs, "olivine_home": home, "commands": results, "help_ratio": ratio(ours, theirs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--olivine-home", type=Path, help="OLIVINE_HOME for `olivine list`/`status`")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure_cli(args.runs, olivine_home=args.olivine_home)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
