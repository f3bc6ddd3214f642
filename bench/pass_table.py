"""Every registered pass that takes an ONNX model, on MiniLM and on a ResNet-18-style CNN: size, latency at
1 and 2 threads and fidelity of its output against the fp32 ONNX model, and the pass's wall time against
doing the same with onnxruntime's own tools by hand.

Usage: ``python bench/pass_table.py [--models minilm,cnn] [--runs 40] [--rounds 5] [--no-doc]``

The rows come from the pass registry: each pass type that accepts an ONNX model runs with the variants
listed in ``VARIANTS`` (Olive parameter names) or, when it has none there, with its defaults; a pass whose
defaults are not enough is listed as skipped with the reason. An alias of a pass (Olive's older names:
OnnxIOFloat16ToFloat32, OnnxModelOptimizer, OrtPerfTuning) is the same class and gets no rows of its
own. Static quantization calibrates on 16 real inputs (MiniLM: example sentences; CNN: random images),
fidelity is measured on 16 other inputs (MiniLM: cosine of mean-pooled embeddings; CNN: cosine of logits
and top-1 agreement). Latency: batch 1 (MiniLM
sequence 128), one session per model and thread count, opened before timing, interleaved rounds
(``model_latency.measure_latency``), median of round medians and their spread. Writes
``bench/results/pass_table-<timestamp>.json`` and the ``pass-table`` block of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pass_table_models as models_mod
from common import RESULTS, fmt_mb, library_versions, load_average, machine_info, write_doc_block
from model_latency import measure_latency, onnx_size

# (label, base model, params): base "fp32" is the plain export, "optimized" the transformer-optimized
# graph (MiniLM only). A pass type absent here runs once with its defaults on the fp32 model.
Variant = tuple[str, str, dict[str, Any]]
BERT = {"model_type": "bert", "num_heads": 12, "hidden_size": 384}
TUNING = {"data_config": "latency", "rounds": 3, "repeat_test_num": 5}
# The float16-I/O output of OnnxFloatToFloat16 is the base ("fp16io") the I/O converter turns back to float32.
FLOAT16: list[Variant] = [
    ("fp16, fp32 I/O", "fp32", {"keep_io_types": True}),
    ("fp16, fp16 I/O", "fp32", {"keep_io_types": False}),
]
IO_CONVERTER: list[Variant] = [("fp16 I/O -> fp32, on the fp16 model", "fp16io", {"name_pattern": ""})]
METADATA: list[Variant] = [
    ("graph name + metadata", "fp32", {"graph_name": "main", "custom_metadata": {"bench": "pass_table"}})
]
VARIANTS: dict[str, dict[str, list[Variant]]] = {
    "minilm": {
        "OrtTransformersOptimization": [("bert fusion", "fp32", BERT)],
        "OnnxDynamicQuantization": [
            ("int8 defaults", "fp32", {}),
            ("int8 per-channel", "fp32", {"per_channel": True}),
            (
                "int8 MatMul per-channel, on the fused graph",
                "optimized",
                {"per_channel": True, "op_types_to_quantize": ["MatMul"]},
            ),
        ],
        "OnnxStaticQuantization": [
            ("QDQ MinMax", "fp32", {"data_config": "calib"}),
            (
                "QDQ MinMax per-channel, MatMul only",
                "fp32",
                {"data_config": "calib", "per_channel": True, "op_types_to_quantize": ["MatMul"]},
            ),
            ("QOperator MinMax", "fp32", {"data_config": "calib", "quant_format": "QOperator"}),
        ],
        "OnnxQuantization": [("dynamic (quant_mode)", "fp32", {"quant_mode": "dynamic"})],
        "OnnxFloatToFloat16": FLOAT16,
        "OnnxIODataTypeConverter": IO_CONVERTER,
        "AddOliveMetadata": METADATA,
        "GraphSurgeries": [
            ("ReplaceErfWithTanh", "fp32", {"surgeries": [{"surgeon": "ReplaceErfWithTanh"}]})
        ],
        "OnnxBlockWiseRtnQuantization": [
            ("int4 RTN block 128", "fp32", {}),
            ("int4 RTN block 32", "fp32", {"block_size": 32}),
        ],
        "OrtSessionParamsTuning": [("threads/mode tuning", "fp32", TUNING)],
        "OrtPerfTuning": [],  # the same class as OrtSessionParamsTuning
        "DynamicToFixedShape": [
            (
                "batch 1, sequence 128",
                "fp32",
                {"dim_param": ["batch_size", "sequence_length"], "dim_value": [1, 128]},
            )
        ],
    },
    "cnn": {
        "OrtTransformersOptimization": [],  # a transformer optimizer: not for a CNN
        "OnnxDynamicQuantization": [("int8 defaults", "fp32", {})],
        "OnnxStaticQuantization": [
            ("QDQ MinMax per-channel", "fp32", {"data_config": "calib", "per_channel": True}),
            ("QDQ MinMax", "fp32", {"data_config": "calib"}),
            (
                "QOperator MinMax per-channel",
                "fp32",
                {"data_config": "calib", "quant_format": "QOperator", "per_channel": True},
            ),
        ],
        "OnnxQuantization": [
            (
                "static QDQ per-channel (quant_mode)",
                "fp32",
                {"quant_mode": "static", "data_config": "calib", "per_channel": True},
            )
        ],
        "OnnxFloatToFloat16": FLOAT16,
        "OnnxIODataTypeConverter": IO_CONVERTER,
        "AddOliveMetadata": METADATA,
        "GraphSurgeries": [("GemmToMatMulAdd", "fp32", {"surgeries": [{"surgeon": "GemmToMatMulAdd"}]})],
        "OrtSessionParamsTuning": [("threads/mode tuning", "fp32", TUNING)],
        "OrtPerfTuning": [],
        "DynamicToFixedShape": [("batch 1", "fp32", {"dim_param": ["batch"], "dim_value": [1]})],
    },
}


@dataclasses.dataclass
class Row:
    pass_type: str
    label: str
    base: str
    params: dict[str, Any]
    path: Path | None = None
    status: str = "ok"
    run_s: float | None = None
    check_s: float | None = None
    hand_s: float | None = None
    hand_what: str | None = None
    notes: str = ""
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


def pass_context(data_configs: dict[str, Any], base_dir: Path) -> Any:
    """A PassContext with the data configs when this checkout's context carries them."""
    from olivine.passes import PassContext

    names = {f.name for f in dataclasses.fields(PassContext)}
    extra = {"data_configs": data_configs, "base_dir": base_dir}
    return PassContext(**{k: v for k, v in extra.items() if k in names})


