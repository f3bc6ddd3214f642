"""The graph passes on the tiny MLP and BERT: float16, IO types, int4 block-wise, peephole, fixed shapes,
metadata. Each test checks what the output graph is (operators, types, shapes, files)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from olivine.errors import ConfigError
from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassContext
from onnx_fixtures import save_proto, shared_bert_onnx, shared_onnx_mlp
from tiny_models import MLP_IN, MLP_OUT

pytestmark = pytest.mark.integration

BERT_FEED = {
    "input_ids": np.array([[2, 40, 41, 42, 3, 0, 0], [2, 50, 51, 52, 53, 54, 3]], dtype=np.int64),
    "token_type_ids": np.zeros((2, 7), dtype=np.int64),
    "attention_mask": np.array([[1, 1, 1, 1, 1, 0, 0], [1] * 7], dtype=np.int64),
}
MLP_FEED = {"input": np.random.default_rng(7).standard_normal((3, MLP_IN)).astype(np.float32)}


def run_pass(type_name: str, model: ModelHandle, output_dir: Path, **params: Any) -> ModelHandle:
    cls = PASSES.get(type_name)
    config = cls.config_class.model_validate(params)
    output_dir.mkdir(parents=True, exist_ok=True)
    instance = cls()
    out = instance.run(model, config, output_dir, PassContext())
    instance.check_output(out)
    return out


def graph(model: ModelHandle) -> onnx.GraphProto:
    return onnx.load(str(model.onnx_path)).graph


def op_counts(model: ModelHandle) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph(model).node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def elem_type(values: Any, name: str) -> int:
    return int(next(v for v in values if v.name == name).type.tensor_type.elem_type)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return shared_onnx_mlp(tmp_path_factory)


@pytest.fixture(scope="module")
def bert_onnx(tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return shared_bert_onnx(tmp_path_factory)


# --- OnnxFloatToFloat16 / OnnxIODataTypeConverter --------------------------------------------------


def test_float16_converts_weights_and_io(mlp: ModelHandle, tmp_path: Path) -> None:
    out = run_pass("OnnxFloatToFloat16", mlp, tmp_path)
    g = graph(out)
    assert {i.data_type for i in g.initializer} == {onnx.TensorProto.FLOAT16}
    assert elem_type(g.input, "input") == onnx.TensorProto.FLOAT16
    assert out.size_on_disk() < 0.6 * mlp.size_on_disk()
    got = open_runner(out).run({"input": MLP_FEED["input"].astype(np.float16)})[0]
    want = open_runner(mlp).run(MLP_FEED)[0]
    np.testing.assert_allclose(got.astype(np.float32), want, atol=0.02 * float(np.abs(want).max()))


def test_float16_keep_io_types_and_block_lists(mlp: ModelHandle, tmp_path: Path) -> None:
    out = run_pass("OnnxFloatToFloat16", mlp, tmp_path / "io", keep_io_types=True)
    g = graph(out)
    assert elem_type(g.input, "input") == onnx.TensorProto.FLOAT
    assert elem_type(g.output, "output") == onnx.TensorProto.FLOAT
    assert op_counts(out)["Cast"] >= 2
    assert open_runner(out).run(MLP_FEED)[0].dtype == np.float32
    blocked = run_pass(
        "OnnxFloatToFloat16", mlp, tmp_path / "blk", keep_io_types=True, node_block_list=["fc1_matmul"]
    )
    inits = {i.name: i.data_type for i in graph(blocked).initializer}
    assert inits["fc1.weight"] == onnx.TensorProto.FLOAT and inits["fc2.weight"] == onnx.TensorProto.FLOAT16
    only_add = run_pass(
        "OnnxFloatToFloat16", mlp, tmp_path / "inc", keep_io_types=True, op_include_list=["Add"]
    )
    inits = {i.name: i.data_type for i in graph(only_add).initializer}
    assert inits["fc1.weight"] == onnx.TensorProto.FLOAT and inits["fc1.bias"] == onnx.TensorProto.FLOAT16


def test_float16_of_a_qdq_model_below_opset_19_names_the_fix(mlp: ModelHandle, tmp_path: Path) -> None:
    # Static QDQ, then float16: the converter turns the Q/DQ scales into float16, which QuantizeLinear /
    # DequantizeLinear take from opset 19 only; the pass says so (and what to do) instead of writing a model
    # onnxruntime refuses. With the two ops blocked, the scales stay float32 and the model runs.
    from olivine.config.data import DataConfig
    from olivine.errors import PassRunError

    np.savez(tmp_path / "calib.npz", input=MLP_FEED["input"])
    calib = DataConfig.model_validate(
        {
            "name": "calib",
            "load_dataset_config": {"type": "numpy_dataset", "data_files": str(tmp_path / "calib.npz")},
        }
    )
    cls = PASSES.get("OnnxStaticQuantization")
    config = cls.config_class.model_validate({"data_config": "calib", "quant_preprocess": False})
    (tmp_path / "qdq").mkdir()
    qdq = cls().run(mlp, config, tmp_path / "qdq", PassContext(data_configs={"calib": calib}))
    opsets = {o.domain: o.version for o in onnx.load(str(qdq.onnx_path)).opset_import}
    assert opsets.get("", opsets.get("ai.onnx", 0)) < 19
    with pytest.raises(PassRunError, match=r"opset 19 only .*op_block_list"):
        run_pass("OnnxFloatToFloat16", qdq, tmp_path / "half")
    blocked = run_pass(
        "OnnxFloatToFloat16", qdq, tmp_path / "ok", op_block_list=["QuantizeLinear", "DequantizeLinear"]
    )
    assert open_runner(blocked).run({"input": MLP_FEED["input"].astype(np.float16)})[0].shape[1] == MLP_OUT


@pytest.mark.parametrize("type_name", ["OnnxIODataTypeConverter", "OnnxIOFloat16ToFloat32"])
def test_io_converter_turns_float16_outputs_to_float32(
    mlp: ModelHandle, tmp_path: Path, type_name: str
) -> None:
    half = run_pass("OnnxFloatToFloat16", mlp, tmp_path / "half")
    out = run_pass(type_name, half, tmp_path / "io", name_pattern="out")
    g = graph(out)
    assert elem_type(g.output, "output") == onnx.TensorProto.FLOAT
    assert elem_type(g.input, "input") == onnx.TensorProto.FLOAT16  # "input" does not match "out"
    result = open_runner(out).run({"input": MLP_FEED["input"].astype(np.float16)})[0]
    assert result.dtype == np.float32 and result.shape == (3, MLP_OUT)
    assert list(g.initializer) == list(graph(half).initializer)  # the weights as they were


def test_io_converter_with_empty_pattern_converts_inputs_too(mlp: ModelHandle, tmp_path: Path) -> None:
    half = run_pass("OnnxFloatToFloat16", mlp, tmp_path / "half")
    out = run_pass("OnnxIODataTypeConverter", half, tmp_path / "io", name_pattern="")
    g = graph(out)
    assert elem_type(g.input, "input") == onnx.TensorProto.FLOAT
    assert open_runner(out).run(MLP_FEED)[0].dtype == np.float32


# --- OnnxBlockWiseRtnQuantization / OnnxMatMul4Quantizer -------------------------------------------


def test_blockwise_rtn_int4_matmuls_and_embeddings_of_bert(bert_onnx: ModelHandle, tmp_path: Path) -> None:
    out = run_pass("OnnxBlockWiseRtnQuantization", bert_onnx, tmp_path, block_size=16)
    counts = op_counts(out)
    assert counts["MatMulNBits"] >= 12 and counts["GatherBlockQuantized"] >= 1
    node = next(n for n in graph(out).node if n.op_type == "MatMulNBits")
    attrs = {a.name: a.i for a in node.attribute}
    assert (attrs["bits"], attrs["block_size"]) == (4, 16)
    assert out.size_on_disk() < 0.5 * bert_onnx.size_on_disk()
    got, want = open_runner(out).run(BERT_FEED)[0], open_runner(bert_onnx).run(BERT_FEED)[0]
    assert float(np.abs(got - want).mean()) < 0.1 * float(np.abs(want).mean())


def test_blockwise_rtn_params(mlp: ModelHandle, tmp_path: Path) -> None:
    out = run_pass(
        "OnnxBlockWiseRtnQuantization",
        mlp,
        tmp_path / "q",
        bits=8,
        block_size=32,
        accuracy_level="int8",
        is_symmetric=False,
        nodes_to_exclude=["fc3_matmul"],
    )
    nodes = [n for n in graph(out).node if n.op_type == "MatMulNBits"]
    assert len(nodes) == 2 and op_counts(out)["MatMul"] == 1
    attrs = {a.name: a.i for a in nodes[0].attribute}
    assert (attrs["bits"], attrs["block_size"], attrs["accuracy_level"]) == (8, 32, 4)
    assert len(nodes[0].input) == 4  # asymmetric: a zero point input
    np.testing.assert_allclose(
        open_runner(out).run(MLP_FEED)[0], open_runner(mlp).run(MLP_FEED)[0], atol=0.05
    )


def test_blockwise_rtn_warns_about_a_node_to_exclude_it_does_not_find(
    mlp: ModelHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cls = PASSES.get("OnnxBlockWiseRtnQuantization")
    config = cls.config_class.model_validate({"nodes_to_exclude": ["fc3_matmul", "fc9_matmul"]})
    (tmp_path / "q").mkdir()
    ctx = PassContext(logger=logging.getLogger("test.rtn_exclude"))
    with caplog.at_level("WARNING", logger="test.rtn_exclude"):
        out = cls().run(mlp, config, tmp_path / "q", ctx)
    assert [r.getMessage() for r in caplog.records] == [
        "nodes_to_exclude: ['fc9_matmul'] are not names of nodes in the model"
    ]
    assert op_counts(out)["MatMul"] == 1  # fc3 stayed float


def test_matmul4_quantizer_is_olives_older_name_with_block_32(mlp: ModelHandle, tmp_path: Path) -> None:
    out = run_pass("OnnxMatMul4Quantizer", mlp, tmp_path)
    node = next(n for n in graph(out).node if n.op_type == "MatMulNBits")
    assert {a.name: a.i for a in node.attribute}["block_size"] == 32
    assert op_counts(out)["MatMulNBits"] == 3


def test_matmul4_quantizer_takes_olive_s_precision_data_config_and_weight_only_overrides(
    mlp: ModelHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cls = PASSES.get("OnnxMatMul4Quantizer")
    config = cls.config_class.model_validate(
        {
            "precision": "int8",
            "data_config": "calib",
            "nodes_to_exclude": ["fc3_matmul"],
            "weight_only_quant_configs": {"block_size": 16, "op_types_to_quantize": ["MatMul"]},
        }
    )
    (tmp_path / "q").mkdir()
    ctx = PassContext(logger=logging.getLogger("test.matmul4_olive"))
    with caplog.at_level("WARNING", logger="test.matmul4_olive"):
        out = cls().run(mlp, config, tmp_path / "q", ctx)
    assert [r.getMessage() for r in caplog.records] == [
        "data_config 'calib' is not read: the default algorithm rounds the weights without data"
    ]
    nodes = [n for n in graph(out).node if n.op_type == "MatMulNBits"]
    assert len(nodes) == 2 and op_counts(out)["MatMul"] == 1
    assert {(a.name, a.i) for a in nodes[0].attribute} >= {("bits", 8), ("block_size", 16)}
    for bad in ({"precision": "int16"}, {"weight_only_quant_configs": {"quant_axes": {"Conv": 0}}}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            cls.config_class.model_validate(bad)


def test_blockwise_rtn_takes_olive_s_unused_axis_with_a_warning(
    mlp: ModelHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cls = PASSES.get("OnnxBlockWiseRtnQuantization")
    (tmp_path / "q").mkdir()
    ctx = PassContext(logger=logging.getLogger("test.rtn_axis"))
    with caplog.at_level("WARNING", logger="test.rtn_axis"):
        out = cls().run(mlp, cls.config_class.model_validate({"axis": 1}), tmp_path / "q", ctx)
    assert [r.getMessage() for r in caplog.records] == [
        "axis 1 is not used (as in Olive): MatMul weights are blocked along their input axis, Gather tables "
        "along their last"
    ]
    assert op_counts(out)["MatMulNBits"] == 3


# --- OnnxPeepholeOptimizer, DynamicToFixedShape, AddOliveMetadata --------------------------------


@pytest.mark.parametrize("type_name", ["OnnxPeepholeOptimizer", "OnnxModelOptimizer"])
def test_peephole_optimizer_folds_constants_and_keeps_outputs(
    bert_onnx: ModelHandle, tmp_path: Path, type_name: str
) -> None:
    out = run_pass(type_name, bert_onnx, tmp_path, cast_chain_elimination=True, fix_com_microsoft_opset=True)
    assert len(graph(out).node) < len(graph(bert_onnx).node)
    assert "com.microsoft" in {o.domain for o in onnx.load(str(out.onnx_path)).opset_import}
    for got, want in zip(open_runner(out).run(BERT_FEED), open_runner(bert_onnx).run(BERT_FEED), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_peephole_optimizer_with_everything_off_changes_nothing(mlp: ModelHandle, tmp_path: Path) -> None:
    off = {"onnxscript_optimize": False, "onnxoptimizer_optimize": False, "fuse_reshape_operations": False}
    out = run_pass("OnnxPeepholeOptimizer", mlp, tmp_path, **off)
    assert [n.op_type for n in graph(out).node] == [n.op_type for n in graph(mlp).node]


def test_dynamic_to_fixed_shape_by_dim_param(bert_onnx: ModelHandle, tmp_path: Path) -> None:
    inputs = graph(bert_onnx).input
    params = sorted({d.dim_param for i in inputs for d in i.type.tensor_type.shape.dim if d.dim_param})
    out = run_pass(
        "DynamicToFixedShape", bert_onnx, tmp_path, dim_param=params, dim_value=[2, 7][: len(params)]
    )
    g = graph(out)
    for value in g.input:
        assert [d.dim_value for d in value.type.tensor_type.shape.dim] == [2, 7]
    assert [d.dim_value for d in g.output[0].type.tensor_type.shape.dim] == [2, 7, 32]
    assert open_runner(out).run(BERT_FEED)[0].shape == (2, 7, 32)


def test_dynamic_to_fixed_shape_by_input_shape(mlp: ModelHandle, tmp_path: Path) -> None:
    out = run_pass("DynamicToFixedShape", mlp, tmp_path, input_name=["input"], input_shape=[[3, MLP_IN]])
    g = graph(out)
    assert [d.dim_value for d in g.input[0].type.tensor_type.shape.dim] == [3, MLP_IN]
    assert [d.dim_value for d in g.output[0].type.tensor_type.shape.dim] == [3, MLP_OUT]


def test_dynamic_to_fixed_shape_takes_a_zero_size_as_olive_does(mlp: ModelHandle, tmp_path: Path) -> None:
    # Olive accepts dim_value 0 (a past_sequence_length of 0 for a model's first step): an empty batch here.
    (name,) = {d.dim_param for d in graph(mlp).input[0].type.tensor_type.shape.dim if d.dim_param}
    out = run_pass("DynamicToFixedShape", mlp, tmp_path, dim_param=[name], dim_value=[0])
    assert [d.dim_value for d in graph(out).input[0].type.tensor_type.shape.dim] == [0, MLP_IN]
    assert open_runner(out).run({"input": np.zeros((0, MLP_IN), np.float32)})[0].shape == (0, MLP_OUT)


def test_dynamic_to_fixed_shape_refuses_names_not_in_the_model(mlp: ModelHandle, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch") as info:
        run_pass("DynamicToFixedShape", mlp, tmp_path, dim_param=["batch"], dim_value=[1])
    assert info.value.path == "dim_param" and "batch_size" in info.value.message


def test_add_olive_metadata_names_the_graph_and_keeps_external_weights(
    mlp: ModelHandle, tmp_path: Path
) -> None:
    external = run_pass(
        "OnnxPeepholeOptimizer", mlp, tmp_path / "ext", save_as_external_data=True, size_threshold=0
    )
    out = run_pass(
        "AddOliveMetadata",
        external,
        tmp_path / "meta",
        graph_name="tiny",
        custom_metadata={"owner": "tests", "n": 3},
    )
    proto = onnx.load(str(out.onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert proto.graph.name == "tiny"
    assert (props["owner"], props["n"]) == ("tests", "3") and props["olivine_version"]
    assert sorted(p.name for p in (tmp_path / "meta").iterdir()) == ["model.onnx", "model.onnx.data"]
    np.testing.assert_array_equal(open_runner(out).run(MLP_FEED)[0], open_runner(mlp).run(MLP_FEED)[0])


def test_add_olive_metadata_model_hash_is_the_input_models_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Olive writes model_hash (its input model's identifier); Olivine wrote none. In a workflow it is the
    pass's input model's id: the input's content hash first, the key of the run that made it later."""
    import json

    from olivine.api import load, run_local
    from olivine.engine.identity import handle_from_input_config, input_model_id
    from tiny_models import write_onnx_mlp

    monkeypatch.chdir(tmp_path)
    write_onnx_mlp(tmp_path / "mlp")
    meta = {"type": "AddOliveMetadata", "graph_name": "g", "custom_metadata": {"model_hash": "mine"}}
    config: dict[str, Any] = {
        "input_model": {"type": "ONNXModel", "model_path": "mlp", "onnx_file_name": "model.onnx"},
        "passes": {"meta": meta},
        "cache_dir": "cache",
        "output_dir": "out",
    }

    def model_hash() -> str:
        (tmp_path / "cfg.json").write_text(json.dumps(config))
        workflow = load(tmp_path / "cfg.json")
        best = run_local(workflow).best
        assert best is not None
        props = {p.key: p.value for p in onnx.load(str(best.model.onnx_path)).metadata_props}
        return props["model_hash"]

    first = model_hash()
    workflow = load(tmp_path / "cfg.json")
    assert first == input_model_id(handle_from_input_config(workflow.config.input_model))
    config["passes"] = {"peep": {"type": "OnnxPeepholeOptimizer"}, "meta": meta}
    chained = model_hash()
    runs = [json.loads(f.read_text()) for f in (tmp_path / "cache").rglob("run.json")]
    peephole = [r["key"] for r in runs if r["pass_type"] == "OnnxPeepholeOptimizer"]
    assert peephole == [chained] and chained != first
    alone = run_pass(
        "AddOliveMetadata",
        handle_from_input_config(workflow.config.input_model),
        tmp_path / "x",
        **{k: v for k, v in meta.items() if k != "type"},
    )
    assert {p.key: p.value for p in onnx.load(str(alone.onnx_path)).metadata_props}["model_hash"] == "unknown"


