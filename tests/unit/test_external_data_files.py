"""external_data_files: the companions an ONNX file names, remembered per file version."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from olivine.model.handle import ModelHandle, external_data_files


def _model(weight_name: str) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), weight_name)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", weight_name], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    return helper.make_model(graph)


def _save(path: Path, location: str | None) -> None:
    if location is None:
        onnx.save_model(_model("w"), str(path))
    else:
        onnx.save_model(
            _model("w"), str(path), save_as_external_data=True, location=location, size_threshold=0
        )


def test_companions_follow_the_file_when_it_is_rewritten(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    _save(model, "a.data")
    assert external_data_files(model) == [tmp_path / "a.data"]
    assert external_data_files(model) == [tmp_path / "a.data"]  # the remembered answer
    stat = model.stat()
    _save(model, "b.data")  # rewritten in place: another companion
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert external_data_files(model) == [tmp_path / "b.data"]
    _save(model, None)  # and none
    assert external_data_files(model) == []
    handle = ModelHandle(kind="onnx", config={"model_path": str(model)})
    assert handle.files() == [model]


def test_a_companion_removed_is_not_listed(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    _save(model, "a.data")
    assert external_data_files(model) == [tmp_path / "a.data"]
    (tmp_path / "a.data").unlink()
    assert external_data_files(model) == []