def onnx_pass_types() -> list[str]:
    """Registered pass types that take an ONNX model, one name per class (aliases such as OrtPerfTuning
    are the same pass)."""
    from olivine.passes import PASSES

    chosen: dict[type, str] = {}
    for name in PASSES.names():
        try:
            cls = PASSES.get(name)
        except Exception:  # an extra that is not installed: not a row
            continue
        # ModelBuilder takes an ONNX model only to add metadata (metadata_only).
        if "onnx" not in cls.accepts or name == "ModelBuilder":
            continue
        if cls not in chosen or name == getattr(cls, "name", None):  # the class's own name wins
            chosen[cls] = name
    return sorted(chosen.values())


def run_variant(row: Row, source: Any, out_dir: Path, ctx: Any) -> Any:
    from olivine.passes import PASSES

    cls = PASSES.get(row.pass_type)
    try:
        config = cls.config_class.model_validate(row.params)
    except Exception as exc:  # pydantic ValidationError: the defaults are not enough
        row.status = "skipped"
        row.notes = f"needs parameters: {str(exc).splitlines()[0]}"
        return None
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    instance = cls()
    try:
        start = time.perf_counter()
        output = instance.run(source, config, out_dir, ctx)
        row.run_s = time.perf_counter() - start
        start = time.perf_counter()
        instance.check_output(output)
        row.check_s = time.perf_counter() - start
    except Exception as exc:  # a pass failure is a row of the table, not the end of the benchmark
        row.status = "failed"
        row.notes = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return None
    row.path = output.onnx_path
    settings = (output.config.get("inference_settings") or {}).get("session_options")
    if settings:
        row.notes = f"chose {json.dumps(settings, sort_keys=True)}"
    return output


def op_summary(path: Path) -> str:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    interesting = [
        "Attention",
        "SkipLayerNormalization",
        "EmbedLayerNormalization",
        "MatMulNBits",
        "MatMulInteger",
        "DynamicQuantizeLinear",
        "QuantizeLinear",
        "QLinearMatMul",
        "QLinearConv",
        "ConvInteger",
        "QAttention",
        "Gemm",
        "Erf",
        "Tanh",
        "Cast",
    ]
    return ", ".join(f"{op} {counts[op]}" for op in interesting if counts.get(op))


