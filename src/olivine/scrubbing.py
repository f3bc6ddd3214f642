"""Scrub credentials where text leaves the process: log handlers and the worker's stdout/stderr.

:mod:`olivine.datastores.redact` knows what a credential looks like (URL user-info, SAS query strings,
connection strings, ``name=value`` pairs). This module adds the *values* this process can see in its
environment (``AWS_SECRET_ACCESS_KEY``, ``AZURE_STORAGE_KEY``, ``HF_TOKEN``, ...) and applies both at
the two places every line of text passes through:

* :class:`ScrubbingFormatter` for logging handlers (messages and tracebacks);
* :class:`ScrubbingStream` for ``sys.stdout``/``sys.stderr`` of a worker, so a user script that prints
  an environment secret does not put it into the job log that is exported to a shared datastore.

Both work line by line, so a secret is never split across two writes.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import IO

from olivine.datastores.redact import MIN_SECRET_CHARS, env_secrets, scrub_text


class Scrubber:
    """Scrubs text of the known secret values (environment + any added) and credential patterns."""

    def __init__(self, secrets: Iterable[str] = (), *, environ: Mapping[str, str] | None = None) -> None:
        self._secrets = set(env_secrets(environ))
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets.update(s for s in secrets if len(s) >= MIN_SECRET_CHARS)

    def __call__(self, text: str) -> str:
        return scrub_text(text, self._secrets)


_PROCESS: Scrubber | None = None


def process_scrubber() -> Scrubber:
    """The scrubber of this process (environment secrets, plus what :meth:`Scrubber.add` learnt, e.g.
    the credentials a worker opened its datastore with). Formatters and streams share it."""
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = Scrubber()
    return _PROCESS


class ScrubbingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments and traceback) is scrubbed of credentials."""

    def __init__(
        self, fmt: str | None = None, datefmt: str | None = None, *, scrubber: Scrubber | None = None
    ):
        super().__init__(fmt, datefmt)
        self.scrubber = scrubber or process_scrubber()

    def format(self, record: logging.LogRecord) -> str:
        return self.scrubber(super().format(record))


class ScrubbingStream(io.TextIOBase):
    """A text stream that scrubs complete lines and writes them to ``target`` at once.

    A partial line is held until its newline arrives (or :meth:`flush`), so a secret split over two
    ``write`` calls is still recognised. Thread-safe.
    """

    def __init__(self, target: IO[str], scrubber: Scrubber) -> None:
        super().__init__()
        self._target = target
        self._scrubber = scrubber
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            data = self._pending + text
            head, sep, tail = data.rpartition("\n")
            self._pending = tail
            if sep:
                self._target.write(self._scrubber(head + sep))
                self._target.flush()
            elif len(self._pending) > 64 * 1024:  # no newline for long: do not hold it forever
                self._flush_pending()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if self._pending:
            self._target.write(self._scrubber(self._pending))
            self._pending = ""
        self._target.flush()

    def fileno(self) -> int:
        return self._target.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", "utf-8") or "utf-8"


def scrub_standard_streams(scrubber: Scrubber | None = None) -> None:
    """Route this process's ``sys.stdout``/``sys.stderr`` through ``scrubber`` (default: the process
    scrubber), for a worker, whose streams are its job log. Writes made below Python (C libraries) are
    not covered."""
    import sys

    scrubber = scrubber or process_scrubber()
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if current is not None and not isinstance(current, ScrubbingStream):
            setattr(sys, name, ScrubbingStream(current, scrubber))
