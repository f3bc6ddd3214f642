"""Hand-made footprint.json documents (schema olivine.footprint/2, as in the search contract) for the
report's tests: a MiniLM-like search with every status, spreads, goals, a frontier and a best model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MACHINE = {
    "cpu": "Test CPU @ 2.0GHz",
    "cpu_flags": ["sse4_2", "avx", "avx2", "fma"],
    "cores": 2,
    "python": "3.11.2",
    "libraries": {"onnxruntime": "1.32.0", "onnx": "1.19.0", "olivine": "0.1.0"},
}

CHAIN = [
    ("conversion", "OnnxConversion", {"target_opset": 17}),
    ("transformers_optimization", "OrtTransformersOptimization", {"model_type": "bert"}),
]


def metric(value: float, priority: int, higher: bool, spread: float | None = None) -> dict[str, Any]:
    return {
        "value": value,
        "spread": spread,
        "rounds": None if spread is None else [value - spread, value, value + spread],
        "priority": priority,
        "higher_is_better": higher,
    }


def record(
    index: int,
    point: dict[str, Any],
    *,
    latency: float | None,
    fidelity: float | None,
    status: str = "evaluated",
    error: str | None = None,
    meets: bool | None = None,
    frontier: bool = False,
    best: bool = False,
) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    if latency is not None:
        metrics["latency-avg"] = metric(latency, 1, False, spread=round(latency * 0.02, 3))
    if fidelity is not None:
        metrics["fidelity-cosine"] = metric(fidelity, 2, True)
    if latency is not None:
        metrics["size-bytes"] = metric(66_000_000.0 + index, -1, False)
    params = {k.split(".", 1)[1]: v for k, v in point.items()}
    chain = [{"name": n, "type": t, "params": p, "run_key": f"{n}-key"} for n, t, p in CHAIN]
    chain.append(
        {"name": "quantization", "type": "OnnxDynamicQuantization", "params": params, "run_key": f"q{index}"}
    )
    return {
        "id": f"c{index:04d}",
        "index": index,
        "chain": chain,
        "point": point,
        "model_id": None if status != "evaluated" else f"{index:02d}" + "ab" * 31,
        "status": status,
        "error": error,
        "metrics": metrics,
        "meets_goals": meets,
        "on_frontier": frontier,
        "is_best": best,
        "model_config": None,
    }


def minilm_like() -> dict[str, Any]:
    """12 candidates: 8 evaluated (3 on the frontier, one best), 1 failed, 1 invalid, 2 pruned."""
    rows = [
        # (per_channel, reduce_range, weight_type, latency, fidelity, status, meets, frontier, best)
        (False, False, "QInt8", 30.1, 0.963, "evaluated", False, False, False),
        (True, False, "QInt8", 31.0, 0.9921, "evaluated", True, True, True),
        (False, True, "QInt8", 29.5, 0.876, "evaluated", False, False, False),
        (True, True, "QInt8", 30.4, 0.90, "evaluated", False, False, False),
        (False, False, "QUInt8", 33.0, 0.97, "evaluated", False, False, False),
        (True, False, "QUInt8", 34.5, 0.9935, "evaluated", True, True, False),
        (False, True, "QUInt8", 32.0, 0.88, "pruned", False, False, False),
        (True, True, "QUInt8", None, None, "failed", None, False, False),
        (True, False, "QInt4", None, None, "invalid", None, False, False),
        (False, False, "QInt16", 36.0, 0.999, "evaluated", True, True, False),
        (True, False, "QInt16", 37.5, 0.9985, "evaluated", True, False, False),
        (False, True, "QInt16", None, 0.95, "pruned", False, False, False),
    ]
    candidates = []
    for i, (pc, rr, wt, lat, fid, status, meets, front, best) in enumerate(rows, start=1):
        point = {
            "quantization.per_channel": pc,
            "quantization.reduce_range": rr,
            "quantization.weight_type": wt,
        }
        error = {
            "failed": "PassRunError: quantization: onnxruntime rejected the model",
            "invalid": "weight_type QInt4 is not allowed for OnnxDynamicQuantization",
        }.get(status)
        if status == "pruned":
            lat = None if lat is None or fid < 0.9 else lat  # pruned after fidelity missed its goal
        candidates.append(
            record(
                i,
                point,
                latency=lat,
                fidelity=fid,
                status=status,
                error=error,
                meets=meets,
                frontier=front,
                best=best,
            )
        )
    input_record = record(0, {}, latency=45.0, fidelity=1.0, meets=True)
    input_record.update({"id": "input", "chain": [], "model_id": "ff" * 32})
    return {
        "schema": "olivine.footprint/2",
        "workflow_id": "minilm-search",
        "search": {"sampler": "sequential", "execution_order": "joint", "seed": 1, "space_size": 12},
        "objectives": [
            {"key": "latency-avg", "priority": 1, "higher_is_better": False, "goal": None},
            {
                "key": "fidelity-cosine",
                "priority": 2,
                "higher_is_better": True,
                "goal": {"type": "max-degradation", "value": 0.01, "resolved": 0.99},
            },
        ],
        "input": input_record,
        "candidates": candidates,
        "frontier": [c["id"] for c in candidates if c["on_frontier"]],
        "best": next(c["id"] for c in candidates if c["is_best"]),
        "machine": MACHINE,
    }


def write_footprint(folder: Path, data: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "footprint.json"
    path.write_text(json.dumps(data if data is not None else minilm_like(), indent=2), encoding="utf-8")
    return path