def test_add_olive_metadata_appends_what_a_full_rewrite_would_write(mlp: ModelHandle, tmp_path: Path) -> None:
    first = run_pass(
        "AddOliveMetadata", mlp, tmp_path / "a", graph_name="one", custom_metadata={"owner": "a"}
    )
    # new keys only: the fields are appended to a byte copy of the file
    appended = run_pass(
        "AddOliveMetadata", first, tmp_path / "b", graph_name="two", custom_metadata={"owner": "a", "x": 1}
    )
    source_bytes = first.onnx_path.read_bytes()
    assert appended.onnx_path.read_bytes()[: len(source_bytes)] == source_bytes
    expected = onnx.load(str(first.onnx_path))
    onnx.helper.set_model_props(expected, {**{p.key: p.value for p in expected.metadata_props}, "x": "1"})
    expected.graph.name = "two"
    assert onnx.load(str(appended.onnx_path)).SerializeToString() == expected.SerializeToString()
    # a key whose value changes: written again, one entry per key
    rewritten = run_pass(
        "AddOliveMetadata", first, tmp_path / "c", graph_name="three", custom_metadata={"owner": "b"}
    )
    proto = onnx.load(str(rewritten.onnx_path))
    assert [p.value for p in proto.metadata_props if p.key == "owner"] == [
        "b"
    ] and proto.graph.name == "three"
    onnx.checker.check_model(proto)


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "params", "message"),
    [
        ("OnnxFloatToFloat16", {"op_include_list": ["Add"], "op_block_list": ["Mul"]}, "mutually exclusive"),
        ("OnnxFloatToFloat16", {"keep_io_type": True}, "keep_io_type"),
        ("OnnxIODataTypeConverter", {"source_dtype": 99}, "source_dtype"),
        ("OnnxIODataTypeConverter", {"name_pattern": "("}, "regular expression"),
        ("OnnxBlockWiseRtnQuantization", {"bits": 3}, "bits"),
        ("OnnxBlockWiseRtnQuantization", {"block_size": 100}, "one of 16, 32, 64, 128, 256"),
        ("OnnxBlockWiseRtnQuantization", {"block_size": 512}, "one of 16, 32, 64, 128, 256"),
        ("OnnxMatMul4Quantizer", {"block_size": 0}, "one of 16, 32, 64, 128, 256"),
        (
            "OnnxMatMul4Quantizer",
            {"weight_only_quant_configs": {"block_size": -32}},
            "block_size must be one",
        ),
        ("OnnxMatMul4Quantizer", {"weight_only_quant_configs": {"accuracy_level": 9}}, "accuracy_level"),
        ("OnnxFloatToFloat16", {"max_finite_val": 1e300}, "the largest float16"),
        ("OnnxFloatToFloat16", {"min_positive_val": 1e-10}, "smallest float16 subnormal"),
        ("OnnxFloatToFloat16", {"max_finite_val": float("inf")}, "finite number"),
        ("OnnxStaticQuantization", {"data_config": "d", "min_real_range": float("nan")}, "finite number"),
        (
            "OnnxStaticQuantization",
            {"data_config": "d", "min_real_range": -1.0},
            "greater than or equal to 0",
        ),
        (
            "OnnxPeepholeOptimizer",
            {"save_as_external_data": True, "size_threshold": -1},
            "greater than or equal to 0",
        ),
        ("DynamicToFixedShape", {"dim_param": ["b"], "dim_value": [2**63]}, "int64"),
        ("DynamicToFixedShape", {"dim_param": ["b"], "dim_value": [-1]}, "must all be >= 0"),
        ("DynamicToFixedShape", {"dim_param": [""], "dim_value": [1]}, "empty name"),
        ("DynamicToFixedShape", {"dim_param": ["b", "b"], "dim_value": [1, 2]}, "more than once"),
        ("DynamicToFixedShape", {"input_name": ["x"], "input_shape": [[2**63]]}, "int64"),
        ("OrtTransformersOptimization", {"optimization_options": {"enable_gelu": "nope"}}, "true or false"),
        (
            "OrtTransformersOptimization",
            {"optimization_options": {"attention_mask_format": 9}},
            "3 \\(NoMask\\)",
        ),
        ("OnnxBlockWiseRtnQuantization", {"accuracy_level": 7}, "accuracy_level"),
        ("OnnxMatMul4Quantizer", {"algorithm": "GPTQ"}, "algorithm"),
        ("DynamicToFixedShape", {}, "required"),
        ("DynamicToFixedShape", {"dim_param": ["b"], "input_name": ["x"]}, "not both"),
        ("DynamicToFixedShape", {"dim_param": ["b"], "dim_value": [1, 2]}, "same number"),
        ("DynamicToFixedShape", {"input_name": ["x"], "input_shape": [[0, 3]]}, "> 0"),
        ("AddOliveMetadata", {}, "graph_name"),
        ("OnnxPeepholeOptimizer", {"onnxscript_optimise": True}, "onnxscript_optimise"),
    ],
)
def test_graph_pass_config_refusals_name_the_parameter(
    type_name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        PASSES.get(type_name).config_class.model_validate(params)


def test_peephole_fuses_a_reshape_before_a_flatten(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    shapes = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("s1", [2, 3]), ("flat", [-1]))]
    proto_graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "s1"], ["r1"]),
            helper.make_node("Reshape", ["r1", "flat"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])],
        shapes,
    )
    model = save_proto(
        tmp_path / "m", helper.make_model(proto_graph, opset_imports=[helper.make_opsetid("", 17)])
    )
    off = {"onnxscript_optimize": False, "onnxoptimizer_optimize": False}
    out = run_pass("OnnxPeepholeOptimizer", model, tmp_path / "o", **off)
    assert [n.op_type for n in graph(out).node] == ["Reshape"]
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(open_runner(out).run({"x": x})[0], x.ravel())


