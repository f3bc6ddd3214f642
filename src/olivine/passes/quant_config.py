"""Config models of onnxruntime's 8/16-bit quantization passes: Olive's names, defaults, search values.

Olive (olive/passes/onnx/quantization.py) builds ``OnnxDynamicQuantization``, ``OnnxStaticQuantization`` and
the combined ``OnnxQuantization`` from the same parameter groups; so does this module. Configs written for
Olive <= 0.8 used ``weight_type`` / ``activation_type`` as ``QInt8`` / ``QUInt8`` and top-level extra
options such as ``MatMulConstBOnly``; both are still read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from olivine.model.accelerator import Accelerator
from olivine.passes.base import IGNORED_CHOICE, INVALID_CHOICE, ConditionalValues
from olivine.passes.onnx_io import ExternalDataConfig
from olivine.passes.quant_overrides import check_overrides

Precision = Literal["int8", "uint8", "int16", "uint16", "int4", "uint4"]
#: onnxruntime quantizes activations to 8 or 16 bits only (4-bit is for weights).
ActivationPrecision = Literal["int8", "uint8", "int16", "uint16"]
_LEGACY_TYPES = {"QInt8": "int8", "QUInt8": "uint8", "QInt16": "int16", "QUInt16": "uint16"}
# Olive 0.8 exposed these extra options as top-level parameters.
_LEGACY_EXTRA_OPTIONS = (
    "extra.Sigmoid.nnapi",
    "ActivationSymmetric",
    "WeightSymmetric",
    "EnableSubgraph",
    "ForceQuantizeNoInputCheck",
    "MatMulConstBOnly",
    "AddQDQPairToWeight",
    "OpTypesToExcludeOutputQuantization",
    "DedicatedQDQPair",
    "QDQOpTypePerChannelSupportToAxis",
    "CalibTensorRangeSymmetric",
    "CalibMovingAverage",
    "CalibMovingAverageConstant",
)
#: extra_options keys a parameter sets: key -> (parameter, used by dynamic quantization too).
PARAM_EXTRA_OPTIONS = {
    "ActivationSymmetric": ("activation_symmetric", True),
    "WeightSymmetric": ("weight_symmetric", True),
    "MinimumRealRange": ("min_real_range", False),
    "TensorQuantOverrides": ("tensor_quant_overrides", False),
}

#: Olive's declared search values (``search_defaults``) of the parameters all three passes share.
COMMON_SEARCH_VALUES: dict[str, tuple[Any, ...]] = {
    "precision": ("int8", "uint8"),
    "per_channel": (True, False),
    "reduce_range": (True, False),
    "quant_preprocess": (True, False),
}
#: Olive <= 0.8 declared ``weight_type``'s search values (``Categorical(["QInt8", "QUInt8"])``); such a config
#: may still say ``"weight_type": "SEARCHABLE_VALUES"`` (or give a list of those names). Each choice becomes
#: ``precision`` when the pass validates its config (a run that also sets another precision is invalid).
#: Not a field, so ``include_pass_params`` never searches it beside ``precision``.
LEGACY_SEARCH_VALUES: dict[str, tuple[Any, ...]] = {"weight_type": ("QInt8", "QUInt8")}
LEGACY_NAMES = {"weight_type": "precision"}
#: ... and of the static parameters.
STATIC_SEARCH_VALUES: dict[str, tuple[Any, ...]] = {
    "calibrate_method": ("MinMax", "Entropy", "Percentile"),
    "quant_format": ("QOperator", "QDQ"),
}
#: Olive's activation_type search is conditional on quant_format and precision: the activation type is
#: the weights' type, and QOperator with int8 is an invalid choice (S8S8 QOperator is slow on x86-64).
_ACTIVATION_BY_FORMAT = {
    ("QDQ", "int8"): "int8",
    ("QDQ", "uint8"): "uint8",
    ("QOperator", "uint8"): "uint8",
    ("QOperator", "int8"): INVALID_CHOICE,
}
STATIC_CONDITIONAL_VALUES = {
    "activation_type": ConditionalValues(("quant_format", "precision"), _ACTIVATION_BY_FORMAT)
}
#: OnnxQuantization: the same condition in static mode; dynamic quantization ignores activation_type.
COMBINED_CONDITIONAL_VALUES = {
    "activation_type": ConditionalValues(
        ("quant_mode", "quant_format", "precision"),
        {
            **{("static", *parents): value for parents, value in _ACTIVATION_BY_FORMAT.items()},
            **{("dynamic", *parents): IGNORED_CHOICE for parents in _ACTIVATION_BY_FORMAT},
        },
    )
}


class QuantizationConfig(ExternalDataConfig):
    """The parameters every onnxruntime quantization pass has (Olive's ``_onnx_quantization_config``)."""

    precision: Precision = "int8"
    op_types_to_quantize: list[str] | None = None
    op_types_to_exclude: list[str] | None = None
    nodes_to_quantize: list[str] | None = None
    nodes_to_exclude: list[str] | None = None
    per_channel: bool = False
    reduce_range: bool = False
    quant_preprocess: bool = True
    activation_symmetric: bool = False
    weight_symmetric: bool | None = None
    extra_options: dict[str, Any] | None = None

    @field_validator("extra_options")
    @classmethod
    def _extra_overrides(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and value.get("TensorQuantOverrides") is not None:
            check_overrides(value["TensorQuantOverrides"], "extra_options.TensorQuantOverrides")
        return value

    @model_validator(mode="before")
    @classmethod
    def _legacy_names(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = dict(value)
        if "weight_type" in out:
            out["precision"] = _legacy_type(out.pop("weight_type"), "weight_type", out.get("precision"))
        if isinstance(out.get("activation_type"), str) and out["activation_type"] in _LEGACY_TYPES:
            out["activation_type"] = _LEGACY_TYPES[out["activation_type"]]
        legacy = {k: out.pop(k) for k in _LEGACY_EXTRA_OPTIONS if k in out}
        for key, (param, _) in PARAM_EXTRA_OPTIONS.items():
            if key in legacy:
                out.setdefault(param, legacy.pop(key))
        if legacy:
            out["extra_options"] = {**legacy, **dict(out.get("extra_options") or {})}
        return out


def _legacy_type(value: Any, key: str, precision: Any) -> str:
    if value not in _LEGACY_TYPES:
        raise ValueError(f"{key} must be one of {', '.join(_LEGACY_TYPES)}, got {value!r}")
    mapped = _LEGACY_TYPES[value]
    if precision is not None and precision != mapped:
        raise ValueError(f"{key} (Olive <= 0.8) and precision disagree; give only precision")
    return mapped


class DynamicQuantizationConfig(QuantizationConfig):
    """Olive's ``OnnxDynamicQuantization`` parameters (8-bit: onnxruntime has no 16-bit dynamic path)."""

    quant_mode: Literal["dynamic"] = "dynamic"

    @field_validator("precision")
    @classmethod
    def _eight_bit(cls, value: str) -> str:
        if value not in ("int8", "uint8"):
            raise ValueError(f"dynamic quantization supports precision int8 or uint8, got '{value}'")
        return value


class StaticFieldsConfig(QuantizationConfig):
    """The static parameters (Olive's ``_dataloader_config`` and ``_static_optional_config``)."""

    data_config: str | None = None
    calibrate_method: Literal["MinMax", "Entropy", "Percentile", "Distribution"] = "MinMax"
    calibration_providers: list[str] | None = None
    #: Olivine's: at most this many calibration samples are read (Olive's INC passes' name; a one-item list
    #: as INC writes it is accepted). None: the whole data config.
    calibration_sampling_size: int | list[int] | None = None
    quant_format: Literal["QDQ", "QOperator"] = "QDQ"
    activation_type: ActivationPrecision = "int8"
    #: The smallest range onnxruntime lets a tensor have (it widens narrower ones): not negative.
    min_real_range: Annotated[float, Field(ge=0)] | None = None
    tensor_quant_overrides: dict[str, Any] | None = None
    prepare_qdq_config: bool = True

    @field_validator("tensor_quant_overrides")
    @classmethod
    def _overrides(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_overrides(value)
        return value

    @field_validator("data_config", mode="before")
    @classmethod
    def _named_data_config(cls, value: Any) -> Any:
        if isinstance(value, dict):  # a run config lifts an inline one into data_configs before this
            raise ValueError("give the name of a data config in 'data_configs'")
        return value

    @field_validator("calibration_sampling_size")
    @classmethod
    def _one_size(cls, value: int | list[int] | None) -> int | list[int] | None:
        sizes = value if isinstance(value, list) else [value] if value is not None else []
        if len(sizes) > 1:
            raise ValueError("calibration_sampling_size: give one size (Olivine searches no list here)")
        if any(size < 1 for size in sizes):
            raise ValueError(f"calibration_sampling_size must be >= 1, got {value}")
        return value

    @property
    def sampling_size(self) -> int | None:
        value = self.calibration_sampling_size
        return value[0] if isinstance(value, list) else value


class StaticQuantizationConfig(StaticFieldsConfig):
    """Olive's ``OnnxStaticQuantization`` parameters."""

    quant_mode: Literal["static"] = "static"

    @model_validator(mode="after")
    def _needs_data(self) -> StaticQuantizationConfig:
        if not self.data_config:
            raise ValueError("data_config: static quantization calibrates on data; name a data config")
        return self


#: The parameters only static quantization reads (Olive's ``_dataloader_config`` and
#: ``_static_optional_config``).
STATIC_ONLY_FIELDS = tuple(
    field for field in StaticFieldsConfig.model_fields if field not in QuantizationConfig.model_fields
)


class OnnxQuantizationConfig(StaticFieldsConfig):
    """Olive's combined ``OnnxQuantization`` (``quant_mode`` static, the default, or dynamic)."""

    quant_mode: Literal["static", "dynamic"] = "static"

    @model_validator(mode="after")
    def _mode_params(self) -> OnnxQuantizationConfig:
        if self.quant_mode == "static" and not self.data_config:
            raise ValueError("data_config: quant_mode 'static' calibrates on data; name a data config")
        if self.quant_mode == "dynamic" and self.precision not in ("int8", "uint8"):
            raise ValueError(f"quant_mode 'dynamic' supports precision int8 or uint8, got '{self.precision}'")
        if self.quant_mode == "dynamic":
            # Olive ignores the static parameters in dynamic mode (its conditional defaults): they take
            # their defaults, so they neither key the run (a search over calibrate_method or quant_format
            # repeats the same dynamic run: a cache hit, as in Olive) nor name a data config to load.
            for field in STATIC_ONLY_FIELDS:
                setattr(self, field, type(self).model_fields[field].get_default(call_default_factory=True))
        return self


def static_invalid_reason(config: StaticFieldsConfig, accelerator: Accelerator) -> str | None:
    """Why search skips a static configuration, or None: what cannot run (:func:`static_unrunnable`).
    S8S8 QOperator (slow on x86-64 CPUs) is skipped only when activation_type is searched, by Olive's
    conditional search values (:data:`STATIC_CONDITIONAL_VALUES`); an explicit activation_type runs it,
    as in Olive."""
    found = static_unrunnable(config, accelerator)
    return found[1] if found else None


def static_unrunnable(config: StaticFieldsConfig, accelerator: Accelerator) -> tuple[str, str] | None:
    """(the parameter to name, why) when a static configuration cannot run on ``accelerator``, or None."""
    if config.quant_format == "QOperator" and (
        {config.precision, config.activation_type} & {"int16", "uint16"}
    ):
        return "quant_format", (
            "quant_format QOperator has no 16-bit operators; int16/uint16 need quant_format QDQ"
        )
    if config.precision in ("int4", "uint4") and config.quant_format == "QOperator":
        return "quant_format", (
            "quant_format QOperator has no 4-bit operators; precision int4/uint4 needs quant_format QDQ"
        )
    if config.activation_type == "int8" and config.precision == "uint8":
        # onnxruntime's check_static_quant_arguments refuses this pair in both formats.
        return "activation_type", (
            "onnxruntime's static quantization does not take int8 activations with uint8 weights "
            "(activation_type int8, precision uint8): set activation_type uint8, or precision int8"
        )
    foreign = [p for p in config.calibration_providers or [] if p not in accelerator.execution_providers]
    if foreign:
        return "calibration_providers", (
            f"calibration_providers {foreign} are not available on the target "
            f"(execution providers: {', '.join(accelerator.execution_providers)})"
        )
    return None
