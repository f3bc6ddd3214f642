"""`olivine report` on an output folder, a fetched folder and an export URL, as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from footprints import write_footprint

pytestmark = pytest.mark.integration


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLIVINE_HOME": str(cwd / "home")}
    return subprocess.run(
        [sys.executable, "-m", "olivine", "report", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_report_command_writes_the_page_and_plot_beside_the_footprint(tmp_path: Path) -> None:
    out = write_footprint(tmp_path / "out").parent
    done = _cli("out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"report -> {out / 'report.html'}",
        f"plot   -> {out / 'pareto_frontier.png'}",
    ]
    assert 'data-id="c0012"' in (out / "report.html").read_text()


def test_report_command_reads_a_folder_filled_by_fetch(tmp_path: Path) -> None:
    write_footprint(tmp_path / "fetched" / "output")
    done = _cli("fetched", "--no-png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fetched" / "output" / "report.html").is_file()
    assert not (tmp_path / "fetched" / "output" / "pareto_frontier.png").exists()


def test_report_command_reads_an_export_url(tmp_path: Path) -> None:
    export = tmp_path / "store" / "2026-12-01-10-20-30" / "minilm-search"
    write_footprint(export / "output")
    url = export.as_uri()
    done = _cli(url, "--no-png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    page = tmp_path / "olivine-report" / "minilm-search" / "report.html"
    assert done.stdout.strip() == f"report -> {page}"
    assert f"{url} (output/footprint.json)" in page.read_text()
    to = tmp_path / "elsewhere"
    assert _cli(url, "--no-png", "--to", str(to), cwd=tmp_path).returncode == 0
    assert (to / "report.html").is_file()


def test_report_command_says_what_is_missing_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = _cli("empty", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "olivine: error: empty: no footprint.json here (nor in empty/output); "
        "give an output folder of a run, a folder filled by `olivine fetch`, a job id or an export URL"
    ]
    old = tmp_path / "old"
    old.mkdir()
    (old / "footprint.json").write_text(json.dumps({"workflow_id": "w", "nodes": {}}))
    done = _cli("old", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "footprint.json: schema: expected 'olivine.footprint/2', got null" in done.stderr
    export = tmp_path / "store" / "2026-12-01-10-20-30" / "wf"
    export.mkdir(parents=True)
    done = _cli(export.as_uri(), cwd=tmp_path)
    assert done.returncode == 2
    assert "its export has no output/footprint.json (yet)" in done.stderr
    done = _cli("job-0000000000", cwd=tmp_path)
    assert done.returncode == 2 and "no job matches 'job-0000000000'" in done.stderr
