"""Render ``BENCHMARKS.md`` from a results JSON written by ``run_all.py`` (pure: no measuring here).

Usage: ``python bench/report.py bench/results/<timestamp>.json [--out BENCHMARKS.md]``
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DOC, fmt_mb, fmt_ms, fmt_ratio, fmt_seconds, goal_status, median, ratio, write_doc
from e2e_breakdown import START_UP

#: Labels of the models ``run_all.py`` hands to ``model_latency.py``.
FP32 = "fp32 ONNX (Olivine OnnxConversion)"
FP32_OPT = "fp32 ONNX, transformer-optimized (Olivine)"
OLIVE_INT8 = "Olive int8 (OnnxDynamicQuantization)"
BEST = "Olivine best model"
TODO = "TODO"


@dataclass(frozen=True)
class GoalRow:
    what: str
    olivine: str
    olive: str
    ratio: str
    goal: str
    status: str


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _latency(results: dict[str, Any], label: str, threads: str) -> float | None:
    value = _get(results, "latency", "models", label, "latency", threads, "median_ms")
    return float(value) if value is not None else None


def _spread(results: dict[str, Any], label: str, threads: str) -> float:
    value = _get(results, "latency", "models", label, "latency", threads, "round_spread_ms")
    return float(value) if value is not None else 0.0


def latency_status(best: float | None, base: float | None, noise_ms: float) -> str:
    """``met`` when the best model is not slower than the baseline; ``within noise`` when it is slower
    by less than the spread of the round medians; else ``not met``."""
    if best is None or base is None:
        return "no data"
    if best <= base:
        return "met"
    return "within noise" if best - base <= noise_ms else "not met"


def goal_rows(results: dict[str, Any]) -> list[GoalRow]:
    """The headline table: each goal with Olivine's and Olive's figures, the ratio and whether it is met."""
    rows: list[GoalRow] = []
    tools = _get(results, "e2e", "tools") or {}
    for key, what, limit in (
        ("whole_s", "End-to-end run, fresh caches", 0.5),
        ("cached_s", "Cached re-run", 0.15),
    ):
        ours, theirs = _get(tools, "olivine", key), _get(tools, "olive", key)
        r = ratio(ours, theirs)
        rows.append(
            GoalRow(
                what,
                fmt_seconds(ours),
                fmt_seconds(theirs),
                fmt_ratio(r),
                f"<= {limit}x Olive",
                goal_status(r, limit),
            )
        )
    cli = _get(results, "cli", "commands") or {}
    ours, theirs = _get(cli, "olivine --help", "median_s"), _get(cli, "olive --help", "median_s")
    rows.append(
        GoalRow(
            "`--help` start-up",
            fmt_seconds(ours),
            fmt_seconds(theirs),
            fmt_ratio(ratio(ours, theirs)),
            "< 0.3 s",
            goal_status(ours, 0.3, inclusive=False),
        )
    )
    fid = _get(results, "latency", "models", BEST, "fidelity", "mean")
    olive_fid = _get(results, "latency", "models", OLIVE_INT8, "fidelity", "mean")
    rows.append(
        GoalRow(
            "Fidelity of the best model (mean cosine vs PyTorch fp32)",
            _fmt_fid(fid),
            _fmt_fid(olive_fid),
            "-",
            ">= 0.99",
            goal_status(fid, 0.99, higher_is_better=True),
        )
    )
    for threads in ("1", "2"):
        best, base = _latency(results, BEST, threads), _latency(results, FP32, threads)
        olive = _latency(results, OLIVE_INT8, threads)
        noise = max(_spread(results, BEST, threads), _spread(results, FP32, threads))
        rows.append(
            GoalRow(
                f"Best model latency, {threads} thread{'s' if threads != '1' else ''} (fp32 ONNX: "
                f"{fmt_ms(base)})",
                fmt_ms(best),
                fmt_ms(olive),
                fmt_ratio(ratio(best, base)),
                "<= fp32 ONNX",
                latency_status(best, base, noise),
            )
        )
    export = results.get("export") or {}
    # (row label, key prefix). The first two appear only when measured: the end-to-end stage's own cache
    # (three ~90 MB models, exported as the worker does) and the engine cache, whose sha256 was recorded
    # when runs were committed. Cold files (hashed at export) always have a row.
    for label, prefix in (
        ("the MiniLM workflow's cache", "real_"),
        ("engine cache (sha256 recorded at commit)", "cache_"),
        ("cold files (sha256 at export)", ""),
    ):
        if prefix and f"{prefix}ratio" not in export:
            continue
        r = export.get(f"{prefix}ratio")
        rows.append(
            GoalRow(
                f"Export throughput vs plain copy, {label}",
                _fmt_mbs(export.get(f"{prefix}exporter_mbs")),
                f"copy: {_fmt_mbs(export.get(f'{prefix}copy_mbs'))}",
                fmt_ratio(r),
                ">= 0.8x copy",
                goal_status(r, 0.8, higher_is_better=True),
            )
        )
    submit = results.get("submit") or {}
    rows.append(
        GoalRow(
            "Submit latency (detached host)",
            submit.get("summary", "-") if submit else TODO,
            "-",
            "-",
            submit.get("goal", "-") if submit else "-",
            submit.get("status", "measured") if submit else TODO + " (bench/submit_latency.py missing)",
        )
    )
    return rows


def _fmt_fid(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fmt_mbs(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB/s"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (cells with ``|`` escaped)."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def _e2e_section(results: dict[str, Any]) -> list[str]:
    tools = _get(results, "e2e", "tools") or {}
    if not tools:
        return []
    rows = []
    for name, data in tools.items():
        whole = ", ".join(fmt_seconds(x["wall_s"]) for x in data.get("whole", []))
        cached = ", ".join(fmt_seconds(x["wall_s"]) for x in data.get("cached", []))
        metrics = _get(data, "outputs", "metrics") or {}
        lat = _metric(metrics, "latency-avg")
        evaluated = _get(data, "outputs", "evaluated_models")
        rows.append(
            [
                name,
                "ok" if data.get("ok") else "FAILED",
                whole,
                cached,
                "-" if evaluated is None else str(evaluated),
                "-" if lat is None else f"{lat:.1f} ms",
                _fmt_fid(_metric(metrics, "fidelity-cosine")),
                fmt_mb(_int(_metric(metrics, "size-bytes"))),
                f"`{data.get('command', '')}`",
            ]
        )
    return [
        "## End-to-end runs",
        "",
        f"Rounds: {_get(results, 'e2e', 'rounds')}. Whole run = fresh copy of `examples/minilm` (empty "
        "cache, output, job store and fidelity reference); cached re-run = the same command again in "
        "the same folder. Wall time from process start to exit. The last columns are what each tool "
        "itself reported for its best model." + _evaluated_note(tools),
        "",
        table(
            [
                "tool",
                "status",
                "whole run",
                "cached re-run",
                "models evaluated",
                "reported latency-avg",
                "reported fidelity",
                "reported size",
                "command (in the work folder)",
            ],
            rows,
        ),
        "",
    ]


def _stages_section(results: dict[str, Any]) -> list[str]:
    """Median seconds per stage of the whole runs, from each tool's log (``bench/e2e_breakdown.py``)."""
    tools = _get(results, "e2e", "tools") or {}
    per_tool: dict[str, dict[str, float]] = {}
    order: list[str] = []
    for name, data in tools.items():
        runs = [w["stages"] for w in data.get("whole", []) if w.get("stages")]
        for run in runs:
            order += [k for k in run if k not in order]
        per_tool[name] = {k: median(r[k] for r in runs if k in r) for k in order if any(k in r for r in runs)}
    if not any(per_tool.values()):
        return []
    names = list(per_tool)
    rows = [[stage, *[fmt_seconds(per_tool[n].get(stage)) for n in names]] for stage in order]
    rows.append(["**whole run (wall)**", *[fmt_seconds(_get(tools, n, "whole_s")) for n in names]])
    inside = {n: sum(v for k, v in per_tool[n].items() if k != START_UP) for n in names if per_tool[n]}
    summary = ", ".join(f"{n} {fmt_seconds(v)}" for n, v in inside.items())
    return [
        "### Where the time goes",
        "",
        "Median of the whole runs' steps, as each tool logged them; passes by their name in the config. "
        "Start-up and exit is the process wall time outside the workflow's own span (Olive imports torch, "
        "transformers and onnxruntime there; Olivine imports them when the input model is evaluated).",
        "",
        table(["stage", *names], rows),
        "",
        f"Inside the workflow: {summary} (Olivine's includes importing torch and transformers, which Olive "
        "does at start-up). Both tools make the same library calls for these steps "
        "(`torch.onnx.export`, onnxruntime's transformer optimizer and quantizer, the same latency and "
        "fidelity evaluations), so most of the end-to-end difference is start-up, and a ratio of 0.5x would "
        "need those library steps to run about twice as fast.",
        "",
    ]


