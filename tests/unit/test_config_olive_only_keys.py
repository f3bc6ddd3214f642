"""Keys Olive 0.13 accepts that Olivine does not implement: one line saying what the key does in Olive (never
a "did you mean" guess); ``use_ort_extensions: false`` (Olive's default) is accepted."""

from __future__ import annotations

from typing import Any

import pytest

from olivine.config.loader import validate_config
from olivine.errors import ConfigError


def _model(**extra: Any) -> dict[str, Any]:
    return {"input_model": {"type": "ONNXModel", "model_path": "m.onnx", **extra}}


@pytest.mark.parametrize(
    ("model", "key", "what"),
    [
        (
            {"type": "HfModel", "model_path": "m", "test_model_config": {"num_hidden_layers": 1}},
            "test_model_config",
            "config overrides for a lightweight random HfModel",
        ),
        ({"type": "HfModel", "model_path": "m", "test_model_path": "t"}, "test_model_path", "lightweight"),
        (
            {
                "type": "ONNXModel",
                "config": {"model_path": "m.onnx", "external_initializers_file_name": "w.npz"},
            },
            "external_initializers_file_name",
            "initializers kept in a separate .npz",
        ),
        (
            {"type": "ONNXModel", "model_path": "m.onnx", "constant_inputs_file_name": "c.npz"},
            "constant_inputs_file_name",
            "constant inputs",
        ),
    ],
)
def test_olive_only_model_keys_say_what_they_are_without_a_guess(
    model: dict[str, Any], key: str, what: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"input_model": model}, file="cfg.json")
    line = str(info.value)
    assert line.startswith(f"cfg.json: input_model.{key}: Olive 0.13's key (") and what in line
    assert "not supported by Olivine yet" in line and "did you mean" not in line


def test_use_ort_extensions_false_is_accepted_and_leaves_the_model_config_unchanged() -> None:
    plain = validate_config(_model()).input_model.model_dump()
    assert validate_config(_model(use_ort_extensions=False)).input_model.model_dump() == plain


def test_use_ort_extensions_true_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_model(use_ort_extensions=True), file="cfg.json")
    assert str(info.value).startswith("cfg.json: input_model.use_ort_extensions: onnxruntime-extensions")