def test_fusion_option_strings_are_read_as_their_type() -> None:
    """A string "false" set as is switched the fusion on (a non-empty string is true)."""
    from olivine.passes.transformers_optimization import _fusion_options

    fusion = _fusion_options(
        "bert", {"enable_gelu": "false", "enable_attention": 0, "attention_mask_format": 3}
    )
    assert fusion.enable_gelu is False and fusion.enable_attention is False
    assert fusion.attention_mask_format == 3


def test_peephole_keeps_the_name_of_an_input_that_is_also_an_output(tmp_path: Path) -> None:
    """onnxscript's optimizer renamed such an input (ids -> ids_orig): every caller feeding ids failed."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", 3]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", 3]),
        ],
        [numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")],
    )
    model = save_proto(tmp_path / "m", helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    cls = PASSES.get("OnnxPeepholeOptimizer")
    out = cls().run(model, cls.config_class.model_validate({}), tmp_path / "o", PassContext())
    cls().check_output(out)
    proto = onnx.load(str(out.onnx_path))
    assert [i.name for i in proto.graph.input] == ["x", "ids"]
    assert [o.name for o in proto.graph.output] == ["y", "ids"]
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    _, back = open_runner(out).run({"x": np.ones((2, 4), np.float32), "ids": ids})
    np.testing.assert_array_equal(back, ids)


def test_io_converter_retypes_a_float16_input_passed_straight_to_an_output(tmp_path: Path) -> None:
    """The output loop renamed the Cast the input loop had just inserted: Cast(x_converted -> x_converted)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 3])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 3]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 3]),
        ],
    )
    model = save_proto(tmp_path / "m", helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    cls = PASSES.get("OnnxIODataTypeConverter")
    out = cls().run(
        model, cls.config_class.model_validate({"name_pattern": ""}), tmp_path / "o", PassContext()
    )
    cls().check_output(out)
    proto = onnx.load(str(out.onnx_path))
    assert {v.name: v.type.tensor_type.elem_type for v in proto.graph.output} == {
        "y": TensorProto.FLOAT,
        "x": TensorProto.FLOAT,
    }
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    y, back = open_runner(out).run({"x": x})
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_an_invalid_input_model_is_named_as_the_cause(tmp_path: Path) -> None:
    """Duplicate node names: onnxruntime refuses the input and every output; the error said only that the
    pass's output was unusable."""
    import json

    from onnx import TensorProto, helper, numpy_helper

    from olivine.api import load, run_local
    from olivine.errors import PassRunError

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="dup"),
            helper.make_node("Relu", ["h"], ["y"], name="dup"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 8])],
        [numpy_helper.from_array(np.ones((8, 8), np.float32), "w")],
    )
    (tmp_path / "m").mkdir()
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
        str(tmp_path / "m" / "model.onnx"),
    )
    cfg = {
        "input_model": {"type": "ONNXModel", "model_path": str(tmp_path / "m")},
        "passes": {"f": {"type": "DynamicToFixedShape", "dim_param": ["b"], "dim_value": [1]}},
        "evaluate_input_model": False,
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(PassRunError, match=r"the input model is not a usable model either .*same node name"):
        run_local(load(tmp_path / "cfg.json"))


def _embed_then_mean(folder: Path, opset: int) -> ModelHandle:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["emb", "ids"], ["e"]),
            helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0),
            helper.make_node("MatMul", ["m", "w"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 32])],
        [
            numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "emb"),
            numpy_helper.from_array(rng.standard_normal((32, 32)).astype(np.float32), "w"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return save_proto(folder, proto)


def test_rtn_of_a_gather_converts_an_older_opset_model_instead_of_only_renumbering_it(tmp_path: Path) -> None:
    """onnxruntime raises the opset to 21 for int4 Gathers without converting: ReduceMean's axes attribute
    (an input since opset 18) made the output invalid."""
    model = _embed_then_mean(tmp_path / "m", 17)
    cls = PASSES.get("OnnxBlockWiseRtnQuantization")
    out = cls().run(model, cls.config_class.model_validate({"block_size": 16}), tmp_path / "o", PassContext())
    cls().check_output(out)
    proto = onnx.load(str(out.onnx_path))
    assert {n.op_type for n in proto.graph.node} >= {"GatherBlockQuantized", "MatMulNBits", "ReduceMean"}
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 21
    ids = np.array([[1, 2, 3, 4, 5]], np.int64)
    got, want = open_runner(out).run({"ids": ids})[0], open_runner(model).run({"ids": ids})[0]
    np.testing.assert_allclose(got, want, rtol=0.3, atol=0.3)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"node_include_list": ["nope"]}, "node_include_list"),
        ({"node_block_list": ["fc1_matmul", "nope"]}, "node_block_list"),
        ({"keep_io_types": ["nope"]}, "keep_io_types"),
    ],
)
def test_float16_names_not_in_the_model_are_refused(
    mlp: ModelHandle, tmp_path: Path, params: dict[str, Any], key: str
) -> None:
    """A misspelled name converted (or kept) the whole model without a word."""
    with pytest.raises(ConfigError, match=r"\['nope'\]") as caught:
        run_pass("OnnxFloatToFloat16", mlp, tmp_path / "o", **params)
    assert caught.value.path == key


