"""A search spread over a real Ray cluster gives the serial search's result: the same candidates (points,
model ids, statuses) and the same best, with a failing and an invalid candidate recorded on the way."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from conformance.host_suite import export_of
from integration.test_search import FAILING_SEARCH, TWO_SLOTS, outline, search_config
from integration.test_search_input_seam import FIXED_THEN_SEARCHED
from integration.test_search_pool import BUSY_FIDELITY
from olivine.engine.executor import SpreadSettings
from olivine.engine.ray_executor import RayExecutor
from olivine.engine.resolve import load_workflow
from olivine.engine.run import run_workflow
from olivine.engine.task_work import event_paths
from olivine.errors import EvaluationError
from olivine.hosts import service
from olivine.jobs.records import JobStatus
from on_ray.test_ray_host import _ray_env
from ray_head import RayHead

pytestmark = pytest.mark.ray


@pytest.fixture
def ray_driver(ray_head: RayHead) -> str:
    """The head's GCS address, for a driver in this process (see :mod:`ray_head` for its environment)."""
    return ray_head.gcs_address


def _run(folder: Path, cfg: dict[str, Any], address: str | None, workers: int = 2) -> dict[str, Any]:
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg, indent=2))
    executor = RayExecutor(SpreadSettings(workers=workers, num_cpus=1, address=address)) if address else None
    run_workflow(load_workflow(path), executor=executor)
    footprint: dict[str, Any] = json.loads((Path(cfg["engine"]["output_dir"]) / "footprint.json").read_text())
    return footprint


def test_ray_search_gives_the_serial_result_and_records_a_failing_candidate(
    tmp_path: Path, ray_driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="olivine.engine")
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    serial = _run(
        tmp_path / "a", search_config(tmp_path / "a", FAILING_SEARCH, strategy, latency_priority=-1), None
    )
    spread = _run(
        tmp_path / "b",
        search_config(tmp_path / "b", FAILING_SEARCH, strategy, latency_priority=-1),
        ray_driver,
    )
    assert "search over Ray: up to 2 candidate(s) at once, 1 CPU(s) each" in caplog.text
    assert outline(spread) == outline(serial)
    assert [c["status"] for c in spread["candidates"]] == [
        "evaluated",
        "evaluated",
        "invalid",
        "invalid",
        "failed",
    ]
    assert "OnnxConversion does not accept" in spread["candidates"][4]["error"]
    assert spread["best"] == serial["best"] and spread["best"] in ("c0001", "c0002")
    assert (
        spread["candidates"][0]["metrics"]["fidelity-score"]
        == serial["candidates"][0]["metrics"]["fidelity-score"]
    )
    assert (tmp_path / "b" / "out" / "model" / "model.onnx").is_file()
    # Every run landed in the one cache, and the engine's marker for the tasks is gone.
    assert not list((tmp_path / "b" / "cache").rglob(".olivine-spread-*"))


@pytest.mark.parametrize(
    ("order", "sampler"), [("joint", "random"), ("pass-by-pass", "random"), ("joint", "tpe")]
)
def test_ray_search_with_a_shared_prefix_and_goals_stops_where_the_serial_search_stops(
    tmp_path: Path, ray_driver: str, order: str, sampler: str
) -> None:
    strategy: dict[str, Any] = {
        "execution_order": order,
        "sampler": sampler,
        "seed": 5,
        "include_pass_params": False,
    }
    if sampler == "tpe":
        strategy["max_samples"] = 3  # TPE proposes from each result: one candidate at a time on Ray
    elif order == "joint":
        strategy["stop_when_goals_met"] = True
    serial = _run(
        tmp_path / "a", search_config(tmp_path / "a", TWO_SLOTS, strategy, latency_priority=-1), None
    )
    spread = _run(
        tmp_path / "b", search_config(tmp_path / "b", TWO_SLOTS, strategy, latency_priority=-1), ray_driver
    )
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    if order == "joint" and sampler == "random":
        assert len(serial["candidates"]) == 1  # the first candidate meets the goal: the search stops there


