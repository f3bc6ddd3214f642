"""Olive's ``packaging_config`` of type ``Zipfile``: the output model packed as Olive 0.13 packs it.

``<output folder>/<name>.zip`` (``name`` defaults to ``OutputModels``)::

    CandidateModels/<device>-<ep>/BestCandidateModel_1/   e.g. cpu-cpu
        model.onnx              the best model (a folder model's files, its .onnx renamed model.onnx)
        inference_config.json   the model's ``inference_settings`` ({} when it has none)
        configurations.json     the pass runs that made it, input model first (Olive's run-history trace)
        metrics.json            input and candidate metrics (only when the model was evaluated)
        model_info.json         {"rank", "model_config" (model_path relative to the zip root), "metrics"}
    models_rank.json            [model_info, ...]

Olive packages every output model in rank order; Olivine packages its best model (rank 1). As in Olive only
an ONNX model is packaged; another kind is skipped with a warning. The output folder itself is written as
without packaging (Olive then leaves the model out of it; Olivine keeps it: the zip is an addition).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from olivine.config.engine import PackagingConfig
from olivine.engine.candidates import Candidate
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle, external_data_files

logger = logging.getLogger(__name__)


def accelerator_name(accelerator: Accelerator) -> str:
    """Olive's ``str(AcceleratorSpec)``: ``cpu-cpu`` for the CPU execution provider."""
    provider = accelerator.execution_providers[0] if accelerator.execution_providers else ""
    name = accelerator.device.lower()
    return f"{name}-{provider.removesuffix('ExecutionProvider').lower()}" if provider else name


def write_packages(
    packagings: list[PackagingConfig],
    *,
    best: Candidate,
    model: ModelHandle,
    input_model: Candidate,
    accelerator: Accelerator,
    out_dir: Path,
) -> list[Path]:
    """Write one zip per packaging config; returns their paths (none when the model is not ONNX)."""
    if model.kind != "onnx":
        logger.warning(
            "packaging_config: the output model is a %s; Olive packages ONNX models only, no zip written",
            model.type_name,
        )
        return []
    written = []
    for packaging in packagings:
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".package-") as temp:
            root = Path(temp) / "content"
            info = _package_model(root, best, model, input_model, accelerator)
            (root / "models_rank.json").write_text(json.dumps([info]), encoding="utf-8")
            archive = shutil.make_archive(str(Path(temp) / packaging.name), "zip", root)
            target = out_dir / f"{packaging.name}.zip"
            Path(archive).replace(target)  # atomic: a reader never sees half a zip
        logger.info("packaged the output model into %s", target)
        written.append(target)
    return written


def _package_model(
    root: Path, best: Candidate, model: ModelHandle, input_model: Candidate, accelerator: Accelerator
) -> dict[str, Any]:
    rank = 1
    model_dir = root / "CandidateModels" / accelerator_name(accelerator) / f"BestCandidateModel_{rank}"
    model_dir.mkdir(parents=True)
    settings = model.config.get("inference_settings") or {}
    _dump(model_dir / "inference_config.json", settings)
    _dump(model_dir / "configurations.json", _configurations(best, input_model))
    metrics = best.metrics_json()
    if metrics:
        _dump(
            model_dir / "metrics.json",
            {"input_model_metrics": input_model.metrics_json(), "candidate_model_metrics": metrics},
        )
    packed = _copy_onnx(model, model_dir)
    model_json = model.to_json()
    model_json["config"]["model_path"] = packed.relative_to(root).as_posix()
    if packed.is_dir():
        model_json["config"]["onnx_file_name"] = "model.onnx"
    info = {"rank": rank, "model_config": model_json, "metrics": metrics}
    _dump(model_dir / "model_info.json", info)
    return info


def _copy_onnx(model: ModelHandle, model_dir: Path) -> Path:
    """Olive's layout: a file model becomes ``model.onnx`` (external data beside it, names kept); a folder
    model's files are copied with its ``.onnx`` renamed ``model.onnx``. Returns the packed model path."""
    source = Path(str(model.model_path))
    onnx_file = model.onnx_path
    if source.is_dir():
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = file.relative_to(source)
            dest = model_dir / ("model.onnx" if file == onnx_file else relative)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, dest)
        return model_dir
    shutil.copy2(onnx_file, model_dir / "model.onnx")
    for extra in external_data_files(onnx_file):
        shutil.copy2(extra, model_dir / extra.name)
    return model_dir / "model.onnx"


def _configurations(best: Candidate, input_model: Candidate) -> dict[str, Any]:
    """Model id -> how it was made, input model first (Olive's ``trace_back_run_history``, reversed)."""
    out: dict[str, Any] = {
        str(input_model.model_id or "input"): {
            "parent_model_id": None,
            "from_pass": None,
            "pass_run_config": None,
        }
    }
    parent = input_model.model_id
    for step, run in zip(best.chain, best.runs, strict=False):
        out[run.key] = {
            "parent_model_id": parent,
            "from_pass": step.type,
            "pass_name": step.name,
            "pass_run_config": step.canonical_config(),
        }
        parent = run.key
    return out


def _dump(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=4, default=str), encoding="utf-8")
