"""GraphSurgeries: the LLM surgeons (norms, rotary embedding, embeddings / LM head, attention) on tiny graphs,
checking the edited graph's operators and types and its numbers through onnxruntime."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassContext
from olivine.passes.surgeons import NON_CPU_SURGEONS, Surgeon
from onnx_fixtures import save_proto

pytestmark = pytest.mark.integration
RNG = np.random.default_rng(7)


def surgery(model: ModelHandle, out: Path, *surgeries: dict[str, Any]) -> ModelHandle:
    cls = PASSES.get("GraphSurgeries")
    config = cls.config_class.model_validate({"surgeries": list(surgeries)})
    out.mkdir(parents=True, exist_ok=True)
    instance = cls()
    result = instance.run(model, config, out, PassContext())
    instance.check_output(result)
    return result


def save(
    folder: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: Any = (), opset: int = 17
) -> ModelHandle:
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, list(inits)), opset_imports=opsets, ir_version=9
    )
    return save_proto(folder, proto)


def vinfo(name: str, shape: list[Any], elem: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, elem, shape)


def load(model: ModelHandle) -> onnx.ModelProto:
    return onnx.load(str(model.onnx_path))


def ops(model: ModelHandle) -> list[str]:
    return [n.op_type for n in load(model).graph.node]


def inits(model: ModelHandle) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in load(model).graph.initializer}


def run(model: ModelHandle, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return open_runner(model).run(feed)


def init(name: str, array: np.ndarray) -> Any:
    return numpy_helper.from_array(array, name)


# --- completeness --------------------------------------------------------------------------------

#: Every surgeon class in Olive's olive/passes/onnx/graph_surgeries.py (microsoft/Olive ee6f40f, 2026-08-20).
OLIVE_SURGEONS = [
    "RenameInputs",
    "RenameOutputs",
    "InferShapes",
    "RemoveShapes",
    "RemoveInitializerFromInputs",
    "ReorderInputs",
    "ReplaceErfWithTanh",
    "ZeroOutInput",
    "RemoveInputs",
    "ExposeOutputs",
    "ExposeQuantizedOutput",
    "DecomposeQuickGelu",
    "DecomposeRotaryEmbedding",
    "RMSNormToL2Norm",
    "SimplifiedLayerNormToRMSNorm",
    "SimplifiedLayerNormToL2Norm",
    "PowReduceSumPowDiv2LpNorm",
    "MatMulAddToGemm",
    "GemmToMatMulAdd",
    "RemoveRopeMultiCache",
    "AttentionMaskToSequenceLengths",
    "ReplaceAttentionMaskValue",
    "RemoveGidxFromMatMulNBits",
    "RemoveQDQ",
    "MatMulToTransposeConvTranspose",
    "RemoveIntermediarySqueezeAndUnsqueeze",
    "QDQToClip",
    "RemoveDeqLin",
    "Non4DModelInputs",
    "Non4DModelOutputs",
    "StandaloneReduceSum",
    "Gather",
    "GatherElements",
    "Non4DInitializers",
    "RemoveAllTensorValueShapes",
    "Non4DReshape",
    "Non4DExpand",
    "Non4DTranspose",
    "Non4DSlice",
    "Non4DLpNorm",
    "Flatten",
    "AddIntermediateTensorsToOutputs",
    "ReshapeReduceSum",
    "ReshapeClipReduceSum",
    "ReduceMax",
    "TieWordEmbeddings",
    "QuantizeEmbeddingInt8",
    "ShareEmbeddingLmHead",
    "ReciprocalMulToDiv",
    "DeduplicateSubgraphInitializers",
    "DeduplicateNodes",
    "PackedAttentionToLoopMHA",
    "PackedAttentionToPackedMHA",
    "RenameOutputDims",
    "RemoveMemcpy",
    "RenameInputDims",
]


def test_every_olive_surgeon_is_implemented_or_refused_on_cpu() -> None:
    implemented = {c.__name__ for c in Surgeon.registry.values()}
    assert not {"ProtoSurgeon", "_Rewrite", "Surgeon"} & implemented  # bases are not surgeons
    assert len(OLIVE_SURGEONS) == 56
    assert set(OLIVE_SURGEONS) == implemented | set(NON_CPU_SURGEONS)
    assert not implemented & set(NON_CPU_SURGEONS)


# --- norms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["div", "reciprocal_mul", "cast"])
def test_rms_norm_to_l2_norm(tmp_path: Path, form: str) -> None:
    hidden = 8
    consts = [
        init("two", np.array(2.0, np.float32)),
        init("eps", np.array(1e-6, np.float32)),
        init("one", np.array(1.0, np.float32)),
        init("axes", np.array([-1], np.int64)),
        init("w", RNG.uniform(0.5, 1.5, hidden).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["sq"], name="n/Pow"),
        helper.make_node("ReduceMean", ["sq", "axes"], ["mean"], keepdims=1),
        helper.make_node("Add", ["mean", "eps"], ["var"]),
        helper.make_node("Sqrt", ["var"], ["rms"]),
    ]
    if form == "div":
        nodes.append(helper.make_node("Div", ["x", "rms"], ["normed"]))
    else:
        nodes += [
            helper.make_node("Div", ["one", "rms"], ["inv"]),
            helper.make_node("Mul", ["x", "inv"], ["normed"]),
        ]
    if form == "cast":
        nodes.append(helper.make_node("Cast", ["normed"], ["normed_c"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Mul", ["normed_c" if form == "cast" else "normed", "w"], ["y"]))
    model = save(
        tmp_path / "m", nodes, [vinfo("x", [2, 3, hidden])], [vinfo("y", [2, 3, hidden])], consts, opset=18
    )
    out = surgery(model, tmp_path / "o", {"surgeon": "RMSNormToL2Norm"})
    assert [op for op in ops(out) if op != "Cast"] == ["LpNormalization", "Mul"]
    scaled = next(v for k, v in inits(out).items() if k.startswith("w"))
    np.testing.assert_allclose(scaled, numpy_helper.to_array(consts[-1]) * np.sqrt(hidden), rtol=1e-6)
    x = RNG.standard_normal((2, 3, hidden)).astype(np.float32)
    np.testing.assert_allclose(run(out, {"x": x})[0], run(model, {"x": x})[0], atol=1e-5)


@pytest.mark.parametrize("skip", [False, True])
def test_simplified_layer_norm_to_l2_norm(tmp_path: Path, skip: bool) -> None:
    gamma = init("gamma", np.array([1.0, 2.0, 0.5, 1.5], np.float32))
    if skip:
        node = helper.make_node(
            "SkipSimplifiedLayerNormalization",
            ["x", "s", "gamma"],
            ["y", "", "", "sum"],
            domain="com.microsoft",
            epsilon=1e-7,
        )
        outputs, inputs = [vinfo("y", [2, 4]), vinfo("sum", [2, 4])], [vinfo("x", [2, 4]), vinfo("s", [2, 4])]
    else:
        node = helper.make_node("SimplifiedLayerNormalization", ["x", "gamma"], ["y"], axis=-1, epsilon=1e-7)
        outputs, inputs = [vinfo("y", [2, 4])], [vinfo("x", [2, 4])]
    model = save(tmp_path / "m", [node], inputs, outputs, [gamma])
    out = surgery(model, tmp_path / "o", {"surgeon": "SimplifiedLayerNormToL2Norm"})
    assert ops(out) == (["Add"] if skip else []) + ["LpNormalization", "Mul"]
    assert [o.name for o in load(out).graph.output] == [o.name for o in outputs]
    np.testing.assert_allclose(inits(out)["gamma_l2norm_scaled"], [2.0, 4.0, 1.0, 3.0])
    feed = {i.name: RNG.standard_normal((2, 4)).astype(np.float32) for i in inputs}
    for got, want in zip(run(out, feed), run(model, feed), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


# --- rotary embedding ----------------------------------------------------------------------------


def _rope_caches(max_pos: int, half: int) -> tuple[np.ndarray, np.ndarray]:
    angles = np.arange(max_pos)[:, None] / (10000 ** (np.arange(half) / half))[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


@pytest.mark.parametrize(
    ("layout", "interleaved", "rotary_dim", "offset"),
    [
        ("bsd", 0, 0, False),
        ("bsd", 1, 0, False),
        ("bnsh", 0, 0, False),
        ("bnsh", 1, 0, True),
        ("bsd", 0, 4, False),
        ("bsd", 1, 4, True),
    ],
)
def test_decompose_rotary_embedding_matches_onnxruntime(
    tmp_path: Path, layout: str, interleaved: int, rotary_dim: int, offset: bool
) -> None:
    batch, seq, heads, head = 2, 3, 2, 8
    half = (rotary_dim or head) // 2
    cos, sin = _rope_caches(16, half)
    shape = [batch, seq, heads * head] if layout == "bsd" else [batch, heads, seq, head]
    attrs: dict[str, Any] = {"interleaved": interleaved}
    if layout == "bsd":
        attrs["num_heads"] = heads
    if rotary_dim:
        attrs["rotary_embedding_dim"] = rotary_dim
    node = helper.make_node(
        "RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], domain="com.microsoft", name="rope", **attrs
    )
    pos_info = vinfo("pos", [1] if offset else [batch, seq], TensorProto.INT64)
    model = save(
        tmp_path / "m",
        [node],
        [vinfo("x", shape), pos_info],
        [vinfo("y", shape)],
        [init("cos", cos), init("sin", sin)],
    )
    out = surgery(model, tmp_path / "o", {"surgeon": "DecomposeRotaryEmbedding"})
    assert "RotaryEmbedding" not in ops(out) and {"Gather", "Mul", "Sub", "Concat"} <= set(ops(out))
    assert all(o.domain in ("", "ai.onnx") for o in load(out).graph.node)
    pos = np.array([5], np.int64) if offset else RNG.integers(0, 16, (batch, seq)).astype(np.int64)
    feed = {"x": RNG.standard_normal(shape).astype(np.float32), "pos": pos}
    np.testing.assert_allclose(run(out, feed)[0], run(model, feed)[0], atol=1e-5)


def _rope_multi_cache_model(folder: Path, outer: bool = False) -> tuple[ModelHandle, dict[str, np.ndarray]]:
    """The model builder's long/short rotary caches behind an ``If``: Constants in the branches, or
    (``outer``) Identities of the main graph's initializers, as an optimizer that lifts constants leaves them."""
    half = 4
    small = _rope_caches(8, half)
    large = tuple(c * 0.5 for c in _rope_caches(8, half))  # distinguishable from the short caches
    lifted: list[Any] = []

    def branch(name: str, caches: tuple[np.ndarray, ...], size: str) -> Any:
        nodes = []
        for key, c in zip(("cos", "sin"), caches, strict=True):
            if outer:
                lifted.append(init(f"{key}_{size}_lifted", c))
                nodes.append(helper.make_node("Identity", [f"{key}_{size}_lifted"], [f"{key}_cache_{size}"]))
            else:
                constant = numpy_helper.from_array(c, f"{key}_{size}_v")
                nodes.append(helper.make_node("Constant", [], [f"{key}_cache_{size}"], value=constant))
        outs = [vinfo(f"{key}_cache_{size}", [8, half]) for key in ("cos", "sin")]
        return helper.make_graph(nodes, name, [], outs)

    nodes = [
        helper.make_node("Greater", ["total_len", "limit"], ["use_large"]),
        helper.make_node(
            "If",
            ["use_large"],
            ["cos_cache", "sin_cache"],
            then_branch=branch("then", large, "large"),
            else_branch=branch("else", small, "small"),
        ),
        helper.make_node(
            "RotaryEmbedding",
            ["x", "pos", "cos_cache", "sin_cache"],
            ["y"],
            domain="com.microsoft",
            num_heads=1,
        ),
    ]
    inputs = [
        vinfo("x", [1, 3, 8]),
        vinfo("pos", [1, 3], TensorProto.INT64),
        vinfo("total_len", [], TensorProto.INT64),
    ]
    model = save(
        folder, nodes, inputs, [vinfo("y", [1, 3, 8])], [init("limit", np.array(4, np.int64)), *lifted]
    )
    feed = {"x": RNG.standard_normal((1, 3, 8)).astype(np.float32), "pos": np.array([[0, 1, 2]], np.int64)}
    return model, feed


