"""Olive's fallback data for latency and throughput metrics without a ``data_config``: dummy inputs built
from the model's static input shapes (``io_config``, or an ONNX graph whose input dimensions are fixed)."""

from __future__ import annotations

from typing import Any

from olivine.config.data import DataConfig
from olivine.errors import EvaluationError
from olivine.model.handle import ModelHandle


def latency_data_config(model: ModelHandle) -> DataConfig:
    """A ``DummyDataContainer`` matching the model's static inputs.

    Raises:
        EvaluationError: the input shapes are unknown or dynamic.
    """
    io_config = model.config.get("io_config")
    if isinstance(io_config, dict) and io_config.get("input_shapes") and io_config.get("input_names"):
        return _dummy(io_config["input_names"], io_config["input_shapes"], io_config.get("input_types"))
    if model.kind == "onnx":
        found = _onnx_static_inputs(model)
        if found is not None:
            return _dummy(*found)
    raise EvaluationError(
        "the metric has no data_config and the model's input shapes are not static; give the metric a "
        "data_config (e.g. a DummyDataContainer with input_shapes)"
    )


def _dummy(names: list[str], shapes: list[list[int]], types: list[str] | None) -> DataConfig:
    params: dict[str, Any] = {"input_names": list(names), "input_shapes": [list(s) for s in shapes]}
    if types:
        params["input_types"] = list(types)
    return DataConfig.model_validate(
        {"name": "latency_dummy_data", "type": "DummyDataContainer", "load_dataset_config": params}
    )


def _onnx_static_inputs(model: ModelHandle) -> tuple[list[str], list[list[int]], list[str]] | None:
    import onnx
    from onnx import helper

    graph = onnx.load(str(model.onnx_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    names: list[str] = []
    shapes: list[list[int]] = []
    types: list[str] = []
    for value in graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
        if any(d <= 0 for d in dims):
            return None
        names.append(value.name)
        shapes.append(dims)
        types.append(str(helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    return (names, shapes, types) if names else None
