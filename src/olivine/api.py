"""The programmatic interface. The CLI calls only this module.

    load(config)                 validate and resolve a run config without running it
    run_local(workflow)          run in this process with the engine
    submit(workflow, host=...)   hand the workflow to a host (returns at once for detached hosts)
    status / list_jobs / logs / cancel / wait / fetch / resume      around a submitted job
    remote_status / remote_logs  the same from a datastore alone (no local job record needed)
    assets_list / assets_show    exports registered as data assets
    report(target)               report.html + PNG plot of a run's candidates (folder, job or export URL)

Everything heavy is imported inside the functions: ``import olivine.api`` stays light.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.errors import ConfigError

if TYPE_CHECKING:
    from olivine.engine.events import Listener
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.engine.run import WorkflowResult
    from olivine.hosts.submission import Submission
    from olivine.jobs.records import JobRecord
    from olivine.report import ReportFiles

logger = logging.getLogger("olivine")


def load(config: str | Path, *, cpu_fallback: bool = False) -> ResolvedWorkflow:
    """Read, validate and resolve a run config; raises :class:`olivine.errors.ConfigError`.

    Args:
        config: the run config file.
        cpu_fallback: run a config that targets a GPU, an NPU or a non-CPU execution provider on the CPU
            instead of refusing it (each key changed is logged as a warning).
    """
    from olivine.engine.resolve import load_workflow

    return load_workflow(config, cpu_fallback=cpu_fallback)


def run_local(
    workflow: ResolvedWorkflow,
    *,
    listener: Listener | None = None,
    stop: threading.Event | None = None,
    cache_dir: Path | None = None,
    output_dir: Path | None = None,
) -> WorkflowResult:
    """Run a resolved workflow in this process with the engine."""
    from olivine.engine.run import run_workflow

    return run_workflow(workflow, listener=listener, stop=stop, cache_dir=cache_dir, output_dir=output_dir)


def submit(
    workflow: ResolvedWorkflow,
    *,
    host: str | None = None,
    datastore: str | None = None,
    dry_run: bool = False,
    fresh: bool = False,
    submission_id: str | None = None,
) -> Submission:
    """Submit ``workflow`` to ``host`` (default: its ``workflow_host``).

    Args:
        workflow: the resolved workflow.
        host: a system name in the config or a host profile in the user's hosts file.
        datastore: a datastore name or fsspec URL (default: the host's, then the user's default).
        dry_run: plan only (bundle contents, datastore paths); submit nothing.
        fresh: do not seed the cache from this workflow's latest export.
        submission_id: idempotency key; submitting again with it returns the same job.
    """
    from olivine.hosts import service

    kwargs: dict[str, Any] = {
        "host_name": host,
        "datastore": datastore,
        "dry_run": dry_run,
        "submission_id": submission_id,
    }
    if fresh:
        kwargs["fresh"] = True
    try:
        return service.submit(workflow, **kwargs)
    except ConfigError as exc:
        # A name the workflow file gave (its workflow_host, a datastore it names) that does not
        # resolve: the error names that file, as validation errors do.
        from_file = host in (None, workflow.config.workflow_host) and datastore is None
        if exc.file is None and workflow.config_path is not None and from_file:
            raise exc.with_file(str(workflow.config_path)) from None
        raise


def status(job_id: str) -> JobRecord:
    from olivine.hosts import service

    return service.status(job_id)


def list_jobs(*, workflow_id: str | None = None, limit: int | None = None) -> list[JobRecord]:
    from olivine.hosts import service

    return service.list_jobs(workflow_id=workflow_id, limit=limit)


def logs(job_id: str, *, follow: bool = False) -> Iterator[str]:
    from olivine.hosts import service

    return service.logs(job_id, follow=follow)


def cancel(job_id: str, *, timeout_s: float | None = None) -> JobRecord:
    from olivine.hosts import service

    return service.cancel(job_id, timeout_s=timeout_s)


def wait(job_id: str, *, timeout_s: float | None = None) -> JobRecord:
    from olivine.hosts import service

    return service.wait(job_id, timeout_s=timeout_s)


def resume(job_id: str, *, host: str | None = None) -> Submission:
    from olivine.hosts import service

    return service.resume(job_id, host_name=host)


def fetch(
    job_or_url: str, dest: str | Path, *, which: str = "output", datastore: str | None = None
) -> list[Path]:
    from olivine.hosts import service

    return service.fetch(job_or_url, dest, which=which, datastore=datastore)  # type: ignore[arg-type]


def remote_status(datastore: str, workflow_id: str, *, timestamp: str | None = None) -> dict[str, Any]:
    from olivine.hosts import service

    result: dict[str, Any] = service.remote_status(datastore, workflow_id, timestamp=timestamp)
    return result


def remote_logs(
    datastore: str, workflow_id: str, *, timestamp: str | None = None, follow: bool = False
) -> Iterator[str]:
    from olivine.hosts import service

    lines: Iterator[str] = service.remote_logs(datastore, workflow_id, timestamp=timestamp, follow=follow)
    return lines


def assets_list(*, datastore: str | None = None) -> list[Any]:
    from olivine.hosts import service

    items: list[Any] = service.assets_list(datastore=datastore)
    return items


def assets_show(name: str, *, version: str | None = None, datastore: str | None = None) -> dict[str, Any]:
    from olivine.hosts import service

    shown: dict[str, Any] = service.assets_show(name, version=version, datastore=datastore)
    return shown


def monitor(job_id: str | None = None) -> list[JobRecord]:
    """Record what the hosts observe for a job (default: every unfinished one) and seal the exports of
    jobs whose worker died. Idempotent."""
    from olivine.hosts import service

    return service.monitor(job_id)


def export_text(job: JobRecord, rel: str) -> str | None:
    """A text file from a job's export (``rel`` relative to the export root), or None if absent."""
    from olivine.jobs.exports import open_job_export

    if job.export_root is None:
        return None
    layout = open_job_export(job)
    path = layout.path(rel)
    if not layout.datastore.exists(path):
        return None
    return layout.datastore.read_bytes(path).decode("utf-8", errors="replace")


