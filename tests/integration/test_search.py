"""Search end to end on a tiny ONNX MLP: every sampler and both execution orders, failures and invalid
combinations recorded while the search goes on, pruning, and reproducibility (same seed, same best)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.host_suite import HostEnv, export_of
from olivine.api import load, run_local
from olivine.hosts import service
from olivine.hosts.process import job_process_alive, worker_pid
from olivine.jobs.records import JobRecord, JobStatus
from tiny_models import write_onnx_mlp

pytestmark = pytest.mark.integration

FIDELITY_SCRIPT = '''
import numpy as np
import onnxruntime as ort


def fidelity(model, device, execution_providers, input_model, sleep_s=0.0):
    """1 - the largest absolute output difference from the input model, relative to its largest output."""
    import time

    time.sleep(sleep_s)
    x = np.linspace(-1.0, 1.0, 2 * 32, dtype=np.float32).reshape(2, 32)

    def run(handle):
        session = ort.InferenceSession(str(handle.onnx_path), providers=["CPUExecutionProvider"])
        return session.run(None, {"input": x})[0]

    out, ref = run(model), run(input_model)
    return float(1.0 - np.abs(out - ref).max() / np.abs(ref).max())
'''


def search_config(
    folder: Path,
    passes: dict[str, Any],
    strategy: Any,
    *,
    fidelity_goal: float = 0.5,
    workflow_id: str = "search",
    sleep_s: float = 0.0,
    latency_priority: int = 3,
) -> dict[str, Any]:
    """A search over ``passes`` for a tiny ONNX MLP: fidelity (custom, goal), size, then latency.

    Tests that compare two runs' best make latency report-only (``latency_priority=-1``): chains that
    produce the same model differ only in measured latency, and two runs measure differently.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fidelity.py").write_text(FIDELITY_SCRIPT)
    return {
        "workflow_id": workflow_id,
        "input_model": write_onnx_mlp(folder / "mlp"),
        "data_configs": [
            {
                "name": "dummy",
                "type": "DummyDataContainer",
                "load_dataset_config": {
                    "input_names": ["input"],
                    "input_shapes": [[2, 32]],
                    "input_types": ["float32"],
                },
            }
        ],
        "evaluators": {
            "e": {
                "metrics": [
                    {
                        "name": "fidelity",
                        "type": "custom",
                        "user_config": {
                            "user_script": str(folder / "fidelity.py"),
                            "evaluate_func": "fidelity",
                            "evaluate_func_kwargs": {"sleep_s": sleep_s},
                        },
                        "sub_types": [
                            {
                                "name": "score",
                                "priority": 1,
                                "higher_is_better": True,
                                "goal": {"type": "threshold", "value": fidelity_goal},
                            }
                        ],
                    },
                    {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 2}]},
                    {
                        "name": "latency",
                        "type": "latency",
                        "data_config": "dummy",
                        "sub_types": [
                            {
                                "name": "avg",
                                "priority": latency_priority,
                                "metric_config": {"warmup_num": 2, "repeat_test_num": 10},
                            }
                        ],
                    },
                ]
            }
        },
        "passes": passes,
        "engine": {
            "evaluator": "e",
            "search_strategy": strategy,
            "cache_dir": str(folder / "cache"),
            "output_dir": str(folder / "out"),
        },
    }


def run_config(folder: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg, indent=2))
    run_local(load(path))
    footprint: dict[str, Any] = json.loads((Path(cfg["engine"]["output_dir"]) / "footprint.json").read_text())
    return footprint