def _evaluated_note(tools: dict[str, Any]) -> str:
    """A sentence when the tools evaluated different numbers of models (the main cost of a whole run)."""
    ours = _get(tools, "olivine", "outputs", "evaluated_models")
    theirs = _get(tools, "olive", "outputs", "evaluated_models")
    if ours is None or theirs is None or ours == theirs:
        return ""
    return (
        f" Olivine evaluated {ours} models (the input model and every pass output, to pick the best); "
        f"Olive evaluated {theirs} (without a search strategy it evaluates the input and the final "
        "model only)."
    )


def _metric(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) else None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _fidelity_cell(label: str, fid: dict[str, float] | None) -> str:
    if label.startswith("PyTorch"):
        return "1 (the reference)"
    if not fid:
        return "-"
    worst = f" (min {fid['min']:.3f})" if "min" in fid else ""
    return f"{fid['mean']:.4f}{worst}"


def _latency_section(results: dict[str, Any]) -> list[str]:
    lat = results.get("latency") or {}
    if not lat.get("models"):
        return []
    s = lat.get("settings", {})
    rows = []
    for label, data in lat["models"].items():
        cells = [label, fmt_mb(data.get("bytes"))]
        for threads in ("1", "2"):
            st = _get(data, "latency", threads)
            cells.append(
                "-"
                if not st
                else f"{st['median_ms']:.1f} ms ({st['p10_ms']:.1f}-{st['p90_ms']:.1f}, "
                f"rounds ±{st['round_spread_ms'] / 2:.1f})"
            )
        cells.append(_fidelity_cell(label, data.get("fidelity")))
        rows.append(cells)
    return [
        "## Model latency and fidelity",
        "",
        f"Batch {s.get('batch')}, sequence {s.get('sequence')}, onnxruntime CPU, "
        "`intra_op_num_threads` 1 and 2; "
        f"{s.get('warmup')} warm-up runs, then {s.get('runs')} timed runs per model and thread count in "
        f"{s.get('rounds')} interleaved rounds. Median of the round medians (p10-p90 of all runs; ± half the "
        "spread of the round medians). Fidelity: mean cosine similarity of sentence embeddings vs "
        "PyTorch fp32 over `examples/minilm/data/sentences.txt` (worst sentence in brackets).",
        "",
        table(["model", "size", "1 thread", "2 threads", "fidelity"], rows),
        "",
    ]


