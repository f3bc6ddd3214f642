"""A search spread over local worker processes (``search_workers`` on a LocalSystem / LocalWorker system)
gives the serial search's result; a worker that dies fails its candidate and the search goes on; a cancel
stops the pool."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from integration.test_search import FAILING_SEARCH, TWO_SLOTS, outline, search_config
from olivine.engine.executor import SpreadSettings
from olivine.engine.pool_executor import LocalPoolExecutor
from olivine.engine.pool_worker import start_workers
from olivine.engine.resolve import load_workflow
from olivine.engine.run import run_workflow
from olivine.errors import ConfigError, OlivineError, WorkflowCancelledError

pytestmark = pytest.mark.integration

STRATEGY = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}


@pytest.fixture(autouse=True)
def _cpu_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU claims of this test's workers in a folder of its own (other Olivine processes on the machine
    do not make it wait, nor does it make them wait)."""
    monkeypatch.setenv("OLIVINE_CPU_LOCK_DIR", str(tmp_path / "cpu-locks"))


def _run(folder: Path, cfg: dict[str, Any], executor: Any = None) -> dict[str, Any]:
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg, indent=2))
    run_workflow(load_workflow(path), executor=executor)
    footprint: dict[str, Any] = json.loads((Path(cfg["engine"]["output_dir"]) / "footprint.json").read_text())
    return footprint


def _pool(workers: int = 2) -> LocalPoolExecutor:
    return LocalPoolExecutor(SpreadSettings(workers=workers, num_cpus=1, executor="local"))


def test_pool_search_gives_the_serial_result_and_records_a_failing_candidate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="olivine")
    serial = _run(
        tmp_path / "a", search_config(tmp_path / "a", FAILING_SEARCH, STRATEGY, latency_priority=-1)
    )
    cfg = search_config(tmp_path / "b", FAILING_SEARCH, STRATEGY, latency_priority=-1)
    cfg["systems"] = {"here": {"type": "LocalSystem", "search_workers": 2, "search_task_cpus": 1}}
    cfg["engine"]["host"] = "here"
    spread = _run(tmp_path / "b", cfg)  # engine.host's search_workers: the pool
    assert "local search pool: up to 2 candidate(s) at once in worker processes, 1 CPU(s) each" in caplog.text
    assert "[worker " in caplog.text  # the workers' log lines reach the engine's log
    assert outline(spread) == outline(serial)
    assert [c["status"] for c in spread["candidates"]] == [
        "evaluated",
        "evaluated",
        "invalid",
        "invalid",
        "failed",
    ]
    assert "OnnxConversion does not accept" in spread["candidates"][4]["error"]
    assert spread["best"] == serial["best"]
    assert not list((tmp_path / "b" / "cache").rglob(".olivine-spread-*"))


@pytest.mark.parametrize(
    ("order", "sampler"),
    [("joint", "random"), pytest.param("pass-by-pass", "random", marks=pytest.mark.slow)],
)
def test_pool_search_with_a_shared_prefix_gives_the_serial_result(
    tmp_path: Path, order: str, sampler: str
) -> None:
    strategy = {"execution_order": order, "sampler": sampler, "seed": 5, "include_pass_params": False}
    serial = _run(tmp_path / "a", search_config(tmp_path / "a", TWO_SLOTS, strategy, latency_priority=-1))
    spread = _run(
        tmp_path / "b", search_config(tmp_path / "b", TWO_SLOTS, strategy, latency_priority=-1), _pool()
    )
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]


CRASHING_FIDELITY = '''
import os
import signal

import onnx


def fidelity(model, device, execution_providers, input_model):
    """1.0, but the process dies (SIGKILL) on a model with fp16 weights (the fp16 candidate)."""
    graph = onnx.load(str(model.onnx_path)).graph
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer):
        os.kill(os.getpid(), signal.SIGKILL)
    return 1.0
'''


