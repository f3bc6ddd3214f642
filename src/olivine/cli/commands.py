"""Sub-commands. Each handler parses nothing itself: it calls :mod:`olivine.api` and prints."""

from __future__ import annotations

import argparse
from typing import Any


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks on errors")


def add_commands(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run a workflow (locally, or submit it when the config sets workflow_host)",
        description="Validate a run config (JSON or YAML) and run it. If the config sets "
        "'workflow_host' (or --host is given), the workflow is submitted to that host instead and "
        "the command returns at once.",
    )
    run.add_argument("--config", required=True, metavar="FILE", help="run config file (.json, .yaml, .yml)")
    run.add_argument("--output-dir", metavar="DIR", help="override the config's output_dir")
    run.add_argument("--cache-dir", metavar="DIR", help="override the config's cache_dir")
    _common(run)
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from olivine import api
    from olivine.cli import logsetup, render

    workflow = api.load(args.config)
    engine = workflow.config.engine
    logsetup.configure(engine.log_severity_level, verbose=args.verbose)
    output_dir = Path(args.output_dir or engine.output_dir).resolve()
    cache_dir = Path(args.cache_dir or engine.cache_dir).resolve()
    logsetup.add_file(output_dir / "olivine.log")
    result = api.run_local(workflow, cache_dir=cache_dir, output_dir=output_dir)
    print(render.result_table(result))
    return 0
