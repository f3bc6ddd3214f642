"""The ONNX save helpers: when a model goes to external data, and moving a written file into place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import uses_external_data

from olivine.passes.onnx_io import (
    ExternalDataConfig,
    _needs_external_data,
    publish_onnx_file,
    save_onnx_model,
)


def _model(weight_elems: int = 64) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.arange(weight_elems, dtype=np.float32).reshape(1, -1), "w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight_elems])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weight_elems])],
        [weight],
    )
    return helper.make_model(graph)


def test_needs_external_data_false_for_a_small_model() -> None:
    assert _needs_external_data(_model()) is False


def test_needs_external_data_counts_tensor_bytes_against_the_limit() -> None:
    model = _model(weight_elems=64)  # 256 bytes of weights
    assert _needs_external_data(model, limit=10_000, margin=1_000) is False
    # Within the margin, the serialized size decides: 341 bytes in all.
    assert _needs_external_data(model, limit=400, margin=200) is False
    assert _needs_external_data(model, limit=341, margin=200) is True
    assert _needs_external_data(model, limit=200, margin=50) is True
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.zeros(500, np.float32)))
    model.graph.node.append(const)
    assert _needs_external_data(model, limit=2_000, margin=100) is True


def test_publish_moves_a_single_file_model_unchanged(tmp_path: Path) -> None:
    written = tmp_path / "tmp" / "model.onnx"
    written.parent.mkdir()
    onnx.save_model(_model(), str(written))
    data = written.read_bytes()
    target = tmp_path / "out" / "model.onnx"
    graph = publish_onnx_file(written, target, ExternalDataConfig())
    assert target.read_bytes() == data and not written.exists()
    assert [o.name for o in graph.graph.output] == ["y"]


def test_publish_saves_external_data_when_asked(tmp_path: Path) -> None:
    written = tmp_path / "tmp" / "model.onnx"
    written.parent.mkdir()
    onnx.save_model(_model(), str(written))
    target = tmp_path / "out" / "model.onnx"
    publish_onnx_file(written, target, ExternalDataConfig(save_as_external_data=True, size_threshold=0))
    assert (tmp_path / "out" / "model.onnx.data").is_file()
    loaded = onnx.load(str(target), load_external_data=False)
    assert uses_external_data(loaded.graph.initializer[0])
    np.testing.assert_array_equal(
        numpy_helper.to_array(onnx.load(str(target)).graph.initializer[0]),
        numpy_helper.to_array(_model().graph.initializer[0]),
    )


def test_publish_gathers_external_data_into_one_file_by_default(tmp_path: Path) -> None:
    written = tmp_path / "tmp" / "model.onnx"
    written.parent.mkdir()
    onnx.save_model(_model(), str(written), save_as_external_data=True, location="w.bin", size_threshold=0)
    target = tmp_path / "out" / "model.onnx"
    publish_onnx_file(written, target, ExternalDataConfig())
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]
    assert not uses_external_data(onnx.load(str(target)).graph.initializer[0])


def test_save_onnx_model_single_file_by_default(tmp_path: Path) -> None:
    save_onnx_model(_model(), tmp_path / "m.onnx", ExternalDataConfig())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
