"""bench/faults.py: the fault plan, and the points read from a job's log (where a fault is aimed and
where it landed)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import fault_points
import faults

LOG = """\
2026-12-02 08:05:47,263 INFO olivine.worker: job job-1: exporting to file:///x
2026-12-02 08:05:47,426 INFO olivine.engine.evaluation: evaluate input model: running 2 metric(s)
2026-12-02 08:05:47,940 INFO olivine.engine.evaluation: evaluate input model: done in 0.5s
2026-12-02 08:05:47,953 INFO olivine.engine: [1/2] AddOliveMetadata 'meta': running
2026-12-02 08:05:48,053 INFO olivine.engine: [1/2] AddOliveMetadata 'meta': done in 0.1s (run 0ef6)
2026-12-02 08:05:48,060 INFO olivine.engine: [2/2] OnnxDynamicQuantization 'quantize': running
2026-12-02 08:05:50,060 INFO olivine.engine: [2/2] OnnxDynamicQuantization 'quantize': done in 2.0s (run 1a2b)
2026-12-02 08:05:50,100 INFO olivine.engine.evaluation: evaluate quantize: running 2 metric(s)
2026-12-02 08:05:50,400 INFO olivine.engine.evaluation: evaluate quantize: done in 0.3s
2026-12-02 08:05:50,887 INFO olivine.engine: workflow 'x' finished in 3.6s; output in /o
2026-12-02 08:05:50,937 INFO olivine.worker: job job-1 SUCCEEDED: succeeded; best model 1a2b
"""


def test_point_times_count_and_last_each_point() -> None:
    times = fault_points.PointTimes.from_log(LOG, commit_s=0.4)
    assert times.count == {"pass": 2, "evaluation": 2, "export": 1, "commit": 1}
    assert times.duration_s["pass"] == 2.0  # the median of 0.1 s and 2.0 s (upper middle)
    assert round(times.duration_s["export"], 3) == 0.05 and times.duration_s["commit"] == 0.4


def test_landed_reads_the_last_step_line() -> None:
    lines = LOG.splitlines()
    assert fault_points.landed("\n".join(lines[:1]), alive=True) == "before the run"
    assert fault_points.landed("\n".join(lines[:4]), alive=True) == "pass"
    assert fault_points.landed("\n".join(lines[:5]), alive=True) == "between steps"
    assert fault_points.landed("\n".join(lines[:8]), alive=True) == "evaluation"
    assert fault_points.landed("\n".join(lines[:10]), alive=True) == "export"
    assert fault_points.landed(LOG, alive=True) == "commit"
    assert fault_points.landed(LOG, alive=False) == "after exit"


def test_wait_for_finds_the_nth_start_or_gives_up_when_the_job_ends(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text(LOG)
    assert fault_points.wait_for(log, "pass", 1, lambda: True, 1.0)
    assert not fault_points.wait_for(log, "pass", 2, lambda: False, 1.0)


def test_plan_covers_every_kind_and_point_and_keeps_storage_faults_in_lane_zero() -> None:
    plan = faults.make_plan(200, 11, list(faults.KINDS), 4)
    entries = [e for lane in plan for e in lane]
    assert len(entries) == 200 and sorted(e["index"] for e in entries) == list(range(200))
    pairs = Counter((e["kind"], e["point"]) for e in entries)
    assert set(pairs) == {(k, p) for k, points in faults.KINDS.items() for p in points}
    assert max(pairs.values()) - min(pairs.values()) <= 1  # every pair in turn
    assert all(e["kind"] not in faults.STORAGE for lane in plan[1:] for e in lane)
    assert max(len(lane) for lane in plan) - min(len(lane) for lane in plan) <= 10
    assert faults.make_plan(200, 11, list(faults.KINDS), 4) == plan  # the seed decides it
