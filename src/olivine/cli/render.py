"""Plain-text rendering of results for the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.engine.run import WorkflowResult


def result_table(result: WorkflowResult) -> str:
    from olivine.engine.output import history_table

    best_id = result.best_model_id
    lines = [
        "",
        f"workflow '{result.workflow_id}' finished in {result.duration_s:.1f}s",
        "",
        history_table(result.input, result.candidates, best_id).rstrip(),
        "",
    ]
    if result.best is not None:
        lines.append(f"best model: {result.best.label} ({best_id[:12] if best_id else '-'})")
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
        "candidates": [c.footprint(result.best_model_id) for c in result.candidates],
        "duration_s": round(result.duration_s, 3),
    }


def local_plan(workflow: ResolvedWorkflow, cache_dir: Path, output_dir: Path) -> str:
    lines = [f"workflow '{workflow.workflow_id}' would run in this process (no host: no job, no export)"]
    lines.append(
        f"  input model: {workflow.config.input_model.type} {workflow.config.input_model.model_path}"
    )
    for index, rpass in enumerate(workflow.passes, start=1):
        lines.append(f"  [{index}] {rpass.type} '{rpass.name}'")
    lines.append(f"  evaluator: {len(workflow.evaluator.metrics) if workflow.evaluator else 0} metric(s)")
    lines.append(f"  accelerator: {workflow.accelerator}")
    lines.append(f"  cache:  {cache_dir / workflow.workflow_id}")
    lines.append(f"  output: {output_dir}")
    return "\n".join(lines)
