"""The input model's timed metrics under search: fewer runs only when no goal resolves against them."""

from __future__ import annotations

from typing import Any

import pytest

from olivine.config.evaluators import EvaluatorConfig
from olivine.engine.evaluation import _reference_metrics, reference_timing_suffices
from olivine.evaluate.metric_configs import timing_config


def _evaluator(goal: dict[str, Any] | None, metric_config: dict[str, Any] | None = None) -> EvaluatorConfig:
    sub: dict[str, Any] = {"name": "avg", "priority": 1}
    if goal is not None:
        sub["goal"] = goal
    if metric_config is not None:
        sub["metric_config"] = metric_config
    return EvaluatorConfig.model_validate(
        {
            "metrics": [
                {"name": "latency", "type": "latency", "sub_types": [sub, {"name": "p90"}]},
                {
                    "name": "acc",
                    "type": "accuracy",
                    "sub_types": [
                        {"name": "accuracy_score", "goal": {"type": "max-degradation", "value": 0.01}}
                    ],
                },
            ]
        }
    )


@pytest.mark.parametrize(
    ("goal", "suffices"),
    [
        (None, True),
        ({"type": "threshold", "value": 10.0}, True),
        ({"type": "max-degradation", "value": 5.0}, False),
        ({"type": "min-improvement", "value": 5.0}, False),
        ({"type": "percent-max-degradation", "value": 5.0}, False),
        ({"type": "percent-min-improvement", "value": 5.0}, False),
    ],
)
def test_reference_timing_only_when_no_timed_goal_needs_the_input_value(
    goal: dict[str, Any] | None, suffices: bool
) -> None:
    # The accuracy metric's baseline goal does not matter: it is untimed, and measured in full anyway.
    assert reference_timing_suffices(_evaluator(goal)) is suffices


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, (3, 10)),  # Olive's defaults (10 warm-up, 20 timed) capped
        ({"warmup_num": 10, "repeat_test_num": 50, "sleep_num": 0}, (3, 10)),
        ({"warmup_num": 1, "repeat_test_num": 4}, (1, 4)),  # already fewer: unchanged
    ],
)
def test_reference_metrics_cap_warmup_and_runs(
    given: dict[str, Any] | None, expected: tuple[int, int]
) -> None:
    latency = _evaluator(None, given).metrics[0]
    capped = _reference_metrics([latency])[0]
    timing = timing_config(capped)
    assert (timing.warmup_num, timing.repeat_test_num) == expected
    assert [s.name for s in capped.sub_types] == ["avg", "p90"] and capped.sub_types[0].priority == 1
    assert latency.sub_types[0].metric_config == given  # the workflow's config is not changed
