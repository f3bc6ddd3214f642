"""The ONNX save helpers: when a model goes to external data, and moving a written file into place."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data, uses_external_data

from olivine.passes.onnx_io import (
    ExternalDataConfig,
    _needs_external_data,
    _tensor_bytes,
    check_onnx_file,
    publish_onnx_file,
    save_onnx_model,
    save_single_file,
)
from olivine.passes.onnx_wire import IN_PLACE_MIN_BYTES, GraphWithoutWeights, weights_in_place


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


def _rich_model() -> onnx.ModelProto:
    """Initializers of several types, a Constant, an If with a subgraph initializer, a local function,
    metadata and a sparse initializer: every place onnx.save_model writes."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w"),
        numpy_helper.from_array(np.arange(5, dtype=np.int64), "idx"),
        numpy_helper.from_array(rng.standard_normal(64).astype(np.float16), "h"),
        # Over 1 MB: its raw data is written as a chunk of its own.
        numpy_helper.from_array(rng.standard_normal((4096, 96)).astype(np.float32), "big"),
    ]
    branch = helper.make_graph(
        [helper.make_node("Add", ["y", "b"], ["z"])],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(np.ones(64, np.float32), "b")],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True))),
        helper.make_node("If", ["cond"], ["z"], then_branch=branch, else_branch=branch),
        helper.make_node("Twice", ["z"], ["out"], domain="local"),
    ]
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "sp"),
        numpy_helper.from_array(np.array([0, 3], np.int64), "sp_i"),
        [4],
    )
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 64])],
        inits,
        sparse_initializer=[sparse],
    )
    twice = helper.make_function(
        "local",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[twice],
        producer_name="test",
    )
    helper.set_model_props(model, {"k": "v"})
    return model


def test_save_single_file_reads_back_as_the_same_model(tmp_path: Path) -> None:
    import onnxruntime as ort

    model = _rich_model()
    save_single_file(model, tmp_path / "model.onnx")
    onnx.save_model(model, str(tmp_path / "reference.onnx"))
    loaded = onnx.load(str(tmp_path / "model.onnx"))
    assert loaded == model == onnx.load(str(tmp_path / "reference.onnx"))
    assert (tmp_path / "model.onnx").stat().st_size == (tmp_path / "reference.onnx").stat().st_size
    onnx.checker.check_model(str(tmp_path / "model.onnx"))
    x = np.ones((1, 64), np.float32)
    got = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"x": x})[0]
    want = ort.InferenceSession(str(tmp_path / "reference.onnx")).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, want)


def test_save_single_file_leaves_other_cases_to_onnx(tmp_path: Path) -> None:
    # Tensors marked for external data that still hold their bytes: onnx.save_model writes the data file.
    pointing = _model()
    convert_model_to_external_data(pointing, location="w.bin", size_threshold=0)
    (tmp_path / "out").mkdir()
    save_single_file(pointing, tmp_path / "out" / "model.onnx")
    assert (tmp_path / "out" / "w.bin").is_file()
    np.testing.assert_array_equal(
        numpy_helper.to_array(onnx.load(str(tmp_path / "out" / "model.onnx")).graph.initializer[0]),
        numpy_helper.to_array(_model().graph.initializer[0]),
    )
    # A text format by its suffix.
    save_single_file(_model(), tmp_path / "model.txtpb")
    assert onnx.load(str(tmp_path / "model.txtpb")) == _model()


def test_tensor_bytes_come_from_the_shape_for_raw_data() -> None:
    model = _rich_model()
    assert [_tensor_bytes(t) for t in model.graph.initializer] == [64 * 64 * 4, 5 * 8, 64 * 2, 4096 * 96 * 4]


def test_graph_without_weights_edits_the_graph_and_keeps_the_weights_bytes(tmp_path: Path) -> None:
    model = _rich_model()
    source = tmp_path / "source.onnx"
    onnx.save_model(model, str(source))
    light = GraphWithoutWeights.load(source)
    assert light is not None
    assert not light.proto.graph.initializer  # never parsed
    assert light.proto.graph.sparse_initializer and light.proto.functions  # the rest is all there
    light.proto.graph.name = "edited"
    light.save(tmp_path / "model.onnx")
    expected = onnx.ModelProto()
    expected.CopyFrom(model)
    expected.graph.name = "edited"
    assert onnx.load(str(tmp_path / "model.onnx")) == expected
    check_onnx_file(tmp_path / "model.onnx")


