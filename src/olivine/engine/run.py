"""The engine loop: run the passes in order through the cache, evaluate each candidate, keep the best.

Every model a pass produces is a candidate; with an evaluator each candidate is evaluated and the best
(by metric priorities, goals first) is written to the output folder. Without an evaluator the last
model of the flow is the output, as in Olive.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olivine.engine.cache import CachedRun, WorkflowCache
from olivine.engine.events import (
    EvaluationFinished,
    Listener,
    PassFailed,
    PassFinished,
    PassStarted,
    WorkflowFinished,
    WorkflowStarted,
)
from olivine.engine.identity import handle_from_input_config, input_model_id
from olivine.engine.keys import library_versions, run_key
from olivine.engine.output import Candidate, write_outputs
from olivine.engine.resolve import ResolvedPass, ResolvedWorkflow
from olivine.errors import OlivineError, PassRunError, WorkflowCancelledError
from olivine.model.handle import ModelHandle
from olivine.passes.base import PassContext

logger = logging.getLogger("olivine.engine")


@dataclass
class WorkflowResult:
    workflow_id: str
    output_dir: Path
    cache_dir: Path
    input: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    best: Candidate | None = None
    duration_s: float = 0.0

    @property
    def best_model_id(self) -> str | None:
        return self.best.model_id if self.best else None

    @property
    def input_metrics(self) -> dict[str, Any] | None:
        return self.input.metrics

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.best.metrics) if self.best and self.best.metrics else {}


def _emit(listener: Listener | None, event: Any) -> None:
    if listener is not None:
        listener(event)


def run_workflow(
    workflow: ResolvedWorkflow,
    *,
    listener: Listener | None = None,
    cache_dir: Path | None = None,
    output_dir: Path | None = None,
    stop: threading.Event | None = None,
) -> WorkflowResult:
    """Run ``workflow`` to the end; raise a :class:`WorkflowError` naming the pass that failed."""
    started = time.perf_counter()
    engine = workflow.config.engine
    cache = WorkflowCache(Path(cache_dir or engine.cache_dir).resolve(), workflow.workflow_id)
    out_dir = Path(output_dir or engine.output_dir).resolve()
    if engine.clean_cache:
        cache.clean()
    elif engine.clean_evaluation_cache:
        cache.clean(evaluations_only=True)
    cache.sweep_staging()

    names = tuple(p.name for p in workflow.passes)
    _emit(listener, WorkflowStarted(workflow.workflow_id, cache.root, out_dir, names))
    logger.info("workflow '%s': %d pass(es), cache %s", workflow.workflow_id, len(names), cache.root)

    model = handle_from_input_config(workflow.config.input_model)
    model_id = input_model_id(model)
    tokenizer_path = model.model_path if model.kind == "hf" else model.attributes.get("hf_model_path")
    evaluator = None
    if workflow.evaluator is not None:
        from olivine.engine.evaluation import CachedEvaluator

        evaluator = CachedEvaluator(workflow, cache, tokenizer_path, model)

    input_candidate = Candidate(model_id=model_id, model=model, label="input model")
    result = WorkflowResult(workflow.workflow_id, out_dir, cache.root, input_candidate)
    if evaluator is not None and engine.evaluate_input_model:
        _check_stop(stop)
        evaluation = evaluator.evaluate(model_id, model, "input model")
        input_candidate.metrics = evaluation.metrics
        _emit(
            listener,
            EvaluationFinished(
                workflow.workflow_id, model_id, evaluation.record_path, evaluation.metrics, evaluation.cached
            ),
        )

    for index, rpass in enumerate(workflow.passes, start=1):
        _check_stop(stop)
        _emit(listener, PassStarted(workflow.workflow_id, rpass.name, rpass.type, index, len(names)))
        run = _run_pass(workflow, cache, rpass, model, model_id, index, len(names), listener)
        model, model_id = run.model, run.key
        candidate = Candidate(
            model_id=model_id,
            model=model,
            label=rpass.name,
            pass_name=rpass.name,
            pass_type=rpass.type,
            pass_config=rpass.canonical_config(),
            parent_id=run.record.get("input_model_id"),
            run_dir=run.run_dir,
        )
        is_final = index == len(names)
        if evaluator is not None and (is_final or engine.evaluate_intermediate_models):
            _check_stop(stop)
            evaluation = evaluator.evaluate(model_id, model, f"'{rpass.name}' output")
            candidate.metrics = evaluation.metrics
            _emit(
                listener,
                EvaluationFinished(
                    workflow.workflow_id,
                    model_id,
                    evaluation.record_path,
                    evaluation.metrics,
                    evaluation.cached,
                ),
            )
        result.candidates.append(candidate)

    result.best = _pick_best(workflow, result.candidates, result.input_metrics)
    if result.best is None and not result.candidates:
        result.best = input_candidate
    write_outputs(workflow, result.best, input_candidate, result.candidates, out_dir)
    result.duration_s = time.perf_counter() - started
    _emit(listener, WorkflowFinished(workflow.workflow_id, out_dir, result.best_model_id, result.metrics))
    logger.info(
        "workflow '%s' finished in %.1fs; output in %s", workflow.workflow_id, result.duration_s, out_dir
    )
    return result


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise WorkflowCancelledError("the workflow was cancelled")


def _run_pass(
    workflow: ResolvedWorkflow,
    cache: WorkflowCache,
    rpass: ResolvedPass,
    model: ModelHandle,
    model_id: str,
    index: int,
    total: int,
    listener: Listener | None,
) -> CachedRun:
    prefix = f"[{index}/{total}] {rpass.type} '{rpass.name}'"
    if model.kind not in rpass.cls.accepts:
        raise PassRunError(
            rpass.name,
            f"{rpass.type} does not accept a {model.type_name} (accepts: {', '.join(rpass.cls.accepts)})",
        )
    versions = library_versions(rpass.cls.libraries)
    key = run_key(
        input_model_id=model_id,
        pass_type=rpass.type,
        pass_version=rpass.cls.version,
        pass_config=_key_config(workflow, rpass),
        accelerator=workflow.accelerator.to_json(),
        versions=versions,
    )
    hit = cache.load_run(key)
    if hit is not None:
        logger.info("%s: cache hit (run %s)", prefix, key[:12])
        _emit(listener, PassFinished(workflow.workflow_id, rpass.name, key, hit.run_dir, True, 0.0))
        return hit
    logger.info("%s: running", prefix)
    record: dict[str, Any] = {
        "pass_name": rpass.name,
        "pass_type": rpass.type,
        "pass_version": rpass.cls.version,
        "config": rpass.canonical_config(),
        "input_model_id": model_id,
        "accelerator": workflow.accelerator.to_json(),
        "versions": versions,
    }
    staging = cache.new_run_dir()
    start = time.perf_counter()
    try:
        ctx = PassContext(
            accelerator=workflow.accelerator,
            logger=logging.getLogger(f"olivine.passes.{rpass.name}"),
            data_configs=workflow.data_configs,
            base_dir=workflow.base_dir,
        )
        instance = rpass.cls()
        output = instance.run(model, rpass.config, staging / "model", ctx)
        instance.check_output(output)
    except Exception as exc:
        cache.discard(staging)
        message = str(exc) if isinstance(exc, OlivineError) else f"{type(exc).__name__}: {exc}"
        path = cache.record_failure(key, {**record, "error": message, "traceback": traceback.format_exc()})
        _emit(listener, PassFailed(workflow.workflow_id, rpass.name, key, path, message))
        logger.error("%s: failed: %s", prefix, message)
        raise PassRunError(rpass.name, message) from exc
    duration = time.perf_counter() - start
    run = cache.commit_run(key, staging, output, {**record, "duration_s": round(duration, 3)})
    logger.info("%s: done in %.1fs (run %s)", prefix, duration, key[:12])
    _emit(listener, PassFinished(workflow.workflow_id, rpass.name, key, run.run_dir, False, duration))
    return run


def _key_config(workflow: ResolvedWorkflow, rpass: ResolvedPass) -> dict[str, Any]:
    """The pass config for the run key; a pass that reads a data config (calibration) adds its content."""
    config = rpass.canonical_config()
    name = rpass.cls.data_config_name(rpass.config)
    if name is not None and name in workflow.data_configs:
        from olivine.data import content_fingerprint

        config["data_config_content"] = content_fingerprint(
            workflow.data_configs[name], base_dir=workflow.base_dir
        )
    return config


def _pick_best(
    workflow: ResolvedWorkflow, candidates: list[Candidate], baseline: dict[str, Any] | None
) -> Candidate | None:
    if not candidates:
        return None
    evaluated = [c for c in candidates if c.metrics is not None]
    if workflow.evaluator is None or not evaluated:
        return candidates[-1]
    candidates = evaluated
    from olivine.evaluate.goals import rank_key, resolve_goals
    from olivine.evaluate.results import MetricValue

    def values(metrics: dict[str, Any]) -> dict[str, MetricValue]:
        return {k: MetricValue.from_json(v) for k, v in metrics.items()}

    goals = resolve_goals(workflow.evaluator, values(baseline) if baseline else None)
    metrics = workflow.evaluator.metrics
    # min() keeps the first of equals, so ties go to the earlier (simpler) model in the flow.
    return min(candidates, key=lambda c: rank_key(values(c.metrics or {}), metrics, goals))
