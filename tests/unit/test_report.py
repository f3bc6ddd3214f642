"""The report from hand-made footprints (schema olivine.footprint/2): reading, plot model, page, files."""

from __future__ import annotations

import copy
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from footprints import minilm_like, write_footprint
from olivine.errors import UserInputError
from olivine.report import write_report
from olivine.report.footprint import find_footprint, load_footprint, parse_footprint
from olivine.report.page import render_page
from olivine.report.scatter import INDEX_AXIS, build_scatter, nice_ticks


def _fp(data: dict | None = None):  # type: ignore[no-untyped-def]
    return parse_footprint(json.dumps(data if data is not None else minilm_like()), "fp.json")


def test_footprint_load_refuses_a_footprint_without_the_search_schema(tmp_path: Path) -> None:
    path = tmp_path / "footprint.json"
    path.write_text(json.dumps({"workflow_id": "w", "nodes": {}, "best_model_id": None}))
    with pytest.raises(UserInputError, match=r"footprint.json: schema: expected 'olivine.footprint/2'"):
        load_footprint(path)


def test_footprint_load_names_the_file_and_key_of_a_bad_value(tmp_path: Path) -> None:
    data = minilm_like()
    data["candidates"][2]["status"] = "done"
    path = write_footprint(tmp_path, data)
    with pytest.raises(UserInputError) as err:
        load_footprint(path)
    assert str(err.value).startswith(f"{path}: candidates.2.status: Input should be 'evaluated'")


def test_footprint_load_refuses_text_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "footprint.json"
    path.write_text("{not json")
    with pytest.raises(UserInputError, match=r"footprint\.json: not JSON"):
        load_footprint(path)


def test_footprint_keeps_extra_olive_style_keys_out_of_the_way() -> None:
    data = minilm_like()
    data["nodes"] = {"x": {"from_pass": "OnnxConversion"}}
    data["candidates"][0]["parent_model_id"] = "p"
    assert len(_fp(data).candidates) == 12


def test_find_footprint_looks_in_a_fetched_folder(tmp_path: Path) -> None:
    path = write_footprint(tmp_path / "fetched" / "output")
    assert find_footprint(tmp_path / "fetched") == path
    assert find_footprint(path) == path
    with pytest.raises(UserInputError, match=r"no footprint\.json here"):
        find_footprint(tmp_path)


def test_scatter_plots_records_with_both_objectives_and_lists_the_others() -> None:
    scatter = build_scatter(_fp())
    assert scatter is not None
    assert scatter.x.key == "latency-avg" and scatter.y.key == "fidelity-cosine"
    assert [p.id for p in scatter.points] == [
        "input",
        "c0001",
        "c0002",
        "c0003",
        "c0004",
        "c0005",
        "c0006",
        "c0010",
        "c0011",
    ]
    assert dict(scatter.left_out) == {
        "c0007": "pruned",
        "c0008": "failed",
        "c0009": "invalid",
        "c0012": "pruned",
    }
    kinds = {p.id: p.kind for p in scatter.points}
    assert kinds["input"] == "input" and kinds["c0002"] == "frontier" and kinds["c0011"] == "meets"
    assert kinds["c0001"] == "misses"
    assert [p.id for p in scatter.points if p.is_best] == ["c0002"]


def test_scatter_draws_the_resolved_goal_within_the_axis() -> None:
    scatter = build_scatter(_fp())
    assert scatter is not None
    assert scatter.y.goal == 0.99 and scatter.x.goal is None
    assert scatter.y.lo < 0.99 < scatter.y.hi
    assert scatter.y.goal_text == "goal >= 0.99 (max-degradation 0.01)"
    # Whiskers (spread) stay inside the x axis.
    assert all(scatter.x.lo <= p.x - (p.x_spread or 0) for p in scatter.points)


def test_scatter_frontier_line_runs_through_frontier_points_by_x() -> None:
    scatter = build_scatter(_fp())
    assert scatter is not None
    assert scatter.frontier == ((31.0, 0.9921), (34.5, 0.9935), (36.0, 0.999))


def test_scatter_with_one_objective_uses_another_metric_then_the_index() -> None:
    data = minilm_like()
    data["objectives"] = data["objectives"][:1]
    scatter = build_scatter(_fp(data))
    assert scatter is not None and scatter.y.key == "fidelity-cosine" and scatter.y.higher_is_better is None
    for rec in [data["input"], *data["candidates"]]:
        rec["metrics"] = {k: v for k, v in rec["metrics"].items() if k == "latency-avg"}
    scatter = build_scatter(_fp(data))
    assert scatter is not None and scatter.y.key == INDEX_AXIS
    assert {p.id: p.y for p in scatter.points}["c0010"] == 10.0


def test_scatter_is_none_without_objectives_or_values() -> None:
    data = minilm_like()
    data["objectives"] = []
    assert build_scatter(_fp(data)) is None


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(29.1, 46.2) == [25.0, 30.0, 35.0, 40.0, 45.0, 50.0]
    assert nice_ticks(0.85, 1.0) == [0.85, 0.9, 0.95, 1.0]
    ticks = nice_ticks(-3.2, 1234.0)
    assert ticks[0] <= -3.2 and ticks[-1] >= 1234.0 and len(ticks) <= 8


def _page(data: dict | None = None) -> str:
    fp = _fp(data)
    return render_page(fp, build_scatter(fp), "fp.json")


