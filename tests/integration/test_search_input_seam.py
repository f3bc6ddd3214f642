"""The input model's evaluation goes through the search's executor (the seam in
:mod:`olivine.engine.executor`): an executor's ``evaluate_input`` gets the steps every candidate shares and
its result (and where it ran) lands in the footprint; an executor without one evaluates in the engine's
process, as the serial search does; a failure before the candidate loop still closes the executor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from integration.test_search import search_config
from olivine.engine.evaluation import Evaluation
from olivine.engine.executor import InputWork, SerialExecutor, evaluate_in_process, fixed_prefix
from olivine.engine.resolve import ResolvedWorkflow, load_workflow
from olivine.engine.run import run_workflow
from olivine.errors import EvaluationError

pytestmark = pytest.mark.integration

#: A fixed step every candidate shares, then a searched one.
FIXED_THEN_SEARCHED = {
    "optimize": {"type": "OrtTransformersOptimization", "model_type": "bert"},
    "quant": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"},
}
STRATEGY = {"execution_order": "joint", "sampler": "sequential", "include_pass_params": False}


class _Recording(SerialExecutor):
    def __init__(self, fail: bool = False) -> None:
        self.prefixes: list[tuple[str, ...]] = []
        self.fail = fail
        self.closed = 0

    def evaluate_input(self, work: InputWork) -> Evaluation:
        self.prefixes.append(tuple(step.name for step in work.prefix))
        if self.fail:
            raise EvaluationError("input model: the test's executor fails")
        work.ran_on = {"node": "test", "cpus": [0]}
        return evaluate_in_process(work)

    def close(self) -> None:
        self.closed += 1


def _workflow(folder: Path, passes: dict[str, Any]) -> ResolvedWorkflow:
    path = folder / "cfg.json"
    path.write_text(json.dumps(search_config(folder, passes, STRATEGY, latency_priority=-1)))
    return load_workflow(path)


def _footprint(folder: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((folder / "out" / "footprint.json").read_text())
    return doc


def test_the_executor_evaluates_the_input_model_and_gets_the_steps_every_candidate_shares(
    tmp_path: Path,
) -> None:
    run_workflow(_workflow(tmp_path / "serial", FIXED_THEN_SEARCHED))
    executor = _Recording()
    run_workflow(_workflow(tmp_path / "seam", FIXED_THEN_SEARCHED), executor=executor)
    assert executor.prefixes == [("optimize",)]
    serial, seam = _footprint(tmp_path / "serial"), _footprint(tmp_path / "seam")
    assert seam["input"]["ran_on"] == {"node": "test", "cpus": [0]}
    assert "ran_on" not in serial["input"]  # evaluated in the engine's process
    untimed = ("fidelity-score", "size-bytes")
    assert {k: seam["input"]["metrics"][k] for k in untimed} == {
        k: serial["input"]["metrics"][k] for k in untimed
    }
    assert [c["model_id"] for c in seam["candidates"]] == [c["model_id"] for c in serial["candidates"]]


def test_a_failing_input_evaluation_still_closes_the_executor(tmp_path: Path) -> None:
    executor = _Recording(fail=True)
    with pytest.raises(EvaluationError, match="the test's executor fails"):
        run_workflow(_workflow(tmp_path, FIXED_THEN_SEARCHED), executor=executor)
    assert executor.closed >= 1


def test_fixed_prefix_is_the_leading_unsearched_steps_never_the_last(tmp_path: Path) -> None:
    def names(passes: dict[str, Any]) -> list[str]:
        wf = _workflow(tmp_path / str(len(list(tmp_path.iterdir()))), passes)
        return [step.name for step in fixed_prefix(wf.slots, wf.accelerator)]

    assert names(FIXED_THEN_SEARCHED) == ["optimize"]
    quant = FIXED_THEN_SEARCHED["quant"]
    assert names({"quant": quant, "optimize": FIXED_THEN_SEARCHED["optimize"]}) == []  # searched first
    fixed_quant = {"type": "OnnxDynamicQuantization", "per_channel": True}
    assert names({"optimize": FIXED_THEN_SEARCHED["optimize"], "quant": fixed_quant}) == ["optimize"]
    alternatives = {"optimize": [FIXED_THEN_SEARCHED["optimize"], {"type": "OnnxPeepholeOptimizer"}]}
    assert names({**alternatives, "quant": quant}) == []  # two options: not every candidate runs it
