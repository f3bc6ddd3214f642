"""OnnxStaticQuantization, OnnxQuantization and OnnxQuantizationPreprocess on the tiny MLP and BERT: what
the output graph is (operators, data types, scales), not only that a run finished."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from olivine.config.data import DataConfig
from olivine.errors import ConfigError, PassRunError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassContext
from onnx_fixtures import shared_bert_onnx
from tiny_models import MLP_IN, handle, write_onnx_mlp

pytestmark = pytest.mark.integration

CALIB = DataConfig.model_validate(
    {
        "name": "calib",
        "type": "DataContainer",
        "load_dataset_config": {"type": "numpy_dataset", "data_files": "__NPZ__"},
        "dataloader_config": {"batch_size": 4},
    }
)


def op_counts(model: ModelHandle) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(model.onnx_path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def initializers(model: ModelHandle) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in onnx.load(str(model.onnx_path)).graph.initializer}


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mlp")
    write_onnx_mlp(folder / "model")
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", input=rng.standard_normal((16, MLP_IN)).astype(np.float32))
    return folder


@pytest.fixture()
def mlp(mlp_dir: Path) -> ModelHandle:
    return handle({"type": "ONNXModel", "model_path": str(mlp_dir / "model"), "onnx_file_name": "model.onnx"})


@pytest.fixture()
def ctx(mlp_dir: Path) -> PassContext:
    calib = CALIB.model_copy(deep=True)
    assert calib.load_dataset_config is not None
    calib.load_dataset_config.params["data_files"] = str(mlp_dir / "calib.npz")
    return PassContext(data_configs={"calib": calib}, base_dir=mlp_dir)


def run_pass(
    type_name: str, model: ModelHandle, output_dir: Path, ctx: PassContext, **params: Any
) -> ModelHandle:
    cls = PASSES.get(type_name)
    config = cls.config_class.model_validate(params)
    output_dir.mkdir(parents=True, exist_ok=True)
    instance = cls()
    out = instance.run(model, config, output_dir, ctx)
    instance.check_output(out)
    return out


def close_to(model: ModelHandle, reference: ModelHandle, rel: float) -> None:
    feed = {"input": np.random.default_rng(5).standard_normal((6, MLP_IN)).astype(np.float32)}
    want = open_runner(reference).run(feed)[0]
    got = open_runner(model).run(feed)[0]
    np.testing.assert_allclose(got, want, atol=rel * float(np.abs(want).max()))


def static(model: ModelHandle, out: Path, ctx: PassContext, **params: Any) -> ModelHandle:
    return run_pass("OnnxStaticQuantization", model, out, ctx, data_config="calib", **params)


# --- OnnxStaticQuantization: formats and types ---------------------------------------------------


def test_static_qdq_int8_quantizes_every_matmul_and_stays_close(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path
) -> None:
    out = static(mlp, tmp_path, ctx)
    counts = op_counts(out)
    assert counts["QuantizeLinear"] >= 3 and counts["DequantizeLinear"] >= 6
    inits = initializers(out)
    weights = [i for n, i in inits.items() if n.startswith("fc") and n.endswith("weight_quantized")]
    assert len(weights) == 3 and {w.data_type for w in weights} == {onnx.TensorProto.INT8}
    close_to(out, mlp, 0.1)


def test_static_qoperator_uint8_uses_qlinear_ops(mlp: ModelHandle, ctx: PassContext, tmp_path: Path) -> None:
    params: dict[str, Any] = {"quant_format": "QOperator", "precision": "uint8", "activation_type": "uint8"}
    out = static(mlp, tmp_path / "raw", ctx, quant_preprocess=False, **params)
    counts = op_counts(out)
    assert counts.get("QLinearMatMul") == 3 and counts.get("QLinearAdd") == 3 and "MatMul" not in counts
    # Float in and out: one QuantizeLinear at the input, one DequantizeLinear at the output.
    assert (counts["QuantizeLinear"], counts["DequantizeLinear"]) == (1, 1)
    close_to(out, mlp, 0.1)
    # Pre-processing fuses each MatMul + Add into a Gemm first, which becomes a QGemm.
    fused = op_counts(static(mlp, tmp_path / "pre", ctx, **params))
    assert fused.get("QGemm") == 3 and "QLinearMatMul" not in fused


@pytest.mark.parametrize("activation_type", ["int16", "uint16"])
def test_static_qdq_sixteen_bit_activations(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path, activation_type: str
) -> None:
    out = static(mlp, tmp_path, ctx, activation_type=activation_type)
    expected = onnx.TensorProto.INT16 if activation_type == "int16" else onnx.TensorProto.UINT16
    zero_points = [i for n, i in initializers(out).items() if n.startswith("input") and "zero_point" in n]
    assert zero_points and {z.data_type for z in zero_points} == {expected}
    close_to(out, mlp, 0.05)


def test_static_per_channel_gives_vector_weight_scales(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path
) -> None:
    out = static(mlp, tmp_path, ctx, per_channel=True)
    scale = initializers(out)["fc2.weight_scale"]
    assert list(scale.dims) == [128]


@pytest.mark.parametrize("method", ["MinMax", "Entropy", "Percentile", "Distribution"])
def test_static_calibrate_methods_each_produce_activation_scales(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path, method: str
) -> None:
    out = static(mlp, tmp_path, ctx, calibrate_method=method, quant_preprocess=False)
    scale = onnx.numpy_helper.to_array(initializers(out)["input_scale"])
    assert scale.shape == () and float(scale) > 0


def test_static_distribution_and_minmax_calibrate_to_different_ranges(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path
) -> None:
    def input_scale(method: str) -> float:
        out = static(mlp, tmp_path / method, ctx, calibrate_method=method, quant_preprocess=False)
        return float(onnx.numpy_helper.to_array(initializers(out)["fc1_relu_scale"]))

    assert input_scale("Distribution") > 1.5 * input_scale("MinMax")


def test_static_nodes_to_exclude_and_op_types(mlp: ModelHandle, ctx: PassContext, tmp_path: Path) -> None:
    excluded = static(mlp, tmp_path / "ex", ctx, nodes_to_exclude=["fc1_matmul"], quant_preprocess=False)
    assert "fc1.weight_quantized" not in initializers(excluded)
    assert "fc2.weight_quantized" in initializers(excluded)
    only_relu = static(mlp, tmp_path / "relu", ctx, op_types_to_quantize=["Relu"], quant_preprocess=False)
    assert not any(n.endswith("weight_quantized") for n in initializers(only_relu))


def test_static_activation_symmetric_puts_zero_points_at_zero(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path
) -> None:
    out = static(mlp, tmp_path, ctx, activation_symmetric=True, quant_preprocess=False)
    zero_point = onnx.numpy_helper.to_array(initializers(out)["fc1_relu_zero_point"])
    assert int(zero_point) == 0


def test_static_calibration_sampling_size_caps_the_samples_read(mlp: ModelHandle, ctx: PassContext) -> None:
    from olivine.passes.quant_config import StaticQuantizationConfig
    from olivine.passes.quant_run import calibration_reader

    cfg = StaticQuantizationConfig(data_config="calib", calibration_sampling_size=6)
    reader = calibration_reader(cfg, mlp, mlp.onnx_path, ctx)
    rows = []
    while (batch := reader.get_next()) is not None:
        rows.append(len(batch["input"]))
    assert rows == [4, 2]  # batches of 4 from 16 samples, cut at 6


def test_static_unknown_data_config_is_refused_by_name(mlp: ModelHandle, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data config 'nope' is not defined"):
        run_pass("OnnxStaticQuantization", mlp, tmp_path, PassContext(), data_config="nope")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_static_calibration_data_with_non_finite_values_is_refused(
    mlp: ModelHandle, tmp_path: Path, bad: float
) -> None:
    """It quantized with infinite scales: a model that loads and answers a constant, reported as success."""
    data = np.random.default_rng(0).standard_normal((8, MLP_IN)).astype(np.float32)
    data[3, 5] = bad
    np.savez(tmp_path / "bad.npz", input=data)
    calib = CALIB.model_copy(deep=True)
    assert calib.load_dataset_config is not None
    calib.load_dataset_config.params["data_files"] = str(tmp_path / "bad.npz")
    ctx = PassContext(data_configs={"calib": calib}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="NaN or infinite values for input 'input'"):
        run_pass("OnnxStaticQuantization", mlp, tmp_path / "o", ctx, data_config="calib")


@pytest.mark.parametrize("quant_format", ["QDQ", "QOperator"])
def test_static_calibration_data_of_another_dtype_is_cast_to_the_inputs(
    mlp: ModelHandle, ctx: PassContext, mlp_dir: Path, tmp_path: Path, quant_format: str
) -> None:
    """float64 data (numpy's default) for a float32 input failed in onnxruntime's calibration session, where
    evaluation and tuning cast it; the same values as float64 now give the same model."""
    data = np.load(mlp_dir / "calib.npz")["input"]
    np.savez(tmp_path / "f64.npz", input=data.astype(np.float64))
    calib = CALIB.model_copy(deep=True)
    assert calib.load_dataset_config is not None
    calib.load_dataset_config.params["data_files"] = str(tmp_path / "f64.npz")
    wide = PassContext(data_configs={"calib": calib}, base_dir=tmp_path)
    got = static(mlp, tmp_path / "f64", wide, quant_format=quant_format)
    want = static(mlp, tmp_path / "f32", ctx, quant_format=quant_format)
    scales = {k: v for k, v in initializers(want).items() if "scale" in k}
    assert scales
    for key, tensor in scales.items():
        np.testing.assert_array_equal(
            onnx.numpy_helper.to_array(initializers(got)[key]), onnx.numpy_helper.to_array(tensor)
        )


def test_a_dummy_shape_of_zero_is_refused_at_validation() -> None:
    """An empty dummy input calibrated to scale 1.0 (no range at all), reported as success."""
    from pydantic import ValidationError

    from olivine.data.params import DummyDatasetParams

    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        DummyDatasetParams.model_validate({"input_shapes": [[0, MLP_IN]], "input_names": ["input"]})


def test_static_quantizes_tiny_bert(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    onnx_bert = shared_bert_onnx(tmp_path_factory)
    dummy = DataConfig.model_validate(
        {
            "name": "dummy",
            "type": "TransformersDummyDataContainer",
            "load_dataset_config": {"seq_len": 8, "max_samples": 4},
        }
    )
    ctx = PassContext(data_configs={"dummy": dummy})
    out = run_pass("OnnxStaticQuantization", onnx_bert, tmp_path / "q", ctx, data_config="dummy")
    counts = op_counts(out)
    quantized = [i.data_type for n, i in initializers(out).items() if n.endswith("_quantized")]
    assert counts["DequantizeLinear"] > 10
    # 2 layers x 6 linear weights in int8 (and their biases in int32, as QDQ stores them).
    assert quantized.count(onnx.TensorProto.INT8) >= 12
    assert set(quantized) == {onnx.TensorProto.INT8, onnx.TensorProto.INT32}


# --- OnnxQuantization, OnnxQuantizationPreprocess --------------------------------------------------


def test_onnx_quantization_static_by_default_and_dynamic_by_mode(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path
) -> None:
    st = run_pass("OnnxQuantization", mlp, tmp_path / "s", ctx, data_config="calib")
    assert "QuantizeLinear" in op_counts(st) and "MatMulInteger" not in op_counts(st)
    dyn = run_pass("OnnxQuantization", mlp, tmp_path / "d", ctx, quant_mode="dynamic")
    assert op_counts(dyn).get("MatMulInteger") == 3


def test_quant_preprocess_pass_fuses_and_infers_shapes(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path
) -> None:
    out = run_pass("OnnxQuantizationPreprocess", mlp, tmp_path, ctx)
    graph = onnx.load(str(out.onnx_path)).graph
    assert len(graph.value_info) > 0  # shape inference recorded the intermediate tensors
    skipped = run_pass(
        "OnnxQuantizationPreprocess",
        mlp,
        tmp_path / "skip",
        ctx,
        skip_onnx_shape=True,
        skip_symbolic_shape=True,
        skip_optimization=True,
    )
    assert len(onnx.load(str(skipped.onnx_path)).graph.value_info) == 0
    close_to(out, mlp, 1e-5)


# --- validation and invalid combinations ---------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "params", "message"),
    [
        ("OnnxStaticQuantization", {}, "data_config"),
        ("OnnxStaticQuantization", {"data_config": "c", "calibrate_method": "KL"}, "calibrate_method"),
        ("OnnxStaticQuantization", {"data_config": "c", "quant_format": "QDQ8"}, "quant_format"),
        ("OnnxStaticQuantization", {"data_config": "c", "activation_type": "int4"}, "activation_type"),
        ("OnnxStaticQuantization", {"data_config": {"name": "x"}}, "give the name of a data config"),
        ("OnnxStaticQuantization", {"data_config": "c", "calibration_sampling_size": 0}, ">= 1"),
        ("OnnxQuantization", {}, "data_config"),
        ("OnnxQuantization", {"quant_mode": "dynamic", "precision": "int16"}, "int8 or uint8"),
        ("OnnxDynamicQuantization", {"precision": "uint16"}, "int8 or uint8"),
        ("OnnxQuantizationPreprocess", {"skip_optimisation": True}, "skip_optimisation"),
    ],
)
def test_quantization_config_refusals_name_the_parameter(
    type_name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        PASSES.get(type_name).config_class.model_validate(params)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"quant_format": "QOperator", "activation_type": "int16"}, "16-bit"),
        ({"calibration_providers": ["CUDAExecutionProvider"]}, "CUDAExecutionProvider"),
        ({"precision": "uint8"}, "int8 activations with uint8 weights"),
    ],
)
def test_static_invalid_combinations_have_a_reason(params: dict[str, Any], reason: str) -> None:
    cls = PASSES.get("OnnxStaticQuantization")
    config = cls.config_class.model_validate({"data_config": "c", **params})
    assert reason in (cls.invalid_reason(config, Accelerator()) or "")


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"quant_format": "QOperator", "precision": "uint16", "activation_type": "uint8"}, "quant_format"),
        ({"calibration_providers": ["CUDAExecutionProvider"]}, "calibration_providers"),
        ({"precision": "uint8", "activation_type": "int8"}, "activation_type"),
    ],
)
def test_static_refuses_at_run_what_cannot_run_on_the_cpu(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path, params: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        static(mlp, tmp_path, ctx, **params)
    assert info.value.path == key


def test_static_s8s8_qoperator_is_skipped_by_search_but_runs_when_asked(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path
) -> None:
    params = {"quant_format": "QOperator", "precision": "int8", "activation_type": "int8"}
    out = static(mlp, tmp_path, ctx, quant_preprocess=False, **params)
    assert op_counts(out).get("QLinearMatMul") == 3


def test_static_s8s8_qoperator_asked_for_explicitly_is_valid_as_in_olive() -> None:
    # Olive only warns (slow on x86-64); its conditional search values skip it when activation_type is
    # searched (tests/unit/test_search_space.py).
    cls = PASSES.get("OnnxStaticQuantization")
    params = {"data_config": "c", "quant_format": "QOperator", "precision": "int8", "activation_type": "int8"}
    assert cls.invalid_reason(cls.config_class.model_validate(params), Accelerator()) is None


def test_static_valid_default_has_no_invalid_reason() -> None:
    cls = PASSES.get("OnnxStaticQuantization")
    assert cls.invalid_reason(cls.config_class.model_validate({"data_config": "c"}), Accelerator()) is None


def test_quantization_search_values_follow_olive() -> None:
    static_values = PASSES.get("OnnxStaticQuantization").search_values
    assert static_values["calibrate_method"] == ("MinMax", "Entropy", "Percentile")
    assert static_values["quant_format"] == ("QOperator", "QDQ")
    assert static_values["per_channel"] == (True, False)
    assert PASSES.get("OnnxQuantization").search_values["quant_mode"] == ("dynamic", "static")
    assert "calibrate_method" not in PASSES.get("OnnxDynamicQuantization").search_values
    # Olive's activation_type search values are conditional on quant_format and precision.
    assert "activation_type" not in static_values
    rule = PASSES.get("OnnxStaticQuantization").conditional_search_values["activation_type"]
    assert rule.parents == ("quant_format", "precision")


# --- through the engine: the data config is resolved by name and its content keys the run -----------


def _static_workflow(folder: Path, data_config: str) -> Path:
    import json

    write_onnx_mlp(folder / "mlp")
    np.savez(
        folder / "calib.npz", input=np.random.default_rng(1).standard_normal((8, MLP_IN)).astype(np.float32)
    )
    config = {
        "workflow_id": "static",
        "input_model": {"type": "ONNXModel", "model_path": "mlp", "onnx_file_name": "model.onnx"},
        "data_configs": [
            {"name": "calib", "load_dataset_config": {"type": "numpy_dataset", "data_files": "calib.npz"}}
        ],
        "passes": {"quant": {"type": "OnnxStaticQuantization", "data_config": data_config}},
        "cache_dir": "cache",
        "output_dir": "out",
    }
    path = folder / "cfg.json"
    path.write_text(json.dumps(config))
    return path


def test_engine_refuses_an_undefined_calibration_data_config(tmp_path: Path) -> None:
    from olivine.api import load

    with pytest.raises(ConfigError, match="data config 'calibration' is not defined") as info:
        load(_static_workflow(tmp_path, "calibration"))
    assert info.value.path == "passes.quant.data_config"


def test_engine_reruns_static_quantization_when_the_calibration_data_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from olivine.api import load, run_local

    monkeypatch.chdir(tmp_path)
    path = _static_workflow(tmp_path, "calib")
    first = run_local(load(path)).best
    assert first is not None and "QuantizeLinear" in op_counts(first.model)
    again = run_local(load(path)).best
    assert again is not None and again.model_id == first.model_id
    np.savez(tmp_path / "calib.npz", input=np.full((8, MLP_IN), 3.0, dtype=np.float32))
    changed = run_local(load(path)).best
    assert changed is not None and changed.model_id != first.model_id


@pytest.mark.parametrize("quant_format", ["QDQ", "QOperator"])
def test_static_quantization_of_a_decoder_with_a_kv_cache_calibrates_on_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quant_format: str
) -> None:
    """A text dataset gives input_ids and attention_mask; the exported decoder also takes position_ids and
    the past cache. Olive's calibration reader adds them (an empty cache behind one unattended token);
    Olivine refused the data config ("gives no ['position_ids', 'past_key_values.0.key', ...]")."""
    import json

    import onnxruntime as ort

    from olivine.api import load, run_local
    from tiny_llm import write_text_calibration
    from tiny_models import write_tiny_llama

    monkeypatch.chdir(tmp_path)
    model = write_tiny_llama(tmp_path / "llama")
    del model["task"]  # Olive's default: text-generation-with-past
    config = {
        "input_model": model,
        "data_configs": [write_text_calibration(tmp_path)],
        "passes": {
            "conversion": {"type": "OnnxConversion"},
            "quant": {"type": "OnnxStaticQuantization", "data_config": "calib", "quant_format": quant_format},
        },
        "cache_dir": "cache",
        "output_dir": "out",
    }
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    best = run_local(load(tmp_path / "cfg.json")).best
    assert best is not None
    counts = op_counts(best.model)
    assert counts.get("QuantizeLinear", 0) + counts.get("QLinearMatMul", 0) > 0
    session = ort.InferenceSession(str(best.model.onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"] and "past_key_values.0.key" in names
    # Calibrated on an empty cache, the cache inputs had range (0, 0) and scale 1: decoding with a filled
    # cache rounded every cached value to an integer. They take their cache output's parameters.
    inits = initializers(best.model)
    for layer, kind in [(0, "key"), (0, "value"), (1, "key")]:
        for suffix in ("_scale", "_zero_point"):
            past = onnx.numpy_helper.to_array(inits[f"past_key_values.{layer}.{kind}{suffix}"])
            present = onnx.numpy_helper.to_array(inits[f"present.{layer}.{kind}{suffix}"])
            np.testing.assert_array_equal(past, present)
        assert onnx.numpy_helper.to_array(inits[f"past_key_values.{layer}.{kind}_scale"]) < 0.5


def test_static_calibration_reports_its_progress(
    mlp: ModelHandle,
    ctx: PassContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loader that never ends (no calibration_sampling_size) ran in silence until stopped."""
    import logging

    from olivine.passes import quant_run

    monkeypatch.setattr(quant_run, "_PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="olivine.passes"):
        static(mlp, tmp_path, ctx)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("calibration: ")]
    assert lines and "batches read from data config 'calib'" in lines[0]
    assert "reading until the data ends" in lines[0]


def _exported(model: ModelHandle, folder: Path) -> ModelHandle:
    """``model`` exported to fp32 ONNX (opset 17) in ``folder``."""
    convert = PASSES.get("OnnxConversion")
    folder.mkdir()
    return convert().run(
        model, convert.config_class.model_validate({"target_opset": 17}), folder, PassContext()
    )


def _dummy_text_context() -> PassContext:
    """A context with Olive's dummy text data (``dummy``, sequences of 16) for calibration."""
    dummy = DataConfig.model_validate(
        {"name": "dummy", "type": "TransformersDummyDataContainer", "load_dataset_config": {"seq_len": 16}}
    )
    return PassContext(data_configs={"dummy": dummy})


def _assert_near(got: np.ndarray, want: np.ndarray) -> None:
    """A quantized model's output: finite, and off the fp32 output by less than half its largest value
    (int8 noise on a random-weight model; a broken graph is off by far more, or not finite)."""
    assert np.isfinite(got).all()
    assert float(np.abs(got - want).max()) < 0.5 * float(np.abs(want).max())


@pytest.mark.parametrize("quant_format", ["QDQ", "QOperator"])
def test_static_quantization_leaves_float_index_arithmetic_in_float(
    quant_format: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """MPNet computes its relative-position buckets in float (Abs -> Cast -> Div -> Log -> Mul -> Cast to
    int64 -> Gather): quantized, the buckets were out of range and every run of the model failed."""
    from tiny_models import write_tiny_mpnet

    fp32 = _exported(handle(write_tiny_mpnet(tmp_path_factory.mktemp("mpnet"))), tmp_path / "fp32")
    ctx = _dummy_text_context()
    out = run_pass(
        "OnnxStaticQuantization", fp32, tmp_path / "q", ctx, data_config="dummy", quant_format=quant_format
    )
    counts = op_counts(out)
    assert counts.get("QuantizeLinear", 0) + counts.get("QLinearMatMul", 0) > 0  # the network is quantized
    graph = onnx.load(out.onnx_path).graph
    producers = {o: n for n in graph.node for o in n.output}
    to_int = [n for n in graph.node if n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.INT64]
    bucket_path = [n for n in graph.node if n.op_type == "Log"] + to_int
    assert len(bucket_path) > 2
    assert all(
        producers[n.input[0]].op_type != "DequantizeLinear" for n in bucket_path if n.input[0] in producers
    )
    rng = np.random.default_rng(1)
    want_runner, got_runner = open_runner(fp32), open_runner(out)
    for length in (16, 40, 120):  # past calibration's length: more buckets than calibration saw
        feed = {
            "input_ids": rng.integers(5, 40, (2, length)).astype(np.int64),
            "attention_mask": np.ones((2, length), np.int64),
        }
        want = want_runner.run(feed)[0]
        got = got_runner.run(feed)[0]
        _assert_near(got, want)


def _text_calibration(folder: Path) -> PassContext:
    """Five sentences in batches of two (the last batch is short), padded per batch."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "d.csv").write_text(
        "sentence,label\nthe cat sat on the mat,1\na dog ran far away from home today,0\nhello world,1\n"
        "more words here,0\nsky,1\n"
    )
    text = DataConfig.model_validate(
        {
            "name": "text",
            "type": "HuggingfaceContainer",
            "load_dataset_config": {"data_name": "csv", "data_files": "d.csv", "split": "train"},
            "pre_process_data_config": {"input_cols": ["sentence"], "label_col": "label", "max_length": 16},
            "dataloader_config": {"batch_size": 2},
        }
    )
    # A logger of its own: the CLI tests set up "olivine"'s handlers, and caplog must see these lines.
    return PassContext(
        data_configs={"text": text}, base_dir=folder, logger=logging.getLogger("test.calibration")
    )


@pytest.mark.parametrize("method", ["Entropy", "Percentile", "Distribution"])
def test_histogram_calibration_on_batches_of_different_shapes(
    method: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime stacks every batch's tensors for its histograms: a short last batch failed with
    "inhomogeneous shape". The batches are now collected one at a time. Entropy and Distribution then
    meet BERT's attention mask (float32's minimum): one line that names the surgeon that fixes it."""
    bert = shared_bert_onnx(tmp_path_factory)
    ctx = _text_calibration(tmp_path / "data")
    if method != "Percentile":  # a histogram over [-3.4e38, 3.4e38] cannot be split into bins
        with pytest.raises(
            PassRunError, match=r"tensor '.*' \(values -3.4.*e\+38 .*ReplaceAttentionMaskValue"
        ):
            run_pass(
                "OnnxStaticQuantization",
                bert,
                tmp_path / "raw",
                ctx,
                data_config="text",
                calibrate_method=method,
            )
        bert = run_pass(
            "GraphSurgeries",
            bert,
            tmp_path / "masked",
            ctx,
            surgeries=[{"surgeon": "ReplaceAttentionMaskValue"}],
        )
    with caplog.at_level("INFO", logger="test.calibration"):
        out = run_pass(
            "OnnxStaticQuantization", bert, tmp_path / "q", ctx, data_config="text", calibrate_method=method
        )
    assert any("3 calibration batches come in 2 shapes" in r.getMessage() for r in caplog.records)
    counts = op_counts(out)
    assert counts["QuantizeLinear"] > 10 and counts["DequantizeLinear"] > 10
    feed = {
        "input_ids": np.array([[2, 30, 31, 32, 3]], np.int64),
        "attention_mask": np.ones((1, 5), np.int64),
        "token_type_ids": np.zeros((1, 5), np.int64),
    }
    want = open_runner(bert).run(feed)[0]
    got = open_runner(out).run(feed)[0]
    _assert_near(got, want)


@pytest.mark.parametrize("v2", [True, False], ids=["deberta-v2", "deberta"])
def test_static_qoperator_leaves_what_feeds_a_where_in_float(
    v2: bool, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """onnxruntime's QOperator Where handler does not dequantize inputs quantized before it: DeBERTa's
    attention masking failed with "Invalid model with unknown initializers/tensors"."""
    from tiny_models import write_tiny_deberta

    fp32 = _exported(handle(write_tiny_deberta(tmp_path_factory.mktemp("deberta"), v2=v2)), tmp_path / "fp32")
    ctx = _dummy_text_context()
    out = run_pass(
        "OnnxStaticQuantization", fp32, tmp_path / "q", ctx, data_config="dummy", quant_format="QOperator"
    )
    counts = op_counts(out)
    assert counts.get("QLinearMatMul", 0) + counts.get("MatMulInteger", 0) >= 8  # the layers are quantized
    graph = onnx.load(out.onnx_path).graph
    assert not any(n.op_type == "QLinearWhere" for n in graph.node)
    rng = np.random.default_rng(2)
    feed = {
        "input_ids": rng.integers(5, 40, (2, 24)).astype(np.int64),
        "attention_mask": np.ones((2, 24), np.int64),
    }
    names = [i.name for i in onnx.load(fp32.onnx_path, load_external_data=False).graph.input]
    feed = {k: v for k, v in feed.items() if k in names}
    want = open_runner(fp32).run(feed)[0]
    got = open_runner(out).run(feed)[0]
    _assert_near(got, want)


def test_histogram_calibration_of_a_near_constant_tensor_names_it_and_the_fix(
    ctx: PassContext, tmp_path: Path
) -> None:
    """Sigmoid(x * 1e-5) is 0.5 give or take 3e-6: Percentile's histogram of it cannot be split into bins
    float32 tells apart. The message names the tensor, its range and what to do, not an attention mask."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(6)
    inits = [
        numpy_helper.from_array(np.array(1e-5, np.float32), "tiny"),
        numpy_helper.from_array(rng.standard_normal((MLP_IN, 4)).astype(np.float32), "w"),
    ]
    nodes = [
        helper.make_node("Mul", ["input", "tiny"], ["scaled"]),
        helper.make_node("Sigmoid", ["scaled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", MLP_IN])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx")
    )
    model = handle({"type": "ONNXModel", "model_path": str(folder), "onnx_file_name": "model.onnx"})
    with pytest.raises(PassRunError) as info:
        static(model, tmp_path / "q", ctx, calibrate_method="Percentile")
    message = str(info.value)
    assert "tensor 'flat' (values 0.49999" in message and "narrower than float32 can split" in message
    assert "ReplaceAttentionMaskValue" not in message and "or Percentile" not in message
    out = static(model, tmp_path / "minmax", ctx, calibrate_method="MinMax")  # the fix it names works
    assert op_counts(out)["QuantizeLinear"] > 0


def _padded_depthwise(folder: Path, channels: int = 4) -> ModelHandle:
    """Pad -> depthwise Conv -> Relu -> Pad -> depthwise Conv, the two Pads sharing one fill value (as
    EfficientNet's after onnxruntime's pre-processing merges equal constants) and their pads."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(8)
    inits = [
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array(0.0, np.float32), "fill"),
        *(
            numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
            for name, shape in (("w1", (channels, 1, 3, 3)), ("w2", (channels, 1, 3, 3)), ("b1", channels))
        ),
        numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Pad", ["x", "pads", "fill"], ["p1"]),
        helper.make_node("Conv", ["p1", "w1", "b1"], ["c1"], group=channels),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Pad", ["r1", "pads", "fill"], ["p2"]),
        helper.make_node("Conv", ["p2", "w2", "b2"], ["y"], group=channels),
    ]
    shape = ["n", channels, 8, 8]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        inits,
    )
    folder.mkdir(parents=True)
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx")
    )
    np.savez(folder / "calib.npz", x=rng.standard_normal((8, channels, 8, 8)).astype(np.float32))
    return handle({"type": "ONNXModel", "model_path": str(folder), "onnx_file_name": "model.onnx"})