@pytest.mark.parametrize("keep", [True, ["y", "w", "c", "x"]])
def test_float16_keep_io_types_with_an_initializer_or_input_wired_to_an_output(
    tmp_path: Path, keep: bool | list[str]
) -> None:
    """onnxruntime's converter gave such an output a Cast from a tensor no node writes: "Graph is not a
    DAG", and the pass failed. Each output is now float32, in its place, with the original's values."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([0.5, 1.5, -2.0, 4.0], np.float32), "w")
    const = numpy_helper.from_array(np.array([3.0, 1.0, 0.25, 7.0], np.float32), "c")
    body_out = helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])
    branch = helper.make_graph([helper.make_node("Neg", ["w"], ["z"])], "branch", [], [body_out])
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "w"], ["s"]),
            helper.make_node("ReduceSum", ["s"], ["total"], keepdims=0),
            helper.make_node("Greater", ["total", "zero"], ["positive"]),
            helper.make_node("If", ["positive"], ["y"], then_branch=branch, else_branch=branch),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [4]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4]),
            helper.make_tensor_value_info("c", TensorProto.FLOAT, [4]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
        ],
        [weights, const, numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    model = save_proto(tmp_path / "m", helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    out = run_pass("OnnxFloatToFloat16", model, tmp_path / "o", keep_io_types=keep)
    proto = onnx.load(str(out.onnx_path))
    assert [(v.name, v.type.tensor_type.elem_type) for v in proto.graph.output] == [
        (name, TensorProto.FLOAT) for name in ("y", "w", "c", "x")
    ]
    assert elem_type(proto.graph.input, "x") == TensorProto.FLOAT
    x = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    expected = open_runner(model).run({"x": x})
    got = open_runner(out).run({"x": x})
    for want, have in zip(expected, got, strict=True):
        assert have.dtype == np.float32
        np.testing.assert_allclose(have, want, rtol=1e-3)
    assert op_counts(out).get("Cast", 0) >= 2  # the weights are float16 inside
