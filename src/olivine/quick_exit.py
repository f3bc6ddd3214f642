"""Let a process that loaded PyTorch exit in a fraction of a second instead of more than one.

At exit CPython frees every module and runs a last garbage collection over all objects. With torch and
transformers loaded that is over a million objects, and it took 1.1-1.6 s of a fresh ``olivine run``
here (``import torch`` alone: ~0.6 s), all after the output was printed. :func:`prepare_exit` moves
every live object into the collector's permanent generation (:func:`gc.freeze`), which that last
collection skips. Everything else about exiting is unchanged: exit codes, atexit handlers, and modules
being cleared, which closes and flushes the files they hold through reference counting. (A file that is
only reachable through a reference cycle is not reliably flushed at exit by CPython either way.)
"""

from __future__ import annotations

import gc


def prepare_exit() -> None:
    """Call right before the process exits (never in a process that goes on running)."""
    gc.freeze()
