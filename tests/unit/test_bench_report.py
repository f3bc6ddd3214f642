"""bench/report.py, bench/e2e.py and bench/run_all.py: goal rows, footprint reading, output parsing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import report
import run_all

import e2e


def _latency(median_ms: float, spread_ms: float = 1.0) -> dict[str, Any]:
    return {"median_ms": median_ms, "round_spread_ms": spread_ms, "p10_ms": median_ms, "p90_ms": median_ms}


def _results() -> dict[str, Any]:
    return {
        "e2e": {
            "rounds": 1,
            "tools": {
                "olivine": {"whole_s": 40.0, "cached_s": 2.0},
                "olive": {"whole_s": 100.0, "cached_s": 20.0},
            },
        },
        "cli": {"commands": {"olivine --help": {"median_s": 0.2}, "olive --help": {"median_s": 8.0}}},
        "latency": {
            "models": {
                report.FP32: {"latency": {"1": _latency(90.0), "2": _latency(50.0)}},
                report.BEST: {
                    "latency": {"1": _latency(85.0), "2": _latency(50.5, spread_ms=2.0)},
                    "fidelity": {"mean": 0.995, "min": 0.97},
                },
                report.OLIVE_INT8: {"latency": {"1": _latency(92.0)}, "fidelity": {"mean": 0.964}},
            }
        },
        "export": {"ratio": 0.9, "exporter_mbs": 450.0, "copy_mbs": 500.0},
    }


def _rows() -> dict[str, report.GoalRow]:
    return {row.what.split(" (")[0].split(",")[0]: row for row in report.goal_rows(_results())}


def test_goal_rows_compute_ratios_against_olive() -> None:
    rows = _rows()
    assert rows["End-to-end run"].ratio == "0.40x"
    assert rows["End-to-end run"].status == "met"
    assert rows["Cached re-run"].ratio == "0.10x"
    assert rows["Cached re-run"].status == "met"


def test_goal_rows_check_help_time_and_fidelity() -> None:
    rows = _rows()
    assert rows["`--help` start-up"].status == "met"
    assert rows["Fidelity of the best model"].olivine == "0.9950"
    assert rows["Fidelity of the best model"].olive == "0.9640"
    assert rows["Export throughput vs plain copy"].status == "met"


def test_goal_rows_mark_missing_submit_benchmark_as_todo() -> None:
    rows = _rows()
    assert rows["Submit latency"].status.startswith("TODO")


def test_goal_rows_report_no_data_when_a_stage_is_missing() -> None:
    rows = {r.what.split(",")[0]: r for r in report.goal_rows({})}
    assert rows["End-to-end run"].status == "no data"
    assert rows["Export throughput vs plain copy"].status == "no data"


@pytest.mark.parametrize(
    ("best", "base", "noise", "status"),
    [(85.0, 90.0, 1.0, "met"), (90.5, 90.0, 1.0, "within noise"), (95.0, 90.0, 1.0, "not met")],
)
def test_latency_status_allows_round_spread_as_noise(
    best: float, base: float, noise: float, status: str
) -> None:
    assert report.latency_status(best, base, noise) == status


def test_table_escapes_pipes() -> None:
    assert report.table(["a"], [["x|y"]]).splitlines()[2] == "| x\\|y |"


def test_render_contains_goal_table() -> None:
    text = report.render(_results())
    assert text.startswith("# Benchmarks: Olivine vs Microsoft Olive")
    assert "| End-to-end run, fresh caches | 40.0 s | 100 s | 0.40x | <= 0.5x Olive | met |" in text


def test_models_by_pass_reads_olivine_and_olive_footprints(tmp_path: Path) -> None:
    olivine = {
        "nodes": {
            "a": {"from_pass": "OnnxConversion", "model_config": {"config": {"model_path": "/x/model.onnx"}}},
            "in": {"from_pass": None, "model_config": {"config": {"model_path": "/m"}}},
        }
    }
    olive = {"b": {"from_pass": "onnxconversion", "model_config_data": {"config": {"model_path": "/y.onnx"}}}}
    assert e2e.models_by_pass(olivine) == {"onnxconversion": "/x/model.onnx"}
    assert e2e.models_by_pass(olive) == {"onnxconversion": "/y.onnx"}


def test_model_file_resolves_relative_folder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.onnx").write_bytes(b"")
    cfg = tmp_path / "model_config.json"
    cfg.write_text('{"type": "ONNXModel", "config": {"model_path": "model"}}', encoding="utf-8")
    assert e2e.model_file(cfg) == str(tmp_path / "model" / "model.onnx")


def test_parse_export_output_reads_printed_figures() -> None:
    text = (
        "shutil.copy: 512 MB/s (rounds: 500, 512)\n"
        "exporter:    430 MB/s (rounds: 1)\n"
        "ratio exporter/copy: 0.84"
    )
    assert run_all.parse_export_output(text) == {"copy_mbs": 512.0, "exporter_mbs": 430.0, "ratio": 0.84}


def test_parse_args_splits_comma_separated_stages() -> None:
    assert run_all.parse_args(["--only", "latency,cli"]).stages == ["latency", "cli"]


def test_parse_args_rejects_unknown_stage() -> None:
    with pytest.raises(SystemExit):
        run_all.parse_args(["--only", "nope"])


def test_render_lists_failed_stages() -> None:
    results = _results()
    results["latency"] = {"error": "RuntimeError: no e2e outputs"}
    assert "**Stages that failed in this run:** `latency`: RuntimeError: no e2e outputs" in report.render(
        results
    )
