"""bench/search.py: goal rows from hand-made measurements, footprint reading, the BENCHMARKS section."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import search

from footprints import minilm_like


def _model(median_ms: float, spread_ms: float, fid: float | None) -> dict[str, Any]:
    model: dict[str, Any] = {"latency": {"1": {"median_ms": median_ms, "round_spread_ms": spread_ms}}}
    if fid is not None:
        model["fidelity"] = {"mean": fid, "min": fid - 0.02}
    return model


def _result(ours_s: float, theirs_s: float, ours: tuple[float, float], theirs: tuple[float, float]) -> dict:
    return {
        "timestamp": "20261202-060000",
        "search": {
            "olivine": {"returncode": 0, "wall_s": ours_s, "candidates": {"evaluated": 14, "failed": 2}},
            "olive": {"returncode": 0, "wall_s": theirs_s},
        },
        "latency": {
            "settings": {"batch": 1, "sequence": 128, "runs": 200, "rounds": 10},
            "models": {
                search.FP32_EXPORT: _model(50.0, 1.0, 1.0),
                search.FP32_FUSED: _model(47.0, 1.0, 1.0),
                search.BEST["olivine"]: _model(ours[0], 1.0, ours[1]),
                search.BEST["olive"]: _model(theirs[0], 1.0, theirs[1]),
            },
        },
    }


def test_goals_meet_when_faster_search_finds_an_equal_model() -> None:
    rows = search.goals(_result(40.0, 100.0, (33.0, 0.994), (33.8, 0.994)))
    assert [r["status"] for r in rows] == ["met", "met", "not met"]
    assert rows[0]["ratio"] == "0.40x"
    assert rows[2]["ratio"] == "0.66x"  # 33 / 50: above 0.55x, so the example's goal is not met


def test_goals_best_model_within_the_round_spread_is_equal_beyond_it_is_worse() -> None:
    assert search.goals(_result(40.0, 100.0, (34.5, 0.994), (33.8, 0.994)))[1]["status"] == "met"
    assert search.goals(_result(40.0, 100.0, (36.0, 0.994), (33.8, 0.994)))[1]["status"] == "not met"
    # A best model that misses the fidelity goal is not equal, however fast.
    assert search.goals(_result(40.0, 100.0, (20.0, 0.98), (33.8, 0.994)))[1]["status"] == "not met"


def test_goals_example_latency_goal_needs_speed_and_fidelity() -> None:
    assert search.goals(_result(40.0, 100.0, (27.0, 0.993), (30.0, 0.99)))[2]["status"] == "met"
    assert search.goals(_result(40.0, 100.0, (27.0, 0.985), (30.0, 0.99)))[2]["status"] == "not met"


def test_goals_without_measurements_say_so() -> None:
    rows = search.goals({"search": {"olivine": {"returncode": 1, "wall_s": 5.0}}})
    assert [r["status"] for r in rows] == ["-", "-", "-"]


def test_count_candidates_reads_both_footprint_shapes() -> None:
    assert search.count_candidates(minilm_like()) == {"evaluated": 8, "pruned": 2, "failed": 1, "invalid": 1}
    olive = {"a": {"metrics": {"x": 1}}, "b": {"metrics": None}, "c": {"metrics": {"x": 2}}}
    assert search.count_candidates(olive) == {"evaluated (models with metrics, input included)": 2}


def test_fp32_models_come_from_the_cache_runs_of_the_chain(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"engine": {"cache_dir": ".cache", "output_dir": "out"}}))
    runs = tmp_path / ".cache" / "minilm-search" / "runs"
    for key in ("conversion-key", "transformers_optimization-key"):
        (runs / key / "model").mkdir(parents=True)
        (runs / key / "model" / "model.onnx").write_bytes(b"x")
    found = search.fp32_models(minilm_like(), config)
    assert found == {
        search.FP32_EXPORT: str(runs / "conversion-key" / "model" / "model.onnx"),
        search.FP32_FUSED: str(runs / "transformers_optimization-key" / "model" / "model.onnx"),
    }


def test_section_is_a_doc_block_that_a_rerender_keeps() -> None:
    from common import carry_doc_blocks, replace_doc_block

    section = search.render_section(_result(40.0, 100.0, (33.0, 0.994), (33.8, 0.994)))
    assert section.startswith("## Search (`bench/search.py`)")
    assert "| Search wall time (whole search, fresh caches) | 40.0 s | 100.0 s | 0.40x |" in section
    doc = replace_doc_block("# Benchmarks\n\nbody\n", "search", section)
    assert doc.count("<!-- bench:search -->") == 1
    rerendered = carry_doc_blocks(doc, "# Benchmarks\n\nnew body\n")
    assert "new body" in rerendered and "| Search wall time" in rerendered


def test_run_order_alternates_the_tools_so_a_load_drift_hits_both() -> None:
    assert search.run_order(("olivine", "olive"), 1) == ["olivine", "olive"]
    assert search.run_order(("olivine", "olive"), 2) == ["olivine", "olive", "olive", "olivine"]
    assert search.run_order(("olivine", "olive"), 3)[4:] == ["olivine", "olive"]


def test_goals_and_section_show_cpu_time_and_every_run() -> None:
    result = _result(40.0, 100.0, (33.0, 0.994), (33.8, 0.994))
    result["pairs"] = 2
    result["search"]["olivine"].update(
        cpu_s=30.0,
        runs=[
            {"wall_s": 38.0, "cpu_s": 29.0, "load_before": [1.0, 1.0, 1.0], "load_after": [2.0, 2.0, 2.0]},
            {"wall_s": 42.0, "cpu_s": 31.0, "load_before": [1.0, 1.0, 1.0], "load_after": [2.0, 2.0, 2.0]},
        ],
    )
    result["search"]["olive"]["cpu_s"] = 90.0
    rows = search.goals(result)
    assert rows[1]["what"].startswith("Search CPU time") and rows[1]["ratio"] == "0.33x"
    section = search.render_section(result)
    assert "38.0 s / 29.0 s, 1.0/1.0/1.0 -> 2.0/2.0/2.0; 42.0 s / 31.0 s" in section
    assert "bench/search.py --doc --pairs 2" in section


def test_olivine_workers_go_to_olivines_engine_host_only_and_the_section_says_so(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(search, "prepare_workdir", _fake_workdir)
    ours = json.loads(search.prepare(tmp_path, "olivine", workers=2).read_text())
    theirs = json.loads(search.prepare(tmp_path, "olive", workers=2).read_text())
    assert ours["systems"][ours["engine"]["host"]]["search_workers"] == 2
    assert "search_workers" not in json.dumps(theirs)
    result = _result(60.0, 150.0, (20.0, 0.993), (20.0, 0.992))
    result.update(pairs=2, olivine_workers=2)
    section = search.render_section(result)
    assert "local worker pool of 2 processes" in section
    assert "`.venv/bin/python bench/search.py --doc --pairs 2 --olivine-workers 2`" in section


def _fake_workdir(example: Path, work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    config = search.SEARCH_EXAMPLE / "config.json"
    if example == search.SEARCH_EXAMPLE:
        (work / "config.json").write_text(config.read_text())
    return work


def test_a_serial_olivine_run_beside_the_pool_gives_the_speed_up_and_compares_the_best_models(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(search, "prepare_workdir", _fake_workdir)
    serial = json.loads(search.prepare(tmp_path, search.SERIAL, workers=2).read_text())
    assert "search_workers" not in json.dumps(serial)  # the serial run stays serial
    assert search.host_workers(search.prepare(tmp_path, "olivine")) == 2  # the example's own pool
    assert search.command_for(search.SERIAL, tmp_path / "c.json")[1:3] == ["run", "--config"]
    result = _result(40.0, 100.0, (11.0, 0.993), (11.2, 0.993))
    result.update(olivine_workers=2)
    result["search"]["olivine"].update(search_workers=2, best_model_id="c0013", cpu_s=70.0)
    result["search"][search.SERIAL] = {
        "returncode": 0,
        "wall_s": 50.0,
        "cpu_s": 65.0,
        "best_model_id": "c0013",
    }
    result["latency"]["models"][search.BEST[search.SERIAL]] = _model(11.1, 1.0, 0.993)
    rows = {row["what"].split(" (")[0]: row for row in search.goals(result)}
    speed = rows["Olivine in a local pool of 2 vs Olivine serial"]
    assert (
        speed["ratio"] == "0.80x"
        and "50.0 s wall, 65.0 s CPU" in [r["what"] for r in search.goals(result)][1]
    )
    same = rows["Olivine pool's best model vs Olivine serial's"]
    assert same["status"] == "same" and same["ratio"] == "0.99x" and "c0013" in same["olivine"]
    result["search"][search.SERIAL]["best_model_id"] = "c0006"
    assert search.goals(result)[2]["status"] == "different"
    section = search.render_section(result)
    assert f"| {search.SERIAL} | 0 | 50.0 s |" in section
    assert f"--olivine-workers 2 --tools olivine,{search.SERIAL},olive`" in section


def test_warm_up_runs_each_interpreter_once_untimed_and_the_section_says_so(
    monkeypatch: Any, capsys: Any
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(
        search,
        "WARM_UP",
        {
            "olivine": (Path(sys.executable), "import json"),
            "olive": (Path(sys.executable), "raise SystemExit(3)"),
        },
    )
    real_run = search.subprocess.run

    def spy(command: list[str], **kwargs: Any) -> Any:
        ran.append(command[-1])
        return real_run(command, **kwargs)

    monkeypatch.setattr(search.subprocess, "run", spy)
    took = search.warm_up(("olivine", search.SERIAL, "olive"))
    assert ran == ["import json", "raise SystemExit(3)"]  # the serial run shares Olivine's interpreter
    assert set(took) == {"olivine", "olive"}
    printed = capsys.readouterr().out
    assert "warm-up of olivine's libraries (untimed)" in printed and "ok" in printed
    assert "warm-up of olive's libraries (untimed)" in printed and "exit 3" in printed
    result = _result(40.0, 100.0, (33.0, 0.994), (33.8, 0.994))
    result["warm_up_s"] = {"olivine": 3.7, "olive": 21.6}
    section = search.render_section(result)
    assert "imported its libraries once, untimed (olivine 3.7 s, olive 21.6 s)" in section
    assert "untimed (" not in search.render_section(_result(40.0, 100.0, (33.0, 0.994), (33.8, 0.994)))
