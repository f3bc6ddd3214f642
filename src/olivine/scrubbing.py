"""Scrub credentials where text leaves the process: log handlers and the worker's stdout/stderr.

:mod:`olivine.redaction` knows what a credential looks like (URL user-info, SAS query strings,
connection strings, ``name=value`` pairs). This module adds the *values* this process can see in its
environment (``AWS_SECRET_ACCESS_KEY``, ``AZURE_STORAGE_KEY``, ``HF_TOKEN``, ...) and applies both at
the two places every line of text passes through:

* :class:`ScrubbingFormatter` for logging handlers (messages and tracebacks);
* :class:`ScrubbingStream` for ``sys.stdout``/``sys.stderr`` of a worker, so a user script that prints
  an environment secret does not put it into the job log that is exported to a shared datastore;
* :class:`DescriptorScrubber` below Python, for a worker's descriptors 1 and 2: what native libraries,
  ``os.write`` and subprocesses write there passes through a pipe and a scrubbing thread first.

All work line by line, so a secret is never split across two writes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import IO

from olivine.redaction import MIN_SECRET_CHARS, env_secrets, scrub_text


class Scrubber:
    """Scrubs text of the known secret values (environment + any added) and credential patterns."""

    def __init__(self, secrets: Iterable[str] = (), *, environ: Mapping[str, str] | None = None) -> None:
        self._secrets = set(env_secrets(environ))
        #: Called with the new values when :meth:`add` learns some (a :class:`DescriptorScrubber`'s
        #: pump process needs them too).
        self.on_add: list[Callable[[set[str]], None]] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if len(s) >= MIN_SECRET_CHARS} - self._secrets
        self._secrets.update(new)
        for listener in list(self.on_add) if new else ():
            listener(new)

    def known(self) -> set[str]:
        """The secret values this scrubber replaces (besides the credential patterns)."""
        return set(self._secrets)

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
    scrubber), for a worker, whose streams are its job log. Writes made below Python (C libraries,
    subprocesses) are covered by :func:`scrub_descriptors`."""
    import sys

    scrubber = scrubber or process_scrubber()
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if current is not None and not isinstance(current, ScrubbingStream):
            setattr(sys, name, ScrubbingStream(current, scrubber))


#: Linux's fcntl to enlarge a pipe.
_F_SETPIPE_SZ = 1031


class DescriptorScrubber:
    """Routes file descriptors (1 and 2) through a pipe read by a scrubbing process
    (:mod:`olivine.scrub_pump`), which writes each scrubbed line where the descriptor pointed before.

    :class:`ScrubbingStream` sees what Python code prints; this sees every byte written to the
    descriptors: by native libraries (``printf``, ``std::cerr``), by ``os.write``, and by subprocesses
    that inherited them. Descriptors that share one open file (a worker's stdout and stderr both in its
    job log) share one pipe, so their lines stay in order. The reader is a process, not a thread: native
    code that writes more than the pipe holds while it keeps the GIL would wait forever for a thread.
    What is still in the pipe when the process group is SIGKILLed is lost (it never reached the log).
    """

    def __init__(self, scrubber: Scrubber | None = None, fds: tuple[int, ...] = (1, 2)) -> None:
        import os

        self._scrubber = scrubber or process_scrubber()
        self._routes: list[_Route] = []
        self._synced = 0
        groups: dict[tuple[int, int], list[int]] = {}
        for fd in fds:
            try:
                st = os.fstat(fd)
            except OSError:
                continue  # closed: nothing to route
            groups.setdefault((st.st_dev, st.st_ino), []).append(fd)
        for group in groups.values():
            route = _Route(group)
            self._routes.append(route)
            route.send(self._scrubber.known())
        self._scrubber.on_add.append(self._send)

    def _send(self, secrets: set[str]) -> None:
        for route in self._routes:
            route.send(secrets)

    def sync(self, timeout_s: float = 2.0) -> bool:
        """Wait until every line written so far is in its target (a worker's log is about to be
        exported); False if that took longer than ``timeout_s``."""
        import time

        _flush_python_streams()
        deadline = time.monotonic() + timeout_s
        ok = True
        for route in self._routes:
            self._synced += 1
            ok = route.sync(self._synced, deadline) and ok
        return ok

    def close(self, timeout_s: float = 2.0) -> None:
        """Put the original descriptors back and let the pumps drain their pipes (up to ``timeout_s``: a
        subprocess that inherited a descriptor may keep a pipe open)."""
        _flush_python_streams()
        with contextlib.suppress(ValueError):
            self._scrubber.on_add.remove(self._send)
        routes, self._routes = self._routes, []
        for route in routes:
            route.close(timeout_s)


