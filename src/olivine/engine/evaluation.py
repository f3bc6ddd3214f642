"""Evaluating a model through the cache: an evaluation is keyed by the model id, the evaluator's
fingerprint (metric configs, data content, user scripts), the accelerator and the runtime versions.

A model is evaluated in two parts, each cached on its own: the untimed metrics (accuracy, custom, size)
first, then the timed ones (latency, throughput). The caller may skip the timed part, e.g. for a search
candidate that already failed an accuracy goal (it cannot be on the frontier, so its latency would be
wasted time).

The input model of a search is a reference, not a candidate: when no goal needs its timed metrics
(:func:`reference_timing_suffices`), they are measured with fewer runs (:data:`REFERENCE_TIMING`: at
most 3 warm-up and 10 timed runs, still in rounds with their spread); they only place it on the report's
plot. Olive times the input model like any candidate; this is where Olivine differs, and the footprint's
input record says so (``timing``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olivine.config.evaluators import EvaluatorConfig, MetricConfig
from olivine.engine.cache import WorkflowCache
from olivine.engine.keys import hash_json, library_versions
from olivine.engine.resolve import ResolvedWorkflow
from olivine.evaluate.results import MetricValue, results_from_json, results_to_json
from olivine.model.handle import ModelHandle

logger = logging.getLogger(__name__)

EVALUATION_VERSION = "2"  # 2: two parts (untimed, timed) cached separately
TIMED_TYPES = ("latency", "throughput")
#: The input model's timed metrics when no goal needs them: at most this many warm-up and timed runs.
REFERENCE_TIMING = {"warmup_num": 3, "repeat_test_num": 10}
_BASELINE_GOALS = ("min-improvement", "max-degradation", "percent-min-improvement", "percent-max-degradation")


def reference_timing_suffices(evaluator: EvaluatorConfig) -> bool:
    """Whether the input model's timed metrics may be measured with :data:`REFERENCE_TIMING`: no goal of
    a timed metric resolves against the input model's value (a threshold goal does not)."""
    for metric in evaluator.metrics:
        if metric.type not in TIMED_TYPES:
            continue
        for sub in metric.sub_types:
            goal = sub.goal
            if goal is not None and goal.type in _BASELINE_GOALS:
                return False
    return True


def _reference_metrics(metrics: list[MetricConfig]) -> list[MetricConfig]:
    """``metrics`` with the warm-up and timed runs capped at :data:`REFERENCE_TIMING` (Olive's rule: the
    first sub-type with a ``metric_config`` sets them, so every sub-type gets the capped values)."""
    from olivine.evaluate.metric_configs import timing_config

    capped: list[MetricConfig] = []
    for metric in metrics:
        timing = timing_config(metric)
        runs = {
            "warmup_num": min(timing.warmup_num, REFERENCE_TIMING["warmup_num"]),
            "repeat_test_num": min(timing.repeat_test_num, REFERENCE_TIMING["repeat_test_num"]),
        }
        subs = [
            sub.model_copy(update={"metric_config": {**(sub.metric_config or {}), **runs}})
            for sub in metric.sub_types
        ]
        capped.append(metric.model_copy(update={"sub_types": subs}))
    return capped


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, MetricValue]
    record_paths: list[Path] = field(default_factory=list)
    cached: bool = True
    timed_skipped: bool = False
    duration_s: float = 0.0
    reference_timing: bool = False  # the timed metrics were measured with REFERENCE_TIMING
    timed_span: tuple[float, float] | None = None  # when the timed metrics ran (Unix time; None: not run)

    @property
    def metrics_json(self) -> dict[str, dict[str, Any]]:
        return results_to_json(self.metrics)


