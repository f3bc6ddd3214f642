"""bench/run_all.py and bench/report.py read both export measurements of export_throughput.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import report
import run_all

OUTPUT = """files: 200 MB in 222 files
shutil.copy (cold files):        1500 MB/s (rounds: 1459, 1732)
exporter (cold files):           770 MB/s (rounds: 939, 761)
shutil.copy (engine cache):      1460 MB/s (rounds: 1398, 1782)
exporter (engine cache):         1300 MB/s (rounds: 996, 1064)
commit_run hashing (engine cache, once per run): 0.19 s, CPU 0.19 s (1031 MB/s)
ratio exporter/copy, cold files (sha256 at export): 0.51 (target >= 0.80)
ratio exporter/copy, engine cache (sha256 recorded at commit): 0.89 (target >= 0.80)
"""


def test_parse_export_output_reads_both_cases() -> None:
    assert run_all.parse_export_output(OUTPUT) == {
        "copy_mbs": 1500.0,
        "exporter_mbs": 770.0,
        "ratio": 0.51,
        "cache_copy_mbs": 1460.0,
        "cache_exporter_mbs": 1300.0,
        "cache_ratio": 0.89,
        "commit_hash_s": 0.19,
    }


def test_goal_rows_show_engine_cache_and_cold_export_separately() -> None:
    rows = {r.what: r for r in report.goal_rows({"export": run_all.parse_export_output(OUTPUT)})}
    cache = rows["Export throughput vs plain copy, engine cache (sha256 recorded at commit)"]
    cold = rows["Export throughput vs plain copy, cold files (sha256 at export)"]
    assert (cache.ratio, cache.status) == ("0.89x", "met")
    assert (cold.ratio, cold.status) == ("0.51x", "not met")


REAL = """workflow cache /w/.olivine-cache/minilm: 237 MB in 11 files
shutil.copy (workflow cache):    2038 MB/s (rounds: 1847, 2083)
exporter (workflow cache):       2728 MB/s (rounds: 2829, 2753)
ratio exporter/copy, workflow cache (a real run's): 1.34 (target >= 0.80)
"""


def test_parse_export_output_reads_the_real_workflow_cache_case() -> None:
    parsed = run_all.parse_export_output(OUTPUT + REAL)
    assert (parsed["real_copy_mbs"], parsed["real_exporter_mbs"], parsed["real_ratio"]) == (
        2038.0,
        2728.0,
        1.34,
    )
    assert parsed["ratio"] == 0.51 and parsed["cache_ratio"] == 0.89
    row = {r.what: r for r in report.goal_rows({"export": parsed})}[
        "Export throughput vs plain copy, the MiniLM workflow's cache"
    ]
    assert (row.ratio, row.status) == ("1.34x", "met")
