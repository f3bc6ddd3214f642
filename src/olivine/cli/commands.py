"""Sub-commands. Each handler calls :mod:`olivine.api` and prints; no logic of its own beyond that."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from olivine.cli import jobs_view

# Exit codes of commands that wait for a job: the job's final state.
EXIT_FOR_STATE = {"SUCCEEDED": 0, "FAILED": 1, "CANCELLED": 3}


def _verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks on errors")


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more (``nan``, ``inf`` and ``-5`` are refused)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or value > 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds between 0 and 604800")
    return value


def _count(text: str) -> int:
    """An argparse type: a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be 1 or more")
    return value


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def add_commands(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run a workflow (in this process, or submitted to its workflow_host)",
        description="Validate a run config (JSON or YAML) and run it. If the config sets 'workflow_host' "
        "(or --host is given), the workflow is submitted to that host and the command returns at once "
        "with the job id; the job keeps running after this terminal closes. A LocalSystem host runs in "
        "the foreground, as Olive did.",
    )
    run.add_argument("--config", required=True, metavar="FILE", help="run config file (.json, .yaml, .yml)")
    run.add_argument(
        "--host",
        metavar="NAME",
        help="submit to this host (a system in the config or a "
        "profile in the hosts file); overrides workflow_host",
    )
    run.add_argument(
        "--local", action="store_true", help="run in this process, ignoring workflow_host (no job, no export)"
    )
    run.add_argument("--datastore", metavar="NAME|URL", help="export to this datastore (name or fsspec URL)")
    run.add_argument(
        "--follow",
        "--wait",
        dest="follow",
        action="store_true",
        help="after submitting, stream the job's log until it ends; exit with its status",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show what would run or be submitted; run and submit nothing",
    )
    run.add_argument(
        "--fresh", action="store_true", help="do not seed the cache from this workflow's latest export"
    )
    run.add_argument(
        "--cpu-fallback",
        action="store_true",
        help="run a config that targets a GPU, an NPU or a non-CPU execution provider on the CPU "
        "(warns for each key changed; without it such a config is refused)",
    )
    run.add_argument("--output-dir", metavar="DIR", help="override output_dir (runs in this process only)")
    run.add_argument("--cache-dir", metavar="DIR", help="override cache_dir (runs in this process only)")
    _json(run)
    _verbose(run)
    run.set_defaults(handler=cmd_run)

    status = sub.add_parser(
        "status",
        help="show a job's state, progress, best metrics and export paths",
        description="Show a job's status. Without JOB: the most recent job. With "
        "--datastore, read the status a job wrote to that datastore (works on any "
        "machine that can read it): then the argument is the workflow id.",
    )
    status.add_argument("job", nargs="?", metavar="JOB|WORKFLOW_ID")
    status.add_argument("--datastore", metavar="NAME|URL", help="read the status from this datastore")
    _json(status)
    _verbose(status)
    status.set_defaults(handler=cmd_status)

    lst = sub.add_parser("list", help="list submitted jobs, newest first")
    lst.add_argument("--workflow", metavar="ID", help="only this workflow id")
    lst.add_argument("--limit", type=_count, default=20, help="at most N jobs (default 20)")
    _json(lst)
    _verbose(lst)
    lst.set_defaults(handler=cmd_list)

    mon = sub.add_parser(
        "monitor",
        help="record what the hosts see (dead workers fail) and seal abandoned exports",
        description="The monitor, as an explicit step (status and list only read): record the "
        "state each host observes for JOB (default: every unfinished job), fail jobs whose worker "
        "died and seal their exports so datastore readers see it. Safe to repeat (e.g. from cron).",
    )
    mon.add_argument("job", nargs="?", metavar="JOB")
    _json(mon)
    _verbose(mon)
    mon.set_defaults(handler=cmd_monitor)

    doc = sub.add_parser(
        "doctor",
        help="check the job store, caches and datastores for corruption; --fix repairs what it can",
        description="Check the job store (damaged file, unreadable rows, jobs whose worker died, exports "
        "left unsealed or disagreeing with the store), the job folders' and the given caches (corrupt "
        "entries), and the datastores (damaged files, future-dated exports, asset records). With --fix, "
        "repair what can be repaired and say what was done. Exit 0 when no problem is left, 1 otherwise.",
    )
    doc.add_argument("--fix", action="store_true", help="repair what can be repaired")
    doc.add_argument(
        "--cache-dir", action="append", default=[], metavar="DIR", help="also check this cache_dir"
    )
    doc.add_argument(
        "--datastore", action="append", default=[], metavar="NAME|URL", help="also check this datastore"
    )
    doc.add_argument("--hashes", action="store_true", help="re-hash every exported file (reads them all)")
    _json(doc)
    _verbose(doc)
    doc.set_defaults(handler=cmd_doctor)

    logs = sub.add_parser("logs", help="print a job's log (--follow streams until the job ends)")
    logs.add_argument("job", metavar="JOB|WORKFLOW_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep streaming until the job ends")
    logs.add_argument("--datastore", metavar="NAME|URL", help="read the log exported to this datastore")
    _verbose(logs)
    logs.set_defaults(handler=cmd_logs)

    cancel = sub.add_parser("cancel", help="stop a job: graceful, then forced after a timeout")
    cancel.add_argument("job", metavar="JOB")
    cancel.add_argument("--timeout", type=_seconds, metavar="S", help="seconds before a forced stop")
    _json(cancel)
    _verbose(cancel)
    cancel.set_defaults(handler=cmd_cancel)

    fetch = sub.add_parser("fetch", help="download a job's exported output/cache, verifying sha256")
    fetch.add_argument("job", metavar="JOB|EXPORT_URL")
    which = fetch.add_mutually_exclusive_group()
    which.add_argument("--output", dest="which", action="store_const", const="output", help="(default)")
    which.add_argument("--cache", dest="which", action="store_const", const="cache")
    which.add_argument("--all", dest="which", action="store_const", const="all")
    fetch.add_argument("--to", metavar="DIR", help="destination (default: ./olivine-fetch/<JOB>)")
    fetch.add_argument("--datastore", metavar="NAME", help="hosts-file datastore with credentials for a URL")
    _verbose(fetch)
    fetch.set_defaults(handler=cmd_fetch, which="output")

    resume = sub.add_parser("resume", help="run a job's workflow again, seeded with the cache it exported")
    resume.add_argument("job", metavar="JOB")
    resume.add_argument("--host", metavar="NAME", help="resume on another host")
    resume.add_argument("--follow", "--wait", dest="follow", action="store_true")
    _json(resume)
    _verbose(resume)
    resume.set_defaults(handler=cmd_resume)

    report = sub.add_parser(
        "report",
        help="write report.html (plot, candidate table, machine) from a run's footprint",
        description="Regenerate a run's report: report.html (self-contained: opens offline) and the "
        "trade-off plot as pareto_frontier.png (needs matplotlib: pip install 'olivine[report]'). TARGET "
        "is an output folder (or a folder filled by `olivine fetch`), a job id, or an export URL.",
    )
    report.add_argument("target", metavar="JOB|DIR|EXPORT_URL")
    report.add_argument(
        "--to",
        metavar="DIR",
        help="write here (default: beside a local footprint, else ./olivine-report/JOB)",
    )
    report.add_argument("--no-png", dest="png", action="store_false", help="do not draw the PNG plot")
    report.add_argument("--datastore", metavar="NAME", help="hosts-file datastore with credentials for a URL")
    _verbose(report)
    report.set_defaults(handler=cmd_report)

    assets = sub.add_parser("assets", help="exports registered as data assets (name = workflow id)")
    asub = assets.add_subparsers(dest="assets_command", metavar="ACTION", required=True)
    alist = asub.add_parser("list", help="every asset and its versions (timestamps)")
    alist.add_argument("--datastore", metavar="NAME|URL")
    _json(alist)
    _verbose(alist)
    alist.set_defaults(handler=cmd_assets_list)
    ashow = asub.add_parser("show", help="one asset version (default: the latest)")
    ashow.add_argument("name")
    ashow.add_argument("--version", metavar="TIMESTAMP")
    ashow.add_argument("--datastore", metavar="NAME|URL")
    _verbose(ashow)
    ashow.set_defaults(handler=cmd_assets_show)


