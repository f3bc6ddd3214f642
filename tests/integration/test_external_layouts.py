"""External data in the layouts onnx allows and the passes met badly: a subfolder location, tensors inside
an If branch, an input model whose weights change while its graph file does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from olivine.engine.identity import input_model_id
from olivine.engine.output import copy_model
from olivine.model.handle import ModelHandle, external_data_files
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassContext
from olivine.passes.onnx_wire import GraphWithoutWeights

pytestmark = pytest.mark.integration

FEED = {"x": np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)}


def _if_model(folder: Path, location: str) -> Path:
    """x @ W, then an If whose branches hold their own weight; every weight in ``location``."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "W")
    branch_w = numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "Wb")
    branch = helper.make_graph(
        [helper.make_node("MatMul", ["h", "Wb"], ["z"])],
        "branch",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 16])],
        [branch_w],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("ReduceSum", ["h"], ["s"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node("Greater", ["s", "zero"], ["cond"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        [w],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data = folder / location
    data.parent.mkdir(parents=True, exist_ok=True)
    offset = 0
    stored = [proto.graph.initializer[0], proto.graph.node[-1].attribute[0].g.initializer[0]]
    stored.append(proto.graph.node[-1].attribute[1].g.initializer[0])
    with open(data, "wb") as out:
        for tensor in stored:
            raw = tensor.raw_data
            out.write(raw)
            set_external_data(tensor, location, offset, len(raw))
            tensor.ClearField("raw_data")
            tensor.data_location = TensorProto.EXTERNAL
            offset += len(raw)
    onnx.save_model(proto, str(folder / "model.onnx"))
    return folder / "model.onnx"


def _handle(path: Path) -> ModelHandle:
    return ModelHandle(kind="onnx", config={"model_path": str(path)})


def test_subgraph_weights_in_a_subfolder_are_the_models_files(tmp_path: Path) -> None:
    path = _if_model(tmp_path / "m", "weights/w.bin")
    assert external_data_files(path) == [tmp_path / "m" / "weights" / "w.bin"]
    assert GraphWithoutWeights.load(path) is None  # not a one-file model


def test_an_input_models_id_follows_its_external_weights(tmp_path: Path) -> None:
    """Only the graph file was hashed: new weights with the same graph file were a cache hit."""
    path = _if_model(tmp_path / "m", "model.onnx.data")
    before = input_model_id(_handle(path))
    data = tmp_path / "m" / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[0] ^= 0xFF
    data.write_bytes(bytes(raw))
    assert input_model_id(_handle(path)) != before


def test_the_output_copy_keeps_the_data_files_place(tmp_path: Path) -> None:
    path = _if_model(tmp_path / "m", "weights/w.bin")
    copied = copy_model(_handle(path), tmp_path / "out")
    assert (tmp_path / "out" / "weights" / "w.bin").is_file()
    np.testing.assert_array_equal(open_runner(copied).run(FEED)[0], open_runner(_handle(path)).run(FEED)[0])


@pytest.mark.parametrize(
    "type_name", ["AddOliveMetadata", "OrtSessionParamsTuning", "OnnxIODataTypeConverter"]
)
def test_passes_that_keep_the_weights_keep_them_usable(tmp_path: Path, type_name: str) -> None:
    path = _if_model(tmp_path / "m", "weights/w.bin")
    params: dict[str, object] = {
        "AddOliveMetadata": {"graph_name": "g2"},
        "OrtSessionParamsTuning": {"intra_thread_num_list": [1], "inter_thread_num_list": [1]},
        "OnnxIODataTypeConverter": {},
    }[type_name]
    ctx = PassContext()
    if type_name == "OrtSessionParamsTuning":
        from olivine.config.data import DataConfig

        np.savez(tmp_path / "calib.npz", x=FEED["x"])
        calib = DataConfig.model_validate(
            {
                "name": "calib",
                "load_dataset_config": {"type": "numpy_dataset", "data_files": str(tmp_path / "calib.npz")},
            }
        )
        ctx = PassContext(data_configs={"calib": calib}, base_dir=tmp_path)
        params = {**params, "data_config": "calib", "warmup_num": 1, "repeat_test_num": 2}
    cls = PASSES.get(type_name)
    instance = cls()
    config = cls.config_class.model_validate(params)
    out = instance.run(_handle(path), config, tmp_path / "o", ctx)
    instance.check_output(out)
    onnx.load(str(out.onnx_path))  # onnx refuses hard-linked external data
    onnx.load(str(path))  # and the user's own model is untouched
    assert (tmp_path / "m" / "weights" / "w.bin").stat().st_nlink == 1
    np.testing.assert_allclose(
        open_runner(out).run(FEED)[0], open_runner(_handle(path)).run(FEED)[0], rtol=1e-6
    )


def test_add_olive_metadata_writes_the_external_data_layout_asked_for(tmp_path: Path) -> None:
    path = _if_model(tmp_path / "m", "weights/w.bin")
    cls = PASSES.get("AddOliveMetadata")
    config = cls.config_class.model_validate(
        {"graph_name": "g2", "save_as_external_data": True, "external_data_name": "weights.bin"}
    )
    out = cls().run(_handle(path), config, tmp_path / "o", PassContext())
    cls().check_output(out)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["model.onnx", "weights.bin"]
    assert onnx.load(str(out.onnx_path), load_external_data=False).graph.name == "g2"


def test_a_model_folders_own_tokenizer_files_may_join_an_output_file(tmp_path: Path) -> None:
    """output_dir naming a model file: a ModelBuilder-style folder's tokenizer and genai config go beside it
    (only Olivine's own records are names a model's file may not take)."""
    from olivine.engine.output import _publish_onnx

    path = _if_model(tmp_path / "m", "model.onnx.data")
    for name in ("tokenizer.json", "genai_config.json"):
        (tmp_path / "m" / name).write_text("{}")
    folder = ModelHandle(
        kind="onnx", config={"model_path": str(tmp_path / "m"), "onnx_file_name": "model.onnx"}
    )
    published = _publish_onnx(folder, tmp_path / "out" / "final.onnx")
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {
        "final.onnx",
        "model.onnx.data",
        "tokenizer.json",
    }
    np.testing.assert_array_equal(
        open_runner(published).run(FEED)[0], open_runner(_handle(path)).run(FEED)[0]
    )
