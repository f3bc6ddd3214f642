"""The engine: evaluate the input model once, walk the search space (or the one chain), realise each
candidate through the cache, rank them with :mod:`olivine.search.ranking`, write the output folder.

Without an evaluator the last candidate is the output, as in Olive.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olivine.engine.cache import WorkflowCache
from olivine.engine.candidates import INPUT_ID, Candidate
from olivine.engine.chain import ChainRunner
from olivine.engine.events import EvaluationFinished, Listener, WorkflowFinished, WorkflowStarted
from olivine.engine.executor import CandidateExecutor, InputWork, evaluate_input, fixed_prefix
from olivine.engine.footprint import footprint, write_footprint
from olivine.engine.identity import handle_from_input_config, input_model_id
from olivine.engine.loop import CandidateLoop, check_stop
from olivine.engine.output import output_layout, write_outputs
from olivine.engine.phase import Phases
from olivine.engine.resolve import ResolvedWorkflow
from olivine.errors import WorkflowError
from olivine.search.ranking import (
    Objectives,
    Playoff,
    pareto_frontier,
    ranking_order,
    resolve_objectives,
)
from olivine.search.strategy import SearchWalk

logger = logging.getLogger("olivine.engine")


@dataclass
class WorkflowResult:
    workflow_id: str
    output_dir: Path
    cache_dir: Path
    input: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    best: Candidate | None = None
    frontier: list[str] = field(default_factory=list)
    objectives: Objectives = field(default_factory=Objectives)
    duration_s: float = 0.0

    @property
    def best_model_id(self) -> str | None:
        return self.best.model_id if self.best else None

    @property
    def input_metrics(self) -> dict[str, Any] | None:
        return self.input.metrics_json()

    @property
    def metrics(self) -> dict[str, Any]:
        return (self.best.metrics_json() or {}) if self.best else {}


def run_workflow(
    workflow: ResolvedWorkflow,
    *,
    listener: Listener | None = None,
    cache_dir: Path | None = None,
    output_dir: Path | None = None,
    stop: threading.Event | None = None,
    executor: CandidateExecutor | None = None,
) -> WorkflowResult:
    """Run ``workflow`` to the end; raise a :class:`WorkflowError` naming the pass that failed (without
    search; with search a failing candidate is recorded and the search goes on). ``executor`` realises a
    search's candidates (default: one after another, in this process; see :mod:`olivine.engine.executor`)."""
    started = time.perf_counter()
    engine = workflow.config.engine
    if executor is None:
        executor = _host_pool(workflow)
    cache = WorkflowCache(Path(cache_dir or engine.cache_dir).resolve(), workflow.workflow_id)
    out_dir = Path(output_dir or engine.output_dir).resolve()
    if engine.clean_cache:
        cache.clean()
    elif engine.clean_evaluation_cache:
        cache.clean(evaluations_only=True)
    cache.sweep_staging()

    with Phases(workflow.workflow_id, listener) as phases:
        names = tuple(slot.name for slot in workflow.slots)
        phases.emit(WorkflowStarted(workflow.workflow_id, cache.root, out_dir, names))
        logger.info("workflow '%s': %d pass(es), cache %s", workflow.workflow_id, len(names), cache.root)
        try:
            result = _run(workflow, cache, out_dir, phases, stop, executor)
        finally:
            if executor is not None:  # the candidate loop closes it too; this covers a failure before it
                executor.close()
        phases.set(None)
        result.duration_s = time.perf_counter() - started
        phases.emit(WorkflowFinished(workflow.workflow_id, out_dir, result.best_model_id, result.metrics))
    logger.info(
        "workflow '%s' finished in %.1fs; output in %s", workflow.workflow_id, result.duration_s, out_dir
    )
    return result


def _host_pool(workflow: ResolvedWorkflow) -> CandidateExecutor | None:
    """The local worker pool that ``engine.host`` asks for with ``search_workers`` (a LocalSystem or
    LocalWorker system: the system that runs the passes), or None."""
    from olivine.engine.pool_executor import LocalPoolExecutor, local_spread

    ref = workflow.config.engine.host
    key = f"systems.{ref}.search_workers" if isinstance(ref, str) else "engine.host.search_workers"
    file = str(workflow.config_path) if workflow.config_path else None
    settings = local_spread(workflow, workflow.host, key, file)
    return LocalPoolExecutor(settings) if settings is not None else None


