"""GraphSurgeries: every implemented surgeon on a tiny model, checking the edited graph; refusals by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from olivine.errors import PassRunError
from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassContext
from olivine.passes.surgeons import NON_CPU_SURGEONS, Surgeon
from onnx_fixtures import save_proto, shared_bert_onnx, shared_onnx_mlp
from tiny_models import MLP_IN, write_onnx_mlp

pytestmark = pytest.mark.integration

MLP_FEED = {"input": np.random.default_rng(3).standard_normal((2, MLP_IN)).astype(np.float32)}
BERT_FEED = {
    "input_ids": np.array([[2, 40, 41, 3, 0], [2, 50, 51, 52, 3]], dtype=np.int64),
    "token_type_ids": np.zeros((2, 5), dtype=np.int64),
    "attention_mask": np.array([[1, 1, 1, 1, 0], [1] * 5], dtype=np.int64),
}


def surgery(model: ModelHandle, out: Path, *surgeries: dict[str, Any], **params: Any) -> ModelHandle:
    cls = PASSES.get("GraphSurgeries")
    config = cls.config_class.model_validate({"surgeries": list(surgeries), **params})
    out.mkdir(parents=True, exist_ok=True)
    instance = cls()
    result = instance.run(model, config, out, PassContext())
    instance.check_output(result)
    return result


def graph(model: ModelHandle) -> onnx.GraphProto:
    return onnx.load(str(model.onnx_path)).graph


def ops(model: ModelHandle) -> list[str]:
    return [n.op_type for n in graph(model).node]


def save(
    folder: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any] = (), **kw: Any
) -> ModelHandle:  # type: ignore[assignment]
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, list(inits)), opset_imports=opsets, ir_version=9, **kw
    )
    return save_proto(folder, proto)


def vinfo(name: str, shape: list[Any], elem: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, elem, shape)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return shared_onnx_mlp(tmp_path_factory)


@pytest.fixture(scope="module")
def bert_onnx(tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return shared_bert_onnx(tmp_path_factory)


def test_rename_inputs_and_outputs(mlp: ModelHandle, tmp_path: Path) -> None:
    out = surgery(
        mlp,
        tmp_path,
        {"surgeon": "RenameInputs", "old_names": ["input"], "new_names": ["x"]},
        {
            "surgeon": "renameoutputs",
            "old_names": ["output"],
            "new_names": ["y"],
        },  # names are case-insensitive
    )
    g = graph(out)
    assert ([i.name for i in g.input], [o.name for o in g.output]) == (["x"], ["y"])
    np.testing.assert_array_equal(
        open_runner(out).run({"x": MLP_FEED["input"]})[0], open_runner(mlp).run(MLP_FEED)[0]
    )


def test_renaming_onto_a_name_the_graph_already_uses_is_refused(mlp: ModelHandle, tmp_path: Path) -> None:
    """An input renamed to an initializer's name would read the initializer (the model computes
    something else and loses its input); an output renamed onto another value's name merges them."""
    weight = graph(mlp).initializer[0].name
    with pytest.raises(PassRunError, match=r"already names of other values"):
        surgery(
            mlp, tmp_path / "i", {"surgeon": "RenameInputs", "old_names": ["input"], "new_names": [weight]}
        )
    with pytest.raises(PassRunError, match=r"already names of other values"):
        surgery(
            mlp, tmp_path / "o", {"surgeon": "RenameOutputs", "old_names": ["output"], "new_names": ["input"]}
        )
    with pytest.raises(ValidationError, match="given more than once"):
        surgery(
            mlp,
            tmp_path / "d",
            {"surgeon": "RenameInputs", "old_names": ["input", "input"], "new_names": ["a", "b"]},
        )


def test_remove_inputs_names_a_name_the_graph_does_not_use(mlp: ModelHandle, tmp_path: Path) -> None:
    with pytest.raises(PassRunError, match=r"no graph input or node input named \['nope'\]"):
        surgery(mlp, tmp_path, {"surgeon": "RemoveInputs", "names": ["nope"]})


def test_expose_outputs_adds_each_value_once(mlp: ModelHandle, tmp_path: Path) -> None:
    last = graph(mlp).node[-1].name  # its output is already the graph output
    out = surgery(mlp, tmp_path, {"surgeon": "ExposeOutputs", "names": ["fc1_relu", "fc1_relu", last]})
    assert [o.name for o in graph(out).output] == ["output", "fc1_relu"]


