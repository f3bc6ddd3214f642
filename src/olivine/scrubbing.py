"""Scrub credentials where text leaves the process: log handlers and the worker's stdout/stderr.

:mod:`olivine.datastores.redact` knows what a credential looks like (URL user-info, SAS query strings,
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
    scrubber), for a worker, whose streams are its job log. Writes made below Python (C libraries,
    subprocesses) are covered by :func:`scrub_descriptors`."""
    import sys

    scrubber = scrubber or process_scrubber()
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if current is not None and not isinstance(current, ScrubbingStream):
            setattr(sys, name, ScrubbingStream(current, scrubber))


#: Lines without a newline are held at most this long before they are written out (a progress bar).
_IDLE_FLUSH_S = 1.0
#: A partial line longer than this is written out without waiting for its newline.
_MAX_PENDING = 64 * 1024
#: Linux's fcntl to enlarge a pipe (not exported by the fcntl module before Python 3.10 everywhere).
_F_SETPIPE_SZ = 1031


class DescriptorScrubber:
    """Routes file descriptors (1 and 2) through a pipe whose reader thread scrubs each line before it
    writes it where the descriptor pointed before.

    :class:`ScrubbingStream` sees what Python code prints; this sees every byte written to the
    descriptors: by native libraries (``printf``, ``std::cerr``), by ``os.write``, and by subprocesses
    that inherited them. Descriptors that share one open file (a worker's stdout and stderr both in its
    job log) share one pipe, so their lines stay in order.

    Limits: what is still in the pipe when the process is SIGKILLed is lost (it never reached the log);
    native code that writes more than the pipe holds (1 MiB where Linux allows it) while holding the
    GIL would wait for the reader thread, which needs the GIL: that code would block.
    """

    def __init__(self, scrubber: Scrubber | None = None, fds: tuple[int, ...] = (1, 2)) -> None:
        import os

        self._scrubber = scrubber or process_scrubber()
        self._routes: list[tuple[list[int], int, int]] = []  # (fds, saved original, pipe read end)
        self._threads: list[threading.Thread] = []
        self._busy: set[int] = set()  # read ends whose reader holds bytes it has not written yet
        groups: dict[tuple[int, int, int], list[int]] = {}
        for fd in fds:
            try:
                st = os.fstat(fd)
            except OSError:
                continue  # closed: nothing to route
            # The same open file (dup'ed) shares position and flags; two opens of one file do not,
            # but writing both through one pipe is still right for an append-mode log.
            groups.setdefault((st.st_dev, st.st_ino, st.st_mode), []).append(fd)
        for group in groups.values():
            saved = os.dup(group[0])
            read_end, write_end = os.pipe()
            with contextlib.suppress(OSError):
                import fcntl

                fcntl.fcntl(write_end, _F_SETPIPE_SZ, 1 << 20)
            for fd in group:
                os.dup2(write_end, fd)
            os.close(write_end)
            os.set_inheritable(saved, False)
            os.set_inheritable(read_end, False)
            self._routes.append((group, saved, read_end))
            thread = threading.Thread(
                target=self._pump, args=(read_end, saved), name="olivine-fd-scrub", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _pump(self, read_end: int, target: int) -> None:
        import os
        import select

        pending = b""
        while True:
            ready, _, _ = select.select([read_end], [], [], _IDLE_FLUSH_S if pending else None)
            if not ready:  # a partial line sat idle: write it out
                self._write(target, pending)
                pending = b""
                continue
            self._busy.add(read_end)  # before the read: sync() must not see an empty pipe and no work
            try:
                chunk = os.read(read_end, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:  # every write end is closed
                self._write(target, pending)
                os.close(read_end)
                self._busy.discard(read_end)
                return
            head, sep, pending = (pending + chunk).rpartition(b"\n")
            if sep:
                self._write(target, head + sep)
            if len(pending) > _MAX_PENDING:
                self._write(target, pending)
                pending = b""
            self._busy.discard(read_end)

    def _write(self, target: int, data: bytes) -> None:
        import os

        if not data:
            return
        text = self._scrubber(data.decode("utf-8", "surrogateescape"))
        out = text.encode("utf-8", "surrogateescape")
        with contextlib.suppress(OSError):  # the log is gone: nothing left to tell
            while out:
                out = out[os.write(target, out) :]

    def sync(self, timeout_s: float = 2.0) -> bool:
        """Wait until every complete line written so far is in its target (a worker's log is about to
        be exported); False if that took longer than ``timeout_s``."""
        import fcntl
        import sys
        import termios
        import time

        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        deadline = time.monotonic() + timeout_s
        buffered = bytearray(4)
        for _, _, read_end in self._routes:
            while True:
                try:
                    fcntl.ioctl(read_end, termios.FIONREAD, buffered)
                except OSError:
                    break  # closed: its reader is done
                # In this order: bytes the reader took out of the pipe are marked busy before the read.
                if int.from_bytes(buffered, sys.byteorder) == 0 and read_end not in self._busy:
                    break
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.002)
        return True

    def close(self, timeout_s: float = 2.0) -> None:
        """Put the original descriptors back and let the reader threads drain the pipes (up to
        ``timeout_s``: a subprocess that inherited a descriptor may keep a pipe open)."""
        import os
        import sys

        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        routes, self._routes = self._routes, []
        for fds, saved, _ in routes:
            for fd in fds:
                os.dup2(saved, fd)  # closes this process's write end of the pipe
        for thread, (_, saved, _) in zip(self._threads, routes, strict=True):
            thread.join(timeout_s)
            if not thread.is_alive():  # a live reader still writes to it (and its number must not be reused)
                os.close(saved)
        self._threads = []


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