def outline(footprint: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What must not change between runs of the same config and seed (timings aside)."""
    return [
        (c["id"], json.dumps(c["point"], sort_keys=True), c["model_id"], c["status"])
        for c in footprint["candidates"]
    ]


QUANT_CHOICES = {
    "type": "OnnxDynamicQuantization",
    "per_channel": "SEARCHABLE_VALUES",
    "reduce_range": [True, False],
}
TWO_SLOTS = {
    "optimize": {
        "type": "OrtTransformersOptimization",
        "model_type": "bert",
        "opt_level": {"olive_parameter_type": "SearchParameter", "type": "Categorical", "support": [0, 1]},
    },
    "quant": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"},
}


#: One quantization alternative searched over 4 points and one that fails on an ONNX model (the other
#: search tests, serial, pooled and on Ray, share it).
FAILING_SEARCH = {
    "quant": [
        {
            "type": "OnnxDynamicQuantization",
            "precision": "int8",
            "per_channel": "SEARCHABLE_VALUES",
            "weight_type": {
                "olive_parameter_type": "SearchParameter",
                "type": "Categorical",
                "support": ["QInt8", "QUInt8"],
            },
        },
        {"type": "OnnxConversion"},  # refuses an ONNX model: this candidate fails
    ]
}


def test_search_sequential_records_failed_and_invalid_candidates_and_goes_on(tmp_path: Path) -> None:
    passes = FAILING_SEARCH
    strategy = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}
    first = run_config(tmp_path, search_config(tmp_path, passes, strategy))
    assert first["schema"] == "olivine.footprint/2"
    assert first["search"] == {
        "sampler": "sequential",
        "execution_order": "joint",
        "seed": 1,
        "space_size": 5,
    }
    assert [c["status"] for c in first["candidates"]] == [
        "evaluated",
        "evaluated",
        "invalid",
        "invalid",
        "failed",
    ]
    assert [c["point"] for c in first["candidates"][:2]] == [
        {"quant": 0, "quant.per_channel": True, "quant.weight_type": "QInt8"},
        {"quant": 0, "quant.per_channel": False, "quant.weight_type": "QInt8"},
    ]
    invalid, failed = first["candidates"][2], first["candidates"][4]
    assert "disagree" in invalid["error"] and invalid["model_id"] is None
    assert "OnnxConversion does not accept" in failed["error"] and failed["chain"][0]["run_key"] is None
    assert [o["key"] for o in first["objectives"]] == ["fidelity-score", "size-bytes", "latency-avg"]
    assert first["objectives"][0]["goal"] == {"type": "threshold", "value": 0.5, "resolved": 0.5}
    assert first["best"] in first["frontier"] and first["best"] in ("c0001", "c0002")
    best = next(c for c in first["candidates"] if c["id"] == first["best"])
    assert best["is_best"] and best["on_frontier"] and best["meets_goals"]
    latency = best["metrics"]["latency-avg"]
    assert len(latency["rounds"]) == 5 and latency["spread"] is not None and latency["spread"] >= 0
    assert first["input"]["id"] == "input" and first["input"]["metrics"]["size-bytes"]["value"] > 0
    assert first["machine"]["cores"] >= 1 and "onnxruntime" in first["machine"]["libraries"]
    assert (tmp_path / "out" / "model" / "model.onnx").is_file()

    again = run_config(tmp_path, search_config(tmp_path, passes, strategy))  # every run and evaluation cached
    assert outline(again) == outline(first) and again["best"] == first["best"]
    assert again["candidates"][0]["metrics"] == first["candidates"][0]["metrics"]


def test_search_prunes_the_timing_of_candidates_that_miss_a_goal(tmp_path: Path) -> None:
    strategy = {"sampler": "sequential", "include_pass_params": False}
    passes = {"quant": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"}}
    footprint = run_config(tmp_path, search_config(tmp_path, passes, strategy, fidelity_goal=1.5))
    assert [c["status"] for c in footprint["candidates"]] == ["pruned", "pruned"]
    for candidate in footprint["candidates"]:
        assert set(candidate["metrics"]) == {"fidelity-score", "size-bytes"}  # latency never measured
        assert candidate["meets_goals"] is False
    assert footprint["frontier"] == [] and footprint["best"] is not None  # still the best of what there is
    assert "latency-avg" in footprint["input"]["metrics"]


@pytest.mark.parametrize("sampler", ["sequential", "random", "tpe"])
@pytest.mark.parametrize("order", ["joint", "pass-by-pass"])
def test_search_every_sampler_and_order_is_reproducible(tmp_path: Path, sampler: str, order: str) -> None:
    strategy = {"execution_order": order, "sampler": sampler, "seed": 3, "include_pass_params": False}
    if sampler == "tpe":
        strategy["max_samples"] = 3
    first = run_config(
        tmp_path / "a", search_config(tmp_path / "a", TWO_SLOTS, strategy, latency_priority=-1)
    )
    fresh = run_config(
        tmp_path / "b", search_config(tmp_path / "b", TWO_SLOTS, strategy, latency_priority=-1)
    )
    assert outline(fresh) == outline(first) and fresh["best"] == first["best"]
    statuses = [c["status"] for c in first["candidates"]]
    assert set(statuses) == {"evaluated"}
    chains = [[step["name"] for step in c["chain"]] for c in first["candidates"]]
    if order == "joint":
        expected = 3 if sampler == "tpe" else 4
        assert chains == [["optimize", "quant"]] * expected
        assert len({c["model_id"] for c in first["candidates"]}) == expected
    else:
        # Each optimize point is proposed first (a chain of one pass), then each result in turn, best first,
        # gets every quant point: Olive's pass-by-pass walk.
        width = 2
        assert chains[:width] == [["optimize"]] * width
        assert chains[width:] == [["optimize", "quant"]] * (len(chains) - width)
        assert len(chains) == width + width * 2
        inner = first["candidates"][width]["point"]
        assert set(inner) == {"optimize.opt_level", "quant.per_channel"}  # the parent's choice too
    assert first["best"] is not None


def _kill(job: JobRecord) -> None:
    pid = worker_pid(job)
    assert pid is not None and job_process_alive(job)
    os.killpg(pid, signal.SIGKILL)  # the worker leads its own session


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostEnv]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    (home / "hosts.yaml").write_text("hosts:\n  worker: {type: LocalWorker, cancel_grace_s: 30}\n")
    env = HostEnv(home=home, host_name="worker", kill_worker=_kill)
    yield env
    for job in env.store.list():
        if job_process_alive(job):
            _kill(job)


def test_search_resumed_after_its_worker_is_killed_gives_the_uninterrupted_result(
    env: HostEnv, tmp_path: Path
) -> None:
    strategy = {"sampler": "random", "seed": 5, "include_pass_params": False}
    passes = {"quant": QUANT_CHOICES}
    reference = run_config(
        tmp_path / "ref", search_config(tmp_path / "ref", passes, strategy, latency_priority=-1)
    )

    folder = tmp_path / "job"
    cfg = search_config(folder, passes, strategy, sleep_s=1.0, latency_priority=-1)
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg, indent=2))
    job = env.submit(path).job
    assert job is not None
    # Killed while the second candidate is being evaluated: the first one is finished and exported.
    busy = env.wait_for(job.job_id, lambda j: "candidate 2/4: evaluating" in (j.current_pass or ""))
    _kill(busy)
    failed = env.wait_for(job.job_id, lambda j: j.state.is_terminal(), timeout_s=15)
    assert failed.state is JobStatus.FAILED

    resumed = service.resume(job.job_id, store=env.store, profiles=env.profiles).job
    assert resumed is not None
    done = env.wait(resumed.job_id)
    assert done.state is JobStatus.SUCCEEDED, done.message
    layout = export_of(done)
    footprint = json.loads(layout.datastore.read_bytes(layout.path("output/footprint.json")))
    assert outline(footprint) == outline(reference) and footprint["best"] == reference["best"]
    assert footprint["frontier"] == reference["frontier"]
    first_fidelity = footprint["candidates"][0]["metrics"]["fidelity-score"]
    assert first_fidelity == reference["candidates"][0]["metrics"]["fidelity-score"]
    log = "\n".join(service.logs(resumed.job_id, store=env.store))
    assert "evaluate quant: cache hit" in log  # the first candidate was not evaluated again


def _evaluation_parts(cache: Path) -> list[str]:
    return sorted(json.loads(p.read_text())["part"] for p in cache.glob("*/evaluations/*.json"))


def test_search_times_the_input_model_with_fewer_runs_when_no_goal_needs_it(tmp_path: Path) -> None:
    strategy = {"sampler": "sequential", "include_pass_params": False}
    passes = {"quant": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"}}
    footprint = run_config(tmp_path / "a", search_config(tmp_path / "a", passes, strategy))
    assert footprint["input"]["timing"] == {"reference": True, "warmup_num": 3, "repeat_test_num": 10}
    assert len(footprint["input"]["metrics"]["latency-avg"]["rounds"]) == 5  # still rounds with a spread
    assert "timing" not in footprint["candidates"][0]
    # Candidates are timed in full; only the input model's timed part is the reference one.
    parts = _evaluation_parts(tmp_path / "a" / "cache")
    assert parts.count("timed-reference") == 1 and parts.count("timed") == 2

    # A goal that resolves against the input model's latency needs it measured like the candidates.
    cfg = search_config(tmp_path / "b", passes, strategy)
    latency = cfg["evaluators"]["e"]["metrics"][2]
    latency["sub_types"][0]["goal"] = {"type": "max-degradation", "value": 1000.0}
    footprint = run_config(tmp_path / "b", cfg)
    assert "timing" not in footprint["input"]
    assert "timed-reference" not in _evaluation_parts(tmp_path / "b" / "cache")


def test_search_output_model_num_keeps_the_top_ranked_frontier_models(tmp_path: Path) -> None:
    passes = {"quant": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"}}
    strategy: dict[str, Any] = {"sampler": "sequential", "include_pass_params": False}
    every = run_config(tmp_path / "a", search_config(tmp_path / "a", passes, strategy))
    assert sorted(every["output_models"]) == sorted(every["frontier"])
    assert every["output_models"][0] == every["best"]
    one = run_config(
        tmp_path / "b", search_config(tmp_path / "b", passes, {**strategy, "output_model_num": 1})
    )
    assert one["output_models"] == [one["best"]]
