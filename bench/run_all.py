"""Run every benchmark (Olivine vs Olive vs plain onnxruntime) and regenerate ``BENCHMARKS.md``.

Usage::

    .venv/bin/python bench/run_all.py                 # everything (~10 min on 2 cores)
    .venv/bin/python bench/run_all.py --only latency  # a subset: e2e, latency, cli, export, submit
    .venv/bin/python bench/run_all.py --quick         # fewer runs, for development
    .venv/bin/python bench/run_all.py --render bench/results/<timestamp>.json   # only rewrite the doc

Writes ``bench/results/<timestamp>.json`` (machine, versions, load averages, every measurement) and
rewrites ``BENCHMARKS.md`` at the repo root. A subset run fills the other stages from the newest full
(non-quick) results that have them, and says so in the doc. ``--quick`` results are written with a
``quick-`` prefix and only printed, unless ``--doc`` is given. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report
from common import (
    BENCH,
    BENCH_ENV,
    DOC,
    EXAMPLE,
    MAIN_PYTHON,
    OLIVE_PYTHON,
    RESULTS,
    WORK,
    bench_env,
    library_versions,
    load_average,
    machine_info,
    write_doc,
)

STAGES = ("e2e", "latency", "cli", "export", "submit")
KEEP_WORK_DIRS = 2


def _stage(results: dict[str, Any], name: str, func: Any, *args: Any, **kwargs: Any) -> None:
    """Run one stage, recording the load average around it; a failing stage is recorded, not fatal."""
    print(f"== {name}", flush=True)
    before = load_average()
    start = time.perf_counter()
    try:
        results[name] = func(*args, **kwargs)
        if results[name] is None:  # nothing to run (an optional benchmark that does not exist yet)
            return
    except Exception as exc:
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"   {name} failed: {exc}", file=sys.stderr)
    results.setdefault("load", []).append(
        {
            "stage": name,
            "before": before,
            "after": load_average(),
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


def stage_e2e(work: Path, rounds: int) -> dict[str, Any]:
    from e2e import measure_e2e

    return measure_e2e(work, rounds=rounds)


def latest_e2e_outputs() -> dict[str, Any] | None:
    """The e2e stage of the newest results JSON whose work folders still exist (for ``--only latency``)."""
    for path in sorted(RESULTS.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = json.loads(path.read_text(encoding="utf-8"))
        tools = (data.get("e2e") or {}).get("tools") or {}
        if all(Path(tools.get(t, {}).get("workdir", "/nonexistent")).is_dir() for t in ("olivine", "olive")):
            return data["e2e"]
    return None


def latency_models(e2e: dict[str, Any]) -> dict[str, str]:
    """Label -> ONNX file for ``model_latency.py``, from the e2e stage's outputs."""
    ours = e2e["tools"]["olivine"]["outputs"]
    theirs = e2e["tools"]["olive"]["outputs"]
    return {
        report.FP32: ours["models"]["onnxconversion"],
        report.FP32_OPT: ours["models"]["orttransformersoptimization"],
        report.OLIVE_INT8: theirs.get("best_model") or theirs["models"]["onnxdynamicquantization"],
        report.BEST: ours["best_model"],
    }


