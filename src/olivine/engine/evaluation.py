"""Evaluating a model through the cache: an evaluation is keyed by the model id, the evaluator's
fingerprint (metric configs, data content, user scripts), the accelerator and the runtime versions."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olivine.engine.cache import WorkflowCache
from olivine.engine.keys import hash_json, library_versions
from olivine.engine.resolve import ResolvedWorkflow
from olivine.model.handle import ModelHandle

logger = logging.getLogger(__name__)

EVALUATION_VERSION = "1"


@dataclass(frozen=True)
class Evaluation:
    key: str
    metrics: dict[str, Any]
    record_path: Path
    cached: bool
    duration_s: float


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

    def key_for(self, model_id: str, model: ModelHandle) -> str:
        runtime = ("onnxruntime", "onnx") if model.kind == "onnx" else ("torch", "transformers")
        return hash_json(
            {
                "model_id": model_id,
                "evaluator": self.fingerprint,
                "accelerator": self.workflow.accelerator.to_json(),
                "versions": library_versions(runtime),
                "evaluation_version": EVALUATION_VERSION,
            }
        )

    def evaluate(self, model_id: str, model: ModelHandle, label: str) -> Evaluation:
        from olivine.evaluate.evaluator import evaluate_model

        key = self.key_for(model_id, model)
        hit = self.cache.load_evaluation(key)
        if hit is not None:
            logger.info("evaluate %s: cache hit", label)
            return Evaluation(key, hit["metrics"], self.cache.evaluations / f"{key}.json", True, 0.0)
        logger.info("evaluate %s: running %d metric(s)", label, len(self.evaluator.metrics))
        start = time.perf_counter()
        results = evaluate_model(
            model,
            self.evaluator,
            data_configs=self.workflow.data_configs,
            accelerator=self.workflow.accelerator,
            tokenizer_path=self.tokenizer_path,
            base_dir=self.workflow.base_dir,
            input_model=self.input_model,
        )
        metrics = {name: _plain(value) for name, value in results.items()}
        duration = time.perf_counter() - start
        path = self.cache.store_evaluation(
            key, {"model_id": model_id, "metrics": metrics, "duration_s": round(duration, 3)}
        )
        logger.info("evaluate %s: done in %.1fs", label, duration)
        return Evaluation(key, metrics, path, False, duration)


def _plain(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if hasattr(value, "to_json"):
        out: dict[str, Any] = value.to_json()
        return out
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return {"value": value}