@pytest.mark.parametrize("outer", [False, True], ids=["constants", "outer-initializers"])
@pytest.mark.parametrize("large", [False, True])
def test_remove_rope_multi_cache_keeps_one_cache(tmp_path: Path, large: bool, outer: bool) -> None:
    model, feed = _rope_multi_cache_model(tmp_path / "m", outer=outer)
    out = surgery(model, tmp_path / "o", {"surgeon": "RemoveRopeMultiCache", "use_large_cache": large})
    assert ops(out) == ["RotaryEmbedding"]
    assert {"cos_cache_single", "sin_cache_single"} <= set(inits(out))
    assert not [name for name in inits(out) if name.endswith("_lifted")]  # the caches read by no one
    selected = {"total_len": np.array(10 if large else 2, np.int64)}
    np.testing.assert_allclose(
        run(out, {**feed, **selected})[0], run(model, {**feed, **selected})[0], atol=1e-6
    )


# --- embeddings and LM head ----------------------------------------------------------------------

VOCAB, HIDDEN = 16, 64


def _lm(folder: Path, head: str = "float", tied: bool = True) -> tuple[ModelHandle, np.ndarray]:
    table = RNG.standard_normal((VOCAB, HIDDEN)).astype(np.float32)
    inits_ = [init("embed_tokens.weight", table)]
    nodes = [
        helper.make_node(
            "Gather", ["embed_tokens.weight", "input_ids"], ["h"], name="/model/embed_tokens/Gather"
        ),
        helper.make_node("Relu", ["h"], ["r"]),
    ]
    if head == "float":
        weight = table.T.copy() if tied else RNG.standard_normal((HIDDEN, VOCAB)).astype(np.float32)
        inits_.append(init("lm_head.weight", weight))
        nodes.append(helper.make_node("MatMul", ["r", "lm_head.weight"], ["logits"], name="/lm_head/MatMul"))
    else:  # a 4-bit MatMulNBits head, symmetric, blocks of 32
        blocks = table.reshape(VOCAB, HIDDEN // 32, 32)
        scales = np.abs(blocks).max(axis=2) / 7
        q = (np.clip(np.round(blocks / scales[:, :, None]), -8, 7) + 8).astype(np.uint8)
        packed = q[:, :, 0::2] | (q[:, :, 1::2] << 4)
        inits_ += [init("lm_head.qweight", packed), init("lm_head.scales", scales.astype(np.float32).ravel())]
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                ["r", "lm_head.qweight", "lm_head.scales"],
                ["logits"],
                domain="com.microsoft",
                name="/lm_head/MatMulNBits",
                K=HIDDEN,
                N=VOCAB,
                bits=4,
                block_size=32,
            )
        )
    inputs = [vinfo("input_ids", [2, 3], TensorProto.INT64)]
    return save(folder, nodes, inputs, [vinfo("logits", [2, 3, VOCAB])], inits_), table