def stage_latency(e2e: dict[str, Any] | None, out: Path, quick: bool) -> dict[str, Any]:
    if e2e is None:
        raise RuntimeError("no e2e outputs to measure: run the e2e stage first (or without --only)")
    models = latency_models(e2e)
    work = Path(e2e["tools"]["olivine"]["workdir"])
    command = [str(MAIN_PYTHON), str(BENCH / "model_latency.py")]
    for label, path in models.items():
        command += ["--model", f"{label}={path}"]
    command += ["--torch", str(EXAMPLE / "model"), "--config", str(work / "config.json")]
    command += (
        ["--runs", "20", "--rounds", "2", "--warmup", "3"] if quick else ["--runs", "100", "--rounds", "5"]
    )
    command += ["--json", str(out)]
    done = subprocess.run(command, env=bench_env(), check=False, text=True, capture_output=True)
    print(done.stdout, end="")
    if done.returncode != 0:
        raise RuntimeError(f"model_latency.py failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def stage_cli(e2e: dict[str, Any] | None, quick: bool) -> dict[str, Any]:
    from cli_startup import measure_cli

    # `olivine list`/`status` read the e2e run's job store (two jobs), not this user's.
    work = (((e2e or {}).get("tools") or {}).get("olivine") or {}).get("workdir")
    home = Path(work) / "olivine-home" if work and (Path(work) / "olivine-home").is_dir() else None
    return measure_cli(3 if quick else 10, olivine_home=home)


_EXPORT_PATTERNS = {
    # Cold files: the exporter hashes every byte (older outputs had no "(cold files)" label).
    "copy_mbs": r"shutil\.copy(?: \(cold files\))?:\s+([\d.]+) MB/s",
    "exporter_mbs": r"exporter(?: \(cold files\))?:\s+([\d.]+) MB/s",
    "ratio": r"ratio exporter/copy(?:, cold files[^:]*)?:\s+([\d.]+)",
    # The engine's cache: sha256 recorded at commit, so the export is a plain copy.
    "cache_copy_mbs": r"shutil\.copy \(engine cache\):\s+([\d.]+) MB/s",
    "cache_exporter_mbs": r"exporter \(engine cache\):\s+([\d.]+) MB/s",
    "cache_ratio": r"ratio exporter/copy, engine cache[^:]*:\s+([\d.]+)",
    "commit_hash_s": r"commit_run hashing[^:]*:\s+([\d.]+) s",
    # A real workflow's cache (the end-to-end stage's Olivine run), when it was given.
    "real_copy_mbs": r"shutil\.copy \(workflow cache\):\s+([\d.]+) MB/s",
    "real_exporter_mbs": r"exporter \(workflow cache\):\s+([\d.]+) MB/s",
    "real_ratio": r"ratio exporter/copy, workflow cache[^:]*:\s+([\d.]+)",
}


def parse_export_output(text: str) -> dict[str, float]:
    """The figures ``export_throughput.py`` prints (it has no JSON output yet)."""
    found = {}
    for key, pattern in _EXPORT_PATTERNS.items():
        match = re.search(pattern, text)
        if match:
            found[key] = float(match.group(1))
    return found


def stage_export(quick: bool, e2e: dict[str, Any] | None = None) -> dict[str, Any]:
    script = BENCH / "export_throughput.py"
    if not script.is_file():
        raise RuntimeError("bench/export_throughput.py is missing")
    args = ["--mb", "50", "--rounds", "1"] if quick else ["--mb", "200", "--rounds", "5"]
    # The end-to-end stage's Olivine cache: what exporting a real workflow costs.
    work = (((e2e or {}).get("tools") or {}).get("olivine") or {}).get("workdir")
    caches = sorted(Path(work).glob(".olivine-cache/*/runs")) if work else []
    if caches:
        args += ["--cache", str(caches[0].parent)]
    done = subprocess.run([str(MAIN_PYTHON), str(script), *args], capture_output=True, text=True, check=False)
    print(done.stdout, end="")
    if done.returncode != 0:
        raise RuntimeError(f"export_throughput.py failed:\n{done.stderr[-2000:]}")
    return {"args": args, **parse_export_output(done.stdout), "output": done.stdout.strip().splitlines()}


def stage_submit(out: Path) -> dict[str, Any] | None:
    """The submit-latency benchmark, if it exists (``bench/submit_latency.py``); else ``None``."""
    script = BENCH / "submit_latency.py"
    if not script.is_file():
        return None
    done = subprocess.run(
        [str(MAIN_PYTHON), str(script), "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env=bench_env(),
    )
    print(done.stdout, end="")
    if done.returncode != 0:
        raise RuntimeError(f"submit_latency.py failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    result.setdefault("output", done.stdout.strip().splitlines())
    return result


def merge_previous(results: dict[str, Any], stages: list[str]) -> None:
    """Fill stages not run now from the newest full results that have them (recorded in ``merged_from``)."""
    merged = []
    for stage in STAGES:
        if stage in stages:
            continue
        for path in sorted(RESULTS.glob("[0-9]*.json"), reverse=True):
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get(stage) and "error" not in data[stage]:
                results[stage] = data[stage]
                loads = [
                    dict(x, stage=f"{stage} ({path.stem})")
                    for x in data.get("load", [])
                    if x["stage"] == stage
                ]
                results.setdefault("load", []).extend(loads)
                if stage == "e2e" and "olive_env" in data:
                    results.setdefault("olive_env", data["olive_env"])
                merged.append(f"{stage} from {path.stem}")
                break
    if merged:
        results["merged_from"] = ", ".join(merged)


def prune_work_dirs(keep: int = KEEP_WORK_DIRS) -> None:
    """Model copies and caches are ~1 GB per run: keep only the newest ``keep`` work folders."""
    if not WORK.is_dir():
        return
    folders = sorted((p for p in WORK.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in folders[: max(len(folders) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)


def commands(timestamp: str) -> dict[str, str]:
    """The commands behind each stage, as a person would type them from the repo root."""
    env = " ".join(f"{k}={v}" for k, v in BENCH_ENV.items())
    return {
        "everything": ".venv/bin/python bench/run_all.py",
        "Olive venv": ".venv/bin/python bench/olive_env.py",
        "Olivine, in its e2e work folder (a copy of examples/minilm; REPO = this checkout; "
        "config.equivalent.json = config.json evaluating what Olive evaluates)": f"{env} "
        "OLIVINE_HOME=$PWD/olivine-home $REPO/.venv/bin/olivine run --config config.equivalent.json --local",
        "Olive, in its e2e work folder": "$REPO/.venv/bin/python $REPO/bench/olive_config.py config.json "
        f"--work . && {env} $REPO/bench/.olive-venv/bin/python $REPO/bench/olive_workflow.py "
        "olive_config.json",
        "latency": f".venv/bin/python bench/model_latency.py --model LABEL=FILE.onnx ... --torch "
        f"examples/minilm/model --json bench/results/{timestamp}-latency.json",
        "cli": ".venv/bin/python bench/cli_startup.py --runs 10",
        "export": ".venv/bin/python bench/export_throughput.py --mb 200 --rounds 5 "
        "--cache <e2e Olivine work folder>/.olivine-cache/minilm",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STAGE",
        help=f"run only these stages (repeat or comma-separate): {', '.join(STAGES)}",
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs; results not written to the doc")
    parser.add_argument("--doc", action="store_true", help="with --quick: write BENCHMARKS.md anyway")
    parser.add_argument("--e2e-rounds", type=int, help="end-to-end rounds (default 2; 1 with --quick)")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON", help="only re-render the doc")
    args = parser.parse_args(argv)
    stages = [s for item in args.only for s in item.split(",") if s] or list(STAGES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    args.stages = stages
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows in logs
    if args.render:
        write_doc(report.render(json.loads(args.render.read_text(encoding="utf-8"))))
        print(f"wrote {DOC}")
        return 0
    started = datetime.now(timezone.utc)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    name = f"quick-{stamp}" if args.quick else stamp
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "schema": 1,
        "timestamp": name,
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "stages": args.stages,
        "argv": sys.argv[1:],
        "machine": machine_info(),
        "commands": commands(name),
    }
    if {"e2e", "cli"} & set(args.stages):
        from olive_env import ensure_olive_env

        results["olive_env"] = ensure_olive_env()
    results["versions"] = {"olivine": library_versions(MAIN_PYTHON), "olive": library_versions(OLIVE_PYTHON)}
    if "e2e" in args.stages:
        prune_work_dirs(KEEP_WORK_DIRS - 1)
        rounds = args.e2e_rounds or (1 if args.quick else 2)
        _stage(results, "e2e", stage_e2e, WORK / name, rounds)
    e2e = results.get("e2e")
    if not e2e or "error" in e2e:
        e2e = latest_e2e_outputs()
    if "latency" in args.stages:
        _stage(results, "latency", stage_latency, e2e, RESULTS / f"{name}-latency.json", args.quick)
    if "cli" in args.stages:
        _stage(results, "cli", stage_cli, e2e, args.quick)
    if "export" in args.stages:
        _stage(results, "export", stage_export, args.quick, e2e)
    if "submit" in args.stages:
        _stage(results, "submit", stage_submit, RESULTS / f"{name}-submit.json")
    if not args.quick:
        merge_previous(results, args.stages)
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["duration_s"] = round((datetime.now(timezone.utc) - started).total_seconds(), 1)
    results["machine"]["load_average_end"] = load_average()
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    text = report.render(results)
    if args.quick and not args.doc:
        print(text)
    else:
        write_doc(text)
        print(f"wrote {DOC}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
