"""Logging set-up for the CLI (the library itself never configures handlers)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    root.addHandler(_console_handler())
    _own_root_logger()


def _console_handler() -> logging.Handler:
    """A scrubbing stderr handler in Olivine's format, marked as Olivine's console handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(_FORMAT, datefmt="%H:%M:%S"))
    handler._olivine_console = True  # type: ignore[attr-defined]
    return handler


def _own_root_logger() -> None:
    """Give the root logger a handler of ours: other libraries' warnings and errors (never their INFO)
    reach the console in Olivine's format, scrubbed. Without it, importing onnxruntime's quantizers runs
    ``logging.basicConfig(level=INFO)``, which prints every node of an int4 quantization in its own
    format and unscrubbed."""
    root = logging.getLogger()
    if any(getattr(h, "_olivine_console", False) for h in root.handlers):
        return
    handler = _console_handler()
    handler.setLevel(logging.WARNING)
    root.addHandler(handler)


def add_file(path: Path) -> logging.Handler:
    """Also write the log to ``path`` (the output folder's ``olivine.log``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():  # a link planted in the output folder is replaced, not written through
        path.unlink()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(ScrubbingFormatter(_FORMAT))
    logging.getLogger("olivine").addHandler(handler)
    return handler


@contextmanager
def console_wrapped(wrap: Callable[[logging.Handler], logging.Handler]) -> Iterator[None]:
    """Route the console handler through ``wrap(handler)`` meanwhile (e.g. to write above a progress
    bar); the original handler is put back afterwards."""
    root = logging.getLogger("olivine")
    console = [h for h in root.handlers if getattr(h, "_olivine_console", False)]
    wrapped = [wrap(h) for h in console]
    for old, new in zip(console, wrapped, strict=True):
        root.removeHandler(old)
        root.addHandler(new)
    try:
        yield
    finally:
        for old, new in zip(console, wrapped, strict=True):
            root.removeHandler(new)
            root.addHandler(old)
