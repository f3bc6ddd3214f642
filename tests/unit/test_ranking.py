"""The ranking rule on hand-made measurements: goals first, priorities in turn, ties at the spread,
the Pareto frontier."""

from __future__ import annotations

import math

from olivine.config.evaluators import EvaluatorConfig
from olivine.evaluate.results import MetricValue, metric_value, round_spread
from olivine.search.ranking import (
    Objective,
    Objectives,
    best_index,
    compare,
    meets_goals,
    pareto_frontier,
    playoff_finalists,
    ranking_order,
    resolve_objectives,
    tied,
)

LAT = Objective("latency-avg", 1, False)
SIZE = Objective("size-bytes", 2, False)
ACC = Objective("acc-score", 2, True)
#: The example's objectives: latency first, then fidelity with a goal of at least 0.99.
FID = Objective("fid-cos", 2, True, "threshold", 0.99, 0.99)
LAT_FID = Objectives((LAT, FID), {"fid-cos": 0.99})


def lat(value: float, spread: float | None = None) -> MetricValue:
    rounds = None if spread is None else (value - spread, value + spread)
    return MetricValue(value, 1, False, spread, rounds)


def size(value: float) -> MetricValue:
    return MetricValue(value, 2, False)


def acc(value: float) -> MetricValue:
    return MetricValue(value, 2, True)


def test_tied_when_intervals_overlap_and_not_when_apart() -> None:
    assert tied(lat(142.5, 2.0), lat(145.6, 1.5))  # 3.1 apart, spreads sum to 3.5
    assert not tied(lat(142.5, 1.0), lat(145.6, 1.5))  # 3.1 apart, spreads sum to 2.5
    assert not tied(lat(1.0), lat(1.0001))  # no spread: only equal values tie
    assert tied(lat(1.0), lat(1.0))


def test_latency_tie_passes_the_decision_to_the_next_priority() -> None:
    # The example from the issue: fp32 142.5 ms vs int8 145.6 ms within noise; int8 is 27% smaller.
    objectives = Objectives((LAT, SIZE))
    fp32 = {"latency-avg": lat(142.5, 2.5), "size-bytes": size(90e6)}
    int8 = {"latency-avg": lat(145.6, 2.0), "size-bytes": size(66e6)}
    assert compare(int8, fp32, objectives) < 0
    assert best_index([fp32, int8], objectives) == 1
    # Measured precisely enough, the faster one wins on latency alone.
    fp32_sharp = {"latency-avg": lat(142.5, 0.5), "size-bytes": size(90e6)}
    int8_sharp = {"latency-avg": lat(145.6, 0.5), "size-bytes": size(66e6)}
    assert best_index([fp32_sharp, int8_sharp], objectives) == 0


def test_goals_come_before_priorities_and_missing_values_rank_last() -> None:
    objectives = Objectives((LAT, ACC), goals={"acc-score": 0.9})
    fast_bad = {"latency-avg": lat(1.0), "acc-score": acc(0.5)}
    slow_good = {"latency-avg": lat(9.0), "acc-score": acc(0.95)}
    no_latency = {"acc-score": acc(0.99)}
    assert not meets_goals(fast_bad, objectives) and meets_goals(slow_good, objectives)
    assert ranking_order([fast_bad, slow_good, no_latency], objectives) == [1, 2, 0]
    nan = {"latency-avg": lat(math.nan), "acc-score": acc(0.95)}
    assert compare(slow_good, nan, objectives) < 0


def test_partial_goal_check_ignores_metrics_not_measured_yet() -> None:
    objectives = Objectives((LAT, ACC), goals={"acc-score": 0.9, "latency-avg": 5.0})
    assert meets_goals({"acc-score": acc(0.95)}, objectives, partial=True)
    assert not meets_goals({"acc-score": acc(0.5)}, objectives, partial=True)
    assert not meets_goals({"acc-score": acc(0.95)}, objectives)


def test_best_keeps_the_earlier_candidate_on_a_full_tie_and_skips_failed_ones() -> None:
    objectives = Objectives((LAT, SIZE))
    a = {"latency-avg": lat(10.0, 1.0), "size-bytes": size(5.0)}
    b = {"latency-avg": lat(10.5, 1.0), "size-bytes": size(5.0)}
    assert best_index([None, a, b], objectives) == 1
    assert best_index([None, b, a], objectives) == 1
    assert best_index([None, None], objectives) is None


