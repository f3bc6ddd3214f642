"""Latency and fidelity of the MiniLM models the workflows produced (Olivine's venv).

Usage::

    .venv/bin/python bench/model_latency.py --model "fp32 ONNX=path/model.onnx" --model "int8=..." \
        [--torch examples/minilm/model] [--threads 1,2] [--runs 100] [--rounds 5] [--warmup 10] \
        [--config examples/minilm/config.json] [--json OUT]

Latency: batch 1, sequence 128 (all 128 tokens real: attention mask all ones), one onnxruntime session
per model and thread count (``intra_op_num_threads``; inter-op 1, sequential), opened once. Every ONNX
model gets the same session settings: those, other than thread counts and execution mode, of the run
config's first latency metric (``inference_settings.onnx.session_options``: ``graph_optimization_level``,
``extra_session_config``), so a search's best model is timed as the search timed it and the fp32
baselines under the same settings; ``--no-config-session`` times with onnxruntime's defaults. The runs
are split into rounds; in each round every (model, threads) pair runs ``runs / rounds`` times in turn,
so a slow spell on this shared machine hits every model alike. Reported: the median of the round
medians (robust to the bimodal two-thread timings seen here), the overall median, p10/p90, and the
spread of the round medians. ``--torch DIR`` adds PyTorch eager fp32 as a reference row.

Fidelity: the ``fidelity_stats`` of the run config's custom-metric user_script (mean and min cosine vs
PyTorch fp32 embeddings over the example sentences), called as Olivine calls it; computed after timing.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXAMPLE, median

SEQUENCE = 128
BATCH = 1
TORCH_LABEL = "PyTorch fp32 (eager)"
# Pause between blocks so the previous session's spinning intra-op threads go idle first.
BLOCK_PAUSE_S = 0.05


def make_feed(names: list[str], dtypes: list[str], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for one batch-1, length-128 sequence: fixed random token ids, full mask, segment 0."""
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for name, dtype in zip(names, dtypes, strict=True):
        np_type = np.int32 if "int32" in dtype else np.int64
        if "mask" in name:
            feed[name] = np.ones((BATCH, SEQUENCE), dtype=np_type)
        elif "type" in name:
            feed[name] = np.zeros((BATCH, SEQUENCE), dtype=np_type)
        else:
            ids = rng.integers(1000, 29000, size=(BATCH, SEQUENCE)).astype(np_type)
            ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
            feed[name] = ids
    return feed


def config_session(config_path: Path) -> dict[str, Any]:
    """``graph_optimization_level`` and ``extra_session_config`` of the run config's first latency
    metric's onnxruntime session options (empty when it sets neither)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    metrics = [m for e in (config.get("evaluators") or {}).values() for m in e.get("metrics", [])]
    latency = next((m for m in metrics if m.get("type") == "latency"), None) or {}
    settings = (latency.get("user_config") or {}).get("inference_settings") or {}
    options = (settings.get("onnx") or {}).get("session_options") or {}
    return {k: options[k] for k in ("graph_optimization_level", "extra_session_config") if k in options}


def onnx_runner(path: Path, threads: int, session: dict[str, Any] | None = None) -> Callable[[], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = session or {}
    if "graph_optimization_level" in session:
        level = session["graph_optimization_level"]
        options.graph_optimization_level = (
            getattr(ort.GraphOptimizationLevel, level)
            if isinstance(level, str)
            else ort.GraphOptimizationLevel(level)
        )
    for key, value in (session.get("extra_session_config") or {}).items():
        options.add_session_config_entry(str(key), str(value))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    feed = make_feed([i.name for i in inputs], [i.type for i in inputs])
    return lambda: session.run(None, feed)


def torch_runner(model_dir: Path, threads: int) -> Callable[[], Any]:
    import torch
    from transformers import AutoModel

    module = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    feed = {k: torch.from_numpy(v) for k, v in make_feed(names, ["int64"] * 3).items()}

    def forward() -> Any:
        torch.set_num_threads(threads)  # one process-wide pool: set it before every call (a no-op mostly)
        with torch.inference_mode():
            return module(**feed)

    return forward


def summarize(samples_s: list[float], round_medians_s: list[float]) -> dict[str, Any]:
    """Milliseconds: median of round medians, overall median, p10, p90, spread of round medians."""
    ms = sorted(x * 1000 for x in samples_s)
    rounds_ms = [x * 1000 for x in round_medians_s]
    return {
        "median_ms": round(median(rounds_ms), 2),
        "overall_median_ms": round(median(ms), 2),
        "p10_ms": round(ms[int(0.1 * (len(ms) - 1))], 2),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
        "round_medians_ms": [round(x, 2) for x in rounds_ms],
        "round_spread_ms": round(max(rounds_ms) - min(rounds_ms), 2),
        "runs": len(ms),
    }


def measure_latency(
    runners: dict[tuple[str, int], Callable[[], Any]], *, runs: int, rounds: int, warmup: int
) -> dict[tuple[str, int], dict[str, Any]]:
    """Interleaved rounds over every (label, threads) runner; see the module docstring."""
    per_round = max(1, -(-runs // rounds))  # ceil: at least ``runs`` runs in all
    for runner in runners.values():
        for _ in range(warmup):
            runner()
    samples: dict[tuple[str, int], list[float]] = {k: [] for k in runners}
    round_medians: dict[tuple[str, int], list[float]] = {k: [] for k in runners}
    for r in range(rounds):
        keys = list(runners) if r % 2 == 0 else list(reversed(list(runners)))
        for key in keys:
            time.sleep(BLOCK_PAUSE_S)
            runner = runners[key]
            runner()  # untimed: lets a thread-count switch (PyTorch's one pool) settle before timing
            block = []
            for _ in range(per_round):
                start = time.perf_counter()
                runner()
                block.append(time.perf_counter() - start)
            samples[key].extend(block)
            round_medians[key].append(statistics.median(block))
    return {k: summarize(samples[k], round_medians[k]) for k in runners}


def load_user_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_minilm_user_script", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fidelity_function(config_path: Path) -> Callable[[Path], dict[str, float]]:
    """``model file -> {"mean", "min"}`` from the run config's first custom metric: its user_script's
    ``fidelity_stats`` (or the metric's own function, as ``mean``), called as Olivine calls it (with
    ``data_dir`` and ``input_model`` when the function names them)."""
    from olivine.model.handle import ModelHandle

    config = json.loads(config_path.read_text(encoding="utf-8"))
    base = config_path.parent
    metrics = [m for e in (config.get("evaluators") or {}).values() for m in e.get("metrics", [])]
    custom = next((m for m in metrics if m.get("type") == "custom"), None)
    if custom is None:
        raise ValueError(f"{config_path} has no custom metric to compute fidelity with")
    user = custom["user_config"]
    script = load_user_script(base / str(user.get("script_dir") or "") / user["user_script"])
    func = getattr(script, "fidelity_stats", None) or getattr(script, user["evaluate_func"])
    model = dict(config["input_model"])
    model_cfg = model.get("config") or {k: v for k, v in model.items() if k != "type"}
    model_cfg = {**model_cfg, "model_path": str((base / model_cfg["model_path"]).resolve())}
    handle = ModelHandle.from_json({"type": model["type"], "config": model_cfg})
    offered: dict[str, Any] = {"input_model": handle}
    if user.get("data_dir"):
        offered["data_dir"] = str((base / user["data_dir"]).resolve())
    params = inspect.signature(func).parameters
    kwargs = {k: v for k, v in offered.items() if k in params}
    kwargs.update(user.get("evaluate_func_kwargs") or {})

    def compute(path: Path) -> dict[str, float]:
        value = func(ModelHandle(kind="onnx", config={"model_path": str(path)}), "cpu", None, **kwargs)
        stats = value if isinstance(value, dict) else {"mean": value}
        return {k: round(float(v), 5) for k, v in stats.items()}

    return compute


def measure_fidelity(models: dict[str, Path], config: Path) -> dict[str, dict[str, float]]:
    """``{label: {"mean": ..., "min": ...}}`` for every model (see :func:`fidelity_function`)."""
    compute = fidelity_function(config)
    return {label: compute(path) for label, path in models.items()}


def onnx_size(path: Path) -> int:
    """Bytes of an ONNX file plus the external-data files beside it that it names."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    names = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    return path.stat().st_size + sum((path.parent / n).stat().st_size for n in names)


