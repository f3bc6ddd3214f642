"""bench/e2e_breakdown.py splits a run's wall time into steps from each tool's log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from e2e_breakdown import BETWEEN, FINAL_EVAL, INPUT_EVAL, START_UP, breakdown

OLIVINE_LOG = """12:33:19 INFO    workflow 'minilm': 3 pass(es), cache /w/.olivine-cache/minilm
12:33:27 INFO    evaluate input model: done in 8.0s
12:33:29 INFO    [1/3] OnnxConversion 'conversion': done in 1.3s (run 679115c8f1d1)
12:33:32 INFO    [2/3] OrtTransformersOptimization 'transformers_optimization': done in 2.9s (run d1d246d35fd1)
12:33:35 INFO    [3/3] OnnxDynamicQuantization 'quantization': done in 3.2s (run a2efa67a46e5)
12:33:37 INFO    evaluate 'quantization' output: done in 2.2s
12:33:37 INFO    workflow 'minilm' finished in 18.0s; output in /w/olivine-output/minilm
"""

OLIVE_LOG = """olive_workflow: patch custom metric backend serializer: applied
[2026-11-25 12:32:57,134] [INFO] [run.py:99:run_engine] Running workflow minilm
[2026-11-25 12:33:02,621] [INFO] [engine.py:267:run_accelerator] Input model evaluation results: {
  "latency-avg": 27.5
}
[2026-11-25 12:33:05,299] [INFO] [engine.py:733:_run_pass] Pass conversion:onnxconversion finished in 2.645202 seconds
[2026-11-25 12:33:09,214] [INFO] [engine.py:733:_run_pass] Pass transformers_optimization:orttransformersoptimization finished in 3.913978 seconds
[2026-11-25 12:33:14,164] [INFO] [engine.py:733:_run_pass] Pass quantization:onnxdynamicquantization finished in 4.947891 seconds
[2026-11-25 12:33:14,170] [INFO] [engine.py:643:_run_passes] Run model evaluation for the final model...
[2026-11-25 12:33:17,321] [INFO] [engine.py:339:_run_no_search] Saved evaluation results of output model to /w/metrics.json
[2026-11-25 12:33:17,400] [INFO] [engine.py:235:run] Saved output model to /w/olive-output
"""


def test_olivine_log_gives_each_step_and_the_time_outside_the_workflow(tmp_path: Path) -> None:
    (tmp_path / "whole.log").write_text(OLIVINE_LOG)
    stages = breakdown("olivine", tmp_path / "whole.log", 18.7)
    assert list(stages) == [
        START_UP,
        INPUT_EVAL,
        "conversion",
        "transformers_optimization",
        "quantization",
        FINAL_EVAL,
        BETWEEN,
    ]
    assert stages[START_UP] == pytest.approx(0.7)
    assert stages[INPUT_EVAL] == 8.0 and stages["quantization"] == 3.2 and stages[FINAL_EVAL] == 2.2
    assert stages[BETWEEN] == pytest.approx(18.0 - 8.0 - 1.3 - 2.9 - 3.2 - 2.2)


def test_olive_log_gives_the_same_steps_from_its_timestamps(tmp_path: Path) -> None:
    (tmp_path / "whole.log").write_text(OLIVE_LOG)
    stages = breakdown("olive", tmp_path / "whole.log", 29.28)
    span = 20.266  # 12:32:57.134 -> 12:33:17.400
    assert stages[START_UP] == pytest.approx(29.28 - span, abs=0.01)
    assert stages[INPUT_EVAL] == pytest.approx(5.49, abs=0.01)
    assert stages["conversion"] == pytest.approx(2.65, abs=0.01)
    assert stages[FINAL_EVAL] == pytest.approx(3.15, abs=0.01)
    assert sum(stages.values()) == pytest.approx(29.28, abs=0.02)


def test_breakdown_is_empty_for_a_log_without_step_timings(tmp_path: Path) -> None:
    (tmp_path / "whole.log").write_text("olivine: error: config.json: unknown key 'pases'\n")
    assert breakdown("olivine", tmp_path / "whole.log", 0.4) == {}
    assert breakdown("olive", tmp_path / "missing.log", 1.0) == {}


def test_report_shows_step_medians_and_the_time_inside_the_workflow() -> None:
    import report

    def run(start: float, conv: float, wall: float) -> dict[str, object]:
        return {"wall_s": wall, "stages": {START_UP: start, INPUT_EVAL: 5.0, "conversion": conv}}

    results = {
        "e2e": {
            "tools": {
                "olivine": {"whole": [run(1.0, 1.0, 7.0), run(1.2, 1.4, 7.6)], "whole_s": 7.3},
                "olive": {"whole": [run(9.0, 2.0, 16.0)], "whole_s": 16.0},
            }
        }
    }
    text = "\n".join(report._stages_section(results))
    assert "| conversion | 1.20 s | 2.00 s |" in text
    assert "| **whole run (wall)** | 7.30 s | 16.0 s |" in text
    assert "Inside the workflow: olivine 6.20 s, olive 7.00 s" in text
