"""The scrubbing pump: ``python -m olivine.scrub_pump`` copies a pipe to a file descriptor line by line,
scrubbing credentials from each line (:mod:`olivine.scrubbing`, :class:`DescriptorScrubber`).

It runs as its own process, not as a thread of the process whose output it scrubs: native code that
writes more than a pipe holds while it keeps Python's GIL would wait forever for a reader thread that
needs that GIL. Its arguments are four inherited descriptors:

    --data     the pipe's read end (the scrubbed process's stdout/stderr point at its write end)
    --target   where the scrubbed lines go (the job log)
    --control  JSON lines ``{"secrets": [...]}``: values to scrub besides its environment's
    --ack      where it answers a sync marker (:data:`SYNC`) once every byte before it is written

It ignores SIGTERM, SIGINT and SIGHUP (the process group it shares may get them) and ends when every
write end of the data pipe is closed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal

#: A sync marker is ``SYNC + <number> + b"\\0\\n"`` written into the data pipe (atomically: < PIPE_BUF).
SYNC = b"\0olivine-sync:"
#: Lines without a newline are held at most this long before they are written out (a progress bar).
IDLE_FLUSH_S = 1.0
#: A partial line longer than this is written out without waiting for its newline.
MAX_PENDING = 64 * 1024


class Pump:
    def __init__(self, data: int, target: int, control: int, ack: int) -> None:
        from olivine.scrubbing import Scrubber

        self.data, self.target, self.control, self.ack = data, target, control, ack
        self.scrubber = Scrubber()
        self.pending = b""
        self.control_buffer = b""

    def run(self) -> None:
        watched = [self.control, self.data]
        while True:
            ready, _, _ = select.select(watched, [], [], IDLE_FLUSH_S if self.pending else None)
            if not ready:  # a partial line sat idle: write it out
                self._write(self.pending)
                self.pending = b""
                continue
            if self.control in ready and not self._read_control():
                watched.remove(self.control)
            if self.data in ready:
                chunk = _read(self.data)
                if not chunk:  # every write end is closed
                    self._write(self.pending)
                    return
                self._take(chunk)

    def _read_control(self) -> bool:
        chunk = _read(self.control)
        if not chunk:
            return False
        head, _, self.control_buffer = (self.control_buffer + chunk).rpartition(b"\n")
        for line in head.splitlines():
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                self.scrubber.add(str(s) for s in json.loads(line).get("secrets", []))
        return True

    def _take(self, chunk: bytes) -> None:
        data = self.pending + chunk
        while SYNC in data:
            before, _, rest = data.partition(SYNC)
            token, sep, after = rest.partition(b"\0\n")
            if not sep:  # the marker is not complete yet
                break
            self._write(before)  # everything before the marker, a partial line too
            with contextlib.suppress(OSError):
                os.write(self.ack, token + b"\n")
            data = after
        head, sep, self.pending = data.rpartition(b"\n")
        if sep:
            self._write(head + sep)
        if len(self.pending) > MAX_PENDING and SYNC not in self.pending:
            self._write(self.pending)
            self.pending = b""

    def _write(self, data: bytes) -> None:
        if not data:
            return
        out = self.scrubber(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        with contextlib.suppress(OSError):  # the target is gone: nothing left to tell
            while out:
                out = out[os.write(self.target, out) :]


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return b""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m olivine.scrub_pump", description=__doc__.splitlines()[0])
    for name in ("data", "target", "control", "ack"):
        parser.add_argument(f"--{name}", type=int, required=True)
    args = parser.parse_args()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    Pump(args.data, args.target, args.control, args.ack).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
