"""Evaluating a model through the cache: an evaluation is keyed by the model id, the evaluator's
fingerprint (metric configs, data content, user scripts), the accelerator and the runtime versions.

A model is evaluated in two parts, each cached on its own: the untimed metrics (accuracy, custom, size)
first, then the timed ones (latency, throughput). The caller may skip the timed part, e.g. for a search
candidate that already failed an accuracy goal (it cannot be on the frontier, so its latency would be
wasted time).
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


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, MetricValue]
    record_paths: list[Path] = field(default_factory=list)
    cached: bool = True
    timed_skipped: bool = False
    duration_s: float = 0.0

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
    ) -> Evaluation:
        """Every metric of ``model`` (from the cache when it is there), in config order.

        Args:
            time_it: called with the untimed results; False skips the timed metrics.
            progress: called with what is being measured.
        """
        found: dict[str, MetricValue] = {}
        paths: list[Path] = []
        cached, skipped, duration = True, False, 0.0
        for part, metrics in self.parts:
            if part == "timed" and time_it is not None and not time_it(found):
                skipped = True
                continue
            key = self.key_for(model_id, model, part)
            hit = self.cache.load_evaluation(key)
            if hit is not None:
                found.update(results_from_json(hit["metrics"]))
                paths.append(self.cache.evaluations / f"{key}.json")
                continue
            cached = False
            if not paths and not duration:
                logger.info("evaluate %s: running %d metric(s)", label, len(self.evaluator.metrics))
            start = time.perf_counter()
            results = self._run(model, metrics, progress)
            elapsed = time.perf_counter() - start
            duration += elapsed
            record = {"model_id": model_id, "part": part, "metrics": results_to_json(results)}
            paths.append(self.cache.store_evaluation(key, {**record, "duration_s": round(elapsed, 3)}))
            found.update(results)
        if cached:
            logger.info("evaluate %s: cache hit", label)
        else:
            logger.info("evaluate %s: done in %.1fs", label, duration)
        order = [k for k in self._keys() if k in found]
        return Evaluation({k: found[k] for k in order}, paths, cached, skipped, duration)

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
