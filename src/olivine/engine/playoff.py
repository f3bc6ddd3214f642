"""The playoff: the finalists of a search re-timed head to head, so the best model does not depend on
when each candidate happened to be timed during the walk.

Why: the walk times each candidate once, at its own time. On a shared machine the drift between those
times is larger than the spread within one measurement (the MiniLM search over Ray timed one model at
12.8 ms in one run and 14.3 ms in another), so whether two equal models were tied, and so which one was
best, flipped between runs of the same config.

What: after the walk (every worker stopped, nothing else of the search running), the finalists
(:func:`olivine.search.ranking.playoff_finalists`: the leader on the first timed objective and the
candidates tied with it or within :data:`~olivine.search.ranking.PLAYOFF_MARGIN` of it) are timed in
this process, each timed metric of the evaluator in turn:

- one session per finalist, opened with the metric's own session settings, as the evaluator opens it;
- each finalist's ``warmup_num`` untimed runs, then its ``repeat_test_num`` timed runs split into
  :data:`PLAYOFF_ROUNDS` rounds; in each round every finalist runs its share in turn (the order
  reversed every other round), so a slow spell of the machine hits every finalist alike;
- each finalist's values (Olive's statistics over all its timed runs) with the median of each round
  and their spread, as the evaluator's.

Ten rounds rather than the evaluator's five: with five, the tie rule tells two equal models apart in
~5-8% of playoffs (a simulation with round-to-round noise and occasional disturbed rounds); with ten,
in well under 1%. The best is then chosen among the finalists from these measurements
(:func:`olivine.search.ranking.best_index` with ``playoff``). The result is cached like an evaluation
(keyed by the finalists' model ids, in order, and the evaluator's fingerprint), so a cached or resumed
run of the same search decides from the same measurements.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from olivine.engine.candidates import Candidate
from olivine.engine.evaluation import TIMED_TYPES, CachedEvaluator
from olivine.engine.keys import hash_json, library_versions
from olivine.engine.phase import Phases
from olivine.engine.realise import check_stop
from olivine.evaluate.results import MetricValue, result_key, results_from_json, results_to_json
from olivine.search import ranking
from olivine.search.ranking import Objectives, Playoff, best_index, playoff_finalists

logger = logging.getLogger("olivine.engine")

#: Rounds of a playoff (see the module docstring); fewer when a metric has fewer timed runs.
PLAYOFF_ROUNDS = 10
PLAYOFF_VERSION = "1"


@dataclass(frozen=True)
class PlayoffResult:
    """The finalists' re-timed metrics (candidate id -> timed metric key -> value), how they were
    measured, and what the walk's measurements alone would have chosen (``walk_best``)."""

    objective: str
    finalists: tuple[str, ...]
    metrics: dict[str, dict[str, MetricValue]]
    rounds: int
    duration_s: float
    cached: bool
    walk_best: str | None = None

    def by_index(self, candidates: Sequence[Candidate]) -> Playoff:
        """The playoff's measurements by candidate position (for :mod:`olivine.search.ranking`)."""
        return {i: self.metrics[c.id] for i, c in enumerate(candidates) if c.id in self.metrics}

    def to_json(self, best: str | None) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "margin": ranking.PLAYOFF_MARGIN,
            "rounds": self.rounds,
            "finalists": list(self.finalists),
            "metrics": {cid: results_to_json(values) for cid, values in self.metrics.items()},
            "walk_best": self.walk_best,
            "best": best,
            "duration_s": round(self.duration_s, 3),
            "cached": self.cached,
        }


def run_playoff(
    candidates: Sequence[Candidate],
    objectives: Objectives,
    evaluator: CachedEvaluator,
    phases: Phases,
    stop: threading.Event | None = None,
    walk_best: Candidate | None = None,
) -> PlayoffResult | None:
    """Re-time the finalists of ``candidates`` head to head (see the module docstring); None when there
    is no playoff to run (fewer than two finalists, or no timed objective)."""
    ranked = [c.rankable for c in candidates]
    indices = playoff_finalists(ranked, objectives)
    timed = [m for m in evaluator.evaluator.metrics if m.type in TIMED_TYPES]
    finalists = [candidates[i] for i in indices if candidates[i].model is not None]
    if len(finalists) < 2 or not timed:
        return None
    objective = next(o.key for o in objectives.ranked if o.key in (ranked[indices[0]] or {}))
    ids = tuple(c.id for c in finalists)
    key = _cache_key(evaluator, finalists)
    hit = evaluator.cache.load_evaluation(key)
    if hit is not None and set(hit.get("metrics", {})) == set(ids):
        found = {cid: results_from_json(values) for cid, values in hit["metrics"].items()}
        result = PlayoffResult(objective, ids, found, int(hit["rounds"]), 0.0, True, _id(walk_best))
        _log(result)
        return result
    phases.set("playoff")
    report = phases.reporter("playoff")
    logger.info(
        "playoff: %s re-timed head to head on %s (within %.0f%% of the leader or tied with it)",
        ", ".join(ids),
        objective,
        ranking.PLAYOFF_MARGIN * 100,
    )
    started = time.perf_counter()
    metrics: dict[str, dict[str, MetricValue]] = {cid: {} for cid in ids}
    rounds_used = PLAYOFF_ROUNDS
    for metric in timed:
        values, rounds_used = _time_metric(metric, finalists, evaluator, report, stop)
        for cid, timed_values in values.items():
            metrics[cid].update(timed_values)
    duration = time.perf_counter() - started
    record = {"part": "playoff", "finalists": list(ids), "rounds": rounds_used}
    evaluator.cache.store_evaluation(
        key,
        {**record, "metrics": {c: results_to_json(v) for c, v in metrics.items()}, "duration_s": duration},
    )
    result = PlayoffResult(objective, ids, metrics, rounds_used, duration, False, _id(walk_best))
    _log(result)
    return result