IDS = {"input_ids": np.array([[1, 5, 9], [0, 15, 3]], np.int64)}


def test_tie_word_embeddings_reads_the_table_once(tmp_path: Path) -> None:
    model, _ = _lm(tmp_path / "m")
    out = surgery(model, tmp_path / "o", {"surgeon": "TieWordEmbeddings"})
    assert "MatMul" not in ops(out) and "Gemm" in ops(out)
    assert [k for k, v in inits(out).items() if v.size == VOCAB * HIDDEN] == ["embed_tokens.weight"]
    assert [o.name for o in load(out).graph.output] == ["logits"]
    np.testing.assert_allclose(run(out, IDS)[0], run(model, IDS)[0], atol=1e-5)


def test_tie_word_embeddings_leaves_different_weights_alone(tmp_path: Path) -> None:
    model, _ = _lm(tmp_path / "m", tied=False)
    out = surgery(model, tmp_path / "o", {"surgeon": "TieWordEmbeddings"})
    assert ops(out) == ops(model) and len(inits(out)) == 2


def test_quantize_embedding_int8(tmp_path: Path) -> None:
    model, table = _lm(tmp_path / "m")
    out = surgery(model, tmp_path / "o", {"surgeon": "QuantizeEmbeddingInt8"})
    node = next(n for n in load(out).graph.node if n.op_type == "GatherBlockQuantized")
    assert {a.name: a.i for a in node.attribute} == {
        "bits": 8,
        "block_size": 32,
        "gather_axis": 0,
        "quantize_axis": 1,
    }
    q = inits(out)
    assert "embed_tokens.weight" not in q and q["embed_tokens.weight_Q8"].dtype == np.uint8
    assert q["embed_tokens.weight_scales"].shape == (VOCAB, HIDDEN // 32)
    # the embedding rows are within half a quantization step of the float table
    step = np.repeat(q["embed_tokens.weight_scales"], 32, axis=1)
    single = {"input_ids": np.arange(VOCAB, dtype=np.int64).reshape(2, 8)}
    embed_only = save(
        tmp_path / "e",
        [n for n in load(out).graph.node if n.op_type == "GatherBlockQuantized"],
        [vinfo("input_ids", [2, 8], TensorProto.INT64)],
        [vinfo("h", [2, 8, HIDDEN])],
        load(out).graph.initializer[:],
    )
    rows = run(embed_only, single)[0].reshape(VOCAB, HIDDEN)
    assert np.all(np.abs(rows - table) <= step / 2 + 1e-6)


def test_share_embedding_lm_head_after_quantize_embedding(tmp_path: Path) -> None:
    model, _ = _lm(tmp_path / "m", head="int4")
    out = surgery(
        model, tmp_path / "o", {"surgeon": "QuantizeEmbeddingInt8"}, {"surgeon": "ShareEmbeddingLmHead"}
    )
    head = next(n for n in load(out).graph.node if n.op_type == "MatMulNBits")
    assert {a.name: a.i for a in head.attribute if a.name in ("bits", "K", "N")} == {
        "bits": 8,
        "K": HIDDEN,
        "N": VOCAB,
    }
    assert not [k for k in inits(out) if k.startswith("lm_head.")]
    q = inits(out)
    table_q = (q["embed_tokens.weight_Q8"].astype(np.float32) - 128) * np.repeat(
        q["embed_tokens.weight_scales"], 32, axis=1
    )
    hidden = np.maximum(table_q[IDS["input_ids"]], 0)
    np.testing.assert_allclose(run(out, IDS)[0], hidden @ table_q.T, rtol=1e-4, atol=1e-3)


def test_tie_word_embeddings_quantized(tmp_path: Path) -> None:
    # an 8-bit embedding (QuantizeEmbeddingInt8) and an 8-bit MatMulNBits head holding a copy of its data
    model, _ = _lm(tmp_path / "m")
    embedded = surgery(model, tmp_path / "e", {"surgeon": "QuantizeEmbeddingInt8"})
    proto = load(embedded)
    q = inits(embedded)
    copies = {
        "lm_head.qweight": q["embed_tokens.weight_Q8"].reshape(VOCAB, HIDDEN // 32, 32),
        "lm_head.scales": q["embed_tokens.weight_scales"].ravel(),
        "lm_head.zp": q["embed_tokens.weight_zp"].ravel(),
    }
    proto.graph.initializer.extend(init(k, v) for k, v in copies.items())
    head = next(n for n in proto.graph.node if n.op_type == "MatMul")
    proto.graph.node.remove(head)
    proto.graph.node.append(
        helper.make_node(
            "MatMulNBits",
            ["r", *copies],
            ["logits"],
            domain="com.microsoft",
            name="/lm_head/MatMulNBits",
            K=HIDDEN,
            N=VOCAB,
            bits=8,
            block_size=32,
        )
    )
    proto.graph.initializer.remove(next(i for i in proto.graph.initializer if i.name == "lm_head.weight"))
    onnx.save_model(proto, str(embedded.onnx_path))
    out = surgery(embedded, tmp_path / "o", {"surgeon": "TieWordEmbeddings"})
    assert not [k for k in inits(out) if k.startswith("lm_head.") and "shape" not in k]
    node = next(n for n in load(out).graph.node if n.op_type == "MatMulNBits")
    assert list(node.input[2:]) == ["embed_tokens.weight_scales", "embed_tokens.weight_zp"]
    np.testing.assert_allclose(run(out, IDS)[0], run(embedded, IDS)[0], atol=1e-6)


# --- attention -----------------------------------------------------------------------------------


def _gqa_model(folder: Path) -> ModelHandle:
    """A GroupQueryAttention whose sequence lengths come from attention_mask, as the model builder writes."""
    nodes = [
        helper.make_node("ReduceSum", ["attention_mask", "one_axis"], ["mask_sum"], keepdims=1),
        helper.make_node("Sub", ["mask_sum", "one"], ["seqlens_k_64"]),
        helper.make_node("Cast", ["seqlens_k_64"], ["seqlens_k"], to=TensorProto.INT32),
        helper.make_node("Shape", ["attention_mask"], ["mask_shape"]),
        helper.make_node("Gather", ["mask_shape", "index_one"], ["total_64"], axis=0),
        helper.make_node("Cast", ["total_64"], ["total_len"], to=TensorProto.INT32),
        helper.make_node(
            "GroupQueryAttention",
            ["q", "k", "v", "past_key", "past_value", "seqlens_k", "total_len"],
            ["attn", "present_key", "present_value"],
            domain="com.microsoft",
            name="/model/layers.0/attn/GroupQueryAttention",
            num_heads=2,
            kv_num_heads=1,
        ),
    ]
    consts = [
        init("one_axis", np.array([1], np.int64)),
        init("one", np.array(1, np.int64)),
        init("index_one", np.array(1, np.int64)),
    ]
    inputs = [
        vinfo("input_ids", [1, 3], TensorProto.INT64),
        vinfo("attention_mask", [1, "total"], TensorProto.INT64),
        vinfo("q", [1, 3, 16]),
        vinfo("k", [1, 3, 8]),
        vinfo("v", [1, 3, 8]),
        vinfo("past_key", [1, 1, "past", 8]),
        vinfo("past_value", [1, 1, "past", 8]),
    ]
    outputs = [
        vinfo("attn", [1, 3, 16]),
        vinfo("present_key", [1, 1, "t", 8]),
        vinfo("present_value", [1, 1, "t", 8]),
    ]
    # input_ids is not read by this graph; it only gives the batch size, as in a real model
    return save(folder, nodes, inputs, outputs, consts)


def test_attention_mask_to_sequence_lengths(tmp_path: Path) -> None:
    model = _gqa_model(tmp_path / "m")
    out = surgery(model, tmp_path / "o", {"surgeon": "AttentionMaskToSequenceLengths"})
    assert ops(out) == ["GroupQueryAttention"]
    graph_inputs = {i.name: i for i in load(out).graph.input}
    assert "attention_mask" not in graph_inputs
    for name, dims in (("past_seq_len", [1, 1]), ("total_seq_len", [])):
        tensor_type = graph_inputs[name].type.tensor_type
        assert tensor_type.elem_type == TensorProto.INT32
        assert [d.dim_value for d in tensor_type.shape.dim] == dims
    past = 2
    feed = {
        "input_ids": np.zeros((1, 3), np.int64),
        "q": RNG.standard_normal((1, 3, 16)).astype(np.float32),
        "k": RNG.standard_normal((1, 3, 8)).astype(np.float32),
        "v": RNG.standard_normal((1, 3, 8)).astype(np.float32),
        "past_key": RNG.standard_normal((1, 1, past, 8)).astype(np.float32),
        "past_value": RNG.standard_normal((1, 1, past, 8)).astype(np.float32),
    }
    want = run(model, {**feed, "attention_mask": np.ones((1, past + 3), np.int64)})
    got = run(
        out,
        {
            **feed,
            "past_seq_len": np.array([[past + 2]], np.int32),
            "total_seq_len": np.array(past + 3, np.int32),
        },
    )
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6)


def test_attention_mask_feeding_anything_else_is_refused(tmp_path: Path) -> None:
    from olivine.errors import PassRunError

    model = _gqa_model(tmp_path / "m")
    proto = load(model)
    proto.graph.output.append(vinfo("mask_sum", None, TensorProto.INT64))
    onnx.save_model(proto, str(model.onnx_path))
    with pytest.raises(PassRunError, match="attention_mask reaches the graph output 'mask_sum'"):
        surgery(model, tmp_path / "o", {"surgeon": "AttentionMaskToSequenceLengths"})


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    scores = q @ k.swapaxes(-1, -2) * scale
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)) @ v