def test_page_loads_nothing_from_outside() -> None:
    page = _page()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # The SVG namespace is a name, not a fetch.
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]
    assert not re.search(r"\s(src|href)=", page)
    assert "<link" not in page and "@import" not in page


def test_page_has_a_row_and_a_point_per_record() -> None:
    page = _page()
    rows = re.findall(r'<tr class="([^"]*)" data-id="([^"]+)" data-index="(\d+)">', page)
    assert [r[1] for r in rows] == ["input"] + [f"c{i:04d}" for i in range(1, 13)]
    assert dict((r[1], r[0]) for r in rows)["c0002"] == "evaluated best frontier"
    assert len(re.findall(r'<g class="pt ', page)) == 9
    assert page.count('class="best-ring"') == 1
    assert page.count('class="goal"') == 1
    for col in ("p:quantization.per_channel", "m:latency-avg", "m:fidelity-cosine", "m:size-bytes", "status"):
        assert f'data-col="{col}"' in page


def test_page_shows_spread_and_the_ratio_to_the_input_model() -> None:
    page = _page()
    assert '<td data-v="31.0">31 ± 0.62</td>' in page
    assert "latency-avg = 31 ± 0.62 (0.689x the input model's 45)" in page


def test_page_escapes_text_from_the_footprint() -> None:
    data = minilm_like()
    data["candidates"][7]["error"] = "<script>alert(1)</script>"
    data["workflow_id"] = 'w"<b>'
    page = _page(data)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'w"<b>' not in page


def test_page_says_so_when_nothing_meets_the_goals() -> None:
    data = minilm_like()
    data["best"] = None
    for rec in data["candidates"]:
        rec["is_best"] = False
    assert "No best model: no candidate meets every goal." in _page(data)


def test_page_names_int8_cpu_flags() -> None:
    assert "none (no VNNI, AMX or AVX-512" in _page()
    data = minilm_like()
    data["machine"]["cpu_flags"] = ["avx2", "avx512_vnni", "amx_int8"]
    page = _page(data)
    assert "amx_int8, avx512_vnni" in page and "<b>avx512_vnni</b>" in page


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_write_report_writes_the_page_png_and_olive_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the report extra (matplotlib) draws the PNG")
    files = write_report(_fp(), tmp_path, source="fp.json", png=True, chart=True)
    assert files.html == tmp_path / "report.html" and files.png_skipped is None
    assert files.png is not None and _png_size(files.png) == (880, 572)
    assert files.chart is not None and '<g class="pt ' in files.chart.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pareto_frontier.png",
        "pareto_frontier_footprint_chart.html",
        "report.html",
    ]


def test_write_report_without_a_plot_writes_only_the_page(tmp_path: Path) -> None:
    data = minilm_like()
    data["objectives"] = []
    files = write_report(_fp(data), tmp_path, source="fp.json", png=True)
    assert files.png is None and files.png_skipped is not None and "nothing to plot" in files.png_skipped
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert 'id="no-plot"' in files.html.read_text()


def test_write_report_skips_the_png_with_the_install_hint_without_matplotlib(tmp_path: Path) -> None:
    path = write_footprint(tmp_path)
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # as if the extra were not installed
        "from pathlib import Path\n"
        "from olivine.report import write_report\n"
        "from olivine.report.footprint import load_footprint\n"
        f"files = write_report(load_footprint(Path({str(path)!r})), Path({str(tmp_path)!r}), source='x')\n"
        "print(files.png, files.png_skipped)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "None matplotlib is not installed (pip install 'olivine[report]')"
    assert (tmp_path / "report.html").is_file() and not (tmp_path / "pareto_frontier.png").exists()


def test_minilm_like_fixture_follows_the_contract_keys() -> None:
    # The hand-made footprint must carry every key Contract 2 names, so the report is built on the real shape.
    data = minilm_like()
    assert set(data) >= {
        "schema",
        "workflow_id",
        "search",
        "objectives",
        "input",
        "candidates",
        "frontier",
        "best",
        "machine",
    }
    record_keys = {
        "id",
        "index",
        "chain",
        "point",
        "model_id",
        "status",
        "error",
        "metrics",
        "meets_goals",
        "on_frontier",
        "is_best",
        "model_config",
    }
    for rec in [data["input"], *data["candidates"]]:
        assert set(rec) == record_keys
        for metric in rec["metrics"].values():
            assert set(metric) == {"value", "spread", "rounds", "priority", "higher_is_better"}
    assert copy.deepcopy(data) == minilm_like()  # deterministic


def test_scatter_uses_a_log_axis_when_values_span_more_than_twenty_fold() -> None:
    data = minilm_like()
    data["input"]["metrics"]["latency-avg"]["value"] = 2663.0  # a PyTorch input model, ONNX candidates ~30 ms
    data["candidates"][1]["metrics"]["latency-avg"]["spread"] = 40.0  # a whisker reaching below zero
    fp = _fp(data)
    scatter = build_scatter(fp)
    assert scatter is not None and scatter.x.log and not scatter.y.log
    assert scatter.x.ticks == (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
    assert "log scale" in scatter.x.label
    assert 0 < scatter.x.fraction(29.5) < scatter.x.fraction(100.0) < scatter.x.fraction(2663.0) < 1
    assert scatter.x.fraction(-9.0) == 0.0  # clipped at the axis, not a math error
    assert 'data-id="input"' in render_page(fp, scatter, "fp.json")


def test_scatter_stays_linear_for_close_values() -> None:
    scatter = build_scatter(_fp())
    assert scatter is not None and not scatter.x.log and not scatter.y.log
