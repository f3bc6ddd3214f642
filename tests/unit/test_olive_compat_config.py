"""Olive config forms that Olive accepts (or removed), validated the way Olive reads them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from olivine.config.loader import validate_config
from olivine.errors import ConfigError
from olivine.evaluate.evaluator import _hf_metrics

ONNX = {"type": "ONNXModel", "model_path": "m.onnx"}


def _error(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_config(data, file="cfg.json")
    return info.value


@pytest.mark.parametrize(
    ("data", "path", "version", "successor"),
    [
        (
            {"input_model": {"type": "PyTorchModel", "hf_config": {"model_name": "x"}}},
            "input_model.hf_config",
            "0.7",
            "HfModel",
        ),
        ({"input_model": ONNX, "pass_flows": [["a"]]}, "pass_flows", "0.9.3", "'passes'"),
        (
            {"input_model": {"type": "PyTorchModel", "model_path": "m.pt", "model_storage_kind": "file"}},
            "input_model.model_storage_kind",
            "0.3",
            "model_path",
        ),
        (
            {
                "input_model": ONNX,
                "evaluators": {
                    "e": {
                        "metrics": [
                            {
                                "name": "acc",
                                "type": "accuracy",
                                "sub_types": [{"name": "accuracy_score"}],
                                "user_config": {"dataloader_func": "create_dataloader"},
                            }
                        ]
                    }
                },
            },
            "evaluators.e.metrics.0.user_config.dataloader_func",
            "0.7",
            "data_config",
        ),
        (
            {
                "input_model": ONNX,
                "evaluators": {
                    "e": {
                        "metrics": [
                            {
                                "name": "acc",
                                "type": "accuracy",
                                "sub_type": "accuracy_score",
                                "priority_rank": 1,
                            }
                        ]
                    }
                },
            },
            "evaluators.e.metrics.0.sub_type",
            "0.2.1",
            "sub_types",
        ),
    ],
)
def test_removed_olive_key_names_the_olive_version_and_successor(
    data: dict[str, Any], path: str, version: str, successor: str
) -> None:
    err = _error(data)
    assert err.path == path
    assert f"removed in Olive {version}" in err.message
    assert successor in err.message
    assert "did you mean" not in err.message
    assert str(err).startswith(f"cfg.json: {path}: ")


def test_key_path_has_no_pydantic_internals() -> None:
    model = {"type": "PyTorchModel", "model_path": "m.pt", "io_config": {"input_names": ["x"], "bogus": 1}}
    err = _error({"input_model": model})
    assert err.path == "input_model.io_config.bogus"


def test_io_config_accepts_olive_output_shapes_and_types() -> None:
    io = {"input_names": ["x"], "output_names": ["y"], "output_shapes": [[1, 2]], "output_types": ["float32"]}
    cfg = validate_config({"input_model": {"type": "PyTorchModel", "model_path": "m.pt", "io_config": io}})
    assert cfg.input_model.io_config.output_shapes == [[1, 2]]  # type: ignore[union-attr]


def test_metric_level_user_config_keys_are_folded_into_user_config() -> None:
    metric = {
        "name": "lat",
        "type": "latency",
        "sub_types": [{"name": "avg"}],
        "inference_settings": {"onnx": {"session_options": {}}},
    }
    cfg = validate_config({"input_model": ONNX, "evaluators": {"e": {"metrics": [metric]}}})
    user_config = cfg.evaluators["e"].metrics[0].user_config
    assert user_config is not None and user_config.inference_settings == {"onnx": {"session_options": {}}}


def test_empty_evaluator_is_accepted() -> None:
    cfg = validate_config({"input_model": ONNX, "evaluators": {"e": {}}, "evaluator": "e"})
    assert cfg.evaluators["e"].metrics == []


@pytest.mark.parametrize("kind", ["LMEvaluator", "MTEBEvaluator"])
def test_unsupported_olive_evaluator_types_are_refused_by_name(kind: str) -> None:
    err = _error({"input_model": ONNX, "evaluators": {"e": {"type": kind, "tasks": ["arc_easy"]}}})
    assert err.path == "evaluators.e"
    assert f"evaluator type '{kind}'" in err.message


def test_huggingface_metrics_sub_type_outside_the_computed_ones_names_the_backend() -> None:
    metric = {
        "name": "m",
        "type": "accuracy",
        "backend": "huggingface_metrics",
        "sub_types": [{"name": "bleu"}],
    }
    err = _error({"input_model": ONNX, "evaluators": {"e": {"metrics": [metric]}}})
    assert "huggingface_metrics" in err.message
    assert "bleu" in err.message


class _FakeSession:
    """Stands in for the evaluation session: the predictions of a model that is not run here."""

    def __init__(self, preds: list[int], targets: list[int]) -> None:
        from olivine.evaluate.inference import ModelOutput

        self.output = ModelOutput(preds=np.array(preds), logits=None)
        self.targets = np.array(targets)

    def predictions(self, metric: Any) -> tuple[Any, np.ndarray]:
        return self.output, self.targets


@pytest.mark.parametrize(
    ("name", "params", "func", "kwargs"),
    [
        ("accuracy", None, "accuracy_score", {}),
        ("f1", None, "f1_score", {}),
        ("f1", {"average": "macro"}, "f1_score", {"average": "macro"}),
        ("f1", {"average": "micro"}, "f1_score", {"average": "micro"}),
        (
            "precision",
            {"average": "weighted"},
            "precision_score",
            {"average": "weighted", "zero_division": 0},
        ),
        ("recall", None, "recall_score", {}),
    ],
)
def test_huggingface_metrics_match_scikit_learn_which_evaluate_wraps(
    name: str, params: dict[str, Any] | None, func: str, kwargs: dict[str, Any]
) -> None:
    import sklearn.metrics

    binary = params is None or params.get("average", "binary") == "binary"
    preds = [1, 0, 1, 1, 0, 1, 0, 0] if binary else [2, 0, 1, 1, 0, 2, 0, 1]
    targets = [1, 0, 0, 1, 1, 1, 0, 1] if binary else [2, 1, 1, 0, 0, 2, 0, 2]
    sub: dict[str, Any] = {"name": name, "priority": 1}
    if params:
        sub["metric_config"] = {"compute_params": params}
    metric = {
        "name": "m",
        "type": "accuracy",
        "backend": "huggingface_metrics",
        "sub_types": [sub],
        "data_config": "d",
    }
    cfg = validate_config({"input_model": ONNX, "evaluators": {"e": {"metrics": [metric]}}})
    got = _hf_metrics(_FakeSession(preds, targets), cfg.evaluators["e"].metrics[0])  # type: ignore[arg-type]
    expected = getattr(sklearn.metrics, func)(targets, preds, **kwargs)
    assert got[name] == pytest.approx(expected)
