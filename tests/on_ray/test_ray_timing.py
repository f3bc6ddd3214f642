"""Where a search over Ray times its candidates (``search_timing``): under ``auto``, a task that holds every
CPU of its node (here a real head with one CPU) times its candidate itself, with no barrier and no second
task; ``apart`` times every candidate in a task of its own after the batch's untimed work. Either way the
search gives the serial run's candidates and best model. (A node with room for two tasks times apart
under ``auto``: ``test_ray_search.py``; two one-CPU nodes: ``test_ray_multinode.py``.)"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from integration.test_search import outline, search_config
from integration.test_search_pool import BUSY_FIDELITY
from olivine.engine.affinity import LOCK_DIR_ENV
from olivine.engine.executor import SpreadSettings
from olivine.engine.ray_executor import RayExecutor
from olivine.engine.resolve import load_workflow
from olivine.engine.run import run_workflow
from ray_head import RayHead

pytestmark = pytest.mark.ray

#: Three searched quantizations; the fp16 one misses the fidelity goal on its untimed metrics (pruned).
PASSES = {
    "quant": [
        {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"},
        {"type": "OnnxFloatToFloat16"},
        {"type": "OnnxDynamicQuantization", "per_channel": False, "reduce_range": True},
    ]
}
STRATEGY = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}


@pytest.fixture(scope="module")
def one_cpu_head() -> Iterator[RayHead]:
    """A real head whose node has one CPU: a 1-CPU task holds all of it."""
    temp_dir = Path(tempfile.mkdtemp(prefix="olv-ray1-", dir="/tmp"))
    head = RayHead(temp_dir, num_cpus=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOCK_DIR_ENV, str(temp_dir / "cpu-locks"))
        head.start()
    try:
        yield head
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _config(folder: Path) -> Path:
    cfg = search_config(folder, PASSES, STRATEGY, latency_priority=-1)
    (folder / "busy.py").write_text(BUSY_FIDELITY)
    metrics = cfg["evaluators"]["e"]["metrics"]
    metrics[0]["user_config"].update(user_script=str(folder / "busy.py"), evaluate_func_kwargs={})
    path = folder / "cfg.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _run(folder: Path, address: str | None, timing: Literal["auto", "apart"] = "auto") -> dict[str, Any]:
    path = _config(folder)
    settings = SpreadSettings(workers=2, num_cpus=1, address=address, timing=timing)
    run_workflow(load_workflow(path), executor=RayExecutor(settings) if address else None)
    footprint: dict[str, Any] = json.loads((folder / "out" / "footprint.json").read_text())
    return footprint


def test_ray_search_times_a_candidate_in_its_task_when_the_task_holds_every_cpu_of_its_node(
    tmp_path: Path, one_cpu_head: RayHead
) -> None:
    serial = _run(tmp_path / "a", None)
    spread = _run(tmp_path / "b", one_cpu_head.gcs_address)
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    assert [c["status"] for c in spread["candidates"]] == ["evaluated", "evaluated", "pruned", "evaluated"]
    for candidate in spread["candidates"]:
        where = candidate["ran_on"]
        # One task did it all: no timing task of its own, and its evaluation (timed metrics included) ran
        # in that task.
        assert where["timed_in_place"] is True and "timed" not in where, where
        assert where["evaluated_here"] and len(where["cpus"]) == 1 and where["threads_outside"] == 0
        assert ("latency-avg" in candidate["metrics"]) == (candidate["status"] != "pruned")
    # The input model too: evaluated whole in its task (one slot: nothing ran beside it).
    assert spread["input"]["ran_on"]["timed_in_place"] is True and "timed" not in spread["input"]["ran_on"]
    assert spread["input"]["metrics"]["latency-avg"]["value"] > 0


def test_ray_search_times_apart_on_a_whole_node_when_asked(tmp_path: Path, one_cpu_head: RayHead) -> None:
    serial = _run(tmp_path / "a", None)
    spread = _run(tmp_path / "b", one_cpu_head.gcs_address, timing="apart")
    assert outline(spread) == outline(serial) and spread["best"] == serial["best"]
    for candidate in spread["candidates"]:
        where = candidate["ran_on"]
        assert where["timed_in_place"] is False
        # Pruned on its untimed metrics: never timed; the others by a task of their own, after every
        # candidate's untimed task ended (the batch's barrier).
        assert ("timed" in where) == (candidate["status"] != "pruned")
        if "timed" in where:
            assert "timed_in_place" not in where["timed"]
            assert where["timed"]["started"] >= max(c["ran_on"]["ended"] for c in spread["candidates"])
