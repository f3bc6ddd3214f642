"""Plain-text rendering of results for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    lines.append(f"written to: {result.output_dir / 'model'}")
    lines.append(f"metrics, footprint and log: {result.output_dir}")
    return "\n".join(lines)