def measure(
    models: dict[str, Path],
    *,
    torch_dir: Path | None,
    threads: list[int],
    runs: int,
    rounds: int,
    warmup: int,
    config: Path | None,
    session: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Open every runner, time them interleaved, then compute fidelity; a JSON-ready dict."""
    runners: dict[tuple[str, int], Callable[[], Any]] = {}
    for label, path in models.items():
        for n in threads:
            runners[(label, n)] = onnx_runner(path, n, session)
    if torch_dir is not None:
        for n in threads:
            runners[(TORCH_LABEL, n)] = torch_runner(torch_dir, n)
    timings = measure_latency(runners, runs=runs, rounds=rounds, warmup=warmup)
    settings = {"batch": BATCH, "sequence": SEQUENCE, "threads": threads, "runs": runs, "rounds": rounds}
    result: dict[str, Any] = {
        "settings": {**settings, "warmup": warmup, "session": session or {}},
        "models": {},
    }
    for label, path in models.items():
        result["models"][label] = {"path": str(path), "bytes": onnx_size(path), "latency": {}}
    if torch_dir is not None:
        result["models"][TORCH_LABEL] = {"path": str(torch_dir), "bytes": None, "latency": {}}
    for (label, n), stats in timings.items():
        result["models"][label]["latency"][str(n)] = stats
    if config is not None:
        for label, stats in measure_fidelity(models, config).items():
            result["models"][label]["fidelity"] = stats
    return result


def _model_arg(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {text!r}")
    return label, Path(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=_model_arg, action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--torch", type=Path, help="Hugging Face model folder for a PyTorch eager row")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per model and thread count")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--config",
        type=Path,
        default=EXAMPLE / "config.json",
        help="run config whose custom metric gives fidelity",
    )
    parser.add_argument("--no-fidelity", action="store_true")
    parser.add_argument(
        "--no-config-session",
        action="store_true",
        help="time with onnxruntime's default session settings, not the run config's latency metric's",
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    result = measure(
        dict(args.model),
        torch_dir=args.torch,
        threads=[int(x) for x in args.threads.split(",")],
        runs=args.runs,
        rounds=args.rounds,
        warmup=args.warmup,
        config=None if args.no_fidelity else args.config,
        session=None if args.no_config_session else config_session(args.config),
    )
    if result["settings"]["session"]:
        print(f"session settings (every ONNX model): {json.dumps(result['settings']['session'])}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for label, data in result["models"].items():
        cells = [f"{n} thr {s['median_ms']:.1f} ms" for n, s in data["latency"].items()]
        fid = data.get("fidelity", {}).get("mean")
        print(f"{label}: {', '.join(cells)}" + (f", fidelity {fid:.4f}" if fid is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