def test_ray_host_job_with_search_workers_gives_the_serial_result(
    ray_head: RayHead, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    env = _ray_env(home, ray_head.address, search_workers=2, search_task_cpus=1)
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    serial = _run(
        tmp_path / "a", search_config(tmp_path / "a", FAILING_SEARCH, strategy, latency_priority=-1), None
    )
    config = tmp_path / "b" / "cfg.json"
    config.write_text(
        json.dumps(search_config(tmp_path / "b", FAILING_SEARCH, strategy, latency_priority=-1))
    )
    job = env.submit(config).job
    assert job is not None
    done = env.wait(job.job_id)
    assert done.state is JobStatus.SUCCEEDED, done.message
    layout = export_of(done)
    spread = json.loads(layout.datastore.read_bytes(layout.path("output/footprint.json")))
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    log = "\n".join(service.logs(job.job_id, store=env.store))
    assert "search over Ray: up to 2 candidate(s) at once, 1.0 CPU(s) each" in log


def test_ray_host_job_with_search_workers_is_cancelled_while_candidates_run(
    ray_head: RayHead, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    env = _ray_env(home, ray_head.address, search_workers=2, search_task_cpus=1)
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    config = tmp_path / "cfg.json"
    slow = search_config(tmp_path, FAILING_SEARCH, strategy, latency_priority=-1, sleep_s=120.0)
    slow["engine"]["evaluate_input_model"] = False  # the candidates' evaluations sleep, on the cluster
    config.write_text(json.dumps(slow))
    job = env.submit(config).job
    assert job is not None
    running = env.wait_for(job.job_id, lambda j: "on the Ray cluster" in (j.phase or ""), timeout_s=180)
    assert "on the Ray cluster" in (running.phase or ""), running
    asked = time.monotonic()
    cancelled = service.cancel(job.job_id, store=env.store)
    # Stopped while its tasks sleep: not after them, and as cancelled (Ray's own SIGTERM handler, which
    # ray.init installs, would have made it a failure: "user code called sys.exit").
    assert cancelled.state is JobStatus.CANCELLED, cancelled.message
    assert time.monotonic() - asked < 60


def test_ray_tasks_running_at_once_are_pinned_to_disjoint_cpus_and_give_the_serial_result(
    tmp_path: Path, ray_driver: str
) -> None:
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    serial = _run(
        tmp_path / "a", search_config(tmp_path / "a", FAILING_SEARCH, strategy, latency_priority=-1), None
    )
    # Each evaluation sleeps, so the two task slots hold candidates at the same time.
    cfg = search_config(tmp_path / "b", FAILING_SEARCH, strategy, latency_priority=-1, sleep_s=1.5)
    spread = _run(tmp_path / "b", cfg, ray_driver)
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    assert all("ran_on" not in c for c in serial["candidates"])  # the serial search pins nothing
    ran = [c["ran_on"] for c in spread["candidates"] if c["status"] == "evaluated"]
    assert len(ran) == 2
    for where in ran:
        assert len(where["cpus"]) == 1 and where["threads_outside"] == 0 and where["evaluated_here"]
    first, second = ran
    assert first["started"] < second["ended"] and second["started"] < first["ended"]  # at the same time
    assert set(first["cpus"]).isdisjoint(second["cpus"])


@pytest.mark.parametrize("workers", [2, 1])
def test_ray_search_evaluates_the_input_model_in_a_task_while_the_shared_steps_run(
    tmp_path: Path, ray_driver: str, caplog: pytest.LogCaptureFixture, workers: int
) -> None:
    caplog.set_level("INFO", logger="olivine.engine")
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    serial = _run(
        tmp_path / "a",
        search_config(tmp_path / "a", FIXED_THEN_SEARCHED, strategy, latency_priority=-1),
        None,
    )
    spread = _run(
        tmp_path / "b",
        search_config(tmp_path / "b", FIXED_THEN_SEARCHED, strategy, latency_priority=-1),
        ray_driver,
        workers=workers,
    )
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    # Two slots: the input model's evaluation on one, the step every candidate shares on the other; one
    # slot: one after the other.
    meanwhile = "evaluating the input model on the Ray cluster (and running optimize meanwhile)"
    assert (meanwhile in caplog.text) == (workers == 2)
    assert "evaluating the input model on the Ray cluster" in caplog.text
    where = spread["input"]["ran_on"]
    assert len(where["cpus"]) == 1 and where["threads_outside"] == 0 and where["evaluated_here"]
    assert "ran_on" not in serial["input"]
    if workers == 2:
        # Its timed metrics ran in a task of their own after its untimed metrics (and after the shared
        # step beside them), and before any candidate; with one slot it was evaluated whole, alone.
        timed = where["timed"]
        assert len(timed["cpus"]) == 1 and timed["threads_outside"] == 0 and timed["evaluated_here"]
        first = min(c["ran_on"]["started"] for c in spread["candidates"] if c.get("ran_on"))
        assert where["ended"] <= timed["started"] <= timed["ended"] <= first
    else:
        assert "timed" not in where
    for key in ("fidelity-score", "size-bytes"):
        assert spread["input"]["metrics"][key]["value"] == serial["input"]["metrics"][key]["value"]
    assert spread["input"]["metrics"]["latency-avg"]["value"] > 0


def test_ray_search_input_model_failing_its_evaluation_fails_the_workflow_as_the_serial_search_does(
    tmp_path: Path, ray_driver: str
) -> None:
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    for folder, address in ((tmp_path / "a", None), (tmp_path / "b", ray_driver)):
        cfg = search_config(folder, FIXED_THEN_SEARCHED, strategy, latency_priority=-1)
        (folder / "fidelity.py").write_text(
            "def fidelity(model, device, execution_providers, input_model, sleep_s=0.0):\n"
            "    raise ValueError('no fidelity for this model')\n"
        )
        with pytest.raises(EvaluationError, match=r"metric 'fidelity' .*no fidelity for this model"):
            _run(folder, cfg, address)


def test_ray_search_times_each_candidate_alone_after_the_untimed_work(
    tmp_path: Path, ray_driver: str
) -> None:
    """The two phases: tasks realise the chains and the untimed metrics in parallel; then each candidate
    that can still meet its goals is timed by a task of its own, in proposal order, while no other task
    of the search runs: no timed interval overlaps any candidate's untimed interval."""
    passes = {
        "quant": [
            {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"},
            {"type": "OnnxFloatToFloat16"},
            {"type": "OnnxDynamicQuantization", "per_channel": False, "reduce_range": True},
        ]
    }
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}

    def config(folder: Path) -> dict[str, Any]:
        cfg = search_config(folder, passes, strategy, latency_priority=-1)
        (folder / "busy.py").write_text(BUSY_FIDELITY)
        metrics = cfg["evaluators"]["e"]["metrics"]
        metrics[0]["user_config"].update(user_script=str(folder / "busy.py"), evaluate_func_kwargs={})
        return cfg

    events: list[Any] = []
    serial = _run(tmp_path / "a", config(tmp_path / "a"), None)
    path = tmp_path / "b" / "cfg.json"
    path.write_text(json.dumps(config(tmp_path / "b"), indent=2))
    executor = RayExecutor(SpreadSettings(workers=2, num_cpus=1, address=ray_driver))
    run_workflow(load_workflow(path), listener=events.append, executor=executor)
    spread = json.loads((tmp_path / "b" / "out" / "footprint.json").read_text())
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    statuses = [c["status"] for c in spread["candidates"]]
    assert statuses == ["evaluated", "evaluated", "pruned", "evaluated"]  # the fp16 one missed its goal
    untimed = [(c["ran_on"]["started"], c["ran_on"]["ended"]) for c in spread["candidates"]]
    assert any(a[0] < b[1] and b[0] < a[1] for a, b in itertools.combinations(untimed, 2))  # in parallel
    # The head's node has 2 CPUs: a 1-CPU task does not hold its node, so search_timing auto times apart.
    assert not any(c["ran_on"]["timed_in_place"] for c in spread["candidates"])
    timed = [c["ran_on"].get("timed") for c in spread["candidates"]]
    assert timed[2] is None  # pruned: not timed
    spans = [(t["started"], t["ended"]) for t in timed if t is not None]
    assert len(spans) == 3 and all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # in order, apart
    for began, ended in spans:
        assert all(ended <= start or end <= began for start, end in untimed)
    for where in (t for t in timed if t is not None):
        assert len(where["cpus"]) == 1 and where["threads_outside"] == 0 and where["evaluated_here"]
        assert 0 < where["metrics_s"] <= where["ended"] - where["started"]
    for c in spread["candidates"]:
        assert ("latency-avg" in c["metrics"]) == (c["status"] != "pruned")
    # Each record and run folder is announced once, though the timing task and the engine (for the
    # pruned one) realise the candidates again from the cache.
    named = [str(event_paths(e)) for e in events if event_paths(e)]
    assert named and len(named) == len(set(named))
