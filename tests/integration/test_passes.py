"""OnnxConversion, OrtTransformersOptimization and OnnxDynamicQuantization on the tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx.external_data_helper import uses_external_data
from pydantic import ValidationError

from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassContext
from tiny_models import MLP_IN, handle, write_mlp, write_onnx_mlp, write_tiny_bert

BERT_FEED = {
    "input_ids": np.array([[2, 40, 41, 42, 3, 0, 0], [2, 50, 51, 52, 53, 54, 3]], dtype=np.int64),
    "token_type_ids": np.zeros((2, 7), dtype=np.int64),
    "attention_mask": np.array([[1, 1, 1, 1, 1, 0, 0], [1] * 7], dtype=np.int64),
}


def run_pass(type_name: str, model: ModelHandle, output_dir: Path, **params: Any) -> ModelHandle:
    cls = PASSES.get(type_name)
    config = cls.config_class.model_validate(params)
    output_dir.mkdir(parents=True, exist_ok=True)
    return cls().run(model, config, output_dir, PassContext())


def torch_outputs(model: ModelHandle, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import torch

    from olivine.model.loaders import call_module, load_torch_module, torch_input_names

    module = load_torch_module(model)
    tensors = {k: torch.from_numpy(v) for k, v in feed.items()}
    with torch.inference_mode():
        out = call_module(module, torch_input_names(model, module), tensors)
    if isinstance(out, torch.Tensor):
        return [out.numpy()]
    return [v.numpy() for v in out.values()]


def op_counts(model: ModelHandle) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(model.onnx_path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return handle(write_tiny_bert(tmp_path_factory.mktemp("bert")))


@pytest.fixture(scope="module")
def bert_onnx(bert: ModelHandle, tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return run_pass("OnnxConversion", bert, tmp_path_factory.mktemp("bert_onnx"))


@pytest.fixture(scope="module")
def bert_optimized(bert_onnx: ModelHandle, tmp_path_factory: pytest.TempPathFactory) -> ModelHandle:
    return run_pass("OrtTransformersOptimization", bert_onnx, tmp_path_factory.mktemp("bert_opt"))


@pytest.fixture()
def onnx_mlp(tmp_path: Path) -> ModelHandle:
    return handle(write_onnx_mlp(tmp_path / "src"))


# --- OnnxConversion ------------------------------------------------------------------------------


@pytest.mark.integration
def test_onnx_conversion_mlp_matches_torch_at_another_batch_size(tmp_path: Path) -> None:
    mlp = handle(write_mlp(tmp_path / "src"))
    out = run_pass("OnnxConversion", mlp, tmp_path / "out")
    assert out.kind == "onnx" and out.onnx_path == tmp_path / "out" / "model.onnx"
    feed = {"input": np.random.default_rng(1).standard_normal((5, MLP_IN)).astype(np.float32)}
    np.testing.assert_allclose(open_runner(out).run(feed)[0], torch_outputs(mlp, feed)[0], atol=1e-5)
    assert out.attributes["io_config"]["output_names"] == ["output"]


@pytest.mark.integration
def test_onnx_conversion_fixes_shapes_when_not_dynamic(tmp_path: Path) -> None:
    out = run_pass("OnnxConversion", handle(write_mlp(tmp_path / "src")), tmp_path / "out", dynamic=False)
    dims = onnx.load(str(out.onnx_path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, MLP_IN]


@pytest.mark.integration
def test_onnx_conversion_uses_script_functions_for_io_and_dummy_inputs(tmp_path: Path) -> None:
    mlp = handle(write_mlp(tmp_path / "src", io_config_func=True, dummy_inputs_func=True))
    out = run_pass("OnnxConversion", mlp, tmp_path / "out", dynamic=False)
    dims = onnx.load(str(out.onnx_path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 3  # the batch of the script's dummy_inputs


@pytest.mark.integration
def test_onnx_conversion_writes_external_data_when_asked(tmp_path: Path) -> None:
    mlp = handle(write_mlp(tmp_path / "src"))
    out = run_pass(
        "OnnxConversion", mlp, tmp_path / "out", save_as_external_data=True, external_data_name="w.bin"
    )
    assert (tmp_path / "out" / "w.bin").stat().st_size > out.onnx_path.stat().st_size
    feed = {"input": np.ones((1, MLP_IN), dtype=np.float32)}
    np.testing.assert_allclose(open_runner(out).run(feed)[0], torch_outputs(mlp, feed)[0], atol=1e-5)


@pytest.mark.integration
def test_onnx_conversion_exports_torchscript_model(tmp_path: Path) -> None:
    import torch

    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())).save(str(tmp_path / "m.pt"))
    io_config = {"input_names": ["x"], "input_shapes": [[2, 3]], "output_names": ["y"]}
    model = ModelHandle(
        kind="pytorch",
        config={
            "model_path": str(tmp_path / "m.pt"),
            "model_file_format": "PyTorch.TorchScript",
            "io_config": io_config,
        },
    )
    out = run_pass("OnnxConversion", model, tmp_path / "out")
    feed = {"x": np.array([[1.0, -2.0, 3.0], [0.5, 0.5, 0.5]], dtype=np.float32)}
    np.testing.assert_allclose(open_runner(out).run(feed)[0], torch_outputs(model, feed)[0], atol=1e-6)


@pytest.mark.integration
def test_onnx_conversion_bert_matches_torch_with_padding(bert: ModelHandle, bert_onnx: ModelHandle) -> None:
    ort_out = open_runner(bert_onnx).run(BERT_FEED)
    for got, want in zip(ort_out, torch_outputs(bert, BERT_FEED), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.integration
def test_onnx_conversion_bert_records_hf_attributes(bert: ModelHandle, bert_onnx: ModelHandle) -> None:
    attributes = bert_onnx.attributes
    assert (attributes["model_type"], attributes["hidden_size"], attributes["num_attention_heads"]) == (
        "bert",
        32,
        2,
    )
    assert attributes["hf_model_path"] == bert.model_path
    assert attributes["io_config"]["output_names"] == ["last_hidden_state", "pooler_output"]


@pytest.mark.integration
def test_onnx_conversion_dynamo_exporter_matches_torch(tmp_path: Path) -> None:
    mlp = handle(write_mlp(tmp_path / "src"))
    out = run_pass("OnnxConversion", mlp, tmp_path / "out", use_dynamo_exporter=True)
    feed = {"input": np.random.default_rng(3).standard_normal((5, MLP_IN)).astype(np.float32)}
    np.testing.assert_allclose(open_runner(out).run(feed)[0], torch_outputs(mlp, feed)[0], atol=1e-5)


# --- OrtTransformersOptimization -----------------------------------------------------------------


@pytest.mark.integration
def test_transformers_optimization_fuses_tiny_bert(bert_optimized: ModelHandle) -> None:
    fused = bert_optimized.attributes["fused_ops"]
    assert (fused["Attention"], fused["EmbedLayerNormalization"], fused["SkipLayerNormalization"]) == (
        2,
        1,
        4,
    )
    counts = op_counts(bert_optimized)
    assert counts["Attention"] == 2 and "Softmax" not in counts


@pytest.mark.integration
def test_transformers_optimization_keeps_outputs(bert_onnx: ModelHandle, bert_optimized: ModelHandle) -> None:
    for got, want in zip(
        open_runner(bert_optimized).run(BERT_FEED), open_runner(bert_onnx).run(BERT_FEED), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.integration
def test_transformers_optimization_honours_optimization_options(
    bert_onnx: ModelHandle, tmp_path: Path
) -> None:
    out = run_pass(
        "OrtTransformersOptimization",
        bert_onnx,
        tmp_path,
        model_type="bert",
        num_heads=2,
        hidden_size=32,
        optimization_options={"enable_attention": False},
    )
    assert out.attributes["fused_ops"]["Attention"] == 0
    assert out.attributes["fused_ops"]["SkipLayerNormalization"] == 4


@pytest.mark.integration
def test_transformers_optimization_rejects_unknown_fusion_option(
    bert_onnx: ModelHandle, tmp_path: Path
) -> None:
    # Refused when the pass config is validated (so --dry-run catches it), before the pass runs.
    with pytest.raises(ValidationError, match=r"unknown optimization_options.*enable_atention"):
        run_pass(
            "OrtTransformersOptimization",
            bert_onnx,
            tmp_path,
            optimization_options={"enable_atention": False},
        )


@pytest.mark.integration
def test_transformers_optimization_without_model_type_passes_the_model_through(
    onnx_mlp: ModelHandle, tmp_path: Path
) -> None:
    # Olive skips the pass (with a warning) when neither the config nor the model names a model_type.
    out = run_pass("OrtTransformersOptimization", onnx_mlp, tmp_path / "out")
    assert op_counts(out) == op_counts(onnx_mlp)


@pytest.mark.integration
# onnxruntime's optimize_model leaves its TemporaryDirectory to the garbage collector when a fusion raises.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_transformers_optimization_failure_names_the_exception_and_where_onnxruntime_raised_it(
    tmp_path: Path,
) -> None:
    # LayerNormalization -> Reshape -> Gemm without a bias -> Reshape: onnxruntime's gpt2 postprocess
    # reads the Gemm's third input (what a dynamo export of GPT-2's bias-less lm_head looks like).
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    inits = [
        onnx.numpy_helper.from_array(np.ones(8, np.float32), "scale"),
        onnx.numpy_helper.from_array(np.zeros(8, np.float32), "bias"),
        onnx.numpy_helper.from_array(np.array([-1, 8], np.int64), "flat"),
        onnx.numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w"),
        onnx.numpy_helper.from_array(np.array([2, 4, 8], np.int64), "back"),
    ]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["ln"], axis=-1),
        helper.make_node("Reshape", ["ln", "flat"], ["r1"]),
        helper.make_node("Gemm", ["r1", "w"], ["g"]),
        helper.make_node("Reshape", ["g", "back"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 8])],
        inits,
    )
    path = tmp_path / "in" / "model.onnx"
    path.parent.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    model = ModelHandle(kind="onnx", config={"model_path": str(path)})
    try:
        run_pass("OrtTransformersOptimization", model, tmp_path / "out", model_type="gpt2")
    except Exception as exc:
        text = str(exc)
    else:
        pytest.skip("this onnxruntime's gpt2 postprocess takes a Gemm without a bias")
    assert "model_type 'gpt2'" in text and "IndexError" in text
    assert "onnxruntime/transformers/onnx_model_gpt2.py, postprocess" in text and "only_onnxruntime" in text


# --- OnnxDynamicQuantization ---------------------------------------------------------------------


@pytest.mark.integration
def test_dynamic_quantization_shrinks_mlp_and_stays_close(onnx_mlp: ModelHandle, tmp_path: Path) -> None:
    out = run_pass("OnnxDynamicQuantization", onnx_mlp, tmp_path / "out")
    assert out.size_on_disk() < onnx_mlp.size_on_disk() / 2.5
    counts = op_counts(out)
    assert counts.get("MatMulInteger") == 3 and counts.get("DynamicQuantizeLinear", 0) >= 1
    feed = {"input": np.random.default_rng(2).standard_normal((4, MLP_IN)).astype(np.float32)}
    want = open_runner(onnx_mlp).run(feed)[0]
    np.testing.assert_allclose(open_runner(out).run(feed)[0], want, atol=0.1 * float(np.abs(want).max()))


@pytest.mark.integration
def test_dynamic_quantization_writes_one_file_unless_external_data_is_asked(
    onnx_mlp: ModelHandle, tmp_path: Path
) -> None:
    single = run_pass("OnnxDynamicQuantization", onnx_mlp, tmp_path / "single")
    assert sorted(p.name for p in single.files()) == [single.onnx_path.name]
    assert not any(uses_external_data(t) for t in onnx.load(str(single.onnx_path)).graph.initializer)
    split = run_pass(
        "OnnxDynamicQuantization", onnx_mlp, tmp_path / "split", save_as_external_data=True, size_threshold=0
    )
    assert any(
        uses_external_data(t)
        for t in onnx.load(str(split.onnx_path), load_external_data=False).graph.initializer
    )
    feed = {"input": np.random.default_rng(3).standard_normal((2, MLP_IN)).astype(np.float32)}
    np.testing.assert_array_equal(open_runner(split).run(feed)[0], open_runner(single).run(feed)[0])


@pytest.mark.integration
def test_dynamic_quantization_skips_excluded_nodes(onnx_mlp: ModelHandle, tmp_path: Path) -> None:
    out = run_pass("OnnxDynamicQuantization", onnx_mlp, tmp_path / "out", nodes_to_exclude=["fc1_matmul"])
    # Pre-processing renames fc1_matmul (fused with its Add); the name still selects what it became.
    fc1_ops = {n.op_type for n in onnx.load(str(out.onnx_path)).graph.node if n.name.startswith("fc1_matmul")}
    assert fc1_ops and "MatMulInteger" not in fc1_ops
    assert op_counts(out)["MatMulInteger"] == 2


@pytest.mark.integration
def test_dynamic_quantization_honours_op_types_to_quantize(
    bert_optimized: ModelHandle, tmp_path: Path
) -> None:
    everything = op_counts(run_pass("OnnxDynamicQuantization", bert_optimized, tmp_path / "all"))
    assert everything.get("QAttention") == 2
    matmul_only = op_counts(
        run_pass("OnnxDynamicQuantization", bert_optimized, tmp_path / "mm", op_types_to_quantize=["MatMul"])
    )
    assert "QAttention" not in matmul_only and matmul_only["Attention"] == 2
    assert matmul_only["MatMulInteger"] > 0


@pytest.mark.integration
def test_dynamic_quantization_per_channel_gives_vector_scales(onnx_mlp: ModelHandle, tmp_path: Path) -> None:
    def weight_scale_sizes(model: ModelHandle) -> list[int]:
        inits = onnx.load(str(model.onnx_path)).graph.initializer
        return [
            int(np.prod(i.dims))
            for i in inits
            if i.name.startswith("fc2.weight") and i.name.endswith("scale")
        ]

    per_tensor = run_pass("OnnxDynamicQuantization", onnx_mlp, tmp_path / "t")
    per_channel = run_pass("OnnxDynamicQuantization", onnx_mlp, tmp_path / "c", per_channel=True)
    assert weight_scale_sizes(per_tensor) == [1]
    assert weight_scale_sizes(per_channel) == [128]


@pytest.mark.integration
@pytest.mark.parametrize("params", [{"precision": "uint8"}, {"weight_type": "QUInt8"}])
def test_dynamic_quantization_stores_uint8_weights(
    onnx_mlp: ModelHandle, tmp_path: Path, params: dict[str, Any]
) -> None:
    out = run_pass("OnnxDynamicQuantization", onnx_mlp, tmp_path / "out", **params)
    inits = {i.name: i for i in onnx.load(str(out.onnx_path)).graph.initializer}
    assert inits["fc1.weight_quantized"].data_type == onnx.TensorProto.UINT8


# --- parameter validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "params", "message"),
    [
        ("OnnxConversion", {"target_opset": 3}, "target_opset"),
        ("OnnxConversion", {"device": "cuda"}, "device 'cuda': Olivine exports on the CPU"),
        ("OnnxConversion", {"torch_dtype": "int8"}, "torch_dtype 'int8': float32 or float16"),
        ("OnnxConversion", {"torch_dtype": "torch.int64"}, "torch_dtype"),
        ("OnnxConversion", {"torch_dtype": "torch.bfloat16"}, "no bfloat16 kernels"),
        ("OnnxConversion", {"torch_dtype": "double"}, "do not take float64"),
        ("OnnxMatMul4Quantizer", {"quant_axes": {"MatMul": 1}}, "input axis, 0, only"),
        ("OnnxMatMul4Quantizer", {"weight_only_quant_configs": {"quant_axes": {"Gather": 7}}}, "2 axes"),
        ("DynamicToFixedShape", {"dim_param": ["b"], "dim_value": [False]}, "sizes are integers"),
        (
            "OnnxConversion",
            {"save_metadata_for_token_generation": "maybe"},
            "save_metadata_for_token_generation",
        ),
        ("OnnxConversion", {"use_dynamo": True}, "use_dynamo"),
        ("OrtTransformersOptimization", {"use_gpu": True}, "CPU"),
        ("OrtTransformersOptimization", {"opt_level": 5}, "opt_level"),
        ("OrtTransformersOptimization", {"only_onnxruntime": True}, "opt_level"),
        ("OrtTransformersOptimization", {"num_heads": -1}, "num_heads"),
        ("OnnxDynamicQuantization", {"precision": "int4"}, "precision"),
        ("OnnxDynamicQuantization", {"weight_type": "QInt4"}, "weight_type"),
        ("OnnxDynamicQuantization", {"per_chanel": True}, "per_chanel"),
        ("OnnxDynamicQuantization", {"quant_mode": "static"}, "quant_mode"),
    ],
)
def test_pass_config_rejects_bad_params(type_name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PASSES.get(type_name).config_class.model_validate(params)


def test_null_for_an_olive_parameter_means_not_given() -> None:
    """Olive makes every parameter with a default Optional: an Olive config may write null for any."""
    static: Any = PASSES.get("OnnxStaticQuantization").config_class.model_validate(
        {"data_config": "d", "per_channel": None, "quant_preprocess": None, "calibrate_method": None}
    )
    # quant_preprocess defaults to true: null takes it (Olive's run code would read null as false; the
    # resolver says so, see test_search_space).
    assert (static.per_channel, static.quant_preprocess, static.calibrate_method) == (False, True, "MinMax")
    metadata: Any = PASSES.get("AddOliveMetadata").config_class.model_validate(
        {"graph_name": "g", "custom_metadata": None}
    )
    assert metadata.custom_metadata == {}
    transformers: Any = PASSES.get("OrtTransformersOptimization").config_class.model_validate(
        {"num_heads": None}
    )
    assert transformers.num_heads == 0
    with pytest.raises(ValidationError, match="graph_name"):  # a parameter without a default needs a value
        PASSES.get("AddOliveMetadata").config_class.model_validate({"graph_name": None})


@pytest.mark.parametrize(
    ("given", "taken"),
    [("torch.float16", "float16"), ("half", "float16"), ("float", "float32"), (" torch.float32", "float32")],
)
def test_conversion_torch_dtype_takes_torch_s_names_as_olive_resolves_them(given: str, taken: str) -> None:
    config: Any = PASSES.get("OnnxConversion").config_class.model_validate({"torch_dtype": given})
    assert config.torch_dtype == taken


def test_dynamic_quantization_config_reads_olive_08_names() -> None:
    config: Any = PASSES.get("OnnxDynamicQuantization").config_class.model_validate(
        {"weight_type": "QInt8", "MatMulConstBOnly": False, "ActivationSymmetric": True}
    )
    assert config.precision == "int8"
    assert config.extra_options == {"MatMulConstBOnly": False}
    assert config.activation_symmetric is True


def test_pass_config_defaults_follow_olive() -> None:
    conversion: Any = PASSES.get("OnnxConversion").config_class()
    assert (conversion.target_opset, conversion.use_dynamo_exporter, conversion.dynamic) == (20, False, True)
    quant: Any = PASSES.get("OnnxDynamicQuantization").config_class()
    assert (quant.precision, quant.per_channel, quant.reduce_range, quant.quant_preprocess) == (
        "int8",
        False,
        False,
        True,
    )