def test_graph_without_weights_leaves_other_layouts_to_a_whole_load(tmp_path: Path) -> None:
    external = tmp_path / "ext" / "model.onnx"
    external.parent.mkdir()
    onnx.save_model(_model(), str(external), save_as_external_data=True, location="w.bin", size_threshold=0)
    assert GraphWithoutWeights.load(external) is None
    text = tmp_path / "model.txtpb"
    onnx.save_model(_model(), str(text))
    assert GraphWithoutWeights.load(text) is None
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff" * 64)
    assert GraphWithoutWeights.load(garbage) is None


def test_the_check_reads_weights_in_place_from_the_written_file(tmp_path: Path) -> None:
    model = _rich_model()
    path = tmp_path / "model.onnx"
    save_single_file(model, path)
    in_place = weights_in_place(path)
    assert in_place is not None
    seen = onnx.ModelProto()
    seen.ParseFromString(in_place)
    data = path.read_bytes()
    for written, tensor in zip(model.graph.initializer, seen.graph.initializer, strict=True):
        if len(written.raw_data) < IN_PLACE_MIN_BYTES:  # small ones stay inline (shape inference reads them)
            assert tensor == written
            continue
        assert not tensor.HasField("raw_data") and tensor.data_location == TensorProto.EXTERNAL
        where = {e.key: e.value for e in tensor.external_data}
        assert where["location"] == "model.onnx"
        start, length = int(where["offset"]), int(where["length"])
        assert data[start : start + length] == written.raw_data  # the bytes in the written file
        tensor.ClearField("external_data")
        tensor.ClearField("data_location")
        tensor.raw_data = written.raw_data
    assert seen == model  # nothing else differs
    check_onnx_file(path)
    # onnxruntime takes it as is (the check does not fall back to the path), with the written values.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(tmp_path))
    x = np.ones((1, 64), np.float32)
    got = ort.InferenceSession(in_place, options).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, ort.InferenceSession(str(path)).run(None, {"x": x})[0])


def test_the_check_loads_in_place_a_model_whose_shape_inputs_are_initializers(tmp_path: Path) -> None:
    """An optimized model keeps Unsqueeze axes / Reshape shapes as initializers; onnxruntime's shape
    inference reads their values while it resolves the graph and cannot read them from external data, so
    the in-place load failed and every check of such a model (quantization pre-processing's output) fell
    back to loading the file from its path."""
    import onnxruntime as ort

    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    shape = numpy_helper.from_array(np.array([64, 64], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["w", "shape"], ["w2"]),
            helper.make_node("MatMul", ["x", "w2"], ["y"]),
            helper.make_node("Unsqueeze", ["y", "axes"], ["out"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 64])],
        [weight, axes, shape],
    )
    path = tmp_path / "model.onnx"
    save_single_file(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    in_place = weights_in_place(path)
    assert in_place is not None
    options = ort.SessionOptions()
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(tmp_path))
    session = ort.InferenceSession(in_place, options, providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.ones((1, 64), np.float32)})[0].shape == (1, 1, 64)


def test_the_check_refuses_weights_shorter_than_their_shape(tmp_path: Path) -> None:
    model = _model()
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path))
    assert weights_in_place(path) is not None
    with pytest.raises(ValueError, match=r"model\.onnx"):
        check_onnx_file(path)


def test_a_graph_given_twice_is_read_as_protobuf_merges_it(tmp_path: Path) -> None:
    # AddOliveMetadata appends fields to a copy of the file: the graph occurs twice, parsed as one.
    path = tmp_path / "model.onnx"
    onnx.save_model(_rich_model(), str(path))
    patch = onnx.ModelProto()
    patch.graph.name = "renamed"
    patch.graph.initializer.append(numpy_helper.from_array(np.full(3, 7, np.float32), "appended"))
    with open(path, "ab") as out:
        out.write(patch.SerializeToString())
    merged = onnx.load(str(path))
    assert merged.graph.name == "renamed" and merged.graph.initializer[-1].name == "appended"
    light = GraphWithoutWeights.load(path)
    assert light is not None and light.proto.graph.name == "renamed"
    light.save(tmp_path / "out" / "model.onnx")
    assert onnx.load(str(tmp_path / "out" / "model.onnx")) == merged
    in_place = weights_in_place(path)
    assert in_place is not None
    seen = onnx.ModelProto()
    seen.ParseFromString(in_place)
    assert seen.graph.name == "renamed"
    assert [t.name for t in seen.graph.initializer] == [t.name for t in merged.graph.initializer]
    check_onnx_file(path)