def test_a_worker_that_dies_fails_its_candidate_and_the_search_goes_on(tmp_path: Path) -> None:
    passes = {
        "quant": [
            {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"},
            {"type": "OnnxFloatToFloat16"},
            {"type": "OnnxDynamicQuantization", "per_channel": False, "reduce_range": True},
        ]
    }
    cfg = search_config(tmp_path, passes, STRATEGY, latency_priority=-1)
    (tmp_path / "crash.py").write_text(CRASHING_FIDELITY)
    user = cfg["evaluators"]["e"]["metrics"][0]["user_config"]
    user.update(user_script=str(tmp_path / "crash.py"), evaluate_func_kwargs={})
    footprint = _run(tmp_path, cfg, _pool())
    statuses = {c["point"]["quant"]: c["status"] for c in footprint["candidates"]}
    assert statuses == {0: "evaluated", 1: "failed", 2: "evaluated"} or [
        c["status"] for c in footprint["candidates"]
    ] == ["evaluated", "evaluated", "failed", "evaluated"]
    failed = [c for c in footprint["candidates"] if c["status"] == "failed"]
    assert len(failed) == 1 and "died (SIGKILL)" in failed[0]["error"]
    assert footprint["best"] is not None


SLOW_FIDELITY = '''
import time


def fidelity(model, device, execution_providers, input_model):
    """1.0, after a long sleep for a candidate (not for the input model)."""
    if str(model.onnx_path) != str(input_model.onnx_path):
        time.sleep(60)
    return 1.0
'''


def test_a_cancel_stops_the_pool(tmp_path: Path) -> None:
    passes = {"quant": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"}}
    cfg = search_config(tmp_path, passes, STRATEGY, latency_priority=-1)
    (tmp_path / "slow.py").write_text(SLOW_FIDELITY)
    user = cfg["evaluators"]["e"]["metrics"][0]["user_config"]
    user.update(user_script=str(tmp_path / "slow.py"), evaluate_func_kwargs={})
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    pool = _pool()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_workflow(load_workflow(path), executor=pool, stop=stop)
        except BaseException as exc:  # recorded for the assertion
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "cache").rglob("evaluations/*.json")):
        time.sleep(0.1)  # the input model is evaluated: candidates go to the workers next
    while time.monotonic() < deadline and (len(pool._pool) < 2 or not all(w.ready for w in pool._pool)):
        time.sleep(0.1)  # a forked worker's pid is known once it said it is ready
    pids = [w.process.pid for w in pool._pool]
    time.sleep(2.0)  # the workers are inside their (sleeping) candidates
    started = time.monotonic()
    stop.set()
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - started < 15
    assert errors and isinstance(errors[0], WorkflowCancelledError)
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_search_workers_without_a_search_is_refused(tmp_path: Path) -> None:
    cfg = search_config(tmp_path, {"quant": {"type": "OnnxDynamicQuantization"}}, STRATEGY)
    del cfg["engine"]["search_strategy"]
    cfg["systems"] = {"here": {"type": "LocalSystem", "search_workers": 2}}
    cfg["engine"]["host"] = "here"
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"systems\.here\.search_workers: .*no engine\.search_strategy"):
        run_workflow(load_workflow(path))


def test_search_workers_with_an_unpinned_timed_metric_is_refused(tmp_path: Path) -> None:
    cfg = search_config(tmp_path, TWO_SLOTS, STRATEGY)
    cfg["systems"] = {"here": {"type": "LocalWorker", "search_workers": 2}}
    cfg["engine"]["host"] = "here"
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="intra_op_num_threads unset"):
        run_workflow(load_workflow(path))


BUSY_FIDELITY = '''
import time

import onnx


def fidelity(model, device, execution_providers, input_model):
    """0.0 for a model with fp16 weights (it fails the goal), else 1.0; after 0.4 s of busy CPU."""
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass
    graph = onnx.load(str(model.onnx_path)).graph
    return 0.0 if any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer) else 1.0
'''


