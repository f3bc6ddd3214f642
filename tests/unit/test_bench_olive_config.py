"""bench/olive_config.py: the Olivine -> Olive run-config translation used by the benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import olive_config

ADAPTER = Path("/bench/olive_adapter.py")
SRC = Path("/repo/src")


def _config() -> dict[str, Any]:
    return {
        "workflow_id": "minilm",
        "workflow_host": "local_worker",
        "input_model": {"type": "HfModel", "model_path": "model", "task": "feature-extraction"},
        "systems": {
            "local_system": {"type": "LocalSystem"},
            "local_worker": {"type": "LocalWorker"},
        },
        "data_configs": [{"name": "latency_data", "type": "DummyDataContainer"}],
        "evaluators": {
            "common": {
                "metrics": [
                    {"name": "latency", "type": "latency", "data_config": "latency_data"},
                    {
                        "name": "fidelity",
                        "type": "custom",
                        "user_config": {
                            "user_script": "user_script.py",
                            "data_dir": "data",
                            "evaluate_func": "fidelity",
                            "evaluate_func_kwargs": {"max_samples": 10},
                        },
                        "sub_types": [{"name": "cosine", "priority": 1, "higher_is_better": True}],
                    },
                ]
            }
        },
        "passes": {"conversion": {"type": "OnnxConversion", "target_opset": 17}},
        "engine": {
            "host": "local_system",
            "target": "local_worker",
            "evaluator": "common",
            "cache_dir": ".olivine-cache",
            "output_dir": "olivine-output/minilm",
        },
    }


def _translate(tmp_path: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    return olive_config.olive_config(
        config or _config(),
        config_dir=tmp_path / "example",
        work_dir=tmp_path / "work",
        adapter=ADAPTER,
        olivine_src=SRC,
    )


def test_olive_config_makes_model_path_absolute(tmp_path: Path) -> None:
    out = _translate(tmp_path)
    assert out["input_model"]["model_path"] == str(tmp_path / "example" / "model")


def test_olive_config_drops_olivine_only_systems_and_keys(tmp_path: Path) -> None:
    out = _translate(tmp_path)
    assert "workflow_host" not in out
    assert list(out["systems"]) == ["local_system"]
    assert out["engine"]["host"] == "local_system"
    assert "target" not in out["engine"]  # it named the dropped LocalWorker: Olive's default applies


def test_olive_config_moves_cache_and_output_into_work_dir(tmp_path: Path) -> None:
    engine = _translate(tmp_path)["engine"]
    assert engine["cache_dir"] == str(tmp_path / "work" / ".olive-cache")
    assert engine["output_dir"] == str(tmp_path / "work" / "olive-output")


def test_olive_config_routes_custom_metric_through_adapter(tmp_path: Path) -> None:
    metric = _translate(tmp_path)["evaluators"]["common"]["metrics"][1]
    user = metric["user_config"]
    assert user["user_script"] == str(ADAPTER)
    assert user["evaluate_func"] == "evaluate"
    assert "data_dir" not in user  # Olive has no such key; the adapter carries it
    kwargs = user["evaluate_func_kwargs"]
    assert kwargs["olivine_src"] == str(SRC)
    assert kwargs["olivine_user_script"] == str(tmp_path / "example" / "user_script.py")
    assert kwargs["olivine_func"] == "fidelity"
    assert kwargs["max_samples"] == 10
    assert kwargs["olivine_context"]["data_dir"] == str(tmp_path / "example" / "data")
    assert kwargs["olivine_context"]["input_model"] == {
        "type": "HfModel",
        "config": {"model_path": str(tmp_path / "example" / "model"), "task": "feature-extraction"},
    }


def test_olive_config_leaves_other_metrics_and_passes_alone(tmp_path: Path) -> None:
    original = _config()
    out = _translate(tmp_path, original)
    assert out["evaluators"]["common"]["metrics"][0] == original["evaluators"]["common"]["metrics"][0]
    assert out["passes"] == original["passes"]


def test_olive_config_does_not_modify_its_input(tmp_path: Path) -> None:
    original = _config()
    _translate(tmp_path, original)
    assert original == _config()


def test_olive_config_rejects_custom_metric_without_named_function(tmp_path: Path) -> None:
    config = _config()
    config["evaluators"]["common"]["metrics"][1]["user_config"].pop("evaluate_func")
    with pytest.raises(ValueError, match="named evaluate_func"):
        _translate(tmp_path, config)


def test_write_olive_config_writes_json_into_work_dir(tmp_path: Path) -> None:
    source = tmp_path / "example" / "config.json"
    source.parent.mkdir()
    source.write_text('{"input_model": {"type": "ONNXModel", "model_path": "m.onnx"}}', encoding="utf-8")
    written = olive_config.write_olive_config(source, tmp_path / "work")
    assert written == tmp_path / "work" / "olive_config.json"
    assert str(tmp_path / "example" / "m.onnx") in written.read_text(encoding="utf-8")
