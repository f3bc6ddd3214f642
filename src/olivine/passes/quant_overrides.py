"""``tensor_quant_overrides`` (onnxruntime's ``TensorQuantOverrides`` extra option) checked at config time.

onnxruntime reads the dictionary deep inside quantization, after calibration, and a value of the wrong
type failed there with "'str' object has no attribute 'squeeze'", naming no key. Here each tensor's list
of overrides is checked against onnxruntime's keys and rules (``scale`` and ``zero_point`` together and
without ``symmetric`` / ``reduce_range`` / ``rmin`` / ``rmax``; one entry per channel with ``axis``), with
the key path. A JSON config cannot hold onnxruntime's ``QuantType`` members: ``quant_type`` is its name
(``QInt8``, ``QUInt8``, ``QInt16``, ``QUInt16``, ``QInt4``, ``QUInt4``, or ``int8``...) and is handed to
onnxruntime as the member (:func:`for_onnxruntime`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

#: Olive's precision names -> onnxruntime's ``QuantType`` member names.
PRECISION_TYPES = {
    "int8": "QInt8",
    "uint8": "QUInt8",
    "int16": "QInt16",
    "uint16": "QUInt16",
    "int4": "QInt4",
    "uint4": "QUInt4",
}
#: What an override's ``quant_type`` may say: a member's name, or a precision name.
_QUANT_TYPES = {
    **{name: name for name in (*PRECISION_TYPES.values(), "QFLOAT8E4M3FN")},
    **PRECISION_TYPES,
}
_WITH_SCALE_ONLY = ("symmetric", "reduce_range", "rmin", "rmax")


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    return float(value)


Number = Annotated[float, BeforeValidator(_number)]


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quant_type: str | None = None
    scale: Number | None = None
    zero_point: StrictInt | None = None
    symmetric: StrictBool | None = None
    reduce_range: StrictBool | None = None
    rmin: Number | None = None
    rmax: Number | None = None

    @field_validator("quant_type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in _QUANT_TYPES:
            raise ValueError(f"unknown quant_type '{value}'; allowed: {', '.join(_QUANT_TYPES)}")
        return value

    @field_validator("scale")
    @classmethod
    def _usable_scale(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"scale must be a finite number > 0, got {value}")
        return value

    @field_validator("rmin", "rmax")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be finite, got {value}")
        return value


class _Convert(_Values):
    quant_type: str  # required in a conversion
    recv_nodes: list[str] | None = None


class _Override(_Values):
    axis: StrictInt | None = None
    convert: _Convert | None = None


def check_overrides(value: Any, key: str = "tensor_quant_overrides") -> None:
    """Raise ``ValueError`` naming the key path if ``value`` is not onnxruntime's overrides format."""
    if not isinstance(value, dict):
        raise ValueError(f"{key} must map tensor names to lists of overrides, got {type(value).__name__}")
    for tensor, entries in value.items():
        where = f"{key}.{tensor}"
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{where} must be a non-empty list of overrides (one per channel with axis)")
        for index, entry in enumerate(entries):
            at = f"{where}[{index}]"
            if not isinstance(entry, dict):
                raise ValueError(f"{at} must be a dict of override options, got {type(entry).__name__}")
            try:
                parsed = _Override.model_validate(entry)
            except ValidationError as exc:
                error = exc.errors()[0]
                path = ".".join(str(p) for p in error["loc"])
                problem = "unknown option" if error["type"] == "extra_forbidden" else error["msg"]
                allowed = ", ".join(_Override.model_fields)
                hint = f"; allowed: {allowed}" if error["type"] == "extra_forbidden" else ""
                raise ValueError(f"{at}.{path}: {problem}{hint}") from None
            for part, values in ((at, parsed), (f"{at}.convert", parsed.convert)):
                if values is not None:
                    _pair_rules(part, values)


def _pair_rules(at: str, values: _Values) -> None:
    if (values.scale is None) != (values.zero_point is None):
        raise ValueError(f"{at}: give both scale and zero_point, or neither")
    if values.scale is not None:
        clashing = [k for k in _WITH_SCALE_ONLY if getattr(values, k) is not None]
        if clashing:
            raise ValueError(f"{at}: {', '.join(clashing)} cannot go with scale and zero_point")


def for_onnxruntime(value: dict[str, Any], activation_type: str) -> dict[str, Any]:
    """The overrides as onnxruntime takes them: ``quant_type`` names as ``QuantType`` members, ``scale``,
    ``rmin`` and ``rmax`` as float32 arrays, ``zero_point`` as an array of its quantized type (the entry's
    ``quant_type``, else ``activation_type``; onnxruntime casts a weight's to the weight type itself)."""
    import numpy as np
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.quant_utils import ONNX_TYPE_TO_NP_TYPE

    def typed(entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        out = dict(entry)
        if isinstance(out.get("quant_type"), str) and out["quant_type"] in _QUANT_TYPES:
            out["quant_type"] = QuantType[_QUANT_TYPES[out["quant_type"]]]
        for key in ("scale", "rmin", "rmax"):
            if isinstance(out.get(key), (int, float)) and not isinstance(out[key], bool):
                out[key] = np.array(out[key], dtype=np.float32)
        if isinstance(out.get("zero_point"), int) and not isinstance(out["zero_point"], bool):
            quant_type = out.get("quant_type") or QuantType[_QUANT_TYPES[activation_type]]
            out["zero_point"] = np.array(
                out["zero_point"], dtype=ONNX_TYPE_TO_NP_TYPE[quant_type.tensor_type]
            )
        if isinstance(out.get("convert"), dict):
            out["convert"] = typed(out["convert"])
        if isinstance(out.get("recv_nodes"), list):
            out["recv_nodes"] = set(out["recv_nodes"])
        return out

    return {tensor: [typed(e) for e in entries] for tensor, entries in value.items()}