def _cli_section(results: dict[str, Any]) -> list[str]:
    cli = results.get("cli") or {}
    if not cli.get("commands"):
        return []
    rows = []
    for label, data in cli["commands"].items():
        if "skipped" in data:
            rows.append([f"`{label}`", "skipped: " + data["skipped"], "-"])
        else:
            rows.append(
                [f"`{label}`", fmt_seconds(data.get("median_s")), str(len(data.get("samples_s") or []))]
            )
    return [
        "## CLI start-up",
        "",
        f"Median wall time of {cli.get('runs')} interleaved runs. Olive 0.13 has no `status` or `list` "
        "command (its workflows are not jobs), so those rows are Olivine's alone; `olivine status` shows "
        "a real job, made first through the LocalSystem host.",
        "",
        table(["command", "median", "runs"], rows),
        "",
    ]


def _machine_section(results: dict[str, Any]) -> list[str]:
    m = results.get("machine") or {}
    cpu = m.get("cpu") or {}
    loads = results.get("load") or []
    load_rows = [
        [x["stage"], " / ".join(map(str, x["before"])), " / ".join(map(str, x["after"]))] for x in loads
    ]
    lines = [
        "## Machine",
        "",
        f"- CPU: {cpu.get('model')}; {m.get('usable_cpus')} usable CPUs "
        f"(physical cores: {cpu.get('physical_cores')}); {m.get('memory_gib')} GiB RAM; {m.get('os')}",
        f"- CPU flags: {', '.join(cpu.get('flags') or []) or '-'}; "
        f"VNNI: {'yes' if cpu.get('vnni') else 'no'}; AMX: {'yes' if cpu.get('amx') else 'no'}",
        "- Shared machine: other engineers' tests ran at the same time. Load averages (1/5/15 min) around "
        "each stage:",
        "",
        table(["stage", "before", "after"], load_rows) if load_rows else "(not recorded)",
        "",
    ]
    return lines


