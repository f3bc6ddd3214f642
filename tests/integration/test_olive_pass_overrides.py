"""Olive 0.13's per-pass ``host`` and ``evaluator`` (``RunPassConfig``), read as Olive's engine uses them: the
last pass's evaluator evaluates the flow's output; a LocalSystem host runs the pass where the workflow runs;
anything else is refused at validation with one line naming the key."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load, run_local
from olivine.errors import ConfigError, NotSupportedError
from tiny_models import write_onnx_mlp

pytestmark = pytest.mark.integration

_LATENCY = {"name": "latency", "type": "latency", "sub_types": [{"name": "avg"}], "data_config": "dummy"}
_DUMMY = {
    "name": "dummy",
    "type": "DummyDataContainer",
    "load_dataset_config": {"input_names": ["input"], "input_shapes": [[1, 32]], "max_samples": 1},
}


def _cfg(tmp_path: Path, **passes_extra: dict[str, Any]) -> dict[str, Any]:
    passes: dict[str, Any] = {
        "peephole": {"type": "OnnxPeepholeOptimizer"},
        "quant": {"type": "OnnxDynamicQuantization"},
    }
    for name, extra in passes_extra.items():
        passes[name] = {**passes[name], **extra}
    return {
        "input_model": write_onnx_mlp(tmp_path / "onnx"),
        "data_configs": [_DUMMY],
        "evaluators": {"timing": {"metrics": [_LATENCY]}},
        "passes": passes,
        "output_dir": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
    }


def _load(tmp_path: Path, cfg: dict[str, Any]) -> Any:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return load(path)


def test_last_pass_evaluator_evaluates_the_output_as_in_olive(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, quant={"evaluator": "timing"})
    workflow = _load(tmp_path, cfg)
    assert workflow.evaluator is not None
    assert [m.name for m in workflow.evaluator.metrics] == ["latency"]
    result = run_local(workflow, cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert result.best is not None
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "latency-avg" in metrics


def test_last_pass_evaluator_wins_over_the_engines(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, quant={"evaluator": {"metrics": [dict(_LATENCY, name="pass_latency")]}})
    cfg["evaluator"] = "timing"
    workflow = _load(tmp_path, cfg)
    assert [m.name for m in workflow.evaluator.metrics] == ["pass_latency"]


def test_evaluator_of_a_middle_pass_is_ignored_with_a_warning_as_olive_ignores_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _cfg(tmp_path, peephole={"evaluator": "timing"})
    with caplog.at_level(logging.WARNING, logger="olivine"):
        workflow = _load(tmp_path, cfg)
    assert workflow.evaluator is None
    assert any("passes.peephole.evaluator ignored" in r.getMessage() for r in caplog.records)


def test_unknown_pass_evaluator_name_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, _cfg(tmp_path, quant={"evaluator": "nope"}))
    assert info.value.path == "passes.quant.evaluator"
    assert "'nope' is not in 'evaluators' (defined: timing)" in info.value.message
    assert "\n" not in str(info.value) and str(info.value).startswith(str(tmp_path / "cfg.json"))


@pytest.mark.parametrize("host", ["local", {"type": "LocalSystem"}])
def test_local_system_pass_host_runs_where_the_workflow_runs(tmp_path: Path, host: Any) -> None:
    cfg = _cfg(tmp_path, quant={"host": host})
    cfg["systems"] = {"local": {"type": "LocalSystem"}}
    workflow = _load(tmp_path, cfg)
    result = run_local(workflow, cache_dir=tmp_path / "cache", output_dir=tmp_path / "out")
    assert result.best is not None and result.best.pass_type == "OnnxDynamicQuantization"


@pytest.mark.parametrize(
    ("systems", "host", "message"),
    [
        ({"ray": {"type": "Ray", "address": "127.0.0.1:6379"}}, "ray", "a per-pass host of type Ray"),
        ({"py": {"type": "PythonEnvironment", "python_environment_path": "/x"}}, "py", "PythonEnvironment"),
        ({}, "missing", "system 'missing' is not in 'systems' (defined: none)"),
    ],
)
def test_other_pass_hosts_are_refused_at_validation_naming_the_key(
    tmp_path: Path, systems: dict[str, Any], host: str, message: str
) -> None:
    cfg = _cfg(tmp_path, peephole={"host": host})
    cfg["systems"] = systems
    with pytest.raises((ConfigError, NotSupportedError)) as info:
        _load(tmp_path, cfg)
    assert info.value.path == "passes.peephole.host"
    assert message in info.value.message
