"""Exclusive CPUs (olivine.engine.affinity): claims by two processes are disjoint, a killed holder's CPUs
come free, every thread (already running or started later) is pinned, and the previous affinity comes
back on exit."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from olivine.engine import affinity
from olivine.engine.affinity import exclusive_cpus
from olivine.errors import HostError

pytestmark = pytest.mark.skipif(not affinity.supported(), reason="CPU pinning is Linux-only")

ALLOWED = affinity.allowed_cpus()

HOLDER = """
import sys, time
from olivine.engine.affinity import escaped_threads, exclusive_cpus
with exclusive_cpus(int(sys.argv[1])) as cpus:
    print(",".join(map(str, cpus)), len(escaped_threads(cpus)), flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "locks"
    monkeypatch.setenv(affinity.LOCK_DIR_ENV, str(folder))
    return folder


def _holder(count: int, hold_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(count), str(hold_s)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _stop(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _claimed(proc: subprocess.Popen[str]) -> tuple[set[int], int]:
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line, "the holder printed nothing"
    return {int(c) for c in line[0].split(",")}, int(line[1])


@pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two CPUs")
def test_two_processes_get_disjoint_cpus_and_every_thread_of_each_is_pinned() -> None:
    first, second = _holder(1, 3), _holder(1, 3)
    try:
        (cpus_a, escaped_a), (cpus_b, escaped_b) = _claimed(first), _claimed(second)
    finally:
        _stop(first, second)
    assert len(cpus_a) == len(cpus_b) == 1 and not cpus_a & cpus_b
    assert cpus_a | cpus_b <= set(ALLOWED)
    assert escaped_a == escaped_b == 0


def test_a_killed_holder_releases_its_cpus_and_a_waiting_claim_then_gets_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="olivine.engine")
    holder = _holder(len(ALLOWED), 60)
    try:
        held, _ = _claimed(holder)
        assert held == set(ALLOWED)
        got: list[tuple[int, ...]] = []

        def claim() -> None:
            with exclusive_cpus(1) as cpus:
                got.append(cpus)

        waiter = threading.Thread(target=claim)
        waiter.start()
        deadline = time.monotonic() + 10
        while "waiting for 1 free CPU(s)" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "waiting for 1 free CPU(s)" in caplog.text and f"pid {holder.pid}" in caplog.text
        assert not got  # every CPU is held: the claim waits
        os.kill(holder.pid, signal.SIGKILL)
        waiter.join(timeout=10)
        assert len(got) == 1 and len(got[0]) == 1 and got[0][0] in ALLOWED
    finally:
        _stop(holder)


def test_threads_running_before_and_started_inside_are_pinned_and_all_restored_on_exit() -> None:
    before = os.sched_getaffinity(0)
    stop = threading.Event()
    tids: list[int] = []

    def idle() -> None:
        tids.append(threading.get_native_id())
        stop.wait()

    old = threading.Thread(target=idle)
    old.start()
    while not tids:
        time.sleep(0.01)
    try:
        with exclusive_cpus(1) as cpus:
            assert len(cpus) == 1 and cpus[0] in ALLOWED
            assert os.sched_getaffinity(0) == set(cpus)
            assert os.sched_getaffinity(tids[0]) == set(cpus)  # already running: pinned too
            new = threading.Thread(target=idle)
            new.start()
            while len(tids) < 2:
                time.sleep(0.01)
            assert os.sched_getaffinity(tids[1]) == set(cpus)  # started inside: inherits
            assert affinity.escaped_threads(cpus) == {}
        assert os.sched_getaffinity(0) == before
        assert os.sched_getaffinity(tids[0]) == before
        assert os.sched_getaffinity(tids[1]) == before
    finally:
        stop.set()
        old.join()
    # Released: the next claim gets CPUs again at once (no wait for our own earlier claim).
    with exclusive_cpus(len(ALLOWED)) as again:
        assert again == ALLOWED


def test_asking_for_more_cpus_than_allowed_or_none_is_a_clear_error() -> None:
    too_many = rf"asked for {len(ALLOWED) + 1} CPU\(s\) but this process may use"
    with pytest.raises(HostError, match=too_many), exclusive_cpus(len(ALLOWED) + 1):
        pass
    with pytest.raises(HostError, match="at least 1"), exclusive_cpus(0):
        pass


def test_the_lock_folder_is_per_user_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(affinity.LOCK_DIR_ENV)
    assert affinity.lock_dir().name == f"olivine-cpus-{os.getuid()}"


def _ort_session() -> Any:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    # No intra_op_num_threads: onnxruntime sizes its pool to the machine's cores and pins the pool threads.
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.ones((64, 64), np.float32)})
    return session


@pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two CPUs")
def test_onnxruntime_default_sessions_stay_on_a_task_s_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime 1.32 pins its default pool's threads to cores of its choosing: with plain pinning to
    CPU 0 its pool thread went to CPU 1 (seen on this 2-core machine). A task steers such sessions."""
    from olivine.engine.task_work import _own_cpus

    monkeypatch.setattr(affinity, "allowed_cpus", lambda: (ALLOWED[0],))  # the first CPU, as seen on Ray
    with _own_cpus(1) as watcher:
        session = _ort_session()
        assert affinity.escaped_threads(watcher.cpus) == {}
        assert session.get_session_options().intra_op_num_threads == 1
        del session
    assert watcher.outside == set()


def test_the_task_watcher_pins_back_and_counts_a_thread_that_leaves_the_claimed_cpus() -> None:
    from olivine.engine.task_work import _own_cpus

    if len(ALLOWED) < 2:
        pytest.skip("needs two CPUs")
    left = threading.Event()
    stop = threading.Event()

    def rogue() -> None:
        os.sched_setaffinity(0, set(ALLOWED))  # a library pinning its own thread where it likes
        left.set()
        stop.wait()

    with _own_cpus(1) as watcher:
        assert os.environ["OMP_NUM_THREADS"] == "1"
        assert affinity.escaped_threads(watcher.cpus) == {}
        thread = threading.Thread(target=rogue)
        thread.start()
        left.wait()
        deadline = time.monotonic() + 10
        while not watcher.outside and time.monotonic() < deadline:
            time.sleep(0.05)
        assert affinity.escaped_threads(watcher.cpus) == {}  # pinned back
        stop.set()
        thread.join()
    assert len(watcher.outside) == 1
