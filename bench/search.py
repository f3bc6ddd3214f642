"""Search: the same search space in Olivine and in Olive; wall time of the whole search and the best model
each finds; and the example's goal (a model at <= 0.55x the fp32 ONNX model's latency at 1 thread with
fidelity >= 0.99).

Usage::

    .venv/bin/python bench/search.py [--tools olivine,olive] [--pairs 2] [--olivine-workers 2] [--runs 200]
        [--rounds 10] [--doc]
    .venv/bin/python bench/search.py --render bench/results/search-<timestamp>.json [--doc]

Each tool gets fresh copies of ``examples/minilm`` and ``examples/minilm-search`` (files copied, the
model folder linked, so caches, outputs and the user_script's reference embeddings start empty), then
runs the search of ``examples/minilm-search/config.json``: Olivine with ``olivine run --local`` (in this
process, no job, as Olive runs), Olive with the config ``bench/olive_config.py`` translates (its own venv,
``bench/olive_workflow.py``). Both with ``plot_pareto_frontier`` off (Olive draws only with plotly, not
installed there; Olivine still writes report.html). Timed one after the other, never overlapping
anything else this script does; the load average before and after each is recorded. Before the first
timed run each tool's interpreter imports its libraries once, untimed (``--no-warm-up`` skips it): after
an idle spell the first run read torch and onnxruntime from a cold page cache and took 19 s longer than
the same tool's second run.

Then ``bench/model_latency.py`` times, in interleaved rounds at 1 thread, the fp32 ONNX export and the
fused fp32 graph (Olivine's cache), Olivine's best model and Olive's best model, and computes each one's
fidelity with the example's own metric. ``--doc`` rewrites the search section of ``BENCHMARKS.md``
(block ``search``; ``run_all.py``'s re-render keeps it).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH,
    EXAMPLE,
    MAIN_PYTHON,
    MAIN_VENV,
    OLIVE_PYTHON,
    REPO,
    RESULTS,
    WORK,
    bench_env,
    load_average,
    machine_info,
    prepare_workdir,
    run_timed,
    tail,
    write_doc_block,
)
from olive_config import write_olive_config

from e2e import model_file

SEARCH_EXAMPLE = REPO / "examples" / "minilm-search"
OLIVINE = MAIN_VENV / "bin" / "olivine"
TOOLS = ("olivine", "olive")
#: With ``--olivine-workers``, ``--tools olivine,olivine-serial,olive`` also runs Olivine serially in the
#: same interleaved rounds: the pool's speed-up and its best model against the serial search's.
SERIAL = "olivine-serial"
FP32_EXPORT, FP32_FUSED = "fp32 ONNX (export)", "fp32 ONNX (fused)"
BEST = {"olivine": "Olivine best", "olive": "Olive best", SERIAL: "Olivine serial best"}
FIDELITY_GOAL = 0.99
LATENCY_GOAL = 0.55  # x the fp32 ONNX model at 1 thread
WALL_GOAL = 0.5  # x Olive's search wall time


def prepare(run_dir: Path, tool: str, repeat: int = 1, workers: int = 0) -> Path:
    """Fresh copies of both examples under ``run_dir/tool`` (``tool-<repeat>`` after the first run); the
    search config's path (no plot). ``workers``: Olivine's local worker pool (``search_workers`` on the
    ``engine.host`` system; Olive's translation drops the key)."""
    root = run_dir / (tool if repeat == 1 else f"{tool}-{repeat}")
    prepare_workdir(EXAMPLE, root / "minilm")
    work = prepare_workdir(SEARCH_EXAMPLE, root / "minilm-search")
    config = json.loads((work / "config.json").read_text(encoding="utf-8"))
    config.setdefault("engine", {})["plot_pareto_frontier"] = False
    if workers and tool == "olivine":
        config["systems"][config["engine"]["host"]]["search_workers"] = workers
    if tool != "olivine":  # Olive (no such key) and the serial run: whatever the example's config says
        for system in config.get("systems", {}).values():
            system.pop("search_workers", None)
    path = work / "config.bench.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def host_workers(config: Path) -> int:
    """The ``search_workers`` of the config's engine.host system (0: a serial search)."""
    data = json.loads(config.read_text(encoding="utf-8"))
    host = data.get("engine", {}).get("host")
    system = data.get("systems", {}).get(host, {}) if isinstance(host, str) else host or {}
    return int(system.get("search_workers") or 0)


def command_for(tool: str, config: Path) -> list[str]:
    if tool in ("olivine", SERIAL):
        return [str(OLIVINE), "run", "--config", str(config), "--local"]
    olive_cfg = write_olive_config(config, config.parent)
    return [str(OLIVE_PYTHON), str(BENCH / "olive_workflow.py"), str(olive_cfg)]


def output_dir(tool: str, config: Path) -> Path:
    if tool == "olive":
        return config.parent / "olive-output"
    engine = json.loads(config.read_text(encoding="utf-8"))["engine"]
    return config.parent / engine["output_dir"]


def read_output(tool: str, config: Path) -> dict[str, Any]:
    """The best model's file and metrics, and how many candidates the tool evaluated."""
    out = output_dir(tool, config)
    result: dict[str, Any] = {"output_dir": str(out)}
    if (out / "metrics.json").is_file():
        result["metrics"] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    if (out / "model_config.json").is_file():
        result["best_model"] = model_file(out / "model_config.json")
    footprint_path = out / "footprint.json"
    if footprint_path.is_file():
        footprint = json.loads(footprint_path.read_text(encoding="utf-8"))
        result["candidates"] = count_candidates(footprint)
        if tool in ("olivine", SERIAL):
            result["fp32"] = fp32_models(footprint, config)
            result["best_model_id"] = footprint.get("best")
    return result


def count_candidates(footprint: dict[str, Any]) -> dict[str, int]:
    """Candidates by status (Olivine's footprint/2) or evaluated models (Olive's node mapping)."""
    if footprint.get("schema") == "olivine.footprint/2":
        counts: dict[str, int] = {}
        for record in footprint.get("candidates", []):
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        return counts
    nodes = footprint.get("nodes", footprint)
    evaluated = sum(1 for n in nodes.values() if isinstance(n, dict) and n.get("metrics"))
    return {"evaluated (models with metrics, input included)": evaluated}


def fp32_models(footprint: dict[str, Any], config: Path) -> dict[str, str]:
    """The fp32 ONNX export and the fused fp32 graph, from the chain of the first evaluated candidate."""
    engine = json.loads(config.read_text(encoding="utf-8"))["engine"]
    runs = config.parent / engine["cache_dir"] / footprint["workflow_id"] / "runs"
    labels = {"OnnxConversion": FP32_EXPORT, "OrtTransformersOptimization": FP32_FUSED}
    found: dict[str, str] = {}
    for record in footprint.get("candidates", []):
        for step in record.get("chain", []):
            label = labels.get(step.get("type"))
            if label and step.get("run_key") and label not in found:
                onnx = sorted((runs / step["run_key"] / "model").glob("*.onnx"))
                if onnx:
                    found[label] = str(onnx[0])
    return found


def run_order(tools: tuple[str, ...], pairs: int) -> list[str]:
    """The tools' runs, alternating so that a drift of the machine's load hits both alike: A B, then
    B A, A B, ... (``pairs`` runs of each tool)."""
    order: list[str] = []
    for i in range(pairs):
        order += list(tools) if i % 2 == 0 else list(reversed(tools))
    return order


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: What each interpreter imports in the untimed warm-up before the first timed run.
WARM_UP = {
    "olivine": (
        MAIN_PYTHON,
        "import torch, transformers, onnx, onnxruntime, onnxruntime.quantization, "
        "onnxruntime.transformers.optimizer, olivine.cli",
    ),
    "olive": (
        OLIVE_PYTHON,
        "import torch, transformers, onnx, onnxruntime, onnxruntime.quantization, "
        "onnxruntime.transformers.optimizer, olive.workflows",
    ),
}


def warm_up(tools: tuple[str, ...]) -> dict[str, float]:
    """Import each tool's libraries once, untimed, so that no timed run pays for reading them from a cold
    page cache (after an idle spell the first run was 19 s slower than the second, whichever tool went
    first). Returns the seconds each warm-up took."""
    took: dict[str, float] = {}
    for tool in dict.fromkeys("olive" if t == "olive" else "olivine" for t in tools):
        python, code = WARM_UP[tool]
        started = time.monotonic()
        proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=bench_env({}))
        took[tool] = round(time.monotonic() - started, 1)
        last = " | ".join(proc.stderr.strip().splitlines()[-3:])
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {last}"
        print(f"search: warm-up of {tool}'s libraries (untimed): {took[tool]:.1f} s, {status}")
    return took


