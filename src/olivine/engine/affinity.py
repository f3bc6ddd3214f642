"""Exclusive CPUs for a task process: timed runs that share no CPU with other Olivine work.

:func:`exclusive_cpus` claims CPUs out of this process's allowed set that no other Olivine process on
this machine holds, and pins every thread of this process to them for the duration of a ``with`` block:

- A claim is an exclusive ``flock`` on one file per CPU in a per-user lock folder (``OLIVINE_CPU_LOCK_DIR``
  overrides it). The kernel drops a ``flock`` when its process dies, so a killed task never leaks a CPU.
- Every thread is pinned (each tid in ``/proc/self/task``), not only the calling one: onnxruntime, torch
  and Ray already have threads running. Threads created later inherit the affinity of the thread that
  creates them (Linux ``clone``), so thread pools built inside the block stay on the claimed CPUs.
- When every CPU is held, it waits (one log line) until enough are free; a claim takes all its CPUs at
  once or none, so two processes that each need two never deadlock holding one each.
- On exit it restores each thread's previous affinity and releases the CPUs.

Limits: only Olivine processes that claim CPUs through this function are kept apart; other processes on
the machine are not controlled. CPUs share the L3 cache and memory bandwidth, and on a VM two vCPUs may be
SMT siblings of one physical core on the host. A thread that sets its own affinity afterwards (a library
pinning its pool to cores of its choosing) can leave the set; :func:`escaped_threads` finds such threads.

Non-Linux: yields ``()`` and pins nothing.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from olivine.errors import HostError

logger = logging.getLogger("olivine.engine")

LOCK_DIR_ENV = "OLIVINE_CPU_LOCK_DIR"
_POLL_S = 0.1  # how often a waiting claim tries again
_TASKS = Path("/proc/self/task")


def supported() -> bool:
    """Whether this platform can pin threads (Linux: ``sched_setaffinity`` and ``/proc/self/task``)."""
    return hasattr(os, "sched_setaffinity") and _TASKS.is_dir()


def lock_dir() -> Path:
    """The folder of the per-CPU lock files: ``OLIVINE_CPU_LOCK_DIR``, else one per user in the temp dir."""
    configured = os.environ.get(LOCK_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"olivine-cpus-{os.getuid()}"


def allowed_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on (its affinity), sorted; () where that is unknown."""
    if not hasattr(os, "sched_getaffinity"):
        return ()
    return tuple(sorted(os.sched_getaffinity(0)))


def _thread_ids() -> set[int]:
    ids: set[int] = set()
    with suppress(FileNotFoundError):
        for entry in os.scandir(_TASKS):
            if entry.name.isdigit():
                ids.add(int(entry.name))
    return ids


def thread_affinities() -> dict[int, frozenset[int]]:
    """Every thread of this process and the CPUs it may run on."""
    found: dict[int, frozenset[int]] = {}
    for tid in _thread_ids():
        with suppress(ProcessLookupError, PermissionError):
            found[tid] = frozenset(os.sched_getaffinity(tid))
    return found


def escaped_threads(cpus: tuple[int, ...]) -> dict[int, frozenset[int]]:
    """The threads of this process allowed on a CPU outside ``cpus`` (empty: every thread is inside)."""
    inside = set(cpus)
    return {tid: mask for tid, mask in thread_affinities().items() if not mask <= inside}


def _pin_all(cpus: set[int], before: dict[int, frozenset[int]]) -> None:
    """Pin every thread to ``cpus``, recording its previous set in ``before``. The calling thread goes
    first (threads it starts inherit); passes repeat until one finds no thread it has not pinned yet (a
    thread started meanwhile by a thread not yet pinned)."""
    import threading

    before[threading.get_native_id()] = frozenset(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus)
    while True:
        new = _thread_ids() - before.keys()
        if not new:
            return
        for tid in new:
            try:
                before[tid] = frozenset(os.sched_getaffinity(tid))
                os.sched_setaffinity(tid, cpus)
            except (ProcessLookupError, PermissionError):
                before[tid] = frozenset()  # it ended (or is not ours to move): nothing to restore


def _restore(before: dict[int, frozenset[int]], fallback: frozenset[int]) -> None:
    """Give each thread its previous set back; threads started inside the block get ``fallback`` (the
    calling thread's previous set)."""
    for tid in _thread_ids():
        mask = before.get(tid) or fallback
        with suppress(ProcessLookupError, PermissionError, OSError):
            os.sched_setaffinity(tid, mask)


class _Claim:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.held: dict[int, int] = {}  # cpu -> fd of its locked file

    def try_cpu(self, cpu: int) -> bool:
        fd = os.open(self.folder / f"cpu-{cpu}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it: for the waiting log line
        self.held[cpu] = fd
        return True

    def holder(self, cpu: int) -> str:
        try:
            return (self.folder / f"cpu-{cpu}.lock").read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        for fd in self.held.values():
            with suppress(OSError):
                os.close(fd)  # closing the only descriptor drops the flock
        self.held.clear()


def _claim(count: int, allowed: tuple[int, ...], folder: Path) -> _Claim:
    claim = _Claim(folder)
    waiting_since: float | None = None
    # Start the scan at a place of our own so that claims made at the same moment rarely collide.
    start = os.getpid() % len(allowed)
    order = allowed[start:] + allowed[:start]
    while True:
        for cpu in order:
            if claim.try_cpu(cpu) and len(claim.held) == count:
                if waiting_since is not None:
                    logger.info(
                        "exclusive CPUs: got CPU(s) %s after %.1f s",
                        ",".join(map(str, sorted(claim.held))),
                        time.monotonic() - waiting_since,
                    )
                return claim
        claim.release()  # all or none: never sit on some CPUs while waiting for more
        if waiting_since is None:
            waiting_since = time.monotonic()
            holders = ", ".join(f"CPU {cpu}: pid {claim.holder(cpu)}" for cpu in allowed)
            logger.info(
                "exclusive CPUs: waiting for %d free CPU(s) of %d; held by other Olivine processes (%s)",
                count,
                len(allowed),
                holders,
            )
        time.sleep(_POLL_S)


@contextmanager
def exclusive_cpus(count: int) -> Iterator[tuple[int, ...]]:
    """Claim ``count`` CPUs no other Olivine process holds and pin every thread of this process to them;
    yields their ids (sorted). See the module docstring. Non-Linux: yields ``()``, pins nothing."""
    if count < 1:
        raise HostError(f"exclusive CPUs: asked for {count} CPU(s); at least 1")
    if not supported():
        yield ()
        return
    allowed = allowed_cpus()
    if count > len(allowed):
        raise HostError(
            f"exclusive CPUs: asked for {count} CPU(s) but this process may use only {len(allowed)} "
            f"(CPUs {','.join(map(str, allowed))}); ask for at most {len(allowed)}"
        )
    folder = lock_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    claim = _claim(count, allowed, folder)
    cpus = tuple(sorted(claim.held))
    fallback = frozenset(os.sched_getaffinity(0))
    before: dict[int, frozenset[int]] = {}
    try:
        _pin_all(set(cpus), before)
        yield cpus
    finally:
        try:
            _restore(before, fallback)
        finally:
            claim.release()
