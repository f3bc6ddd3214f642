"""The pure helpers of bench/common.py: statistics, formatting, goal checks, /proc/cpuinfo parsing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import common

CPUINFO = """\
processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
physical id\t: 0
cpu cores\t: 2
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
physical id\t: 0
cpu cores\t: 2
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni
"""


def test_median_is_middle_value_when_count_is_odd() -> None:
    assert common.median([3.0, 1.0, 2.0]) == 2.0


def test_median_averages_middle_pair_when_count_is_even() -> None:
    assert common.median([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_median_raises_when_empty() -> None:
    with pytest.raises(ValueError, match="no values"):
        common.median([])


def test_ratio_divides_ours_by_theirs() -> None:
    assert common.ratio(30.0, 100.0) == pytest.approx(0.3)


@pytest.mark.parametrize(("ours", "theirs"), [(None, 1.0), (1.0, None), (1.0, 0.0)])
def test_ratio_is_none_when_a_side_is_missing_or_zero(ours: float | None, theirs: float | None) -> None:
    assert common.ratio(ours, theirs) is None


@pytest.mark.parametrize(
    ("value", "text"), [(0.4236, "0.42x"), (1.5, "1.50x"), (0.0567, "0.057x"), (None, "-")]
)
def test_fmt_ratio_keeps_three_decimals_below_a_tenth(value: float | None, text: str) -> None:
    assert common.fmt_ratio(value) == text


@pytest.mark.parametrize(
    ("value", "text"), [(0.2149, "0.21 s"), (12.34, "12.3 s"), (104.4, "104 s"), (None, "-")]
)
def test_fmt_seconds_scales_decimals_with_magnitude(value: float | None, text: str) -> None:
    assert common.fmt_seconds(value) == text


def test_fmt_mb_uses_decimal_megabytes() -> None:
    assert common.fmt_mb(91_500_000) == "91.5 MB"


@pytest.mark.parametrize(
    ("value", "limit", "higher", "inclusive", "status"),
    [
        (0.4, 0.5, False, True, "met"),
        (0.6, 0.5, False, True, "not met"),
        (0.5, 0.5, False, True, "met"),
        (0.3, 0.3, False, False, "not met"),
        (0.995, 0.99, True, True, "met"),
        (0.98, 0.99, True, True, "not met"),
        (None, 0.5, False, True, "no data"),
    ],
)
def test_goal_status_compares_against_limit(
    value: float | None, limit: float, higher: bool, inclusive: bool, status: str
) -> None:
    assert common.goal_status(value, limit, higher_is_better=higher, inclusive=inclusive) == status


def test_parse_cpuinfo_reads_model_cores_and_vnni() -> None:
    info = common.parse_cpuinfo(CPUINFO)
    assert info["model"].startswith("Intel(R) Xeon(R) Platinum 8375C")
    assert info["logical_cpus"] == 2
    assert info["physical_cores"] == 2
    assert info["flags"] == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"]
    assert info["vnni"] is True
    assert info["amx"] is False


def test_parse_cpuinfo_reports_no_vnni_when_flag_absent() -> None:
    info = common.parse_cpuinfo(CPUINFO.replace(" avx512_vnni", ""))
    assert info["vnni"] is False
    assert "avx512_vnni" not in info["flags"]


def test_prepare_workdir_copies_files_links_folders_and_skips_caches(tmp_path: Path) -> None:
    example = tmp_path / "example"
    (example / "model").mkdir(parents=True)
    (example / "model" / "weights.bin").write_bytes(b"w")
    (example / ".fidelity_cache").mkdir()
    (example / "olivine-output").mkdir()
    (example / "config.json").write_text("{}", encoding="utf-8")
    work = tmp_path / "work"
    (work / "stale").mkdir(parents=True)

    common.prepare_workdir(example, work)

    assert sorted(p.name for p in work.iterdir()) == ["config.json", "model"]
    assert (work / "model").is_symlink()
    assert (work / "model" / "weights.bin").read_bytes() == b"w"
    assert not (work / "config.json").is_symlink()


def test_doc_blocks_replace_in_place_and_survive_a_re_render() -> None:
    from common import carry_doc_blocks, replace_doc_block

    text = replace_doc_block("# Benchmarks\n\nintro\n", "pass-table", "## Passes\n| a |\n")
    text = replace_doc_block(text, "genai", "## genai\nv1")
    again = replace_doc_block(text, "pass-table", "## Passes\n| b |")
    assert again.count("<!-- bench:pass-table -->") == 1 and "| b |" in again and "| a |" not in again
    assert again.index("pass-table") < again.index("genai")  # replaced where it was
    rendered = carry_doc_blocks(again, "# Benchmarks\n\nnew intro\n")
    assert "new intro" in rendered and "| b |" in rendered and "## genai\nv1" in rendered