def run_search(run_dir: Path, tools: tuple[str, ...], pairs: int = 1, workers: int = 0) -> dict[str, Any]:
    """Each tool's search ``pairs`` times (:func:`run_order`); the record of a tool is its first run's
    (outputs, best model) with every run's wall and CPU time and their medians. ``workers``: Olivine's
    local worker pool (0: serial)."""
    results: dict[str, Any] = {}
    count: dict[str, int] = {}
    for tool in run_order(tools, pairs):
        count[tool] = count.get(tool, 0) + 1
        config = prepare(run_dir, tool, count[tool], workers)
        command = command_for(tool, config)
        env = bench_env({"OLIVINE_HOME": str(config.parent.parent / "olivine-home")})
        cpu_before = _children_cpu_s()
        timed = run_timed(
            command, cwd=config.parent, env=env, log=config.parent / "search.log", timeout_s=7200
        )
        cpu_s = round(_children_cpu_s() - cpu_before, 3)
        run = {**timed.to_json(), "cpu_s": cpu_s, "config": str(config)}
        print(
            f"search: {tool} run {count[tool]}: {timed.wall_s:.1f} s wall, {cpu_s:.1f} s CPU "
            f"(exit {timed.returncode}), load {timed.load_before}"
        )
        if tool not in results:
            record: dict[str, Any] = dict(run)
            if tool in ("olivine", SERIAL):
                record["search_workers"] = host_workers(config)
            if timed.returncode != 0:
                record["error_tail"] = tail(timed.log, 30)
            record.update(read_output(tool, config))
            record["runs"] = []
            results[tool] = record
        results[tool]["runs"].append(run)
        if timed.returncode != 0:
            results[tool]["returncode"] = timed.returncode
    for record in results.values():
        record["wall_s"] = statistics.median(r["wall_s"] for r in record["runs"])
        record["cpu_s"] = statistics.median(r["cpu_s"] for r in record["runs"])
    return results