def _versions_section(results: dict[str, Any]) -> list[str]:
    v = results.get("versions") or {}
    ours, theirs = v.get("olivine") or {}, v.get("olive") or {}
    names = list(dict.fromkeys([*ours, *theirs]))
    rows = [[n, ours.get(n, "-"), theirs.get(n, "-")] for n in names]
    return [
        "## Library versions",
        "",
        table(["package", "Olivine venv (.venv)", "Olive venv (bench/.olive-venv)"], rows),
        "",
    ]


def _olive_section(results: dict[str, Any]) -> list[str]:
    env = results.get("olive_env") or {}
    patches = _get(results, "e2e", "tools", "olive", "patches") or []
    lines = ["## Workarounds Olive needed", ""]
    lines += [f"- install: **{w['name']}**: {w['why']}" for w in env.get("workarounds", [])]
    lines += [
        f"- run time (`bench/olive_workflow.py`): **{p['name']}** "
        f"({'applied' if p['needed'] else 'not needed'}): {p['why']}"
        for p in patches
    ]
    lines += [
        "- environment: `CI=1` switches Olive's telemetry off (set for both tools, with "
        "`HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1`)",
        "",
    ]
    return lines


def _commands_section(results: dict[str, Any]) -> list[str]:
    cmds = results.get("commands") or {}
    return ["## Commands", "", "```", *[f"# {k}\n{v}" for k, v in cmds.items()], "```", ""]


def render(results: dict[str, Any]) -> str:
    """The whole of ``BENCHMARKS.md`` for one results JSON."""
    rows = [[r.what, r.olivine, r.olive, r.ratio, r.goal, r.status] for r in goal_rows(results)]
    head = [
        "# Benchmarks: Olivine vs Microsoft Olive",
        "",
        "Generated by `bench/run_all.py` (do not edit by hand; see `bench/README.md`). "
        f"Run {results.get('timestamp')} ({fmt_seconds(results.get('duration_s'))} in all"
        f"{', QUICK mode' if results.get('quick') else ''}); "
        f"raw data: `bench/results/{results.get('timestamp')}.json`"
        + (f"; stages from earlier runs: {results['merged_from']}" if results.get("merged_from") else "")
        + ".",
        "",
        "Workflow: `examples/minilm/config.json` (all-MiniLM-L6-v2: OnnxConversion -> "
        "OrtTransformersOptimization -> OnnxDynamicQuantization; latency, custom fidelity and size metrics). "
        "Olive runs the equivalent config generated by `bench/olive_config.py`.",
        "",
        "## Goals",
        "",
        table(["what", "Olivine", "Olive", "ratio", "goal", "status"], rows),
        "",
    ]
    failed = [f"`{k}`: {v['error']}" for k, v in results.items() if isinstance(v, dict) and "error" in v]
    if failed:
        head[-1:-1] = ["**Stages that failed in this run:** " + "; ".join(failed), ""]
    body: list[str] = []
    for section in (
        _e2e_section,
        _stages_section,
        _latency_section,
        _cli_section,
        _machine_section,
        _versions_section,
        _olive_section,
        _commands_section,
    ):
        body += section(results)
    return "\n".join(head + body).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args()
    write_doc(render(json.loads(args.results.read_text(encoding="utf-8"))), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
