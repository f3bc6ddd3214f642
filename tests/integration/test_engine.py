"""The engine end to end on tiny models: every pass, the cache, outputs, failures (through the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load, run_local
from olivine.errors import PassRunError
from tiny_models import write_mlp, write_tiny_bert

pytestmark = pytest.mark.integration


def _write_config(folder: Path, cfg: dict[str, Any]) -> Path:
    cfg.setdefault("cache_dir", str(folder / "cache"))
    cfg.setdefault("output_dir", str(folder / "out"))
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "olivine", *args], capture_output=True, text=True, cwd=cwd)


def _broken_mlp(folder: Path) -> dict[str, Any]:
    """A PyTorchModel whose weights file is corrupt: valid config, but the conversion fails at run time."""
    model = write_mlp(folder / "mlp")
    Path(model["model_path"]).write_bytes(b"not a state dict")
    return model


def _bert_config(folder: Path) -> dict[str, Any]:
    return {
        "workflow_id": "tiny_bert",
        "input_model": write_tiny_bert(folder / "bert"),
        "data_configs": [
            {"name": "lat", "type": "TransformersDummyDataContainer", "load_dataset_config": {"seq_len": 16}}
        ],
        "evaluators": {
            "e": {
                "metrics": [
                    {
                        "name": "latency",
                        "type": "latency",
                        "data_config": "lat",
                        "sub_types": [
                            {"name": "avg", "priority": 1, "metric_config": {"repeat_test_num": 5}}
                        ],
                    },
                    {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]},
                ]
            }
        },
        "passes": {
            "conversion": {"type": "OnnxConversion", "target_opset": 17},
            "optimize": {
                "type": "OrtTransformersOptimization",
                "model_type": "bert",
                "num_heads": 2,
                "hidden_size": 32,
            },
            "quantize": {"type": "OnnxDynamicQuantization", "per_channel": True},
        },
        "engine": {"evaluator": "e", "log_severity_level": 1, "evaluate_intermediate_models": True},
    }


def test_engine_runs_tiny_bert_through_every_pass_and_reuses_cache(tmp_path: Path) -> None:
    config = _write_config(tmp_path, _bert_config(tmp_path))
    first = _cli("run", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "[3/3] OnnxDynamicQuantization 'quantize': done" in first.stderr
    assert "best model:" in first.stdout and "latency-avg" in first.stdout

    out = tmp_path / "out"
    footprint = json.loads((out / "footprint.json").read_text())
    nodes = footprint["nodes"]
    assert len(nodes) == 4  # input model + three pass outputs
    assert sum(n["is_best"] for n in nodes.values()) == 1
    assert {n["from_pass"] for n in nodes.values()} == {
        None,
        "OnnxConversion",
        "OrtTransformersOptimization",
        "OnnxDynamicQuantization",
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"latency-avg", "size-bytes"}
    assert json.loads((out / "input_model_metrics.json").read_text())["size-bytes"]["value"] > 0
    assert (out / "run_history.txt").read_text().count("\n") == 6
    assert (out / "olivine.log").is_file()

    second = _cli("run", "--config", str(config), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("cache hit") == 3 + 4  # three pass runs and four evaluations
    assert "running" not in second.stderr


def test_engine_output_model_config_is_loadable_as_input_model(tmp_path: Path) -> None:
    cfg = {"input_model": write_mlp(tmp_path / "mlp"), "passes": {"conversion": {"type": "OnnxConversion"}}}
    result = run_local(load(_write_config(tmp_path, cfg)))
    assert result.best is not None and result.best.pass_name == "conversion"  # no evaluator: last model
    model_config = json.loads((result.output_dir / "model_config.json").read_text())
    again = {"input_model": model_config, "passes": {"q": {"type": "OnnxDynamicQuantization"}}}
    path = result.output_dir / "reuse.json"
    path.write_text(
        json.dumps({**again, "cache_dir": str(tmp_path / "c2"), "output_dir": str(tmp_path / "o2")})
    )
    second = run_local(load(path))
    assert second.best is not None and second.best.model.onnx_path.is_file()


def test_engine_pass_failure_names_the_pass_and_is_retried_next_run(tmp_path: Path) -> None:
    cfg = {"input_model": _broken_mlp(tmp_path), "passes": {"conversion": {"type": "OnnxConversion"}}}
    workflow = load(_write_config(tmp_path, cfg))
    with pytest.raises(PassRunError) as info:
        run_local(workflow)
    assert "'conversion'" in str(info.value)
    failures = list((tmp_path / "cache" / "default_workflow" / "failures").glob("*.json"))
    assert len(failures) == 1
    record = json.loads(failures[0].read_text())
    assert record["status"] == "failed" and record["error"]
    with pytest.raises(PassRunError):
        run_local(workflow)  # not served from the cache as a failure: it ran (and failed) again
    assert json.loads(failures[0].read_text())["failed_at"] > record["failed_at"]


def test_cli_misspelled_key_is_one_line_exit_2_without_traceback(tmp_path: Path) -> None:
    cfg = {
        "input_model": write_mlp(tmp_path / "mlp"),
        "passes": {"c": {"type": "OnnxConversion"}},
        "enigne": {},
    }
    config = _write_config(tmp_path, cfg)
    result = _cli("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0] and "enigne: unknown key" in lines[0] and "engine" in lines[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_cli_misspelled_pass_parameter_names_the_pass(tmp_path: Path) -> None:
    cfg = {
        "input_model": write_mlp(tmp_path / "mlp"),
        "passes": {"q": {"type": "OnnxDynamicQuantization", "per_chanel": True}},
    }
    result = _cli("run", "--config", str(_write_config(tmp_path, cfg)), cwd=tmp_path)
    assert result.returncode == 2
    assert "passes.q.per_chanel: unknown parameter; did you mean 'per_channel'?" in result.stderr


def test_cli_undefined_evaluator_reference_is_named(tmp_path: Path) -> None:
    cfg = {"input_model": write_mlp(tmp_path / "mlp"), "evaluator": "missing"}
    result = _cli("run", "--config", str(_write_config(tmp_path, cfg)), cwd=tmp_path)
    assert result.returncode == 2
    assert "engine.evaluator: evaluator 'missing' is not defined" in result.stderr


def test_cli_missing_model_path_is_named(tmp_path: Path) -> None:
    cfg = {"input_model": {"type": "HfModel", "model_path": "sentence-transformers/all-MiniLM-L6-v2"}}
    result = _cli("run", "--config", str(_write_config(tmp_path, cfg)), cwd=tmp_path)
    assert result.returncode == 2
    assert "input_model.model_path" in result.stderr and "model hub" in result.stderr


def test_cli_verbose_shows_traceback_on_workflow_failure(tmp_path: Path) -> None:
    cfg = {"input_model": _broken_mlp(tmp_path), "passes": {"c": {"type": "OnnxConversion"}}}
    config = _write_config(tmp_path, cfg)
    quiet = _cli("run", "--config", str(config), cwd=tmp_path)
    loud = _cli("run", "--config", str(config), "--verbose", cwd=tmp_path)
    assert quiet.returncode == loud.returncode == 1
    assert "pass 'c' failed" in quiet.stderr and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr


def test_engine_evaluates_only_input_and_final_model_by_default(tmp_path: Path) -> None:
    cfg = _bert_config(tmp_path)
    del cfg["engine"]["evaluate_intermediate_models"]
    result = run_local(load(_write_config(tmp_path, cfg)))
    # Olive without search: one candidate, the whole chain.
    assert [[s.name for s in c.chain] for c in result.candidates] == [["conversion", "optimize", "quantize"]]
    assert result.input_metrics is not None
    assert result.best is not None and result.best.pass_name == "quantize"
    # Two models, each evaluated in two cached parts (untimed: size; timed: latency).
    assert len(list((tmp_path / "cache" / "tiny_bert" / "evaluations").glob("*.json"))) == 4


def test_cli_local_flag_ignores_workflow_host(tmp_path: Path) -> None:
    cfg = {
        "input_model": write_mlp(tmp_path / "mlp"),
        "passes": {"c": {"type": "OnnxConversion"}},
        "systems": {"w": {"type": "LocalWorker"}},
        "workflow_host": "w",
    }
    env_home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "olivine", "run", "--config", str(_write_config(tmp_path, cfg)), "--local"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OLIVINE_HOME": str(env_home)},
    )
    assert result.returncode == 0, result.stderr
    assert "best model: c" in result.stdout
    assert not (env_home / "jobs.db").exists()  # nothing was submitted


def test_credentials_in_a_pass_config_stay_out_of_the_run_records_and_footprint(tmp_path: Path) -> None:
    """AddOliveMetadata writes what it is given into the model (the user asked for that), but a value under
    a credential's key (``password``) is left out of the records Olivine writes about the run."""
    import onnx

    from tiny_models import write_onnx_mlp

    secret = "hunter2-hunter2-hunter2"
    cfg = {
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "passes": {
            "meta": {
                "type": "AddOliveMetadata",
                "graph_name": "g",
                "custom_metadata": {"password": secret, "owner": "team-a"},
            }
        },
    }
    run_local(load(_write_config(tmp_path, cfg)))
    model = onnx.load(str(tmp_path / "out" / "model" / "model.onnx"), load_external_data=False)
    assert {p.key: p.value for p in model.metadata_props}.get("password") == secret
    written = [p for p in (tmp_path / "out").rglob("*.json")] + list((tmp_path / "cache").rglob("*.json"))
    assert any((tmp_path / "cache").rglob("run.json"))
    assert not [p for p in written if secret in p.read_text()]
    assert "team-a" in (tmp_path / "out" / "footprint.json").read_text()