def measure_models(search: dict[str, Any], runs: int, rounds: int, out: Path) -> dict[str, Any] | None:
    models: dict[str, str] = dict(search.get("olivine", {}).get("fp32", {}))
    for tool, label in BEST.items():
        if search.get(tool, {}).get("best_model"):
            models[label] = search[tool]["best_model"]
    if not models:
        return None
    config = Path(
        search.get("olivine", search.get("olive", {})).get("config", SEARCH_EXAMPLE / "config.json")
    )
    command = [str(MAIN_PYTHON), str(BENCH / "model_latency.py"), "--threads", "1"]
    command += ["--runs", str(runs), "--rounds", str(rounds), "--config", str(config), "--json", str(out)]
    for label, path in models.items():
        command += ["--model", f"{label}={path}"]
    print("latency:", " ".join(command))
    done = subprocess.run(command, env=bench_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"model_latency.py failed:\n{done.stderr[-2000:]}")
    measured: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    measured["command"] = " ".join(command)
    return measured


# ---- pure: judging and rendering (unit-tested in tests/unit/test_bench_search.py) ----


def latency_ms(latency: dict[str, Any] | None, label: str) -> float | None:
    model = ((latency or {}).get("models") or {}).get(label) or {}
    stats = (model.get("latency") or {}).get("1")
    return None if stats is None else float(stats["median_ms"])