def report(
    target: str | Path,
    *,
    dest: str | Path | None = None,
    png: bool = True,
    datastore: str | None = None,
) -> ReportFiles:
    """Write ``report.html`` (and the PNG plot, when matplotlib is installed) from a run's footprint.

    Args:
        target: a local output folder (or its ``footprint.json``, or a folder ``olivine fetch`` filled),
            else a job id or an export URL ``<datastore>/<timestamp>/<workflow_id>``.
        dest: where to write; default the footprint's folder for a local target, else
            ``./olivine-report/<job or workflow id>``.
        png: also draw ``pareto_frontier.png``.
        datastore: for an export URL, the hosts-file datastore whose options (credentials) open it.

    Raises:
        UserInputError: no footprint there, or not one Olivine's search wrote.
        JobNotFoundError: no such job, or its export has no footprint yet.
    """
    from olivine.errors import DatastoreError, JobNotFoundError, UserInputError
    from olivine.report import write_report
    from olivine.report.footprint import find_footprint, load_footprint, parse_footprint

    local = Path(target)
    if local.exists():
        path = find_footprint(local)
        footprint = load_footprint(path)
        return write_report(footprint, Path(dest) if dest else path.parent, source=str(path), png=png)
    from olivine.hosts import service

    rel = "output/footprint.json"
    try:
        data = service.export_file(str(target), rel, datastore=datastore)
    except DatastoreError as exc:
        if "://" in str(target):
            raise
        raise UserInputError(
            f"{target}: no such folder, and not an export URL "
            "(<datastore>/<yyyy-mm-dd-hh-mm-ss>/<workflow_id>)"
        ) from exc
    if data is None:
        raise JobNotFoundError(
            f"{target}: its export has no {rel} (yet): the footprint is exported when the workflow ends"
        )
    footprint = parse_footprint(data.decode("utf-8", errors="replace"), f"{target} ({rel})")
    name = str(target).rstrip("/").rpartition("/")[2]
    out = Path(dest) if dest else Path("olivine-report") / name
    return write_report(footprint, out, source=f"{target} ({rel})", png=png)


def doctor(
    *,
    fix: bool = False,
    cache_dirs: tuple[Path, ...] = (),
    datastores: tuple[str, ...] = (),
    hashes: bool = False,
) -> Any:
    """Check the job store, job folders, caches and datastores; with ``fix`` repair what can be.

    Returns:
        A :class:`olivine.jobs.doctor.Report` (``findings``, ``open_problems``, ``checked``).
    """
    from olivine.jobs.doctor import run_doctor
    from olivine.jobs.store import JobStore

    return run_doctor(
        JobStore.default(), fix=fix, cache_dirs=cache_dirs, datastores=datastores, hashes=hashes
    )
