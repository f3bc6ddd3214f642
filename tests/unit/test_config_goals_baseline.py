"""A relative goal with ``evaluate_input_model: false``: Olive 0.13 evaluates the input model as the goals'
baseline anyway (``resolve_goals`` runs before the passes, with or without search); so does Olivine."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from olivine.config.loader import validate_config


def _cfg(goal: dict[str, Any] | None) -> dict[str, Any]:
    sub: dict[str, Any] = {"name": "avg", "priority": 1}
    if goal is not None:
        sub["goal"] = goal
    metric = {"name": "latency", "type": "latency", "sub_types": [sub]}
    return {
        "input_model": {"type": "ONNXModel", "model_path": "m.onnx"},
        "evaluators": {"e": {"metrics": [metric]}},
        "engine": {"evaluator": "e", "evaluate_input_model": False},
    }


def test_relative_goal_evaluates_the_input_model_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="olivine"):
        cfg = validate_config(_cfg({"type": "percent-min-improvement", "value": 10}))
    assert cfg.engine.evaluate_input_model is True
    assert any("latency-avg is relative to the input model" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("goal", [None, {"type": "threshold", "value": 5}])
def test_without_a_relative_goal_evaluate_input_model_false_stays(goal: dict[str, Any] | None) -> None:
    assert validate_config(_cfg(goal)).engine.evaluate_input_model is False