def spread_ms(latency: dict[str, Any] | None, label: str) -> float:
    model = ((latency or {}).get("models") or {}).get(label) or {}
    stats = (model.get("latency") or {}).get("1") or {}
    return float(stats.get("round_spread_ms") or 0.0)


def fidelity(latency: dict[str, Any] | None, label: str) -> float | None:
    model = ((latency or {}).get("models") or {}).get(label) or {}
    value = (model.get("fidelity") or {}).get("mean")
    return None if value is None else float(value)


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The three goal rows: search wall time, best model vs Olive's, the example's latency goal."""
    search, latency = result.get("search") or {}, result.get("latency")
    ours, theirs = search.get("olivine") or {}, search.get("olive") or {}
    rows: list[dict[str, Any]] = []
    ok = ours.get("returncode") == 0 and theirs.get("returncode") == 0
    wall = ours["wall_s"] / theirs["wall_s"] if ok and theirs.get("wall_s") else None
    rows.append(
        {
            "what": "Search wall time (whole search, fresh caches)",
            "olivine": f"{ours['wall_s']:.1f} s" if ours.get("wall_s") is not None else "-",
            "olive": f"{theirs['wall_s']:.1f} s" if theirs.get("wall_s") is not None else "-",
            "ratio": f"{wall:.2f}x" if wall is not None else "-",
            "goal": f"<= {WALL_GOAL}x Olive",
            "status": "-" if wall is None else ("met" if wall <= WALL_GOAL else "not met"),
        }
    )
    if ours.get("cpu_s") is not None and theirs.get("cpu_s"):
        cpu = ours["cpu_s"] / theirs["cpu_s"]
        rows.append(
            {
                "what": "Search CPU time (user + sys of the tool's processes; less sensitive to the load)",
                "olivine": f"{ours['cpu_s']:.1f} s",
                "olive": f"{theirs['cpu_s']:.1f} s",
                "ratio": f"{cpu:.2f}x",
                "goal": "-",
                "status": "-",
            }
        )
    rows += _serial_rows(search, latency)
    a, b = latency_ms(latency, BEST["olivine"]), latency_ms(latency, BEST["olive"])
    fa, fb = fidelity(latency, BEST["olivine"]), fidelity(latency, BEST["olive"])
    if a is not None and b is not None and fa is not None and fb is not None:
        noise = max(spread_ms(latency, BEST["olivine"]), spread_ms(latency, BEST["olive"]))
        equal_or_better = fa >= FIDELITY_GOAL and (fb < FIDELITY_GOAL or a <= b + noise)
        status = "met" if equal_or_better else "not met"
        ratio = f"{a / b:.2f}x"
    else:
        status, ratio = "-", "-"
    rows.append(
        {
            "what": "Best model found: latency at 1 thread, fidelity (measured here, interleaved rounds)",
            "olivine": _model_cell(a, fa),
            "olive": _model_cell(b, fb),
            "ratio": ratio,
            "goal": "equal or better (fidelity >= 0.99, latency not slower beyond the round spread)",
            "status": status,
        }
    )
    base = latency_ms(latency, FP32_EXPORT)
    fused = latency_ms(latency, FP32_FUSED)
    best = a
    ratio_base = best / base if best is not None and base else None
    rows.append(
        {
            "what": "Example goal: best model vs fp32 ONNX at 1 thread "
            f"(export {_ms(base)}, fused {_ms(fused)})",
            "olivine": _model_cell(best, fa),
            "olive": "-",
            "ratio": f"{ratio_base:.2f}x" if ratio_base is not None else "-",
            "goal": f"<= {LATENCY_GOAL}x fp32 ONNX, fidelity >= {FIDELITY_GOAL}",
            "status": "-"
            if ratio_base is None or fa is None
            else ("met" if ratio_base <= LATENCY_GOAL and fa >= FIDELITY_GOAL else "not met"),
        }
    )
    return rows


def _serial_rows(search: dict[str, Any], latency: dict[str, Any] | None) -> list[dict[str, Any]]:
    """With Olivine's pool and a serial Olivine run in the same rounds: the pool's wall time against the
    serial search's, and the two best models (the pool must find the serial search's best)."""
    ours, serial = search.get("olivine") or {}, search.get(SERIAL) or {}
    if not ours.get("search_workers") or not serial.get("wall_s") or not ours.get("wall_s"):
        return []
    rows = [
        {
            "what": f"Olivine in a local pool of {ours['search_workers']} vs Olivine serial "
            f"({serial['wall_s']:.1f} s wall, {serial.get('cpu_s', 0):.1f} s CPU): wall time",
            "olivine": f"{ours['wall_s']:.1f} s",
            "olive": "-",
            "ratio": f"{ours['wall_s'] / serial['wall_s']:.2f}x",
            "goal": "-",
            "status": "-",
        }
    ]
    a, b = latency_ms(latency, BEST["olivine"]), latency_ms(latency, BEST[SERIAL])
    pool_cell = f"{_model_cell(a, fidelity(latency, BEST['olivine']))}, {ours.get('best_model_id') or '-'}"
    same = ours.get("best_model_id") is not None and ours.get("best_model_id") == serial.get("best_model_id")
    rows.append(
        {
            "what": "Olivine pool's best model vs Olivine serial's "
            f"({_model_cell(b, fidelity(latency, BEST[SERIAL]))}, {serial.get('best_model_id') or '-'})",
            "olivine": pool_cell,
            "olive": "-",
            "ratio": f"{a / b:.2f}x" if a is not None and b else "-",
            "goal": "the same model",
            "status": "same" if same else "different",
        }
    )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _model_cell(ms: float | None, fid: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms, fidelity {fid:.4f}" if fid is not None else f"{ms:.1f} ms"


def render_section(result: dict[str, Any]) -> str:
    """The search section of BENCHMARKS.md (block ``search``, see ``common.write_doc_block``)."""
    lines = ["## Search (`bench/search.py`)", ""]
    lines.append(
        f"Run {result.get('timestamp')}; raw data: `bench/results/search-{result.get('timestamp')}.json`. "
        "Space: `examples/minilm-search/config.json` (OnnxConversion -> OrtTransformersOptimization -> "
        "quantization alternatives: dynamic and static with SEARCHABLE_VALUES, fp16, int4 RTN; fidelity goal "
        "max-degradation 0.01, "
        "latency at 1 thread). Olive runs the config `bench/olive_config.py` translates, in its own venv."
    )
    lines += [
        "",
        "| what | Olivine | Olive | ratio | goal | status |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in goals(result):
        lines.append(
            f"| {row['what']} | {row['olivine']} | {row['olive']} | {row['ratio']} | {row['goal']} | "
            f"{row['status']} |"
        )
    search = result.get("search") or {}
    lines += [
        "",
        "| tool | exit | wall (median) | runs: wall / CPU, load before -> after | candidates "
        "| reported best metrics |",
    ]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for tool in (*TOOLS, SERIAL):
        rec = search.get(tool)
        if not rec:
            continue
        metrics = rec.get("metrics") or {}
        shown = ", ".join(
            f"{k}={v.get('value') if isinstance(v, dict) else v:.4g}"
            for k, v in metrics.items()
            if isinstance(v, dict) and isinstance(v.get("value"), (int, float))
        )
        counts = ", ".join(f"{n} {k}" for k, n in (rec.get("candidates") or {}).items())
        runs = rec.get("runs") or [rec]
        load = "; ".join(
            f"{r.get('wall_s', 0):.1f} s / "
            + (f"{r['cpu_s']:.1f} s" if r.get("cpu_s") is not None else "-")
            + f", {_load(r.get('load_before'))} -> {_load(r.get('load_after'))}"
            for r in runs
        )
        lines.append(
            f"| {tool} | {rec.get('returncode')} | {rec.get('wall_s', 0):.1f} s | {load} | {counts or '-'} | "
            f"{shown or '-'} |"
        )
    latency = result.get("latency") or {}
    if latency.get("models"):
        lines += ["", "| model (1 thread) | median of round medians | round spread | fidelity (mean, min) |"]
        lines.append("| --- | --- | --- | --- |")
        for label, model in latency["models"].items():
            stats = (model.get("latency") or {}).get("1") or {}
            fid = model.get("fidelity") or {}
            lines.append(
                f"| {label} | {stats.get('median_ms', '-')} ms | {stats.get('round_spread_ms', '-')} ms | "
                f"{fid.get('mean', '-')}, {fid.get('min', '-')} |"
            )
        settings = latency.get("settings") or {}
        lines.append("")
        lines.append(
            f"Latency: batch {settings.get('batch')}, sequence {settings.get('sequence')}, "
            f"{settings.get('runs')} runs in {settings.get('rounds')} interleaved rounds per model."
        )
    warmed = result.get("warm_up_s")
    if warmed:
        lines += [
            "",
            "Before the first timed run each tool's interpreter imported its libraries once, untimed ("
            + ", ".join(f"{tool} {s:.1f} s" for tool, s in warmed.items())
            + "), so that no timed run reads them from a cold page cache.",
        ]
    machine = result.get("machine") or {}
    lines += [
        "",
        f"Machine: {machine.get('cpu', {}).get('model', '-')}; flags: "
        f"{', '.join(machine.get('cpu', {}).get('flags', [])) or '-'}.",
        "",
    ]
    pairs = result.get("pairs", 1)
    flag_workers = result.get("olivine_workers", 0)
    workers = flag_workers or (search.get("olivine") or {}).get("search_workers", 0)
    if workers:
        lines += [
            f"Olivine ran its search in a local worker pool of {workers} processes "
            f"(`search_workers: {workers}` on the engine.host LocalSystem: pass chains and untimed metrics "
            "in parallel, one exclusive CPU each; then every timed metric in the engine's process, in "
            "proposal order, with the workers idle); "
            "Olive ran serially (it has no local parallel search).",
            "",
        ]
    flags = (f" --pairs {pairs}" if pairs != 1 else "") + (
        f" --olivine-workers {flag_workers}" if flag_workers else ""
    )
    if SERIAL in search:
        flags += f" --tools olivine,{SERIAL},olive"
    lines += [f"Command: `.venv/bin/python bench/search.py --doc{flags}`"]
    return "\n".join(lines) + "\n"


def _load(values: Any) -> str:
    return "/".join(f"{v:.1f}" for v in values) if isinstance(values, list) and values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--runs", type=int, default=200, help="timed runs per model (latency)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (latency)")
    parser.add_argument(
        "--pairs", type=int, default=1, help="runs of each tool, alternating (A B B A ...); medians reported"
    )
    parser.add_argument(
        "--olivine-workers",
        type=int,
        default=0,
        help="run Olivine's search in a local worker pool of this many processes (search_workers on the "
        "engine.host system; 0: as the example's config says)",
    )
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="skip the untimed import of each tool's libraries before the first timed run",
    )
    parser.add_argument("--render", type=Path, help="render this results JSON only (no measuring)")
    parser.add_argument(
        "--reuse", type=Path, help="take the tools not in --tools from this results JSON (their work folders)"
    )
    parser.add_argument("--doc", action="store_true", help="rewrite the search section of BENCHMARKS.md")
    args = parser.parse_args()
    if args.render:
        result = json.loads(args.render.read_text(encoding="utf-8"))
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = WORK / f"search-{stamp}"
        result = {
            "timestamp": stamp,
            "machine": machine_info(),
            "load_start": load_average(),
            "pairs": args.pairs,
            "olivine_workers": args.olivine_workers,
        }
        tools = tuple(args.tools.split(","))
        reused = json.loads(args.reuse.read_text(encoding="utf-8"))["search"] if args.reuse else {}
        result["search"] = {k: v for k, v in reused.items() if k not in tools}
        if args.warm_up:
            result["warm_up_s"] = warm_up(tools)
        result["search"].update(run_search(run_dir, tools, args.pairs, args.olivine_workers))
        if reused:
            result["reused_from"] = str(args.reuse)
        result["latency"] = measure_models(result["search"], args.runs, args.rounds, run_dir / "latency.json")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"search-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    section = render_section(result)
    print(section)
    if args.doc:
        write_doc_block("search", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