def test_pool_times_each_candidate_alone_after_the_untimed_work(tmp_path: Path) -> None:
    """The two phases: workers realise the chains and the untimed metrics in parallel; then each
    candidate that can still meet its goals is timed, in proposal order, while no worker runs: no timed
    interval overlaps any candidate's untimed interval, and the workers use no CPU meanwhile."""
    passes = {
        "quant": [
            {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"},
            {"type": "OnnxFloatToFloat16"},
            {"type": "OnnxDynamicQuantization", "per_channel": False, "reduce_range": True},
        ]
    }

    def config(folder: Path) -> dict[str, Any]:
        cfg = search_config(folder, passes, STRATEGY, latency_priority=-1)
        (folder / "busy.py").write_text(BUSY_FIDELITY)
        metrics = cfg["evaluators"]["e"]["metrics"]
        metrics[0]["user_config"].update(user_script=str(folder / "busy.py"), evaluate_func_kwargs={})
        metrics[2]["sub_types"][0]["metric_config"] = {"warmup_num": 5, "repeat_test_num": 200}
        return cfg

    serial = _run(tmp_path / "a", config(tmp_path / "a"))
    spread = _run(tmp_path / "b", config(tmp_path / "b"), _pool())
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    statuses = [c["status"] for c in spread["candidates"]]
    assert statuses == ["evaluated", "evaluated", "pruned", "evaluated"]  # the fp16 one missed its goal
    untimed = [(c["ran_on"]["started"], c["ran_on"]["ended"]) for c in spread["candidates"]]
    assert len({c["ran_on"]["cpus"][0] for c in spread["candidates"]}) == 2  # both workers had work
    overlapping = [
        (a, b) for i, a in enumerate(untimed) for b in untimed[i + 1 :] if a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping  # the untimed work ran in parallel
    timed = [c["ran_on"].get("timed") for c in spread["candidates"]]
    assert timed[2] is None  # pruned: not timed
    spans = [(t["started"], t["ended"]) for t in timed if t is not None]
    assert len(spans) == 3 and spans == sorted(spans)  # in proposal order, one after another
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    for began, ended in spans:
        assert all(ended <= start or end <= began for start, end in untimed)
    assert all(t["pid"] == os.getpid() for t in timed if t is not None)  # in the engine's process
    # The input model too: its untimed metrics in a worker (beside the fixed prefix), timed here alone.
    reference = spread["input"]["ran_on"]
    assert reference["pid"] != os.getpid() and reference["evaluated_here"]
    assert reference["timed"]["pid"] == os.getpid()
    assert reference["ended"] <= reference["timed"]["started"] <= reference["timed"]["ended"] <= spans[0][0]
    assert (
        spread["input"]["metrics"]["fidelity-score"]["value"]
        == serial["input"]["metrics"]["fidelity-score"]["value"]
    )
    assert all(t["workers_cpu_s"] is not None and t["workers_cpu_s"] <= 0.05 for t in timed if t)
    assert all(
        c["metrics"]["latency-avg"]["value"] > 0 for c in spread["candidates"] if c["status"] != "pruned"
    )


BROKEN_FIDELITY = """
def fidelity(model, device, execution_providers, input_model):
    raise ValueError("the test's metric is broken")
"""


def test_an_input_model_whose_evaluation_fails_fails_the_pool_search_as_the_serial_one(
    tmp_path: Path,
) -> None:
    """The input model's untimed metrics run in a worker: their error ends the search with the serial
    search's error (type and message), and the pool's workers are gone."""
    errors: list[BaseException] = []
    for folder, executor in ((tmp_path / "a", None), (tmp_path / "b", _pool())):
        cfg = search_config(folder, {"quant": {"type": "OnnxDynamicQuantization"}}, STRATEGY)
        (folder / "broken.py").write_text(BROKEN_FIDELITY)
        user = cfg["evaluators"]["e"]["metrics"][0]["user_config"]
        user.update(user_script=str(folder / "broken.py"), evaluate_func_kwargs={})
        with pytest.raises(OlivineError) as caught:
            _run(folder, cfg, executor)
        errors.append(caught.value)
        if executor is not None:
            assert executor._pool == []  # closed: no worker left behind
    assert type(errors[1]) is type(errors[0]) and str(errors[1]) == str(errors[0])
    assert "the test's metric is broken" in str(errors[1])


def test_a_small_walk_that_cannot_stop_early_is_one_batch() -> None:
    """The whole walk in one untimed phase and one timed phase (one barrier), unless it may stop early
    (the untimed work done ahead would be dropped), is large, or is not joint."""
    pool = _pool()

    def walk(total: int | None, **strategy: Any) -> Any:
        settings = {"execution_order": "joint", "stop_when_goals_met": False, "max_time": None, **strategy}
        return SimpleNamespace(strategy=SimpleNamespace(**settings), total=total)

    assert pool.width == 16
    assert pool.batch_width(walk(20)) == 20
    assert pool.batch_width(walk(5)) == 16
    assert pool.batch_width(walk(20, stop_when_goals_met=True)) == 16
    assert pool.batch_width(walk(20, max_time=60)) == 16
    assert pool.batch_width(walk(20, execution_order="pass-by-pass")) == 16
    assert pool.batch_width(walk(1000)) == 16
    assert pool.batch_width(walk(None)) == 16


def test_the_first_worker_forks_the_others_after_its_imports() -> None:
    """One process imports; the other workers are its forks (its children, warm without a "warm"
    message). A forked worker that dies is reported with its signal (the forking worker reaps it and
    sends the status), and stopping the pool leaves no process behind."""
    workers = start_workers([1, 2, 3])
    try:
        assert [w.forked for w in workers] == [False, True, True]
        workers[0].send(("warm", ("json",)))
        for worker in workers:
            while not worker.ready:
                kind, value = worker.conn.recv()
                if kind == "ready":
                    worker.mark_ready(value)
        pids = [w.process.pid for w in workers]
        assert len(set(pids)) == 3 and pids[0] == workers[0].process.pid
        for pid in pids[1:]:
            assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pids[0]
        assert pids[1] is not None
        os.kill(pids[1], signal.SIGKILL)
        with pytest.raises(EOFError):
            while True:
                kind, value = workers[1].conn.recv()
                assert kind == "exited"
                workers[1].mark_exited(value)
        assert workers[1].process.exitcode == -signal.SIGKILL and not workers[1].process.is_alive()
        assert workers[2].process.is_alive() and workers[0].process.is_alive()  # the others go on
    finally:
        pool = _pool(3)
        pool._pool = workers
        pool.close()
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_warming_up_a_worker_imports_transformers_without_sklearn_or_scipy() -> None:
    """A worker imports transformers as the engine does (olivine.hf_import), not its eager integrations."""
    if importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("scikit-learn or transformers is not installed")
    probe = (
        "import sys; from olivine.engine.task_work import import_modules, WARM_TORCH_MODULES; "
        "import_modules(WARM_TORCH_MODULES); "
        "print(sorted(m for m in ('sklearn', 'scipy', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['transformers']"


def test_a_free_worker_takes_work_that_does_not_wait_for_a_shared_step_being_made(tmp_path: Path) -> None:
    """Candidate 1 makes the quantization pre-processing every dynamic quantization shares; the other
    worker takes the fp16 candidate (3) meanwhile, not candidate 2 (it would wait for that artifact).
    The candidates and the best are still the serial search's, in proposal order."""
    passes = {
        "quant": [
            {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"},
            {"type": "OnnxFloatToFloat16"},
        ]
    }
    serial = _run(tmp_path / "a", search_config(tmp_path / "a", passes, STRATEGY, latency_priority=-1))
    spread = _run(
        tmp_path / "b", search_config(tmp_path / "b", passes, STRATEGY, latency_priority=-1), _pool()
    )
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    started = [c["ran_on"]["started"] for c in spread["candidates"]]
    assert started[2] < started[1]  # the fp16 candidate started first: it needs no shared step
    assert started[0] < started[1]


def test_the_next_proposal_is_the_first_that_needs_no_shared_step_being_made() -> None:
    from collections import deque

    from olivine.engine.pool_executor import _take

    proposals: Any = [SimpleNamespace(number=n) for n in range(4)]
    needs = {0: frozenset({("m", "pre")}), 1: frozenset({("m", "pre")}), 2: frozenset(), 3: frozenset()}
    queue = deque(enumerate(proposals))
    assert _take(queue, needs, set())[0] == 0
    assert _take(queue, needs, {("m", "pre")})[0] == 2  # 1 would wait
    assert _take(queue, needs, {("m", "pre")})[0] == 3
    assert _take(queue, needs, {("m", "pre")})[0] == 1  # nothing else left: it waits
    queue = deque(enumerate(proposals))
    assert [_take(queue, needs, {("other", "pre")})[0] for _ in range(4)] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "pass_type", ["OnnxDynamicQuantization", "OnnxStaticQuantization", "OnnxQuantization"]
)
def test_quantization_passes_name_the_preprocessing_they_share(pass_type: str) -> None:
    from olivine.passes import PASSES

    cls = PASSES.get(pass_type)
    extra = {"data_config": "calib"} if pass_type != "OnnxDynamicQuantization" else {}
    assert cls.shared_steps(cls.config_class.model_validate(extra)) == ("quant_preprocess",)
    off = cls.config_class.model_validate({**extra, "quant_preprocess": False})
    assert cls.shared_steps(off) == ()
    assert PASSES.get("OnnxFloatToFloat16").shared_steps(None) == ()
