"""``DynamicToFixedShape``: symbolic dimensions or whole input shapes become fixed numbers.

Olive's parameters (olive/passes/onnx/dynamic_to_fixed_shape.py): either ``dim_param`` + ``dim_value``
(each symbolic dimension name gets a value) or ``input_name`` + ``input_shape`` (each input gets a shape),
never both. onnxruntime's ``onnx_model_utils`` makes the change; output shapes that symbolic shape
inference can now fix are fixed too, as in Olive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import field_validator, model_validator

from olivine.errors import ConfigError
from olivine.model.handle import ModelHandle
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import ExternalDataConfig, OnnxPass, load_onnx, write_output


class DynamicToFixedShapeConfig(ExternalDataConfig):
    dim_param: list[str] | None = None
    dim_value: list[int] | None = None
    input_name: list[str] | None = None
    input_shape: list[list[int]] | None = None

    @field_validator("dim_value", "input_shape", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        flat = (
            [d for item in value for d in (item if isinstance(item, list) else [item])]
            if isinstance(value, list)
            else []
        )
        if any(isinstance(d, bool) for d in flat):
            raise ValueError(f"sizes are integers, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> DynamicToFixedShapeConfig:
        if self.dim_param and self.input_name:
            raise ValueError("give either dim_param + dim_value or input_name + input_shape, not both")
        if not self.dim_param and not self.input_name:
            raise ValueError("dim_param (with dim_value) or input_name (with input_shape) is required")
        if bool(self.dim_param) != bool(self.dim_value):
            raise ValueError("dim_param and dim_value go together")
        if bool(self.input_name) != bool(self.input_shape):
            raise ValueError("input_name and input_shape go together")
        if self.dim_param and self.dim_value:
            if len(self.dim_param) != len(self.dim_value):
                raise ValueError("dim_param and dim_value must have the same number of items")
            # As Olive (since its #1600): 0 is a size, e.g. past_sequence_length 0 for a first step.
            if any(not 0 <= v <= _INT64_MAX for v in self.dim_value):
                raise ValueError(
                    f"dim_value must all be >= 0 and <= {_INT64_MAX} (int64), got {self.dim_value}"
                )
            _names_once("dim_param", self.dim_param)
        if self.input_name and self.input_shape:
            if len(self.input_name) != len(self.input_shape):
                raise ValueError("input_name and input_shape must have the same number of items")
            if any(not 0 < d <= _INT64_MAX for shape in self.input_shape for d in shape):
                raise ValueError(f"input_shape dimensions must all be > 0 and <= {_INT64_MAX} (int64)")
            _names_once("input_name", self.input_name)
        return self


_INT64_MAX = 2**63 - 1


def _names_once(key: str, names: list[str]) -> None:
    if any(not name for name in names):
        raise ValueError(f"{key}: an empty name names nothing")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{key}: {', '.join(map(repr, repeated))} given more than once")


class DynamicToFixedShape(OnnxPass):
    name: ClassVar[str] = "DynamicToFixedShape"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[PassConfig]] = DynamicToFixedShapeConfig

    @classmethod
    def input_problem(cls, config: Any, proto: Any) -> tuple[str, str] | None:
        """The names and shapes, fixed on the input graph as the run fixes them."""
        try:
            _fix_inputs(proto, config)
        except ConfigError as exc:
            return exc.path or "", str(exc.message)
        except Exception:  # not a name problem: the run says what it is
            return None
        return None

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        proto = load_onnx(model.onnx_path)
        _fix_inputs(proto, config)
        _fix_output_shapes(proto)
        return write_output(proto, model, output_dir, config)


def _fix_inputs(proto: Any, cfg: DynamicToFixedShapeConfig) -> None:
    """Fix the graph inputs' dimensions in ``proto``; a name or shape that does not fit is a ConfigError
    naming the parameter."""
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed, make_input_shape_fixed

    if cfg.dim_param and cfg.dim_value:
        present = {d.dim_param for v in proto.graph.input for d in v.type.tensor_type.shape.dim} - {""}
        missing = [p for p in cfg.dim_param if p not in present]
        if missing:
            known = ", ".join(sorted(p for p in present if p)) or "none"
            raise ConfigError(
                f"{missing} are not dimensions of the inputs (they have: {known})", path="dim_param"
            )
        for param, value in zip(cfg.dim_param, cfg.dim_value, strict=True):
            make_dim_param_fixed(proto.graph, param, value)
    elif cfg.input_name and cfg.input_shape:
        inputs = [i.name for i in proto.graph.input]
        missing = [n for n in cfg.input_name if n not in inputs]
        if missing:
            raise ConfigError(f"{missing} are not inputs of the model (inputs: {inputs})", path="input_name")
        for index, (name, shape) in enumerate(zip(cfg.input_name, cfg.input_shape, strict=True)):
            try:
                make_input_shape_fixed(proto.graph, name, shape)
            except ValueError as exc:  # "Rank mismatch", or a fixed dimension given another value
                raise ConfigError(f"input '{name}': {exc}", path=f"input_shape.{index}") from exc


def _fix_output_shapes(proto: Any) -> None:
    """Outputs whose shape symbolic shape inference now knows get it (Olive's ``_fix_output_shapes``)."""
    from onnxruntime.tools.onnx_model_utils import is_fixed_size_tensor
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:  # on the graph with its big weights as typed inputs: the same shapes, without copying weights
        inferred = SymbolicShapeInference.infer_shapes(
            _weightless(proto), auto_merge=True, guess_output_rank=True
        )
    except Exception:  # whatever the light copy cannot tell, the whole model is asked as before
        inferred = SymbolicShapeInference.infer_shapes(proto, auto_merge=True, guess_output_rank=True)
    for index, output in enumerate(proto.graph.output):
        if not is_fixed_size_tensor(output):
            candidate = inferred.graph.output[index]
            if is_fixed_size_tensor(candidate):
                output.type.tensor_type.shape.CopyFrom(candidate.type.tensor_type.shape)


#: Initializers whose data is larger than this are typed graph inputs in the copy shape inference reads.
_BIG_TENSOR_BYTES = 4096


def _weightless(proto: Any) -> Any:
    """``proto`` for shape inference: big initializers become graph inputs of their type and shape (as
    onnx-ir does for onnx's C API). Symbolic shape inference copies and serializes the model it is given;
    weights cost time there and decide no shape (small tensors, which can be shapes, stay)."""
    import onnx
    from onnx import helper

    light = onnx.ModelProto()
    light.ir_version = proto.ir_version
    light.opset_import.extend(proto.opset_import)
    light.functions.extend(proto.functions)
    graph, source = light.graph, proto.graph
    graph.name = source.name
    graph.node.extend(source.node)
    graph.input.extend(source.input)
    graph.output.extend(source.output)
    graph.value_info.extend(source.value_info)
    inputs = {v.name for v in source.input}
    for tensor in source.initializer:
        if len(tensor.raw_data) <= _BIG_TENSOR_BYTES:
            graph.initializer.append(tensor)
        elif tensor.name not in inputs:
            graph.input.append(
                helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
            )
    return light
