"""Goal maths (OLIVE-CONFIG.md), and goal checks and ranking through olivine.search.ranking."""

from __future__ import annotations

from typing import Any

import pytest

from olivine.config.evaluators import EvaluatorConfig, Goal
from olivine.errors import ConfigError
from olivine.evaluate.goals import goal_value, resolve_goals
from olivine.evaluate.results import MetricValue, results_from_json, results_to_json
from olivine.search.ranking import Objectives, meets_goals, ranking_order, resolve_objectives


@pytest.mark.parametrize(
    ("goal_type", "value", "higher_is_better", "expected"),
    [
        ("threshold", 0.9, True, 0.9),
        ("threshold", 20.0, False, 20.0),
        ("max-degradation", 0.01, True, 0.79),
        ("max-degradation", 2.0, False, 12.0),
        ("min-improvement", 0.05, True, 0.85),
        ("min-improvement", 1.0, False, 9.0),
        ("percent-max-degradation", 10, True, 0.72),
        ("percent-max-degradation", 10, False, 11.0),
        ("percent-min-improvement", 25, True, 1.0),
        ("percent-min-improvement", 20, False, 8.0),
    ],
)
def test_goal_value_follows_the_olive_formulas(
    goal_type: str, value: float, higher_is_better: bool, expected: float
) -> None:
    # baseline 0.8 for higher-is-better (accuracy-like), 10 for lower-is-better (latency-like)
    baseline = 0.8 if higher_is_better else 10.0
    goal = Goal.model_validate({"type": goal_type, "value": value})
    assert goal_value(goal, baseline, higher_is_better) == pytest.approx(expected)


def test_goal_value_needs_a_baseline_for_relative_goals() -> None:
    with pytest.raises(ConfigError, match="evaluate_input_model"):
        goal_value(Goal(type="max-degradation", value=0.01), None, True)


def test_goal_value_rejects_negative_relative_values() -> None:
    with pytest.raises(ConfigError, match="non-negative"):
        goal_value(Goal(type="min-improvement", value=-1), 1.0, True)


def _evaluator() -> EvaluatorConfig:
    return EvaluatorConfig.model_validate(
        {
            "metrics": [
                {
                    "name": "acc",
                    "type": "accuracy",
                    "data_config": "d",
                    "sub_types": [
                        {
                            "name": "accuracy_score",
                            "priority": 1,
                            "goal": {"type": "max-degradation", "value": 0.05},
                        }
                    ],
                },
                {
                    "name": "latency",
                    "type": "latency",
                    "data_config": "d",
                    "sub_types": [
                        {
                            "name": "avg",
                            "priority": 2,
                            "goal": {"type": "percent-min-improvement", "value": 10},
                        },
                        {"name": "p99"},
                    ],
                },
            ]
        }
    )


def _results(acc: float, lat: float, p99: float = 1.0) -> dict[str, MetricValue]:
    return {
        "acc-accuracy_score": MetricValue(acc, 1, True),
        "latency-avg": MetricValue(lat, 2, False),
        "latency-p99": MetricValue(p99, -1, False),
    }


def test_resolve_goals_uses_the_baseline_per_result_key() -> None:
    goals = resolve_goals(_evaluator(), _results(0.9, 20.0))
    assert goals == pytest.approx({"acc-accuracy_score": 0.85, "latency-avg": 18.0})


def test_resolve_goals_names_the_metric_when_the_baseline_is_missing() -> None:
    with pytest.raises(ConfigError, match="acc-accuracy_score"):
        resolve_goals(_evaluator(), None)


def _ranked(goals: dict[str, float] | None = None) -> Objectives:
    ranked = resolve_objectives(_evaluator(), _results(0.9, 20.0)).ranked
    return Objectives(ranked, goals or {})


def test_meets_goals_checks_each_direction_and_missing_results() -> None:
    goals = _ranked({"acc-accuracy_score": 0.85, "latency-avg": 18.0})
    assert meets_goals(_results(0.85, 18.0), goals)
    assert not meets_goals(_results(0.84, 10.0), goals)
    assert not meets_goals(_results(0.95, 18.5), goals)
    assert not meets_goals({"acc-accuracy_score": MetricValue(0.9, 1, True)}, goals)


def test_ranking_orders_by_priority_then_direction() -> None:
    candidates = {
        "slow_accurate": _results(0.92, 30.0),
        "fast_accurate": _results(0.92, 15.0),
        "fastest_less_accurate": _results(0.90, 5.0),
    }
    names = list(candidates)
    order = ranking_order([candidates[n] for n in names], _ranked())
    assert [names[i] for i in order] == ["fast_accurate", "slow_accurate", "fastest_less_accurate"]


def test_ranking_puts_candidates_failing_goals_after_those_meeting_them() -> None:
    objectives = _ranked({"acc-accuracy_score": 0.85, "latency-avg": 18.0})
    candidates = [_results(0.99, 19.0), _results(0.86, 17.0)]
    assert ranking_order(candidates, objectives) == [1, 0]


def test_ranking_ignores_report_only_metrics_and_ranks_missing_values_last() -> None:
    objectives = _ranked()
    assert ranking_order([_results(0.9, 10.0, p99=99.0), _results(0.9, 10.0, p99=1.0)], objectives) == [0, 1]
    missing: dict[str, Any] = {"latency-avg": MetricValue(1.0, 2, False)}
    assert ranking_order([missing, _results(0.1, 100.0)], objectives) == [1, 0]


def test_results_round_trip_through_olive_json() -> None:
    results = _results(0.9, 10.0)
    data = results_to_json(results)
    assert data["latency-avg"] == {"value": 10.0, "priority": 2, "higher_is_better": False}
    assert results_from_json(data) == results
