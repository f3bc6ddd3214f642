"""``OnnxQuantization``: Olive's combined quantization pass, static (default) or dynamic by ``quant_mode``.

The static parameters are ignored when ``quant_mode`` is dynamic, as in Olive (they take their defaults,
so a search over them repeats one dynamic run, a cache hit); under search, Olive's ``quant_mode`` search
values are dynamic and static, and quant_mode varies fastest, as Olive orders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.passes.base import ConditionalValues, PassConfig, PassContext
from olivine.passes.onnx_io import OnnxPass
from olivine.passes.quant_config import (
    COMBINED_CONDITIONAL_VALUES,
    COMMON_SEARCH_VALUES,
    LEGACY_NAMES,
    LEGACY_SEARCH_VALUES,
    STATIC_ONLY_FIELDS,
    STATIC_SEARCH_VALUES,
    OnnxQuantizationConfig,
    static_invalid_reason,
)
from olivine.passes.quant_run import quantize, shared_steps


class OnnxQuantization(OnnxPass):
    """Static or dynamic onnxruntime quantization, chosen by ``quant_mode``."""

    name: ClassVar[str] = "OnnxQuantization"
    version: ClassVar[str] = "4"
    config_class: ClassVar[type[PassConfig]] = OnnxQuantizationConfig
    legacy_names: ClassVar[dict[str, str]] = LEGACY_NAMES
    search_values: ClassVar[dict[str, tuple[Any, ...]]] = {
        "quant_mode": ("dynamic", "static"),
        **COMMON_SEARCH_VALUES,
        **STATIC_SEARCH_VALUES,
        **LEGACY_SEARCH_VALUES,
    }
    conditional_search_values: ClassVar[dict[str, ConditionalValues]] = COMBINED_CONDITIONAL_VALUES
    #: Olive declares quant_mode first: its search alternates dynamic and static points.
    search_first: ClassVar[tuple[str, ...]] = ("quant_mode",)

    @classmethod
    def shared_steps(cls, config: Any) -> tuple[str, ...]:
        return shared_steps(config)

    @classmethod
    def data_config_name(cls, config: Any) -> str | None:
        return config.data_config if config.quant_mode == "static" else None

    @classmethod
    def ignored_params(cls, fixed: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        if fixed.get("quant_mode") == "dynamic":
            return "quant_mode dynamic does not calibrate", STATIC_ONLY_FIELDS
        return "", ()

    @classmethod
    def invalid_reason(cls, config: Any, accelerator: Accelerator) -> str | None:
        if config.quant_mode == "dynamic":
            if config.precision not in ("int8", "uint8"):
                return "quant_mode dynamic supports precision int8 or uint8"
            return None
        return static_invalid_reason(config, accelerator)

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        cfg: OnnxQuantizationConfig = config
        return quantize(self.name, model, cfg, output_dir, ctx, static=cfg.quant_mode == "static")