@pytest.mark.parametrize(
    ("pass_config", "key", "words"),
    [
        (
            {
                "type": "GraphSurgeries",
                "surgeries": [{"surgeon": "RenameInputs", "old_names": ["nope"], "new_names": ["x"]}],
            },
            "passes.p.surgeries.0: surgeon RenameInputs:",
            "no graph input named ['nope'] (the inputs: ['input'])",
        ),
        (  # the second surgeon sees the names the first left
            {
                "type": "GraphSurgeries",
                "surgeries": [
                    {"surgeon": "RenameInputs", "old_names": ["input"], "new_names": ["x"]},
                    {"surgeon": "RenameInputDims", "input_name": "input", "dim_idx": 0, "dim_name": "b"},
                ],
            },
            "passes.p.surgeries.1: surgeon RenameInputDims:",
            "no input 'input' (inputs: ['x'])",
        ),
        (
            {
                "type": "GraphSurgeries",
                "surgeries": [{"surgeon": "ZeroOutInput", "node_name": "fc1_matmul", "input_idx": 7}],
            },
            "passes.p.surgeries.0: surgeon ZeroOutInput:",
            "input_idx 7 is out of range",
        ),
        (
            {"type": "DynamicToFixedShape", "dim_param": ["nope"], "dim_value": [1]},
            "passes.p.dim_param",
            "are not dimensions",
        ),
        (
            {"type": "OnnxBlockWiseRtnQuantization", "nodes_to_include": ["fc1_matmul", "nope"]},
            "passes.p.nodes_to_include",
            "['nope'] are not names of nodes",
        ),
        ({"type": "ModelBuilder", "precision": "int4"}, "passes.p.metadata_only", "needs an HfModel"),
        (
            {"type": "OnnxFloatToFloat16", "node_block_list": ["fc9_matmul"]},
            "passes.p.node_block_list",
            "not names of nodes",
        ),
        (
            {"type": "OnnxFloatToFloat16", "keep_io_types": ["logits"]},
            "passes.p.keep_io_types",
            "not inputs or outputs",
        ),
        (
            {"type": "DynamicToFixedShape", "input_name": ["input"], "input_shape": [[1, 64]]},
            "passes.p.input_shape.0",
            "Can't replace existing fixed size",
        ),
    ],
)
def test_cli_a_name_the_input_model_lacks_is_refused_before_the_run(
    tmp_path: Path, pass_config: dict[str, Any], key: str, words: str
) -> None:
    from tiny_models import write_onnx_mlp

    cfg = {"input_model": write_onnx_mlp(tmp_path / "mlp"), "passes": {"p": pass_config}}
    config = _write_config(tmp_path, cfg)
    result = _cli("run", "--config", str(config), "--dry-run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and words in lines[0] and "(in model.onnx)" in lines[0], lines


def test_cli_names_the_input_model_has_pass_the_check(tmp_path: Path) -> None:
    from tiny_models import write_onnx_mlp

    surgeries = [
        {"surgeon": "RenameInputs", "old_names": ["input"], "new_names": ["x"]},
        {"surgeon": "RenameInputDims", "input_name": "x", "dim_idx": 0, "dim_name": "b"},
        {"surgeon": "ExposeOutputs", "names": ["fc1_matmul"]},
    ]
    cfg = {
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "passes": {"p": {"type": "GraphSurgeries", "surgeries": surgeries}},
    }
    result = _cli("run", "--config", str(_write_config(tmp_path, cfg)), "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
