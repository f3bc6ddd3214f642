"""The programmatic interface. The CLI calls only this module.

    run(config)         validate; run in this process, or submit when ``workflow_host`` names a host
    load(config)        validate and resolve without running (``--dry-run`` and tools)
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from olivine.engine.events import Listener
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.engine.run import WorkflowResult

logger = logging.getLogger("olivine")


def load(config: str | Path) -> ResolvedWorkflow:
    """Read, validate and resolve a run config; raises :class:`olivine.errors.ConfigError`."""
    from olivine.engine.resolve import load_workflow

    return load_workflow(config)


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
