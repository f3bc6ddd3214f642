"""onnxruntime session options in configs: Olive's enum names or integers, checked at config time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from olivine.config.loader import validate_config
from olivine.config.session import normalize_session_options
from olivine.engine.identity import handle_from_input_config
from olivine.errors import ConfigError, ModelLoadError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.model.runner import OnnxRunner
from tiny_models import write_onnx_mlp


def _with_session_options(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "input_model": {
            "type": "ONNXModel",
            "model_path": "m.onnx",
            "inference_settings": {"session_options": options},
        }
    }


def test_session_options_olive_enum_names_become_integers_in_the_model_config() -> None:
    cfg = validate_config(
        _with_session_options(
            {
                "execution_mode": "ORT_PARALLEL",
                "graph_optimization_level": "ORT_ENABLE_ALL",
                "intra_op_num_threads": 2,
            }
        )
    )
    handle = handle_from_input_config(cfg.input_model)
    assert handle.config["inference_settings"]["session_options"] == {
        "execution_mode": 1,
        "graph_optimization_level": 99,
        "intra_op_num_threads": 2,
    }


def test_session_options_integers_and_lower_case_names_are_the_same_values() -> None:
    assert normalize_session_options({"execution_mode": 0, "graph_optimization_level": 2}) == {
        "execution_mode": 0,
        "graph_optimization_level": 2,
    }
    assert normalize_session_options({"execution_mode": "ort_sequential"}) == {"execution_mode": 0}
    # The values are onnxruntime's own.
    assert normalize_session_options({"graph_optimization_level": "ORT_ENABLE_EXTENDED"}) == {
        "graph_optimization_level": int(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    }


@pytest.mark.parametrize(
    ("options", "key", "words"),
    [
        ({"execution_mode": "ORT_SEQ"}, "execution_mode", "ORT_SEQUENTIAL (0), ORT_PARALLEL (1)"),
        ({"graph_optimization_level": 5}, "graph_optimization_level", "ORT_ENABLE_ALL (99)"),
        ({"execution_mode": True}, "execution_mode", "got True"),
        ({"intra_op_num_threads": -1}, "intra_op_num_threads", "greater than or equal to 0"),
        ({"inter_op_num_threads": 100000}, "inter_op_num_threads", "less than or equal to 1024"),
        ({"intra_op_threads": 2}, "intra_op_threads", "did you mean 'intra_op_num_threads'"),
        # Files onnxruntime writes from every session, relative to whichever process runs it.
        ({"optimized_model_filepath": "../x.onnx"}, "optimized_model_filepath", "not supported"),
        ({"profile_file_prefix": "/tmp/p"}, "profile_file_prefix", "not supported"),
        ({"enable_profiling": True}, "enable_profiling", "not supported"),
    ],
)
def test_session_options_bad_value_is_a_config_error_naming_the_key_path(
    options: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_with_session_options(options), file="cfg.json")
    assert info.value.path == f"input_model.inference_settings.session_options.{key}"
    assert words in str(info.value) and str(info.value).startswith("cfg.json: ")


def test_metric_inference_settings_session_options_are_checked_too() -> None:
    metric = {
        "name": "latency",
        "type": "latency",
        "sub_types": [{"name": "avg"}],
        "user_config": {"inference_settings": {"onnx": {"session_options": {"execution_mode": "PARALLEL"}}}},
    }
    with pytest.raises(ConfigError) as info:
        validate_config({**_with_session_options({}), "evaluators": {"e": {"metrics": [metric]}}})
    assert info.value.path == (
        "evaluators.e.metrics.0.user_config.inference_settings.onnx.session_options.execution_mode"
    )


def test_onnx_runner_applies_named_session_options_from_a_handle(tmp_path: Path) -> None:
    model = write_onnx_mlp(tmp_path)
    settings = {
        "session_options": {"execution_mode": "ORT_PARALLEL", "graph_optimization_level": "ORT_DISABLE_ALL"}
    }
    handle = ModelHandle(
        kind="onnx", config={"model_path": model["model_path"], "inference_settings": settings}
    )

    runner = OnnxRunner(handle, Accelerator())

    options = runner.session.get_session_options()
    assert options.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL


def test_onnx_runner_refuses_a_bad_session_option_from_a_foreign_model_config(tmp_path: Path) -> None:
    model = write_onnx_mlp(tmp_path)
    settings = {"session_options": {"execution_mode": "ORT_FAST"}}
    handle = ModelHandle(
        kind="onnx", config={"model_path": model["model_path"], "inference_settings": settings}
    )
    with pytest.raises(ModelLoadError, match=r"session_options\.execution_mode: .*ORT_SEQUENTIAL"):
        OnnxRunner(handle, Accelerator())