def test_packed_attention_to_loop_mha(tmp_path: Path) -> None:
    heads, seq, head = 2, 7, 4
    node = helper.make_node(
        "PackedAttention", ["q", "k", "v", "cu_seqlens"], ["out"], domain="custom", scale=0.5, num_heads=heads
    )
    shape = [1, heads, seq, head]
    proto = helper.make_model(
        helper.make_graph(
            [node],
            "g",
            [vinfo(n, shape) for n in "qkv"] + [vinfo("cu_seqlens", [4], TensorProto.INT32)],
            [vinfo("out", [1, seq, heads, head])],
        ),
        opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("custom", 1)],
        ir_version=10,
    )
    model = save_proto(tmp_path / "m", proto)
    out = surgery(model, tmp_path / "o", {"surgeon": "PackedAttentionToLoopMHA"})
    assert "Loop" in ops(out) and "PackedAttention" not in ops(out)
    assert {o.domain for o in load(out).opset_import} <= {"", "ai.onnx", "com.microsoft"}
    feed = {n: RNG.standard_normal(shape).astype(np.float32) for n in "qkv"}
    bounds = [0, 2, 3, 7]
    got = run(out, {**feed, "cu_seqlens": np.array(bounds, np.int32)})[0]
    want = np.concatenate(
        [_attention(*(feed[n][:, :, a:b] for n in "qkv"), 0.5) for a, b in itertools.pairwise(bounds)], axis=2
    ).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(got, want, atol=1e-5)
