"""Plain-text rendering of results for the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.engine.run import WorkflowResult


def result_table(result: WorkflowResult) -> str:
    from olivine.engine.output import history_table

    best_id = result.best.id if result.best else None
    lines = [
        "",
        f"workflow '{result.workflow_id}' finished in {result.duration_s:.1f}s",
        "",
        history_table(result.input, result.candidates, best_id).rstrip(),
        "",
    ]
    if result.best is not None:
        model_id = result.best.model_id
        lines.append(
            f"best model: {result.best.label} [{result.best.id}] ({model_id[:12] if model_id else '-'})"
        )
        if result.frontier:
            lines.append(f"pareto frontier: {', '.join(result.frontier)}")
    from olivine.engine.output import output_layout

    folder, model_file = output_layout(result.output_dir)
    lines.append(f"written to: {model_file or folder / 'model'}")
    lines.append(f"metrics, footprint and log: {folder}")
    return "\n".join(lines)


def result_json(result: WorkflowResult) -> dict[str, Any]:
    return {
        "workflow_id": result.workflow_id,
        "state": "SUCCEEDED",
        "output_dir": str(result.output_dir),
        "cache_dir": str(result.cache_dir),
        "best_model_id": result.best_model_id,
        "metrics": result.metrics,
        "input_model_metrics": result.input_metrics,
        "best": result.best.id if result.best else None,
        "frontier": result.frontier,
        "candidates": [c.record() for c in result.candidates],
        "duration_s": round(result.duration_s, 3),
    }


def local_plan(workflow: ResolvedWorkflow, cache_dir: Path, output_dir: Path) -> str:
    lines = [f"workflow '{workflow.workflow_id}' would run in this process (no host: no job, no export)"]
    lines.append(
        f"  input model: {workflow.config.input_model.type} {workflow.config.input_model.model_path}"
    )
    for index, slot in enumerate(workflow.slots, start=1):
        for option in slot.options:
            searched = f" searching {', '.join(d.param for d in option.dims)}" if option.dims else ""
            lines.append(f"  [{index}] {option.type} '{slot.name}'{searched}")
    if workflow.search is not None:
        from olivine.search.space import SearchSpace

        s = workflow.search
        size = len(SearchSpace(workflow.slots))
        limit = f", max_samples {s.max_samples}" if s.max_samples else ""
        lines.append(
            f"  search: {s.sampler} sampler, {s.execution_order} order, seed {s.seed}; "
            f"{size} point(s) in the space{limit}"
        )
    lines.append(f"  evaluator: {len(workflow.evaluator.metrics) if workflow.evaluator else 0} metric(s)")
    lines.append(f"  accelerator: {workflow.accelerator}")
    lines.append(f"  cache:  {cache_dir / workflow.workflow_id}")
    lines.append(f"  output: {output_dir}")
    return "\n".join(lines)
