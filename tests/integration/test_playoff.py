"""The playoff on a tiny ONNX MLP search: the finalists are re-timed head to head after the walk, the best
is decided from those measurements, they are recorded under ``playoff`` in footprint.json, and a cached
run decides from the same ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from integration.test_search import run_config, search_config
from olivine.engine.playoff import PLAYOFF_ROUNDS
from olivine.evaluate.results import MetricValue
from olivine.search import ranking

pytestmark = pytest.mark.integration


def latency_first(folder: Path) -> dict[str, Any]:
    """The example's objectives on the tiny model: latency (priority 1), then fidelity with a goal."""
    strategy = {"execution_order": "joint", "sampler": "sequential", "seed": 0, "include_pass_params": False}
    quant = {"type": "OnnxDynamicQuantization", "per_channel": [True, False], "reduce_range": [True, False]}
    cfg = search_config(folder, {"quant": quant}, strategy, latency_priority=1)
    fidelity, size, latency = cfg["evaluators"]["e"]["metrics"]
    fidelity["sub_types"][0]["priority"] = 2
    size["sub_types"][0]["priority"] = -1
    latency["sub_types"][0]["metric_config"] = {"warmup_num": 2, "repeat_test_num": 20}
    return cfg


def test_playoff_retimes_the_finalists_and_decides_the_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every candidate near the leader: the tiny model's latencies are too close to call on this machine.
    monkeypatch.setattr(ranking, "PLAYOFF_MARGIN", 100.0)
    cfg = latency_first(tmp_path)
    footprint = run_config(tmp_path, cfg)
    playoff = footprint["playoff"]
    records = {c["id"]: c for c in footprint["candidates"]}
    meeting = [c["id"] for c in footprint["candidates"] if c["meets_goals"]]
    assert set(playoff["finalists"]) <= set(meeting) and playoff["finalists"] == sorted(playoff["finalists"])
    assert len(playoff["finalists"]) == min(ranking.PLAYOFF_MAX, len(meeting)) >= 2
    assert playoff["objective"] == "latency-avg" and playoff["rounds"] == PLAYOFF_ROUNDS
    for cid in playoff["finalists"]:
        replayed = playoff["metrics"][cid]["latency-avg"]
        assert len(replayed["rounds"]) == PLAYOFF_ROUNDS and replayed["spread"] is not None
        assert len(records[cid]["metrics"]["latency-avg"]["rounds"]) == 5  # the record keeps the walk's
    # The best is what the ranking rule gives with the playoff's measurements.
    ids = [c["id"] for c in footprint["candidates"]]
    walk = [ranking.record_metrics(c) for c in footprint["candidates"]]
    replay = {
        ids.index(cid): {k: MetricValue.from_json(v) for k, v in found.items()}
        for cid, found in playoff["metrics"].items()
    }
    objectives = ranking.Objectives.from_json(footprint["objectives"])
    expected = ids[ranking.best_index(walk, objectives, replay) or 0]
    assert footprint["best"] == expected == playoff["best"] and records[expected]["is_best"]
    assert playoff["walk_best"] in ids and not playoff["cached"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'id="playoff"' in page and all(cid in page for cid in playoff["finalists"])
    # The same config again, from the cache: the same playoff measurements, so the same best.
    again = run_config(tmp_path, cfg)
    assert again["playoff"]["cached"] and again["playoff"]["metrics"] == playoff["metrics"]
    assert again["best"] == footprint["best"]


def test_no_playoff_when_only_the_leader_can_be_a_finalist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranking, "PLAYOFF_MAX", 1)  # nobody but the leader can be a finalist
    footprint = run_config(tmp_path, latency_first(tmp_path))
    assert "playoff" not in footprint and footprint["best"] is not None
