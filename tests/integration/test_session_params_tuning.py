"""OrtSessionParamsTuning / OrtPerfTuning: candidates, the choice rule, and the settings reaching every
later use of the model (evaluation, model_config.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from olivine.errors import PassRunError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.model.runner import open_runner
from olivine.passes import PASSES, PassContext
from olivine.passes.session_params_tuning import (
    OrtSessionParamsTuningConfig,
    Setting,
    candidate_settings,
    pick_fastest,
)

TUNING = PASSES.get("OrtSessionParamsTuning")


def config(**params: Any) -> Any:
    return TUNING.config_class.model_validate(params)


def write_constant_heavy_model(folder: Path) -> dict[str, Any]:
    """A static-shape model whose output adds a chain of MatMuls of constants: with graph optimization
    (constant folding) the chain is computed once at load; without it, on every run. So disabling
    optimization is many times slower, whatever else runs on the machine."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    size = 192
    inits = [
        numpy_helper.from_array((rng.standard_normal((size, size)) / size).astype(np.float32), f"w{i}")
        for i in range(7)
    ]
    nodes = []
    current = "w0"
    for i in range(1, 7):
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"c{i}"]))
        current = f"c{i}"
    nodes.append(helper.make_node("Add", ["input", current], ["output"]))
    graph = helper.make_graph(
        nodes,
        "constant_heavy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [size, size])],
        initializer=inits,
    )
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "model.onnx")
    )
    return {"type": "ONNXModel", "model_path": str(folder), "onnx_file_name": "model.onnx"}


def test_tuning_expands_unset_thread_counts_and_inter_op_only_in_parallel_mode() -> None:
    cfg = config(execution_mode_list=["ORT_SEQUENTIAL", "ORT_PARALLEL"], cpu_cores=4)
    settings = candidate_settings(cfg, Accelerator())
    sequential = [s.session_options for s in settings if s.session_options["execution_mode"] == 0]
    parallel = [s.session_options for s in settings if s.session_options["execution_mode"] == 1]
    assert [o["intra_op_num_threads"] for o in sequential] == [1, 2, 4]
    assert all("inter_op_num_threads" not in o for o in sequential)
    assert len(parallel) == 9 and {o["inter_op_num_threads"] for o in parallel} == {1, 2, 4}


def test_tuning_takes_olives_single_values_and_enum_names() -> None:
    cfg = config(
        execution_mode_list=1,
        opt_level_list="ORT_ENABLE_EXTENDED",
        intra_thread_num_list=2,
        inter_thread_num_list=1,
        extra_session_config={"session.intra_op.allow_spinning": "0"},
    )
    assert candidate_settings(cfg, Accelerator()) == [
        Setting(
            "CPUExecutionProvider",
            {},
            {
                "execution_mode": 1,
                "graph_optimization_level": 2,
                "intra_op_num_threads": 2,
                "inter_op_num_threads": 1,
                "extra_session_config": {"session.intra_op.allow_spinning": "0"},
            },
        )
    ]


def test_tuning_config_refuses_a_bad_enum_name_and_thread_count() -> None:
    with pytest.raises(ValidationError, match="ORT_SEQUENTIAL \\(0\\), ORT_PARALLEL \\(1\\)"):
        config(execution_mode_list=["SEQUENTIAL_PLEASE"])
    with pytest.raises(ValidationError, match="intra_thread_num_list"):
        config(intra_thread_num_list=[0])
    with pytest.raises(ValidationError, match="less than or equal to 1024"):  # hung a 2-CPU machine
        config(intra_thread_num_list=[100000])
    with pytest.raises(ValidationError, match="cpu_cores"):
        config(cpu_cores=100000)


def test_tuning_keeps_the_baseline_unless_faster_in_every_round_and_clearly() -> None:
    base = Setting("CPUExecutionProvider", {}, {})
    other = Setting("CPUExecutionProvider", {}, {"intra_op_num_threads": 1})
    # Faster in two rounds of three: noise, the baseline stays.
    assert pick_fastest({base: [0.0100, 0.0105, 0.0095], other: [0.0095, 0.0110, 0.0090]}, base) == base
    # Faster in every round but by 1%: the baseline stays.
    assert pick_fastest({base: [0.0100, 0.0100, 0.0100], other: [0.0099, 0.0099, 0.0099]}, base) == base
    # Faster in every round, even when a slow spell hit a round of both: a real gain.
    assert pick_fastest({base: [0.0100, 0.0400, 0.0095], other: [0.0050, 0.0300, 0.0049]}, base) == other


def test_tuning_refuses_gpu_only_options_on_a_cpu_target() -> None:
    assert "io_bind" in (TUNING.invalid_reason(config(io_bind=True), Accelerator()) or "")
    reason = TUNING.invalid_reason(config(providers_list=["CUDAExecutionProvider"]), Accelerator())
    assert reason is not None and "force_evaluate_other_eps" in reason
    with pytest.raises(PassRunError, match="enable_cuda_graph"):
        TUNING().run(
            ModelHandle(kind="onnx", config={}), config(enable_cuda_graph=True), Path("x"), PassContext()
        )