def _setup_logging(args: argparse.Namespace, severity: int = 1) -> None:
    from olivine.cli import logsetup

    logsetup.configure(severity, verbose=args.verbose)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def cmd_run(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)  # warnings while loading (CPU fallback, unused systems) in the usual format
    workflow = api.load(args.config, cpu_fallback=args.cpu_fallback)
    _setup_logging(args, workflow.config.engine.log_severity_level)
    if args.local and args.host:
        raise _usage("--local and --host exclude each other")
    host = None if args.local else args.host or workflow.config.workflow_host
    if host is None:
        return _run_here(args, workflow)
    submission = api.submit(
        workflow, host=host, datastore=args.datastore, dry_run=args.dry_run, fresh=args.fresh
    )
    if args.dry_run:
        _print_json(jobs_view.plan_json(submission.plan)) if args.json else print(submission.plan.describe())
        return 0
    return _after_submit(args, submission)


def _run_here(args: argparse.Namespace, workflow: Any) -> int:
    from olivine.cli import logsetup, render

    engine = workflow.config.engine
    output_dir = Path(args.output_dir or engine.output_dir).resolve()
    cache_dir = Path(args.cache_dir or engine.cache_dir).resolve()
    if args.dry_run:
        print(render.local_plan(workflow, cache_dir, output_dir))
        return 0
    from olivine.engine.output import output_layout
    from olivine.exits import install_sigint_flag, user_code_exit

    artifacts, model_file = output_layout(output_dir)
    if not engine.no_artifacts:
        logsetup.add_file(artifacts / "olivine.log")
    install_sigint_flag()
    try:
        result = _run_with_progress(workflow, cache_dir, output_dir)
    except (SystemExit, KeyboardInterrupt) as exc:  # the engine never exits: user code did, or Ctrl-C
        error = user_code_exit(exc)
        if error is None:
            raise
        raise error from None
    if model_file is None and not engine.no_artifacts:
        from olivine.engine.claims import output_problems
        from olivine.errors import CacheError

        problems = output_problems(artifacts)
        if problems:
            raise CacheError(f"the output in {artifacts} does not hold what the run produced: {problems[0]}")
    if args.json:
        _print_json(render.result_json(result))
    else:
        print(render.result_table(result))
    return 0