def session_runner(path: Path, threads: int, feed: dict[str, np.ndarray]) -> Callable[[], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    typed = models_mod.cast_feed(session, feed)
    return lambda: session.run(None, typed)


def measure(
    rows: list[Row], fp32: Path, spec: models_mod.ModelSpec, args: argparse.Namespace
) -> dict[str, Any]:
    measured = {
        "fp32 ONNX": fp32,
        **{f"{r.pass_type}: {r.label}": r.path for r in rows if r.path is not None},
    }
    runners = {
        (label, n): session_runner(path, n, spec.latency_feed)
        for label, path in measured.items()
        for n in (1, 2)
    }
    timings = measure_latency(runners, runs=args.runs, rounds=args.rounds, warmup=args.warmup)
    reference = spec.fidelity(fp32, fp32)
    out: dict[str, Any] = {}
    for label, path in measured.items():
        out[label] = {
            "bytes": onnx_size(path),
            "latency": {str(n): timings[(label, n)] for n in (1, 2)},
            "fidelity": spec.fidelity(path, fp32) if path != fp32 else reference,
            "ops": op_summary(path),
        }
    return out


def run_model(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from olivine.model.handle import ModelHandle

    spec = models_mod.SPECS[name](work / name)
    print(f"[{name}] fp32 ONNX: {spec.fp32} (export {spec.export_s:.1f} s)", flush=True)
    ctx = pass_context(spec.data_configs, spec.folder)
    bases = {"fp32": ModelHandle(kind="onnx", config={"model_path": str(spec.fp32)})}
    rows: list[Row] = []
    plan = VARIANTS.get(name, {})
    types = onnx_pass_types()
    # The optimized base first: other variants build on it.
    types.sort(key=lambda t: t != "OrtTransformersOptimization")
    for pass_type in types:
        variants = plan.get(pass_type, [("defaults", "fp32", {})])
        if not variants:
            continue
        for label, base, params in variants:
            row = Row(pass_type, label, base, params)
            rows.append(row)
            if base not in bases:
                row.status, row.notes = "skipped", f"base model '{base}' was not built"
                continue
            out_dir = work / name / "passes" / f"{pass_type}-{len(rows)}"
            print(f"[{name}] {pass_type} ({label})", flush=True)
            output = run_variant(row, bases[base], out_dir, ctx)
            if output is not None and pass_type == "OrtTransformersOptimization":
                bases["optimized"] = output
            if output is not None and pass_type == "OnnxFloatToFloat16" and not params["keep_io_types"]:
                bases["fp16io"] = output
            hand = models_mod.BY_HAND.get(pass_type)
            first = not any(r.pass_type == pass_type and r.hand_s is not None for r in rows)
            if output is not None and hand is not None and base == "fp32" and first:
                hand_dir = work / name / "hand" / f"{pass_type}-{len(rows)}"
                shutil.rmtree(hand_dir, ignore_errors=True)
                hand_dir.mkdir(parents=True)
                row.hand_what, row.hand_s = hand(spec, params, hand_dir)
    print(f"[{name}] timing {len([r for r in rows if r.path])} outputs + fp32", flush=True)
    measured = measure(rows, spec.fp32, spec, args)
    for row in rows:
        if row.path is not None:
            row.metrics = measured[f"{row.pass_type}: {row.label}"]
    return {
        "model": spec.description,
        "export_s": spec.export_s,
        "fp32": measured["fp32 ONNX"],
        "rows": [
            {
                **{k: v for k, v in dataclasses.asdict(r).items() if k != "path"},
                "path": str(r.path) if r.path else None,
            }
            for r in rows
        ],
        "fidelity_what": spec.fidelity_what,
    }


def _latency_cell(metrics: dict[str, Any], threads: str) -> str:
    stats = metrics["latency"][threads]
    return f"{stats['median_ms']:.1f} (±{stats['round_spread_ms'] / 2:.1f})"


def _fidelity_cell(fidelity: dict[str, float]) -> str:
    text = f"{fidelity['mean']:.4f} ({fidelity['min']:.4f})"
    return text + (f", top-1 {fidelity['top1']:.2f}" if "top1" in fidelity else "")


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def render_model(name: str, data: dict[str, Any]) -> list[str]:
    fp32 = data["fp32"]
    base_size = fp32["bytes"]
    base_ms = {t: fp32["latency"][t]["median_ms"] for t in ("1", "2")}
    header = [
        "pass",
        "variant",
        "size",
        "size vs fp32",
        "1 thread ms",
        "vs fp32",
        "2 threads ms",
        "vs fp32",
        "fidelity mean (min)",
        "pass wall time",
        "by hand",
        "pass / hand",
        "key ops",
    ]
    lines = [
        f"### {name}: {data['model']}",
        "",
        f"Fidelity: {data['fidelity_what']}. Latency: median of round medians in ms (± half the spread of "
        f"the round medians). fp32 ONNX export: {data['export_s']:.1f} s.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        "| fp32 ONNX | - | "
        + " | ".join(
            [
                fmt_mb(base_size),
                "1.00x",
                _latency_cell(fp32, "1"),
                "1.00x",
                _latency_cell(fp32, "2"),
                "1.00x",
                _fidelity_cell(fp32["fidelity"]),
                "-",
                "-",
                "-",
                fp32["ops"],
            ]
        )
        + " |",
    ]
    others = []
    for row in data["rows"]:
        m = row["metrics"]
        if row["status"] != "ok" or not m:
            others.append(f"- {row['pass_type']} ({row['label']}): {row['status']}: {row['notes']}")
            continue
        hand = f"{row['hand_s']:.2f} s" if row["hand_s"] is not None else "-"
        ratio = f"{row['run_s'] / row['hand_s']:.2f}x" if row["hand_s"] else "-"
        cells = [
            row["pass_type"],
            row["label"] + (f" ({row['notes']})" if row["notes"] else ""),
            fmt_mb(m["bytes"]),
            _ratio(m["bytes"], base_size),
            _latency_cell(m, "1"),
            _ratio(m["latency"]["1"]["median_ms"], base_ms["1"]),
            _latency_cell(m, "2"),
            _ratio(m["latency"]["2"]["median_ms"], base_ms["2"]),
            _fidelity_cell(m["fidelity"]),
            f"{row['run_s']:.2f} s",
            hand,
            ratio,
            m["ops"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if others:
        lines += ["", "Not in the table:", *others]
    return [*lines, ""]


def render(results: dict[str, Any]) -> str:
    cpu = results["machine"]["cpu"]
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items() if k != "python")
    lines = [
        "## Every ONNX pass on MiniLM and on a CNN",
        "",
        f"Generated by `bench/pass_table.py` ({results['started']}, {results['duration_s']:.0f} s). "
        f"CPU: {cpu.get('model')}, {results['machine']['usable_cpus']} usable CPUs, flags "
        f"{' '.join(cpu.get('flags', []))} (VNNI: {cpu.get('vnni')}, AMX: {cpu.get('amx')}). {versions}. "
        f"Load average {results['load_before'][0]} before, {results['load_after'][0]} after (the machine is "
        f"shared: trust the ratios measured in this run, not the absolute figures). Latency: "
        f"{results['settings']['runs']} timed runs per model and thread count in "
        f"{results['settings']['rounds']} interleaved rounds. Pass wall time: the pass's `run` alone, one "
        "run; by hand (the first variant of a pass): the same onnxruntime calls in a script, one run, same "
        "inputs (`bench/pass_overhead.py` measures the overhead carefully, on an MLP and on MiniLM). Every "
        "registered pass that takes an ONNX model has rows (ModelBuilder takes a Hugging Face model: "
        "`bench/model_builder.py`); Olive's older names OnnxIOFloat16ToFloat32, OnnxModelOptimizer and "
        "OrtPerfTuning are the same classes as OnnxIODataTypeConverter, OnnxPeepholeOptimizer and "
        "OrtSessionParamsTuning.",
        "",
    ]
    for name, data in results["models"].items():
        lines += render_model(name, data)
    return "\n".join(lines).rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", default="minilm,cnn")
    parser.add_argument("--runs", type=int, default=40, help="timed runs per model and thread count")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": library_versions(Path(sys.executable), ("onnx", "onnxruntime", "torch", "transformers")),
        "settings": {"runs": args.runs, "rounds": args.rounds, "warmup": args.warmup},
        "load_before": load_average(),
        "models": {},
    }
    work = RESULTS / "work" / "pass_table"
    for name in args.models.split(","):
        results["models"][name] = run_model(name, work, args)
    results["load_after"] = load_average()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"pass_table-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    text = render(results)
    print(text)
    if not args.no_doc:
        write_doc_block("pass-table", text)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
