"""``OnnxDynamicQuantization``: onnxruntime's dynamic quantization (8-bit weights, activations quantized at
run time, no calibration data).

Olive's parameter names, defaults and search values (olive/passes/onnx/quantization.py): ``precision``
``int8`` | ``uint8``, ``quant_preprocess`` on by default; see :mod:`olivine.passes.quant_config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from olivine.model.handle import ModelHandle
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import OnnxPass
from olivine.passes.quant_config import (
    COMMON_SEARCH_VALUES,
    LEGACY_NAMES,
    LEGACY_SEARCH_VALUES,
    DynamicQuantizationConfig,
)
from olivine.passes.quant_run import quantize, shared_steps

# Kept importable under its old name.
OnnxDynamicQuantizationConfig = DynamicQuantizationConfig


class OnnxDynamicQuantization(OnnxPass):
    """Quantize weights to 8 bits; activations are quantized at run time."""

    name: ClassVar[str] = "OnnxDynamicQuantization"
    version: ClassVar[str] = "2"
    config_class: ClassVar[type[PassConfig]] = DynamicQuantizationConfig
    legacy_names: ClassVar[dict[str, str]] = LEGACY_NAMES
    search_values: ClassVar[dict[str, tuple[Any, ...]]] = {**COMMON_SEARCH_VALUES, **LEGACY_SEARCH_VALUES}

    @classmethod
    def shared_steps(cls, config: Any) -> tuple[str, ...]:
        return shared_steps(config)

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        """Write the quantized model under ``output_dir`` with the input model's file name."""
        return quantize(self.name, model, config, output_dir, ctx, static=False)