def _run_with_progress(workflow: Any, cache_dir: Path, output_dir: Path) -> Any:
    """``api.run_local``, with a progress bar under the log when stderr is a terminal."""
    from olivine import api

    if not _stderr_is_terminal():
        return api.run_local(workflow, cache_dir=cache_dir, output_dir=output_dir)
    from olivine.cli import logsetup
    from olivine.cli.progress import AboveTheBar, TerminalProgress

    with TerminalProgress(sys.stderr) as bar, logsetup.console_wrapped(lambda h: AboveTheBar(h, bar)):
        return api.run_local(workflow, listener=bar, cache_dir=cache_dir, output_dir=output_dir)


def _stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (asked of its file descriptor: the console command wraps the stream
    in a scrubber, which does not claim to be one)."""
    import os

    try:
        return os.isatty(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's StringIO)
        return False


def _after_submit(args: argparse.Namespace, submission: Any) -> int:
    from olivine import api

    job = submission.job
    if job.state.is_terminal():  # a foreground host already ran it
        _print_json(jobs_view.job_json(job)) if args.json else print(jobs_view.final_summary(job))
        return EXIT_FOR_STATE[job.state.value]
    if args.json and not args.follow:
        _print_json(jobs_view.job_json(job))
        return 0
    print(jobs_view.submitted(job, created=submission.created), flush=True)
    if not args.follow:
        return 0
    for line in api.logs(job.job_id, follow=True):
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
        sys.stdout.flush()
    final = api.wait(job.job_id)
    print(jobs_view.final_summary(final, history=jobs_view.exported_history(final)))
    return EXIT_FOR_STATE[final.state.value]


def cmd_status(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    if args.datastore:
        if not args.job:
            raise _usage("status --datastore needs the workflow id")
        doc = api.remote_status(args.datastore, args.job)
        _print_json(doc) if args.json else print(jobs_view.remote_status_text(doc))
        return 0
    job = api.status(args.job) if args.job else _latest_job()
    _print_json(jobs_view.job_json(job)) if args.json else print(jobs_view.status_text(job))
    return 0


def _latest_job() -> Any:
    from olivine import api
    from olivine.errors import JobNotFoundError

    jobs = api.list_jobs(limit=1)
    if not jobs:
        raise JobNotFoundError("no jobs yet: submit one with `olivine run --config FILE` and a workflow_host")
    return api.status(jobs[0].job_id)


def _usage(message: str) -> Exception:
    from olivine.errors import UserInputError

    return UserInputError(message)


def cmd_list(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    return _print_jobs(api.list_jobs(workflow_id=args.workflow, limit=args.limit), as_json=args.json)


def cmd_monitor(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    return _print_jobs(api.monitor(args.job), as_json=args.json)


def _print_jobs(jobs: list[Any], *, as_json: bool) -> int:
    """Print job records as JSON or as the jobs table (``list`` and ``monitor`` show the same view)."""
    if as_json:
        _print_json([jobs_view.job_json(j) for j in jobs])
    else:
        print(jobs_view.jobs_table(jobs))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    report = api.doctor(
        fix=args.fix,
        cache_dirs=tuple(Path(d) for d in args.cache_dir),
        datastores=tuple(args.datastore),
        hashes=args.hashes,
    )
    remaining = report.open_problems
    if args.json:
        _print_json(
            {
                "checked": report.checked,
                "findings": [f.to_json() for f in report.findings],
                "problems_left": len(remaining),
            }
        )
    else:
        for finding in report.findings:
            print(finding)
        fixed = len(report.findings) - len(remaining)
        checked = ", ".join(f"{n} {what}" for what, n in report.checked.items())
        print(f"checked {checked}: {len(report.findings)} problem(s), {fixed} fixed, {len(remaining)} left")
    return 1 if remaining else 0


def cmd_logs(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    if args.datastore:
        lines = api.remote_logs(args.datastore, args.job, follow=args.follow)
    else:
        lines = api.logs(args.job, follow=args.follow)
    for line in lines:
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
        sys.stdout.flush()
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    job = api.cancel(args.job, timeout_s=args.timeout)
    _print_json(jobs_view.job_json(job)) if args.json else print(jobs_view.status_text(job))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    dest = Path(args.to or Path("olivine-fetch") / Path(args.job.rstrip("/")).name)
    files = api.fetch(args.job, dest, which=args.which, datastore=args.datastore)
    total = sum(f.stat().st_size for f in files if f.is_file())
    print(f"fetched {len(files)} file(s), {total / 1e6:.1f} MB, sha256 verified -> {dest.resolve()}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    files = api.report(args.target, dest=args.to, png=args.png, datastore=args.datastore)
    print(f"report -> {files.html.resolve()}")
    if files.png is not None:
        print(f"plot   -> {files.png.resolve()}")
    elif files.png_skipped:
        print(f"plot   -  not written: {files.png_skipped}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 1)
    submission = api.resume(args.job, host=args.host)
    return _after_submit(args, submission)


def cmd_assets_list(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    assets = api.assets_list(datastore=args.datastore)
    _print_json(jobs_view.plain(assets)) if args.json else print(jobs_view.assets_table(assets))
    return 0


def cmd_assets_show(args: argparse.Namespace) -> int:
    from olivine import api

    _setup_logging(args, 2)
    _print_json(api.assets_show(args.name, version=args.version, datastore=args.datastore))
    return 0
