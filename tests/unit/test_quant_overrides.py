"""tensor_quant_overrides checked at config time, with the key path (onnxruntime failed on them after
calibration, naming no key)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from olivine.passes import PASSES


def _static(**params: Any) -> Any:
    return PASSES.get("OnnxStaticQuantization").config_class.model_validate({"data_config": "d", **params})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"input": [{"scale": "x", "zero_point": "y"}]},
            r"tensor_quant_overrides\.input\[0\]\.scale: Value error, must be a number, got 'x'",
        ),
        ({"input": [{"scale": 0.1}]}, r"input\[0\]: give both scale and zero_point"),
        ({"input": [{"scale": 0.1, "zero_point": 0, "symmetric": True}]}, r"symmetric cannot go with scale"),
        ({"input": [{"scale": -1.0, "zero_point": 0}]}, r"scale must be a finite number > 0"),
        ({"input": [{"quant_type": "QInt3"}]}, r"unknown quant_type 'QInt3'; allowed: QInt8"),
        ({"input": [{"sacle": 0.1}]}, r"input\[0\]\.sacle: unknown option; allowed: quant_type, scale"),
        ({"input": {"scale": 0.1}}, r"tensor_quant_overrides\.input must be a non-empty list"),
        (
            {"input": [{"convert": {"scale": 0.1, "zero_point": 0}}]},
            r"input\[0\]\.convert\.quant_type: Field required",
        ),
        ({"w": [{"axis": 1.5}]}, r"w\[0\]\.axis: Input should be a valid integer"),
    ],
)
def test_a_malformed_override_is_refused_with_its_key_path(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _static(tensor_quant_overrides=overrides)


def test_overrides_in_extra_options_are_checked_too_and_good_ones_pass() -> None:
    with pytest.raises(ValidationError, match=r"extra_options\.TensorQuantOverrides\.x\[0\]\.rmin"):
        _static(extra_options={"TensorQuantOverrides": {"x": [{"rmin": "low"}]}})
    good = {
        "input": [{"scale": 0.05, "zero_point": 0}],
        "output": [{"quant_type": "QUInt16", "convert": {"quant_type": "uint8", "recv_nodes": ["n"]}}],
        "w": [{"axis": 0, "symmetric": True}, {"symmetric": True}],
    }
    assert _static(tensor_quant_overrides=good).tensor_quant_overrides == good