def _run(
    workflow: ResolvedWorkflow,
    cache: WorkflowCache,
    out_dir: Path,
    phases: Phases,
    stop: threading.Event | None,
    executor: CandidateExecutor | None = None,
) -> WorkflowResult:
    engine = workflow.config.engine
    phases.set("preparing the input model")
    model = handle_from_input_config(workflow.config.input_model)
    model_id = input_model_id(model)
    tokenizer_path = model.model_path if model.kind == "hf" else model.attributes.get("hf_model_path")
    evaluator = None
    if workflow.evaluator is not None:
        from olivine.engine.evaluation import CachedEvaluator

        evaluator = CachedEvaluator(workflow, cache, tokenizer_path, model)

    input_candidate = Candidate(id=INPUT_ID, index=0, model_id=model_id, model=model)
    runner = ChainRunner(
        workflow.workflow_id,
        cache,
        workflow.accelerator,
        phases,
        model,
        model_id,
        data_configs=workflow.data_configs,
        base_dir=workflow.base_dir,
    )
    search = workflow.search
    input_timing: dict[str, Any] | None = None
    if evaluator is not None and engine.evaluate_input_model:
        check_stop(stop)
        # A search's executor evaluates it (and may start the candidates' common prefix meanwhile).
        work = InputWork(
            runner,
            evaluator,
            model_id,
            model,
            phases,
            stop,
            reference=search is not None,
            prefix=fixed_prefix(workflow.slots, workflow.accelerator) if search is not None else (),
        )
        evaluation = evaluate_input(executor if search is not None else None, work)
        input_candidate.ran_on = work.ran_on
        if evaluation.reference_timing:
            from olivine.engine.evaluation import REFERENCE_TIMING

            input_timing = {"reference": True, **REFERENCE_TIMING}
        input_candidate.metrics = evaluation.metrics
        for path in evaluation.record_paths:
            phases.emit(
                EvaluationFinished(
                    workflow.workflow_id, model_id, path, evaluation.metrics_json, evaluation.cached
                )
            )
    objectives = Objectives()
    if workflow.evaluator is not None:
        objectives = resolve_objectives(workflow.evaluator, input_candidate.metrics)
        if input_candidate.metrics is not None:
            from olivine.search.ranking import meets_goals

            input_candidate.meets_goals = meets_goals(input_candidate.metrics, objectives)

    sampler_cls = None
    if search is not None:
        from olivine.search.samplers import SAMPLERS

        sampler_cls = SAMPLERS.get(search.sampler)
    walk = SearchWalk(
        workflow.slots,
        search,
        objectives,
        workflow.accelerator,
        sampler_cls,
        evaluate_intermediate=engine.evaluate_intermediate_models,
    )
    if search is not None:
        logger.info(
            "search: %s sampler, %s order, %d point(s) in the space, at most %s candidate(s)",
            search.sampler,
            search.execution_order,
            walk.space_size,
            walk.total,
        )
    loop = CandidateLoop(workflow.workflow_id, walk, runner, evaluator, objectives, phases, stop, executor)
    candidates = loop.run()

    best = loop.best()
    playoff, ranks = None, None
    if evaluator is not None and search is not None:  # re-time the finalists head to head: see playoff.py
        from olivine.engine.playoff import decide_best, run_playoff

        playoff = run_playoff(candidates, objectives, evaluator, phases, stop, walk_best=best)
        best, ranks = decide_best(candidates, objectives, playoff, best)
    frontier: list[str] = []
    if evaluator is not None:
        ranked = [c.rankable for c in candidates]
        frontier = [candidates[i].id for i in pareto_frontier(ranked, objectives, ranks)]
    for c in candidates:
        c.on_frontier, c.is_best = c.id in frontier, c is best
    if best is None and not candidates:
        best = input_candidate
        input_candidate.is_best = True
    phases.set("writing the output folder")
    write_outputs(workflow, best, input_candidate, candidates, out_dir)
    doc = footprint(
        workflow_id=workflow.workflow_id,
        search={
            "sampler": search.sampler if search else "none",
            "execution_order": search.execution_order if search else "none",
            "seed": search.seed if search else None,
            "space_size": walk.space_size if search else None,
        },
        objectives=objectives,
        input_candidate=input_candidate,
        candidates=candidates,
        frontier=frontier,
        best=best,
    )
    if input_timing is not None:  # the input model's timed metrics were measured with fewer runs
        doc["input"]["timing"] = input_timing
    if search is not None and evaluator is not None:
        doc["output_models"] = output_models(candidates, frontier, objectives, search.output_model_num, ranks)
    if playoff is not None:
        doc["playoff"] = playoff.to_json(best.id if best else None)
    if not engine.no_artifacts:
        from olivine.report import write_run_report

        write_footprint(output_layout(out_dir)[0], doc)
        phases.set("writing the report")
        write_run_report(output_layout(out_dir)[0], plot=engine.plot_pareto_frontier)
    if best is None:
        failed = "; ".join(f"{c.id}: {c.error}" for c in candidates[:3])
        raise WorkflowError(f"no candidate succeeded ({len(candidates)} tried; first: {failed})")
    return WorkflowResult(
        workflow.workflow_id, out_dir, cache.root, input_candidate, candidates, best, frontier, objectives
    )


def output_models(
    candidates: list[Candidate],
    frontier: list[str],
    objectives: Objectives,
    limit: int | None,
    playoff: Playoff | None = None,
) -> list[str]:
    """The ids of the frontier's candidates, best first, at most ``limit`` of them (Olive's
    ``output_model_num``: the top-ranked models of its Pareto frontier); ``playoff`` by position in
    ``candidates``."""
    positions = [i for i, c in enumerate(candidates) if c.id in frontier]
    on_frontier = [candidates[i] for i in positions]
    replayed = {n: playoff[i] for n, i in enumerate(positions) if i in playoff} if playoff else None
    order = ranking_order([c.rankable for c in on_frontier], objectives, replayed)
    ranked = [on_frontier[i].id for i in order]
    return ranked[:limit] if limit is not None else ranked
