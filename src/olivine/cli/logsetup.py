"""Logging set-up for the CLI (the library itself never configures handlers)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from olivine.scrubbing import ScrubbingFormatter

# Olive's log_severity_level: 0 debug, 1 info, 2 warning, 3 error, 4 critical.
_LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


def configure(severity: int = 1, *, verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else _LEVELS[max(0, min(4, severity))]
    root = logging.getLogger("olivine")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        if getattr(handler, "_olivine_console", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(_FORMAT, datefmt="%H:%M:%S"))
    handler._olivine_console = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def add_file(path: Path) -> logging.Handler:
    """Also write the log to ``path`` (the output folder's ``olivine.log``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(ScrubbingFormatter(_FORMAT))
    logging.getLogger("olivine").addHandler(handler)
    return handler
