"""Metric configs: metric_config models, resolve-time evaluator checks, evaluation fingerprints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from olivine.config.data import DataConfig
from olivine.config.evaluators import EvaluatorConfig
from olivine.errors import ConfigError, ReferenceNotFoundError
from olivine.evaluate import evaluation_fingerprint, validate_evaluator
from olivine.evaluate.metric_configs import LatencyConfig, timing_config


def _evaluator(*metrics: dict[str, Any], **extra: Any) -> EvaluatorConfig:
    return EvaluatorConfig.model_validate({"metrics": list(metrics), **extra})


def _accuracy(**sub: Any) -> dict[str, Any]:
    return {
        "name": "acc",
        "type": "accuracy",
        "data_config": "d",
        "sub_types": [{"name": "accuracy_score", **sub}],
    }


@pytest.fixture
def base(tmp_path: Path) -> Path:
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1)), label=np.zeros(2))
    (tmp_path / "eval.py").write_text("def my_eval(model, device, eps):\n    return 1.0\n")
    return tmp_path


def _data() -> dict[str, DataConfig]:
    dc = DataConfig.model_validate(
        {"name": "d", "load_dataset_config": {"type": "numpy_dataset", "data_files": "d.npz"}}
    )
    return {"d": dc}


def test_validate_evaluator_names_a_misspelled_metric_config_key(base: Path) -> None:
    ev = _evaluator(_accuracy(metric_config={"task": "multiclass", "averag": "macro"}))
    with pytest.raises(ConfigError) as info:
        validate_evaluator(ev, data_configs=_data(), base_dir=base, path="evaluators.common")
    assert info.value.path == "evaluators.common.metrics.0.sub_types.0.metric_config.averag"
    assert "did you mean 'average'" in info.value.message


def test_validate_evaluator_rejects_options_olivine_does_not_compute(base: Path) -> None:
    for cfg in ({"task": "multilabel"}, {"top_k": 3}, {"average": "none"}):
        with pytest.raises(ConfigError, match="metric_config"):
            validate_evaluator(_evaluator(_accuracy(metric_config=cfg)), data_configs=_data(), base_dir=base)


def test_huggingface_metrics_backend_refuses_a_torch_metrics_sub_type_naming_the_backend() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="backend 'huggingface_metrics' sub-type 'accuracy_score'"):
        _evaluator({**_accuracy(), "backend": "huggingface_metrics"})


def test_validate_evaluator_refuses_huggingface_metrics_load_params(base: Path) -> None:
    metric = {**_accuracy(), "backend": "huggingface_metrics"}
    metric["sub_types"] = [{"name": "f1", "metric_config": {"load_params": {"config_name": "x"}}}]
    with pytest.raises(ConfigError) as info:
        validate_evaluator(_evaluator(metric), data_configs=_data(), base_dir=base)
    assert info.value.path == "evaluator.metrics.0.sub_types.0.metric_config.load_params"


def test_validate_evaluator_reports_an_undefined_data_config(base: Path) -> None:
    ev = _evaluator({**_accuracy(), "data_config": "missing"})
    with pytest.raises(ReferenceNotFoundError) as info:
        validate_evaluator(ev, data_configs=_data(), base_dir=base)
    assert info.value.path == "evaluator.metrics.0.data_config"


def test_validate_evaluator_requires_data_for_accuracy(base: Path) -> None:
    ev = _evaluator({**_accuracy(), "data_config": None})
    with pytest.raises(ConfigError, match="needs a data_config"):
        validate_evaluator(ev, data_configs=_data(), base_dir=base)


def test_validate_evaluator_finds_the_custom_function_in_the_evaluator_user_script(base: Path) -> None:
    good = {
        "name": "c",
        "type": "custom",
        "sub_types": [{"name": "s"}],
        "user_config": {"evaluate_func": "my_eval"},
    }
    validate_evaluator(_evaluator(good, user_script="eval.py"), data_configs={}, base_dir=base)
    bad = {**good, "user_config": {"evaluate_func": "my_evl"}}
    with pytest.raises(ConfigError) as info:
        validate_evaluator(_evaluator(bad, user_script="eval.py"), data_configs={}, base_dir=base)
    assert info.value.path == "evaluator.metrics.0.user_config.evaluate_func"
    assert "did you mean 'my_eval'" in info.value.message


def test_timing_config_comes_from_the_first_sub_type_that_has_one() -> None:
    metric = _evaluator(
        {
            "name": "lat",
            "type": "latency",
            "sub_types": [
                {"name": "avg"},
                {"name": "p50", "metric_config": {"warmup_num": 1, "repeat_test_num": 3}},
                {"name": "p90", "metric_config": {"warmup_num": 5}},
            ],
        }
    ).metrics[0]
    assert timing_config(metric) == LatencyConfig(warmup_num=1, repeat_test_num=3, sleep_num=0)
    lone = _evaluator({"name": "lat", "type": "latency", "sub_types": [{"name": "avg"}]}).metrics[0]
    assert timing_config(lone) == LatencyConfig(warmup_num=10, repeat_test_num=20, sleep_num=0)


def test_evaluation_fingerprint_changes_with_metric_config_data_bytes_and_scripts(base: Path) -> None:
    ev = _evaluator(
        _accuracy(),
        {
            "name": "c",
            "type": "custom",
            "sub_types": [{"name": "s"}],
            "user_config": {"evaluate_func": "my_eval"},
        },
        user_script="eval.py",
    )
    before = evaluation_fingerprint(ev, _data(), base_dir=base)
    assert evaluation_fingerprint(ev, _data(), base_dir=base) == before
    changed = _evaluator(
        _accuracy(metric_config={"task": "multiclass"}),
        *[m.model_dump() for m in ev.metrics[1:]],
        user_script="eval.py",
    )
    assert evaluation_fingerprint(changed, _data(), base_dir=base) != before
    (base / "eval.py").write_text("def my_eval(model, device, eps):\n    return 2.0\n")
    after_script = evaluation_fingerprint(ev, _data(), base_dir=base)
    assert after_script != before
    np.savez(base / "d.npz", x=np.ones((2, 1)), label=np.zeros(2))
    assert evaluation_fingerprint(ev, _data(), base_dir=base) != after_script


def test_evaluation_fingerprint_ignores_where_the_files_live(
    base: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("moved")
    for name in ("d.npz", "eval.py"):
        (other / name).write_bytes((base / name).read_bytes())
    ev = _evaluator(_accuracy(), user_script="eval.py")
    assert evaluation_fingerprint(ev, _data(), base_dir=base) == evaluation_fingerprint(
        ev, _data(), base_dir=other
    )