def test_a_chain_of_ties_does_not_let_a_distinguishably_slower_model_win() -> None:
    # Seen in the MiniLM search (bench run 20261202-124403): 12 ms ties with 16 ms (wide spread), 16 ms
    # ties with 27 ms (wide spread), and each later one is more faithful. Walking pairwise, the 27 ms fp16
    # model won although it is clearly slower than the 12 ms one. Ties are measured against the leader.
    objectives = Objectives((LAT, ACC))
    int8_fast = {"latency-avg": lat(11.8, 0.3), "acc-score": acc(0.9914)}
    int8_noisy = {"latency-avg": lat(16.1, 4.5), "acc-score": acc(0.9943)}
    fp16 = {"latency-avg": lat(27.4, 8.9), "acc-score": acc(1.0)}
    for order in (
        [int8_fast, int8_noisy, fp16],
        [int8_noisy, fp16, int8_fast],
        [fp16, int8_fast, int8_noisy],
    ):
        best = order[best_index(order, objectives) or 0]
        assert best is int8_noisy  # tied with the leader (11.8 +- 0.3 vs 16.1 +- 4.5), more faithful
    clear = {"latency-avg": lat(16.1, 1.0), "acc-score": acc(0.9943)}  # no longer tied with the leader
    assert best_index([clear, fp16, int8_fast], objectives) == 2
    assert ranking_order([clear, fp16, int8_fast], objectives) == [2, 0, 1]


def test_one_disturbed_round_does_not_widen_the_spread() -> None:
    rounds = (24.24, 39.94, 23.30, 22.48, 22.07)  # one round while something else ran
    assert round_spread(rounds) == (24.24 - 22.07) / 2
    assert round_spread((1.0, 3.0)) == 1.0  # two rounds: half their distance
    assert round_spread((1.0, 2.0, 4.0)) == 1.5  # three: nothing is left out
    sub = (
        EvaluatorConfig.model_validate(
            {
                "metrics": [
                    {"name": "latency", "type": "latency", "sub_types": [{"name": "avg", "priority": 1}]}
                ]
            }
        )
        .metrics[0]
        .sub_types[0]
    )
    value = metric_value(sub, 25.0, rounds)
    assert value.spread is not None and abs(value.spread - 1.085) < 1e-9
    assert metric_value(sub, 25.0, (25.0,)).spread is None


def test_pareto_frontier_keeps_trade_offs_and_drops_dominated_and_goal_failures() -> None:
    objectives = Objectives((LAT, ACC), goals={"acc-score": 0.8})
    fast = {"latency-avg": lat(1.0), "acc-score": acc(0.85)}
    accurate = {"latency-avg": lat(5.0), "acc-score": acc(0.99)}
    dominated = {"latency-avg": lat(6.0), "acc-score": acc(0.90)}
    fastest_but_failing = {"latency-avg": lat(0.5), "acc-score": acc(0.5)}
    noisy_twin = {"latency-avg": lat(1.2, 0.3), "acc-score": acc(0.85)}  # tied with `fast` on both
    frontier = pareto_frontier([fast, accurate, dominated, fastest_but_failing, None, noisy_twin], objectives)
    assert frontier == [0, 1, 5]


def test_objectives_resolve_relative_goals_against_the_input_model() -> None:
    evaluator = EvaluatorConfig.model_validate(
        {
            "metrics": [
                {
                    "name": "acc",
                    "type": "accuracy",
                    "sub_types": [
                        {
                            "name": "accuracy_score",
                            "priority": 1,
                            "goal": {"type": "max-degradation", "value": 0.01},
                        }
                    ],
                },
                {"name": "latency", "type": "latency", "sub_types": [{"name": "avg", "priority": 2}]},
            ]
        }
    )
    baseline = {"acc-accuracy_score": MetricValue(0.9, 1, True), "latency-avg": lat(10.0)}
    objectives = resolve_objectives(evaluator, baseline)
    assert [o.key for o in objectives.ranked] == ["acc-accuracy_score", "latency-avg"]
    assert math.isclose(objectives.goals["acc-accuracy_score"], 0.89)
    first = objectives.to_json()[0]
    assert first["goal"]["type"] == "max-degradation" and math.isclose(first["goal"]["resolved"], 0.89)
    assert Objectives.from_json(objectives.to_json()).ranked == objectives.ranked


def fid(value: float) -> MetricValue:
    return MetricValue(value, 2, True)


def cand(latency: float, spread: float, fidelity: float) -> dict[str, MetricValue]:
    return {"latency-avg": lat(latency, spread), "fid-cos": fid(fidelity)}