class _Route:
    """One pipe: the descriptors routed through it, what they pointed at before, its pump process and
    the control (secrets) and ack (sync) pipes to the pump."""

    def __init__(self, fds: list[int]) -> None:
        import os
        import subprocess
        import sys

        self.fds = fds
        self.original = os.dup(fds[0])  # not inheritable: user subprocesses get the pipe, not the log
        data_r, data_w = os.pipe()
        control_r, self.control = os.pipe()
        self.ack, ack_w = os.pipe()
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(data_w, _F_SETPIPE_SZ, 1 << 20)
        command = [sys.executable, "-m", "olivine.scrub_pump", "--data", str(data_r)]
        command += ["--target", str(self.original), "--control", str(control_r), "--ack", str(ack_w)]
        try:
            self.pump = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self.original,
                stderr=self.original,
                pass_fds=(data_r, self.original, control_r, ack_w),
            )
        finally:
            for fd in (data_r, control_r, ack_w):
                os.close(fd)
        for fd in fds:
            os.dup2(data_w, fd)
        os.close(data_w)

    def send(self, secrets: Iterable[str]) -> None:
        import json
        import os

        line = json.dumps({"secrets": sorted(secrets)}).encode() + b"\n"
        with contextlib.suppress(OSError):
            os.write(self.control, line)

    def sync(self, number: int, deadline: float) -> bool:
        import os
        import select
        import time

        from olivine.scrub_pump import SYNC

        token = str(number).encode()
        try:
            os.write(self.fds[0], SYNC + token + b"\0\n")
        except OSError:
            return False
        answer = b""
        while not answer.endswith(token + b"\n"):
            ready, _, _ = select.select([self.ack], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self.ack, 4096) if ready else b""
            if not chunk:
                return False
            answer += chunk
        return True

    def close(self, timeout_s: float) -> None:
        import os
        import subprocess

        for fd in self.fds:
            os.dup2(self.original, fd)  # closes this process's write end of the pipe
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.pump.wait(timeout_s)
        for fd in (self.original, self.control, self.ack):
            with contextlib.suppress(OSError):
                os.close(fd)


def _flush_python_streams() -> None:
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


_DESCRIPTORS: DescriptorScrubber | None = None


def scrub_descriptors(scrubber: Scrubber | None = None, fds: tuple[int, ...] = (1, 2)) -> DescriptorScrubber:
    """Route this process's descriptors ``fds`` through the scrubber (once; for a worker, whose
    descriptors are its job log). :func:`close_descriptor_scrubbing` drains them before exit."""
    global _DESCRIPTORS
    if _DESCRIPTORS is None:
        _DESCRIPTORS = DescriptorScrubber(scrubber, fds)
    return _DESCRIPTORS


def sync_descriptor_scrubbing() -> None:
    """Let the lines written so far through :func:`scrub_descriptors` reach their target (no-op if it
    was not called)."""
    if _DESCRIPTORS is not None:
        _DESCRIPTORS.sync()


def close_descriptor_scrubbing() -> None:
    """Drain and undo :func:`scrub_descriptors` (no-op if it was not called)."""
    global _DESCRIPTORS
    if _DESCRIPTORS is not None:
        _DESCRIPTORS.close()
        _DESCRIPTORS = None