def test_ort_perf_tuning_is_the_same_pass() -> None:
    assert PASSES.get("OrtPerfTuning") is TUNING


@pytest.mark.integration
def test_tuning_keeps_the_fast_setting_and_every_later_session_uses_it(tmp_path: Path) -> None:
    source = write_constant_heavy_model(tmp_path / "src")
    slow = {"session_options": {"graph_optimization_level": "ORT_DISABLE_ALL", "intra_op_num_threads": 1}}
    model = ModelHandle(kind="onnx", config={**source, "inference_settings": slow})
    model = ModelHandle(kind="onnx", config={k: v for k, v in model.config.items() if k != "type"})
    cfg = config(
        opt_level_list=["ORT_DISABLE_ALL", "ORT_ENABLE_ALL"],
        intra_thread_num_list=[1],
        rounds=3,
        repeat_test_num=5,
    )
    out_dir = tmp_path / "out"
    instance = TUNING()

    output = instance.run(model, cfg, out_dir, PassContext())
    instance.check_output(output)

    chosen = output.config["inference_settings"]
    assert chosen["session_options"] == {"graph_optimization_level": 99, "intra_op_num_threads": 1}
    assert chosen["execution_provider"] == ["CPUExecutionProvider"]
    assert output.onnx_path == out_dir / "model.onnx" and output.onnx_path.stat().st_nlink >= 1
    session = open_runner(output).session  # type: ignore[attr-defined]
    assert session.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


@pytest.mark.integration
def test_tuned_settings_reach_later_evaluation_and_the_output_model_config(tmp_path: Path) -> None:
    from olivine.api import load, run_local

    size = 192
    cfg = {
        "input_model": {
            **write_constant_heavy_model(tmp_path / "src"),
            "inference_settings": {"session_options": {"graph_optimization_level": "ORT_DISABLE_ALL"}},
        },
        "data_configs": [
            {
                "name": "lat",
                "type": "DummyDataContainer",
                "load_dataset_config": {"input_names": ["input"], "input_shapes": [[size, size]]},
            }
        ],
        "evaluators": {
            "e": {
                "metrics": [
                    {
                        "name": "latency",
                        "type": "latency",
                        "data_config": "lat",
                        "sub_types": [{"name": "avg", "metric_config": {"repeat_test_num": 10}}],
                    }
                ]
            }
        },
        "passes": {
            "tune": {
                "type": "OrtPerfTuning",
                "data_config": "lat",
                "opt_level_list": ["ORT_DISABLE_ALL", "ORT_ENABLE_ALL"],
                "intra_thread_num_list": [1],
                "rounds": 2,
                "repeat_test_num": 3,
            }
        },
        "engine": {"evaluator": "e"},
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "out"),
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))

    result = run_local(load(path))

    written = json.loads((result.output_dir / "model_config.json").read_text())
    assert written["config"]["inference_settings"]["session_options"]["graph_optimization_level"] == 99
    # The same files, evaluated with the tuned settings: the constant chain is folded once at load.
    assert result.input_metrics is not None and result.best is not None
    before = result.input_metrics["latency-avg"]["value"]
    after = result.metrics["latency-avg"]["value"]
    assert after < 0.5 * before


@pytest.mark.parametrize(("device", "message"), [("gpu", "CPU only"), ("banana", "unknown device")])
def test_tuning_refuses_a_device_it_would_ignore(device: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OrtSessionParamsTuningConfig.model_validate({"device": device})
    assert OrtSessionParamsTuningConfig.model_validate({"device": "CPU"}).device == "cpu"


def test_one_configured_setting_is_recorded_as_given_even_when_slower(tmp_path: Path) -> None:
    # Olive 0.13 records its search point; the baseline rule would keep the (much faster) current one.
    source = write_constant_heavy_model(tmp_path / "src")
    model = ModelHandle(kind="onnx", config={k: v for k, v in source.items() if k != "type"})
    cfg = config(opt_level_list="ORT_DISABLE_ALL", intra_thread_num_list=1, rounds=1, repeat_test_num=2)
    output = TUNING().run(model, cfg, tmp_path / "out", PassContext())
    assert output.config["inference_settings"]["session_options"] == {
        "graph_optimization_level": 0,
        "intra_op_num_threads": 1,
    }


def test_thread_affinities_set_the_intra_op_thread_count() -> None:
    affinities = {"session.intra_op_thread_affinities": "1;2"}
    cfg = config(extra_session_config=affinities, cpu_cores=4)
    settings = candidate_settings(cfg, Accelerator())
    assert [s.session_options["intra_op_num_threads"] for s in settings] == [3]
