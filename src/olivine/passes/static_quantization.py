"""``OnnxStaticQuantization``: onnxruntime's static quantization, calibrated on a data config.

Olive's parameter names, defaults and search values (olive/passes/onnx/quantization.py): ``quant_format``
QDQ (default) or QOperator, ``calibrate_method`` MinMax / Entropy / Percentile / Distribution,
``precision`` (weights) and ``activation_type`` int8 / uint8, and int16 / uint16 with QDQ. With QDQ and
``prepare_qdq_config`` (the default) onnxruntime's ``get_qdq_config`` picks what to quantize, as in Olive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.passes.base import ConditionalValues, PassConfig, PassContext
from olivine.passes.onnx_io import OnnxPass
from olivine.passes.quant_config import (
    COMMON_SEARCH_VALUES,
    LEGACY_NAMES,
    LEGACY_SEARCH_VALUES,
    STATIC_CONDITIONAL_VALUES,
    STATIC_SEARCH_VALUES,
    StaticQuantizationConfig,
    static_invalid_reason,
)
from olivine.passes.quant_run import quantize, shared_steps


class OnnxStaticQuantization(OnnxPass):
    """Quantize weights and activations; activation ranges come from calibration data."""

    name: ClassVar[str] = "OnnxStaticQuantization"
    version: ClassVar[str] = "4"
    config_class: ClassVar[type[PassConfig]] = StaticQuantizationConfig
    legacy_names: ClassVar[dict[str, str]] = LEGACY_NAMES
    search_values: ClassVar[dict[str, tuple[Any, ...]]] = {
        **COMMON_SEARCH_VALUES,
        **STATIC_SEARCH_VALUES,
        **LEGACY_SEARCH_VALUES,
    }
    conditional_search_values: ClassVar[dict[str, ConditionalValues]] = STATIC_CONDITIONAL_VALUES

    @classmethod
    def shared_steps(cls, config: Any) -> tuple[str, ...]:
        return shared_steps(config)

    @classmethod
    def invalid_reason(cls, config: Any, accelerator: Accelerator) -> str | None:
        return static_invalid_reason(config, accelerator)

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        """Calibrate on ``data_config`` and write the quantized model with the input model's file name."""
        return quantize(self.name, model, config, output_dir, ctx, static=True)
