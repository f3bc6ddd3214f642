"""``<output_dir>/footprint.json``, schema ``olivine.footprint/2``: every candidate of the run.

    {"schema": "olivine.footprint/2", "workflow_id",
     "search": {"sampler", "execution_order", "seed", "space_size"},
     "objectives": [{"key", "priority", "higher_is_better", "goal": {"type", "value", "resolved"} | null}],
     "input": <record, id "input">, "candidates": [<record>, ...] (proposal order),
     "frontier": [ids], "best": id | null,
     "machine": {"cpu", "cpu_flags", "cores", "python", "libraries"},
     "nodes": {model_id: Olive-style node}, "best_model_id": ...}   # kept for existing readers

A record is described in :meth:`olivine.engine.candidates.Candidate.record`.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from olivine.engine.cache import write_json_atomic
from olivine.engine.candidates import Candidate
from olivine.engine.keys import library_version
from olivine.search.ranking import Objectives

SCHEMA = "olivine.footprint/2"
_LIBRARIES = ("olivine", "onnx", "onnxruntime", "torch", "transformers", "numpy", "optuna")
# CPU features that change which kernels onnxruntime runs (and so the latency of quantized models).
_FLAG_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4", "vnni", "avx_vnni", "bf16", "asimd", "sve", "neon")


@cache
def machine() -> dict[str, Any]:
    """The CPU, its SIMD features, the core count, Python and the versions of the libraries that ran."""
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and cpu in ("", platform.machine(), platform.processor()):
                cpu = value.strip()
            elif name.strip() in ("flags", "Features") and not flags:
                flags = sorted({f for f in value.split() if f.startswith(_FLAG_PREFIXES)})
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "libraries": {
            name: version for name in _LIBRARIES if (version := library_version(name)) != "not-installed"
        },
    }


def footprint(
    *,
    workflow_id: str,
    search: dict[str, Any],
    objectives: Objectives,
    input_candidate: Candidate,
    candidates: Sequence[Candidate],
    frontier: Sequence[str],
    best: Candidate | None,
) -> dict[str, Any]:
    best_model_id = best.model_id if best is not None else None
    nodes = {
        c.model_id: c.node(best_model_id) for c in [input_candidate, *candidates] if c.model_id is not None
    }
    return {
        "schema": SCHEMA,
        "workflow_id": workflow_id,
        "search": search,
        "objectives": objectives.to_json(),
        "input": input_candidate.record(),
        "candidates": [c.record() for c in candidates],
        "frontier": list(frontier),
        "best": best.id if best is not None else None,
        "machine": machine(),
        "nodes": nodes,
        "best_model_id": best_model_id,
    }


def write_footprint(out_dir: Path, doc: dict[str, Any]) -> Path:
    path = out_dir / "footprint.json"
    write_json_atomic(path, doc)
    return path