@pytest.mark.parametrize("preprocess", [True, False])
def test_static_qoperator_gives_each_reader_of_a_shared_constant_its_own(
    preprocess: bool, tmp_path: Path
) -> None:
    """onnxruntime's QOperator quantizer takes a node's float constant as its own and dropped the fill
    value the second Pad still read: "Invalid model with unknown initializers/tensors" (EfficientNet)."""
    model = _padded_depthwise(tmp_path / "m")
    calib = CALIB.model_copy(deep=True)
    assert calib.load_dataset_config is not None
    calib.load_dataset_config.params["data_files"] = str(tmp_path / "m" / "calib.npz")
    ctx = PassContext(data_configs={"calib": calib}, base_dir=tmp_path)
    out = static(model, tmp_path / "q", ctx, quant_format="QOperator", quant_preprocess=preprocess)
    assert op_counts(out).get("QLinearConv") == 2
    assert [
        i for i in onnx.load(model.onnx_path).graph.initializer if i.name == "fill"
    ]  # the input is as it was
    feed = {"x": np.random.default_rng(9).standard_normal((2, 4, 8, 8)).astype(np.float32)}
    _assert_near(open_runner(out).run(feed)[0], open_runner(model).run(feed)[0])


def test_static_tensor_quant_overrides_from_json_reach_onnxruntime(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A JSON config names quant_type as a string (onnxruntime takes its QuantType member; the string
    failed inside the quantizer) and a scale as a number; an extra option onnxruntime does not read is
    said to have no effect."""
    ctx = PassContext(
        data_configs=ctx.data_configs, base_dir=ctx.base_dir, logger=logging.getLogger("test.tqo")
    )
    overrides = {"input": [{"scale": 0.05, "zero_point": 0}], "fc1_relu": [{"quant_type": "QUInt16"}]}
    with caplog.at_level("WARNING", logger="test.tqo"):
        out = static(
            mlp,
            tmp_path / "q",
            ctx,
            tensor_quant_overrides=overrides,
            extra_options={"ActivationSymetric": True},
        )
    assert any(
        "extra_options.ActivationSymetric is not an option" in r.getMessage()
        and "'ActivationSymmetric'" in r.getMessage()
        for r in caplog.records
    )
    graph = onnx.load(str(out.onnx_path)).graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    quantize = {n.input[0]: n for n in graph.node if n.op_type == "QuantizeLinear"}
    assert float(inits[quantize["input"].input[1]]) == pytest.approx(0.05)
    assert inits[quantize["fc1_relu"].input[2]].dtype == np.uint16


@pytest.mark.parametrize("external", [False, True])
@pytest.mark.parametrize("type_name", ["OnnxDynamicQuantization", "OnnxStaticQuantization"])
def test_quantization_without_preprocessing_writes_nothing_beside_the_input_model(
    mlp: ModelHandle, ctx: PassContext, tmp_path: Path, type_name: str, external: bool
) -> None:
    """onnxruntime's quantizers write '<name>-inferred.onnx' beside their input, and delete it: without
    pre-processing that input was the user's model, in the user's folder (a read-only one failed the run;
    a file of that name there was replaced, then deleted)."""
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "model-inferred.onnx").write_text("the user's own file")
    onnx.save_model(
        onnx.load(str(mlp.onnx_path)),
        str(folder / "model.onnx"),
        save_as_external_data=external,
        location="model.onnx.data",
        size_threshold=0,
    )
    before = sorted(p.name for p in folder.iterdir())
    folder.chmod(0o555)
    try:
        source = ModelHandle(kind="onnx", config={"model_path": str(folder), "onnx_file_name": "model.onnx"})
        params: dict[str, Any] = {"quant_preprocess": False}
        if type_name == "OnnxStaticQuantization":
            params["data_config"] = "calib"
        out = run_pass(type_name, source, tmp_path / "out", ctx, **params)
    finally:
        folder.chmod(0o755)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "model-inferred.onnx").read_text() == "the user's own file"
    close_to(out, mlp, 0.1)