def test_infer_shapes_then_remove_shapes(mlp: ModelHandle, tmp_path: Path) -> None:
    inferred = surgery(mlp, tmp_path / "i", {"surgeon": "InferShapes"})
    assert len(graph(inferred).value_info) >= 5
    removed = surgery(inferred, tmp_path / "r", {"surgeon": "RemoveShapes"})
    node_outputs = {o for n in graph(removed).node for o in n.output}
    assert not [v for v in graph(removed).value_info if v.name in node_outputs]


def test_remove_initializer_from_inputs(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    model = save(
        tmp_path / "m",
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [vinfo("x", [1, 2]), vinfo("w", [2, 2])],
        [vinfo("y", [1, 2])],
        [w],
    )
    out = surgery(model, tmp_path / "o", {"surgeon": "RemoveInitializerFromInputs"})
    assert [i.name for i in graph(out).input] == ["x"]


def test_reorder_inputs(bert_onnx: ModelHandle, tmp_path: Path) -> None:
    before = [i.name for i in graph(bert_onnx).input]
    out = surgery(bert_onnx, tmp_path, {"surgeon": "ReorderInputs", "permutation": [2, 0, 1]})
    assert [i.name for i in graph(out).input] == [before[2], before[0], before[1]]


def test_replace_erf_with_tanh_in_bert_gelu(bert_onnx: ModelHandle, tmp_path: Path) -> None:
    erfs, tanhs = ops(bert_onnx).count("Erf"), ops(bert_onnx).count("Tanh")  # the pooler has a Tanh
    out = surgery(bert_onnx, tmp_path, {"surgeon": "ReplaceErfWithTanh"})
    assert erfs == 2 and "Erf" not in ops(out) and ops(out).count("Tanh") == tanhs + erfs
    got, want = open_runner(out).run(BERT_FEED)[0], open_runner(bert_onnx).run(BERT_FEED)[0]
    np.testing.assert_allclose(got, want, atol=0.05)


def test_zero_out_input_feeds_zeros_to_a_bias(mlp: ModelHandle, tmp_path: Path) -> None:
    out = surgery(mlp, tmp_path, {"surgeon": "ZeroOutInput", "node_name": "fc3_add", "input_idx": 1})
    assert "Constant" in ops(out)
    bias = numpy_helper.to_array(next(i for i in graph(mlp).initializer if i.name == "fc3.bias"))
    np.testing.assert_allclose(
        open_runner(out).run(MLP_FEED)[0] + bias, open_runner(mlp).run(MLP_FEED)[0], atol=1e-5
    )


def test_remove_inputs_drops_the_input_from_graph_and_nodes(tmp_path: Path) -> None:
    model = save(
        tmp_path / "m",
        [helper.make_node("Sum", ["x", "y"], ["z"])],
        [vinfo("x", [2]), vinfo("y", [2])],
        [vinfo("z", [2])],
    )
    out = surgery(model, tmp_path / "o", {"surgeon": "RemoveInputs", "names": ["y"]})
    assert [i.name for i in graph(out).input] == ["x"] and list(graph(out).node[0].input) == ["x"]
    np.testing.assert_array_equal(open_runner(out).run({"x": np.array([1, 2], np.float32)})[0], [1, 2])


def test_expose_outputs_adds_a_node_output(mlp: ModelHandle, tmp_path: Path) -> None:
    out = surgery(mlp, tmp_path, {"surgeon": "ExposeOutputs", "names": ["fc1_relu"]})
    assert [o.name for o in graph(out).output] == ["output", "fc1_relu"]
    assert open_runner(out).run(MLP_FEED)[1].shape == (2, 128)


def test_decompose_quick_gelu(tmp_path: Path) -> None:
    model = save(
        tmp_path / "m",
        [helper.make_node("QuickGelu", ["x"], ["y"], domain="com.microsoft")],
        [vinfo("x", [4])],
        [vinfo("y", [4])],
    )
    out = surgery(model, tmp_path / "o", {"surgeon": "DecomposeQuickGelu"})
    assert "QuickGelu" not in ops(out) and "Sigmoid" in ops(out)
    x = np.array([-2, -0.5, 0.5, 2], np.float32)
    np.testing.assert_allclose(open_runner(out).run({"x": x})[0], x / (1 + np.exp(-1.702 * x)), atol=1e-5)


def test_matmul_add_to_gemm_and_back(mlp: ModelHandle, tmp_path: Path) -> None:
    gemm = surgery(mlp, tmp_path / "g", {"surgeon": "MatMulAddToGemm"})
    assert ops(gemm).count("Gemm") == 3 and "MatMul" not in ops(gemm)
    np.testing.assert_allclose(
        open_runner(gemm).run(MLP_FEED)[0], open_runner(mlp).run(MLP_FEED)[0], atol=1e-5
    )
    back = surgery(gemm, tmp_path / "b", {"surgeon": "GemmToMatMulAdd"})
    assert ops(back).count("MatMul") == 3 and "Gemm" not in ops(back)


def _matmul_add(folder: Path, x_shape: list[Any], tail: str) -> ModelHandle:
    """``x`` [.., 3] @ W [3, 4] + b [4], then ``tail``: "" (the sum is the output), "relu" (only a Relu
    reads it) or "relu+" (a Relu and an Identity read it)."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["s"])]
    out_shape = [*x_shape[:-1], 4]
    outputs = [vinfo("y", out_shape)]
    if tail:
        nodes.append(helper.make_node("Relu", ["s"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["s"], ["y"]))
    if tail == "relu+":
        nodes.append(helper.make_node("Identity", ["s"], ["z"]))
        outputs.append(vinfo("z", out_shape))
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    return save(folder, nodes, [vinfo("x", x_shape)], outputs, inits)


@pytest.mark.parametrize("tail", ["", "relu", "relu+"])
@pytest.mark.parametrize("x_shape", [[2, 5, 3], [2, 1, 5, 3], [3]], ids=["3d", "4d", "1d"])
def test_matmul_add_to_gemm_reshapes_a_static_input_of_another_rank(
    x_shape: list[int], tail: str, tmp_path: Path
) -> None:
    """As Olive: a static MatMul input of rank != 2 goes through the Gemm as 2-D and back; a Relu that
    alone reads the sum sits between the Gemm and the reshape back (onnxruntime fuses Gemm + Relu)."""
    model = _matmul_add(tmp_path / "m", x_shape, tail)
    out = surgery(model, tmp_path / "o", {"surgeon": "MatMulAddToGemm"})
    found = ops(out)
    assert "MatMul" not in found and found.count("Gemm") == 1 and found.count("Reshape") == 2
    if tail == "relu":
        assert found.index("Gemm") < found.index("Relu") < len(found) - 1 - found[::-1].index("Reshape")
    if tail == "relu+":  # the sum has another reader: the Relu stays after the reshape back
        assert found.index("Relu") > max(i for i, op in enumerate(found) if op == "Reshape")
    x = np.random.default_rng(4).standard_normal(x_shape).astype(np.float32)
    for got, want in zip(open_runner(out).run({"x": x}), open_runner(model).run({"x": x}), strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_matmul_add_to_gemm_leaves_a_dynamic_higher_rank_input(tmp_path: Path) -> None:
    model = _matmul_add(tmp_path / "m", ["batch", 5, 3], "relu")
    out = surgery(model, tmp_path / "o", {"surgeon": "MatMulAddToGemm"})
    assert ops(out) == ops(model)


def test_gemm_with_trans_b_becomes_matmul_on_a_transposed_weight(tmp_path: Path) -> None:
    w = np.arange(6, dtype=np.float32).reshape(3, 2)  # [N, K] with transB
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.ones(3, np.float32), "b")]
    model = save(tmp_path / "m", nodes, [vinfo("x", [1, 2])], [vinfo("y", [1, 3])], inits)
    out = surgery(model, tmp_path / "o", {"surgeon": "GemmToMatMulAdd"})
    assert sorted(ops(out)) == ["Add", "MatMul"]  # the Transpose of the constant weight was folded
    x = np.array([[1, 2]], np.float32)
    np.testing.assert_allclose(open_runner(out).run({"x": x})[0], x @ w.T + 1)


def test_reciprocal_mul_to_div(tmp_path: Path) -> None:
    nodes = [helper.make_node("Reciprocal", ["x"], ["r"]), helper.make_node("Mul", ["r", "a"], ["y"])]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2]), vinfo("a", [2])], [vinfo("y", [2])])
    out = surgery(model, tmp_path / "o", {"surgeon": "ReciprocalMulToDiv"})
    assert ops(out) == ["Div"]
    feed = {"x": np.array([2, 4], np.float32), "a": np.array([1, 1], np.float32)}
    np.testing.assert_allclose(open_runner(out).run(feed)[0], [0.5, 0.25])


def test_replace_attention_mask_value(tmp_path: Path) -> None:
    nodes = [helper.make_node("Mul", ["m", "big"], ["y"])]
    inits = [numpy_helper.from_array(np.array([-3.4e38], np.float32), "big")]
    model = save(tmp_path / "m", nodes, [vinfo("m", [2])], [vinfo("y", [2])], inits)
    out = surgery(model, tmp_path / "o", {"surgeon": "ReplaceAttentionMaskValue", "replacement": -100.0})
    value = numpy_helper.to_array(next(i for i in graph(out).initializer if i.name == "big"))
    assert value.tolist() == [-100.0]


def test_remove_sorted_g_idx_from_matmul_nbits(mlp: ModelHandle, tmp_path: Path) -> None:
    cls = PASSES.get("OnnxBlockWiseRtnQuantization")
    (tmp_path / "q").mkdir()
    quant = cls().run(mlp, cls.config_class.model_validate({"block_size": 32}), tmp_path / "q", PassContext())
    proto = onnx.load(str(quant.onnx_path))
    node = next(n for n in proto.graph.node if n.op_type == "MatMulNBits")
    node.input.extend(["", "fc1_g_idx"])  # no zero points; g_idx: block index of each row, sorted
    proto.graph.initializer.append(
        numpy_helper.from_array(np.arange(MLP_IN, dtype=np.int32) // 32, "fc1_g_idx")
    )
    onnx.save_model(proto, str(quant.onnx_path))
    out = surgery(quant, tmp_path / "o", {"surgeon": "RemoveGidxFromMatMulNBits"})
    node = next(n for n in graph(out).node if n.op_type == "MatMulNBits")
    assert "fc1_g_idx" not in node.input and "fc1_g_idx" not in {i.name for i in graph(out).initializer}


def test_deduplicate_nodes_keeps_the_first_producer(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="a"),
        helper.make_node("Relu", ["x"], ["y"], name="b"),
    ]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2])], [vinfo("y", [2])])
    out = surgery(model, tmp_path / "o", {"surgeon": "DeduplicateNodes"})
    assert [n.name for n in graph(out).node] == ["a"]


def test_deduplicate_subgraph_initializers(tmp_path: Path) -> None:
    one = numpy_helper.from_array(np.ones(2, np.float32), "c")
    body = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "then", [], [vinfo("y", [2])], [one, one]
    )
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "else", [], [vinfo("z", [2])])
    nodes = [helper.make_node("If", ["cond"], ["out"], then_branch=body, else_branch=other)]
    model = save(
        tmp_path / "m", nodes, [vinfo("cond", [], TensorProto.BOOL), vinfo("x", [2])], [vinfo("out", [2])]
    )
    out = surgery(model, tmp_path / "o", {"surgeon": "DeduplicateSubgraphInitializers"})
    then_branch = next(a.g for a in graph(out).node[0].attribute if a.name == "then_branch")
    assert [i.name for i in then_branch.initializer] == ["c"]
    feed = {"cond": np.array(True), "x": np.array([1, 2], np.float32)}
    np.testing.assert_array_equal(open_runner(out).run(feed)[0], [2, 3])


def test_rename_input_and_output_dims(mlp: ModelHandle, tmp_path: Path) -> None:
    out = surgery(
        mlp,
        tmp_path,
        {"surgeon": "RenameInputDims", "input_name": "input", "dim_idx": 0, "dim_name": "n"},
        {"surgeon": "RenameOutputDims", "output_idx": 0, "dim_idx": 0, "dim_name": "n"},
    )
    g = graph(out)
    assert g.input[0].type.tensor_type.shape.dim[0].dim_param == "n"
    assert g.output[0].type.tensor_type.shape.dim[0].dim_param == "n"


def test_remove_memcpy_bypasses_the_copies_and_keeps_the_output_name(tmp_path: Path) -> None:
    # What OrtTransformersOptimization saves for a GPU provider: copies around a CPU-only node.
    nodes = [
        helper.make_node("MemcpyToHost", ["x"], ["x_host"], name="to_host"),
        helper.make_node("Relu", ["x_host"], ["r"], name="relu"),
        helper.make_node("MemcpyFromHost", ["r"], ["r_dev"], name="from_host"),
        helper.make_node("Neg", ["r_dev"], ["n"], name="neg"),
        helper.make_node("MemcpyToHost", ["n"], ["y"], name="out_copy"),
    ]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2])], [vinfo("y", [2])])
    out = surgery(model, tmp_path / "o", {"surgeon": "RemoveMemcpy"})
    g = graph(out)
    assert [n.op_type for n in g.node] == ["Relu", "Neg"]
    assert [o.name for o in g.output] == ["y"] and g.node[1].output[0] == "y"
    feed = {"x": np.array([-1.0, 2.0], np.float32)}
    np.testing.assert_array_equal(open_runner(out).run(feed)[0], [0.0, -2.0])


def test_remove_memcpy_leaves_a_cpu_model_unchanged_and_says_so(
    mlp: ModelHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="olivine.passes.surgeons_memcpy"):
        out = surgery(mlp, tmp_path, {"surgeon": "RemoveMemcpy"})
    assert ops(out) == ops(mlp)
    assert "no MemcpyToHost/MemcpyFromHost node; unchanged" in caplog.text
    np.testing.assert_allclose(open_runner(out).run(MLP_FEED)[0], open_runner(mlp).run(MLP_FEED)[0])


def test_duplicate_initializers_are_merged_by_default(tmp_path: Path) -> None:
    inits = [numpy_helper.from_array(np.ones(2, np.float32), n) for n in ("a", "b")]
    nodes = [helper.make_node("Add", ["x", "a"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2])], [vinfo("y", [2])], inits)
    assert len(graph(surgery(model, tmp_path / "d", {"surgeon": "InferShapes"})).initializer) == 1
    kept = surgery(model, tmp_path / "k", {"surgeon": "InferShapes"}, remove_duplicate_initializers=False)
    assert len(graph(kept).initializer) == 2


def test_a_surgeon_that_does_not_fit_the_model_fails_the_pass_naming_it(
    mlp: ModelHandle, tmp_path: Path
) -> None:
    with pytest.raises(PassRunError, match=r"surgeries\[0\] \(ExposeOutputs\): no node named \['nope'\]"):
        surgery(mlp, tmp_path, {"surgeon": "ExposeOutputs", "names": ["nope"]})


# --- refusals at validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("surgeries", "message"),
    [
        (
            [{"surgeon": "MakeItFast"}],
            r"surgeries\[0\]: unknown surgeon 'MakeItFast'; allowed: .*RenameInputs",
        ),
        (
            [{"surgeon": "InferShapes"}, {"surgeon": "PackedAttentionToPackedMHA"}],
            r"surgeries\[1\]: surgeon 'PackedAttentionToPackedMHA' is refused on the CPU target: .*CUDA",
        ),
        ([{"surgeon": "non4dreshape"}], "DLA"),
        (
            [{"surgeon": "RemoveRopeMultiCache", "use_large": True}],
            r"\(RemoveRopeMultiCache\): use_large: unknown",
        ),
        ([{"surgeon": "RenameInputs", "old_names": ["a"]}], r"\(RenameInputs\): new_names: Field required"),
        (
            [{"surgeon": "ExposeOutputs", "names": ["a"], "name": "b"}],
            r"\(ExposeOutputs\): name: unknown parameter",
        ),
        ([{"surgeon": "RenameInputs", "old_names": ["a"], "new_names": []}], "same length"),
        ([{"old_names": ["a"]}], "'surgeon'"),
        ([{"surgeon": 5}], r"'surgeon' must be a surgeon's name \(a string\), got int"),
        ([{"surgeon": "RenameInput"}], r"unknown surgeon 'RenameInput' \(did you mean 'RenameInputs'\?\)"),
        ([{"surgeon": "ProtoSurgeon"}], r"unknown surgeon 'ProtoSurgeon'"),
        ([{"surgeon": "_Rewrite"}], r"unknown surgeon '_Rewrite'"),
    ],
)
def test_surgeries_are_refused_by_name_at_validation(surgeries: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PASSES.get("GraphSurgeries").config_class.model_validate({"surgeries": surgeries})


def test_every_olive_surgeon_is_implemented_or_refused_with_a_reason() -> None:
    olive_names = {
        *NON_CPU_SURGEONS,
        *(c.__name__ for c in Surgeon.registry.values()),
    }
    assert len(olive_names) == len(NON_CPU_SURGEONS) + len(Surgeon.registry)
    assert not {n.lower() for n in NON_CPU_SURGEONS} & set(Surgeon.registry)


# --- through the engine --------------------------------------------------------------------------


def _chain_config(folder: Path, surgeries: list[dict[str, Any]]) -> Path:
    import json

    config = {
        "workflow_id": "chain",
        "input_model": write_onnx_mlp(folder / "mlp"),
        "passes": {
            "surgery": {"type": "GraphSurgeries", "surgeries": surgeries},
            "fixed": {"type": "DynamicToFixedShape", "dim_param": ["batch_size"], "dim_value": [2]},
            "fp16": {"type": "OnnxFloatToFloat16", "keep_io_types": True},
            "meta": {"type": "AddOliveMetadata", "graph_name": "chained"},
        },
        "cache_dir": str(folder / "cache"),
        "output_dir": str(folder / "out"),
    }
    path = folder / "cfg.json"
    path.write_text(json.dumps(config))
    return path


def test_engine_chains_the_graph_passes(tmp_path: Path) -> None:
    from olivine.api import load, run_local

    result = run_local(load(_chain_config(tmp_path, [{"surgeon": "MatMulAddToGemm"}])))
    assert result.best is not None
    out = result.best.model
    g = graph(out)
    assert g.name == "chained" and "Gemm" in ops(out)
    assert [d.dim_value for d in g.input[0].type.tensor_type.shape.dim] == [2, MLP_IN]
    assert TensorProto.FLOAT16 in {i.data_type for i in g.initializer}
    assert open_runner(out).run(MLP_FEED)[0].shape == (2, 8)


def test_engine_refuses_a_non_cpu_surgeon_with_its_key_path(tmp_path: Path) -> None:
    from olivine.api import load
    from olivine.errors import ConfigError

    with pytest.raises(ConfigError, match="PackedAttentionToPackedMHA") as info:
        load(_chain_config(tmp_path, [{"surgeon": "PackedAttentionToPackedMHA"}]))
    assert info.value.path == "passes.surgery.surgeries.0"  # the surgeon's index is part of the key path


@pytest.mark.parametrize("skip", [False, True])
def test_simplified_layer_norm_to_rms_norm_uses_standard_ops(tmp_path: Path, skip: bool) -> None:
    gamma = numpy_helper.from_array(np.array([1.0, 2.0, 0.5, 1.5], np.float32), "gamma")
    if skip:
        node = helper.make_node(
            "SkipSimplifiedLayerNormalization",
            ["x", "s", "gamma"],
            ["y", "", "", "sum"],
            domain="com.microsoft",
            epsilon=1e-3,
        )
        outputs = [vinfo("y", [2, 4]), vinfo("sum", [2, 4])]
        inputs = [vinfo("x", [2, 4]), vinfo("s", [2, 4])]
    else:
        node = helper.make_node("SimplifiedLayerNormalization", ["x", "gamma"], ["y"], axis=-1, epsilon=1e-3)
        outputs, inputs = [vinfo("y", [2, 4])], [vinfo("x", [2, 4])]
    model = save(tmp_path / "m", [node], inputs, outputs, [gamma])
    out = surgery(model, tmp_path / "o", {"surgeon": "SimplifiedLayerNormToRMSNorm"})
    assert not any("LayerNormalization" in op for op in ops(out)) and "ReduceMean" in ops(out)
    rng = np.random.default_rng(0)
    feed = {i.name: rng.standard_normal((2, 4)).astype(np.float32) for i in inputs}
    for got, want in zip(open_runner(out).run(feed), open_runner(model).run(feed), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_pow_reduce_sum_pow_div_becomes_lp_normalization(tmp_path: Path) -> None:
    consts = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array([-1], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axes"], ["sum"], keepdims=1),
        helper.make_node("Pow", ["sum", "half"], ["norm"]),
        helper.make_node("Div", ["x", "norm"], ["y"]),
    ]
    model = save(tmp_path / "m", nodes, [vinfo("x", [2, 3])], [vinfo("y", [2, 3])], consts)
    out = surgery(model, tmp_path / "o", {"surgeon": "PowReduceSumPowDiv2LpNorm"})
    assert ops(out) == ["LpNormalization"]
    x = np.array([[3, 4, 0], [1, 1, 1]], np.float32)
    np.testing.assert_allclose(
        open_runner(out).run({"x": x})[0], open_runner(model).run({"x": x})[0], atol=1e-6
    )