def test_playoff_finalists_are_the_leader_and_those_near_it_or_tied_with_it() -> None:
    walk = [
        cand(14.26, 0.10, 0.9933),  # 0: leader
        cand(15.50, 0.10, 0.9943),  # 1: 8.7% slower, not tied: within a 20% margin
        cand(17.50, 0.10, 0.9950),  # 2: 22.7% slower and not tied
        cand(14.00, 0.10, 0.9800),  # 3: faster, but misses the fidelity goal
        None,  # 4: failed
        cand(18.00, 0.10, 0.9990),  # 5: 26% slower, not tied
        cand(18.00, 3.80, 0.9960),  # 6: 26% slower, tied (3.74 apart, spreads sum to 3.9)
    ]
    assert playoff_finalists(walk, LAT_FID, margin=0.20) == [0, 1, 6]
    assert playoff_finalists(walk, LAT_FID, margin=0.0) == [0, 6]
    assert playoff_finalists(walk, LAT_FID, margin=0.20, limit=2) == [0, 1]  # the closest first
    assert playoff_finalists([walk[0], walk[5]], LAT_FID, margin=0.20) == []  # nobody near: no playoff
    assert playoff_finalists([walk[0], walk[5]], LAT_FID) == [0, 1]  # the default margin is 50%
    assert playoff_finalists([walk[0]], LAT_FID) == []


def test_playoff_needs_a_timed_objective_and_follows_earlier_untimed_priorities() -> None:
    untimed = [
        {"latency-avg": lat(10.0), "fid-cos": fid(0.995)},
        {"latency-avg": lat(10.1), "fid-cos": fid(0.995)},
    ]
    assert playoff_finalists(untimed, LAT_FID) == []  # values without rounds were not timed here
    # Fidelity first: only the candidates equal on it go on to the latency playoff.
    fid_first = Objectives((Objective("fid-cos", 1, True), Objective("latency-avg", 2, False)))
    walk = [cand(12.0, 0.1, 0.995), cand(12.1, 0.1, 0.995), cand(11.0, 0.1, 0.990), cand(12.2, 0.1, 0.995)]
    assert playoff_finalists(walk, fid_first) == [0, 1, 3]


def test_playoff_decides_the_best_from_its_own_paired_measurements() -> None:
    # The Ray bench's flip: two equal models (c0001, c0005) measured once each, at different times.
    # In one run c0001 measured faster and not tied, so it won on latency ...
    walk = [cand(13.80, 0.10, 0.9933), cand(14.70, 0.15, 0.9943), cand(18.0, 0.2, 0.999)]
    assert best_index(walk, LAT_FID) == 0
    assert playoff_finalists(walk, LAT_FID, margin=0.20) == [0, 1]
    assert playoff_finalists(walk, LAT_FID) == [0, 1, 2]  # 18.0 ms is within the default 50%
    # ... re-timed head to head they are tied, so fidelity decides, whichever run it is.
    replay = {0: {"latency-avg": lat(14.26, 0.20)}, 1: {"latency-avg": lat(14.30, 0.25)}}
    assert best_index(walk, LAT_FID, replay) == 1
    # A real difference, measured side by side, still decides on latency.
    apart = {0: {"latency-avg": lat(12.0, 0.10)}, 1: {"latency-avg": lat(14.3, 0.10)}}
    assert best_index(walk, LAT_FID, apart) == 0


def test_playoff_best_is_a_finalist_even_when_the_playoff_ran_in_a_slower_spell() -> None:
    # The finalists re-timed ~30% slower than in the walk (the machine got busier): the non-finalist
    # (25% slower than the leader in the walk, when measured alongside them) must not win on that.
    walk = [cand(10.0, 0.1, 0.995), cand(10.5, 0.1, 0.994), cand(12.5, 0.1, 0.999)]
    replay = {0: {"latency-avg": lat(13.4, 0.1)}, 1: {"latency-avg": lat(13.0, 0.1)}}
    assert best_index(walk, LAT_FID, replay) == 1
    assert ranking_order(walk, LAT_FID, replay) == [1, 0, 2]
    assert ranking_order(walk, LAT_FID) == [0, 1, 2]


def test_pareto_frontier_compares_two_finalists_with_their_playoff_measurements() -> None:
    walk = [cand(10.0, 0.1, 0.995), cand(10.5, 0.1, 0.994), cand(15.0, 0.1, 0.999)]
    assert pareto_frontier(walk, LAT_FID) == [0, 2]  # 1 is slower and less faithful than 0
    replay = {0: {"latency-avg": lat(11.0, 0.1)}, 1: {"latency-avg": lat(10.4, 0.1)}}
    assert pareto_frontier(walk, LAT_FID, replay) == [0, 1, 2]  # side by side, 1 is the faster
    assert best_index(walk, LAT_FID, replay) == 1