def _id(candidate: Candidate | None) -> str | None:
    return candidate.id if candidate is not None else None


def _log(result: PlayoffResult) -> None:
    cells = []
    for cid in result.finalists:
        value = result.metrics[cid].get(result.objective)
        if value is not None:
            spread = f"±{value.spread:.4g}" if value.spread is not None else ""
            cells.append(f"{cid} {value.value:.4g}{spread}")
    logger.info(
        "playoff (%d rounds%s, %.1fs): %s",
        result.rounds,
        ", cached" if result.cached else "",
        result.duration_s,
        "; ".join(cells),
    )


def _cache_key(evaluator: CachedEvaluator, finalists: Sequence[Candidate]) -> str:
    kinds = {c.model.kind for c in finalists if c.model is not None}
    runtime = (
        ("onnxruntime", "onnx") if kinds == {"onnx"} else ("onnxruntime", "onnx", "torch", "transformers")
    )
    return hash_json(
        {
            "playoff": [c.model_id for c in finalists],
            "evaluator": evaluator.fingerprint,
            "accelerator": evaluator.workflow.accelerator.to_json(),
            "versions": library_versions(runtime),
            "playoff_version": PLAYOFF_VERSION,
            "rounds": PLAYOFF_ROUNDS,
        }
    )


def _time_metric(
    metric: Any,
    finalists: Sequence[Candidate],
    evaluator: CachedEvaluator,
    report: Callable[[str], None],
    stop: threading.Event | None,
) -> tuple[dict[str, dict[str, MetricValue]], int]:
    """One timed metric of every finalist in interleaved rounds: candidate id -> its sub-metrics."""
    from olivine.data.pipeline import build_dataloader
    from olivine.evaluate import metrics as m
    from olivine.evaluate.default_data import latency_data_config
    from olivine.evaluate.inference import samples_per_run, time_rounds
    from olivine.evaluate.metric_configs import metric_data_config, session_options_of, timing_config
    from olivine.evaluate.results import metric_value
    from olivine.model.runner import open_runner

    workflow = evaluator.workflow
    timing = timing_config(metric)
    session_options = session_options_of(metric)
    opened = []
    for candidate in finalists:
        assert candidate.model is not None
        dc = metric_data_config(metric, workflow.data_configs) or latency_data_config(candidate.model)
        loader = build_dataloader(
            dc, model=candidate.model, tokenizer_path=evaluator.tokenizer_path, base_dir=workflow.base_dir
        )
        inputs, _ = loader.first_batch()
        runner = open_runner(candidate.model, workflow.accelerator, session_options=session_options)
        opened.append((candidate.id, runner, inputs, samples_per_run(inputs, loader.batch_size)))
    for _, runner, inputs, _ in opened:
        time_rounds(runner, inputs, warmup_num=timing.warmup_num, repeat_test_num=0, sleep_s=timing.sleep_num)
    rounds = max(1, min(PLAYOFF_ROUNDS, timing.repeat_test_num))
    base, extra = divmod(timing.repeat_test_num, rounds)
    runs: dict[str, list[list[float]]] = {cid: [] for cid, *_ in opened}
    for r in range(rounds):
        check_stop(stop)
        report(f"{metric.name} ({metric.type}) round {r + 1}/{rounds}")
        order = opened if r % 2 == 0 else opened[::-1]
        for cid, runner, inputs, _ in order:
            block = time_rounds(
                runner,
                inputs,
                warmup_num=0,
                repeat_test_num=base + (1 if r < extra else 0),
                sleep_s=timing.sleep_num,
            )
            runs[cid].append(block[0])
    out: dict[str, dict[str, MetricValue]] = {}
    for cid, _, _, samples in opened:
        latencies = [x for block in runs[cid] for x in block]
        medians_ms = [statistics.median(block) * 1000.0 for block in runs[cid] if block]
        if metric.type == "latency":
            values, per_round = m.latency_stats(latencies), medians_ms
        else:
            values = m.throughput_stats(latencies, samples)
            per_round = [samples / ms * 1000.0 for ms in medians_ms if ms > 0]
        round_values = tuple(round(x, 5) for x in per_round)
        out[cid] = {
            result_key(metric.name, sub.name): metric_value(sub, values[sub.name], round_values)
            for sub in metric.sub_types
        }
    return out, rounds


def decide_best(
    candidates: Sequence[Candidate],
    objectives: Objectives,
    playoff: PlayoffResult | None,
    walk_best: Candidate | None,
) -> tuple[Candidate | None, Playoff | None]:
    """The best candidate once ``playoff`` is in (``walk_best`` without one), and the playoff's
    measurements by candidate position for the frontier and the ranking order."""
    if playoff is None:
        return walk_best, None
    ranks = playoff.by_index(candidates)
    index = best_index([c.rankable for c in candidates], objectives, ranks)
    if index is None:
        return walk_best, ranks
    best = candidates[index]
    if walk_best is not None and best is not walk_best:
        logger.info("playoff: %s is best (the walk's measurements alone gave %s)", best.id, walk_best.id)
    return best, ranks