class CachedEvaluator:
    def __init__(
        self,
        workflow: ResolvedWorkflow,
        cache: WorkflowCache,
        tokenizer_path: str | None,
        input_model: ModelHandle | None = None,
    ) -> None:
        from olivine.evaluate.evaluator import evaluation_fingerprint

        assert workflow.evaluator is not None
        self.workflow = workflow
        self.evaluator = workflow.evaluator
        self.cache = cache
        self.tokenizer_path = tokenizer_path
        self.input_model = input_model
        self.fingerprint = evaluation_fingerprint(self.evaluator, workflow.data_configs)
        untimed = [m for m in self.evaluator.metrics if m.type not in TIMED_TYPES]
        timed = [m for m in self.evaluator.metrics if m.type in TIMED_TYPES]
        self.parts = [
            (name, metrics) for name, metrics in (("untimed", untimed), ("timed", timed)) if metrics
        ]

    def key_for(self, model_id: str, model: ModelHandle, part: str) -> str:
        runtime = ("onnxruntime", "onnx") if model.kind == "onnx" else ("torch", "transformers")
        return hash_json(
            {
                "model_id": model_id,
                "evaluator": self.fingerprint,
                "part": part,
                "accelerator": self.workflow.accelerator.to_json(),
                "versions": library_versions(runtime),
                "evaluation_version": EVALUATION_VERSION,
            }
        )

    def evaluate(
        self,
        model_id: str,
        model: ModelHandle,
        label: str,
        *,
        time_it: Callable[[Mapping[str, MetricValue]], bool] | None = None,
        progress: Callable[[str], None] | None = None,
        reference: bool = False,
    ) -> Evaluation:
        """Every metric of ``model`` (from the cache when it is there), in config order.

        Args:
            time_it: called with the untimed results; False skips the timed metrics.
            progress: called with what is being measured.
            reference: ``model`` is the input model of a search: its timed metrics are measured with
                :data:`REFERENCE_TIMING` when no goal needs them.
        """
        found: dict[str, MetricValue] = {}
        paths: list[Path] = []
        cached, skipped, duration = True, False, 0.0
        timed_span: tuple[float, float] | None = None
        capped = reference and reference_timing_suffices(self.evaluator)
        for part, part_metrics in self.parts:
            if part == "timed" and time_it is not None and not time_it(found):
                skipped = True
                continue
            metrics = part_metrics
            if part == "timed" and capped:
                part, metrics = "timed-reference", _reference_metrics(part_metrics)
                logger.info(
                    "evaluate %s: timed metrics with at most %d warm-up and %d timed runs (no goal needs "
                    "them; they place the input model on the report)",
                    label,
                    REFERENCE_TIMING["warmup_num"],
                    REFERENCE_TIMING["repeat_test_num"],
                )
            key = self.key_for(model_id, model, part)
            hit = self.cache.load_evaluation(key)
            if hit is not None:
                found.update(results_from_json(hit["metrics"]))
                paths.append(self.cache.evaluations / f"{key}.json")
                continue
            cached = False
            if not paths and not duration:
                logger.info("evaluate %s: running %d metric(s)", label, len(self.evaluator.metrics))
            start, began = time.perf_counter(), time.time()
            results = self._run(model, metrics, progress)
            elapsed = time.perf_counter() - start
            if part != "untimed":
                timed_span = (began, time.time())
            duration += elapsed
            record = {"model_id": model_id, "part": part, "metrics": results_to_json(results)}
            paths.append(self.cache.store_evaluation(key, {**record, "duration_s": round(elapsed, 3)}))
            found.update(results)
        if cached:
            logger.info("evaluate %s: cache hit", label)
        else:
            logger.info("evaluate %s: done in %.1fs", label, duration)
        order = [k for k in self._keys() if k in found]
        timed = any(part == "timed" for part, _ in self.parts) and not skipped
        return Evaluation(
            {k: found[k] for k in order}, paths, cached, skipped, duration, capped and timed, timed_span
        )

    def _keys(self) -> list[str]:
        from olivine.evaluate.results import result_key

        return [result_key(m.name, s.name) for m in self.evaluator.metrics for s in m.sub_types]

    def _run(
        self, model: ModelHandle, metrics: list[MetricConfig], progress: Callable[[str], None] | None
    ) -> dict[str, MetricValue]:
        from olivine.evaluate.evaluator import evaluate_model

        subset: EvaluatorConfig = self.evaluator.model_copy(update={"metrics": metrics})
        return evaluate_model(
            model,
            subset,
            data_configs=self.workflow.data_configs,
            accelerator=self.workflow.accelerator,
            tokenizer_path=self.tokenizer_path,
            base_dir=self.workflow.base_dir,
            input_model=self.input_model,
            progress=progress,
        )
