"""Olive's packaging_config (Zipfile): the output model packed in Olive 0.13's layout; Dockerfile and MLflow
export refused at validation naming the key."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load, run_local
from olivine.errors import ConfigError

pytestmark = pytest.mark.integration

_LATENCY = {"name": "latency", "type": "latency", "sub_types": [{"name": "avg"}]}


def _write(tmp_path: Path, **extra: Any) -> Path:
    from tiny_models import write_onnx_mlp

    cfg = {
        "input_model": write_onnx_mlp(tmp_path / "onnx"),
        "passes": {"peephole": {"type": "OnnxPeepholeOptimizer"}},
        "output_dir": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
        **extra,
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def test_zipfile_packaging_writes_olives_layout_with_a_loadable_model(tmp_path: Path) -> None:
    import onnxruntime as ort

    evaluators = {"e": {"metrics": [{**_LATENCY, "data_config": "d"}]}}
    data = [{"name": "d", "type": "DummyDataContainer", "load_dataset_config": {"input_shapes": [[1, 32]]}}]
    config = _write(
        tmp_path,
        packaging_config=[{"type": "zipfile", "name": "Packed"}],
        evaluators=evaluators,
        evaluator="e",
        data_configs=data,
    )
    run_local(load(config), output_dir=tmp_path / "out")
    archive = tmp_path / "out" / "Packed.zip"
    assert (tmp_path / "out" / "model_config.json").is_file()  # the output folder is still written
    extract = tmp_path / "unzipped"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(extract)
    model_dir = extract / "CandidateModels" / "cpu-cpu" / "BestCandidateModel_1"
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "configurations.json",
        "inference_config.json",
        "metrics.json",
        "model.onnx",
        "model_info.json",
    ]
    ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    ranks = json.loads((extract / "models_rank.json").read_text())
    assert [r["rank"] for r in ranks] == [1]
    model_config = ranks[0]["model_config"]
    assert model_config["type"] == "ONNXModel"
    # Olivine's output model is a folder: packed as Olive packs a folder model, its .onnx named model.onnx.
    assert model_config["config"]["model_path"] == "CandidateModels/cpu-cpu/BestCandidateModel_1"
    assert model_config["config"]["onnx_file_name"] == "model.onnx"
    assert "latency-avg" in ranks[0]["metrics"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert set(metrics) == {"input_model_metrics", "candidate_model_metrics"}
    history = list(json.loads((model_dir / "configurations.json").read_text()).values())
    assert [h["from_pass"] for h in history] == [None, "OnnxPeepholeOptimizer"]


def test_packaging_config_default_name_is_olives(tmp_path: Path) -> None:
    run_local(load(_write(tmp_path, packaging_config={"type": "Zipfile"})), output_dir=tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "out" / "OutputModels.zip") as zf:
        names = zf.namelist()
    assert "models_rank.json" in names
    assert "CandidateModels/cpu-cpu/BestCandidateModel_1/model.onnx" in names
    assert "CandidateModels/cpu-cpu/BestCandidateModel_1/metrics.json" not in names  # not evaluated


@pytest.mark.parametrize(
    ("packaging", "key", "reason"),
    [
        ({"type": "Dockerfile"}, "type", "'Dockerfile' packaging"),
        (
            {"type": "Zipfile", "config": {"export_in_mlflow_format": True}},
            "export_in_mlflow_format",
            "MLflow",
        ),
        ({"type": "Zipfile", "name": "../up"}, "name", "file name"),
    ],
)
def test_packaging_config_olivine_cannot_write_is_refused_naming_the_key(
    tmp_path: Path, packaging: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, packaging_config=packaging))
    message = str(info.value)
    assert "packaging_config" in message and key in message and reason in message
    assert "\n" not in message
