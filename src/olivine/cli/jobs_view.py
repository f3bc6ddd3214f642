"""Rendering jobs, plans and assets for the terminal and for ``--json``."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any


def plain(value: Any) -> Any:
    """JSON-ready form of dataclasses / records (for ``--json``)."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def export_paths(root: str | None) -> dict[str, str | None]:
    if not root:
        return {"export": None, "cache": None, "output": None, "logs": None}
    root = root.rstrip("/")
    return {"export": root, "cache": f"{root}/cache", "output": f"{root}/output", "logs": f"{root}/logs"}


def job_json(job: Any) -> dict[str, Any]:
    doc: dict[str, Any] = job.to_json()
    doc.update(export_paths(job.export_root))
    return doc


def plan_json(plan: Any) -> dict[str, Any]:
    doc = plain(plan)
    doc.update(export_paths(plan.export_root))
    return doc if isinstance(doc, dict) else {"plan": doc}


def _metrics(metrics: dict[str, Any]) -> str:
    from olivine.engine.output import format_value

    return ", ".join(f"{k}={format_value(v)}" for k, v in metrics.items()) or "-"


def submitted(job: Any, *, created: bool = True) -> str:
    paths = export_paths(job.export_root)
    verb = "submitted" if created else "already submitted (same submission id)"
    return "\n".join(
        [
            f"{verb}: job {job.job_id} (workflow '{job.workflow_id}')",
            f"  host   -> {job.host_name} ({job.host_type})",
            *(
                [f"  seeded -> cache of {job.resume_from} (finished steps are not run again)"]
                if job.resume_from
                else []
            ),
            f"  cache  -> {paths['cache']}",
            f"  output -> {paths['output']}",
            f"  follow:  olivine logs {job.job_id} --follow",
            f"  status:  olivine status {job.job_id}",
            f"  fetch:   olivine fetch {job.job_id} --to DIR",
        ]
    )


def status_text(job: Any) -> str:
    paths = export_paths(job.export_root)
    progress = f"{job.progress_done}/{job.progress_total} passes" if job.progress_total else "-"
    lines = [
        f"job        {job.job_id}",
        f"workflow   {job.workflow_id}",
        f"host       {job.host_name} ({job.host_type})",
        f"state      {job.state.value}" + (f" ({job.error_kind.value})" if job.error_kind else ""),
    ]
    if getattr(job, "damage", None):
        lines[-1] += " (damaged)"
        lines.append(f"damage     {job.damage}")
    if job.message:
        lines.append(f"message    {job.message}")
    if job.phase:
        lines.append(f"phase      {job.phase}")
    if job.candidates_done or job.candidates_total:
        lines.append(f"candidates {job.candidates_done}/{job.candidates_total or '?'}")
    best = f" ({job.best_candidate})" if job.best_candidate else ""
    if not (job.phase or job.candidates_done or job.candidates_total):  # a worker without candidates
        lines += [f"pass       {job.current_pass or '-'}", f"progress   {progress}"]
    lines += [
        f"best       {_metrics(job.best_metrics)}{best}",
        f"created    {_when(job.created_at)}",
        f"ended      {_when(job.ended_at)}",
        f"cache      {paths['cache'] or '-'}",
        f"output     {paths['output'] or '-'}",
    ]
    if job.resume_from:
        lines.append(f"resumed    from {job.resume_from}")
    return "\n".join(lines)


def _state(job: Any) -> str:
    return f"{job.state.value} (damaged)" if getattr(job, "damage", None) else str(job.state.value)


def remote_status_text(doc: dict[str, Any]) -> str:
    width = max((len(k) for k in doc), default=0)
    return "\n".join(f"{k.ljust(width)}  {_metrics(v) if isinstance(v, dict) else v}" for k, v in doc.items())


def final_summary(job: Any, *, history: str | None = None) -> str:
    paths = export_paths(job.export_root)
    lines = [""]
    if history:
        lines += [history.rstrip(), ""]
    lines.append(f"job {job.job_id} {job.state.value}" + (f": {job.message}" if job.message else ""))
    lines.append(f"  best metrics: {_metrics(job.best_metrics)}")
    lines.append(f"  exported cache  -> {paths['cache']}")
    # Only a job that succeeded exported an output (a failed or cancelled one exports none).
    if job.state.value == "SUCCEEDED":
        lines.append(f"  exported output -> {paths['output']}")
    if job.state.value == "SUCCEEDED":
        lines.append(f"  download the best model: olivine fetch {job.job_id} --to DIR")
    elif job.state.value in ("FAILED", "CANCELLED"):
        lines.append(f"  finish it later without redoing finished passes: olivine resume {job.job_id}")
    return "\n".join(lines)


def exported_history(job: Any) -> str | None:
    from olivine import api

    try:
        return api.export_text(job, "output/run_history.txt")
    except Exception:  # the summary is a convenience; the job's state is what matters here
        return None


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def jobs_table(jobs: list[Any]) -> str:
    if not jobs:
        return "no jobs"
    rows = [["JOB", "WORKFLOW", "HOST", "STATE", "PROGRESS", "CREATED"]]
    for job in jobs:
        progress = f"{job.progress_done}/{job.progress_total}" if job.progress_total else "-"
        rows.append(
            [job.job_id, job.workflow_id, job.host_name, _state(job), progress, _when(job.created_at)]
        )
    return _table(rows)


def assets_table(assets: list[Any]) -> str:
    if not assets:
        return "no assets"
    rows = [["ASSET", "VERSIONS"]]
    for asset in assets:
        doc = plain(asset)
        name = doc.get("name") if isinstance(doc, dict) else str(doc)
        versions = doc.get("versions", []) if isinstance(doc, dict) else []
        shown = ", ".join(str(v.get("version", v)) if isinstance(v, dict) else str(v) for v in versions)
        rows.append([str(name), shown or "-"])
    return _table(rows)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)
