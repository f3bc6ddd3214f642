"""CLI start-up time: ``olivine --help`` vs ``olive --help``, plus ``olivine status`` / ``olivine list``.

Usage: ``.venv/bin/python bench/cli_startup.py [--runs 10] [--json OUT]``

Every command runs ``--runs`` times, interleaved (one of each per round), wall time from process start
to exit; reported as medians. A command that does not exist in this Olivine (or exits non-zero on its
first try) is reported as skipped with its exit code. ``python -c pass`` in Olivine's venv is the floor.
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


def measure_cli(
    runs: int = 10, *, olivine_home: Path | None = None, include_olive: bool = True
) -> dict[str, Any]:
    """Median wall seconds of each command, and the ratio ``olivine --help`` / ``olive --help``.

    Commands run in a scratch directory with :data:`common.BENCH_ENV`. ``olivine list``/``status`` read
    the job store in ``olivine_home`` (``OLIVINE_HOME``; the e2e stage's has two jobs); without one they
    get an empty scratch home, where ``status`` has no job to show and is skipped.
    """
    cmds = commands()
    if not include_olive or not Path(OLIVE).exists():
        cmds.pop("olive --help")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="olivine-cli-bench-") as scratch:
        env = bench_env({"OLIVINE_HOME": str(olivine_home or Path(scratch) / "olivine-home")})
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