def test_tensors_read_back_from_external_data_are_still_read_in_place(tmp_path: Path) -> None:
    # onnx.load of a model with external data sets data_location = DEFAULT on every tensor it read back;
    # a pass that saves such a model as one file writes that field. It means what its absence means: the
    # check still reads those weights in place and a graph-only pass still copies them (before, every such
    # tensor went to onnxruntime inline, 60 MB copied per check of a quantized MiniLM).
    external = tmp_path / "ext" / "model.onnx"
    external.parent.mkdir()
    onnx.save_model(
        _rich_model(), str(external), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    read_back = onnx.load(str(external))
    assert all(t.HasField("data_location") for t in read_back.graph.initializer)
    path = tmp_path / "model.onnx"
    onnx.save_model(read_back, str(path))
    in_place = weights_in_place(path)
    assert in_place is not None
    seen = onnx.ModelProto()
    seen.ParseFromString(in_place)
    for tensor in seen.graph.initializer:
        external = tensor.data_location == TensorProto.EXTERNAL
        assert external == (not tensor.HasField("raw_data")) == (tensor.name in ("w", "big"))
    assert len(in_place) < path.stat().st_size // 10
    check_onnx_file(path)
    light = GraphWithoutWeights.load(path)
    assert light is not None and not light.proto.graph.initializer
    light.save(tmp_path / "out" / "model.onnx")
    assert onnx.load(str(tmp_path / "out" / "model.onnx")) == read_back


@pytest.mark.parametrize("convert_attribute", [False, True])
@pytest.mark.parametrize("one_file", [True, False])
def test_external_data_save_ignores_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, convert_attribute: bool, one_file: bool
) -> None:
    """onnx checks the data file's name against the working directory: a 'model.onnx.data' where the
    command runs (running from the input model's folder) made every external-data save fail. The layout
    written is onnx's own (compared with onnx.save_model from an empty directory)."""
    config = ExternalDataConfig(
        save_as_external_data=True,
        all_tensors_to_one_file=one_file,
        size_threshold=0,
        convert_attribute=convert_attribute,
    )
    reference = tmp_path / "ref" / "model.onnx"
    reference.parent.mkdir()
    monkeypatch.chdir(reference.parent)
    onnx.save_model(
        _rich_model(),
        str(reference),
        save_as_external_data=True,
        all_tensors_to_one_file=one_file,
        location="model.onnx.data" if one_file else None,
        size_threshold=0,
        convert_attribute=convert_attribute,
    )
    busy = tmp_path / "cwd"
    busy.mkdir()
    (busy / "model.onnx.data").write_bytes(b"someone else's weights")
    monkeypatch.chdir(busy)
    out = tmp_path / "out" / "model.onnx"
    save_onnx_model(_rich_model(), out, config)
    assert (busy / "model.onnx.data").read_bytes() == b"someone else's weights"

    def layout(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
        from onnx.external_data_helper import _get_all_tensors

        def value(entry: onnx.StringStringEntryProto) -> str:  # onnx names an unnamed tensor's file by uuid1
            return "<uuid>" if re.fullmatch(r"[0-9a-f-]{36}", entry.value) else entry.value

        proto = onnx.load(str(path), load_external_data=False)
        return sorted((t.name, [(e.key, value(e)) for e in t.external_data]) for t in _get_all_tensors(proto))

    assert layout(out) == layout(reference)
    assert len(list(out.parent.iterdir())) == len(list(reference.parent.iterdir()))
    check_onnx_file(out)
    a = onnx.load(str(out))
    b = onnx.load(str(reference))
    assert [numpy_helper.to_array(t).tobytes() for t in a.graph.initializer] == [
        numpy_helper.to_array(t).tobytes() for t in b.graph.initializer
    ]
