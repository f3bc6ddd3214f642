"""report.html in a real browser: Debian's chromium, headless, with every network route closed.

Skipped (with the reason) where chromium is not installed; under CI (``CI`` set) a missing chromium fails
instead, since .ci/run installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from footprints import write_footprint
from olivine.report import write_report
from olivine.report.footprint import load_footprint
from olivine.report.svg import COLORS, GOAL_COLOR

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# Latency order (descending) of the hand-made footprint's plotted records, then the ones without a latency
# in proposal order (empty cells sort last).
BY_LATENCY_DESC = ["input", "c0011", "c0010", "c0006", "c0005", "c0002", "c0004", "c0001", "c0003"]
NO_LATENCY = ["c0007", "c0008", "c0009", "c0012"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def _run_chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    args = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # No network at all: a dead proxy and no name resolution, so a page that fetched anything would
        # show it (and the page's Content-Security-Policy forbids fetching in the first place).
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1280,1800",
        *extra,
        url,
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = write_footprint(tmp_path / "out")
    return write_report(load_footprint(path), path.parent, source=str(path), png=False).html


def test_report_renders_points_and_sorts_the_table_in_chromium(tmp_path: Path, report: Path) -> None:
    dom = _run_chromium(tmp_path, f"{report.as_uri()}#sort=m:latency-avg,desc", "--dump-dom").stdout
    # The script ran to its end and counted the plotted points (input + 8 evaluated).
    assert re.search(r'<html[^>]* data-report-ready="9"', dom)
    assert len(re.findall(r'<g class="pt ', dom)) == 9
    assert 'data-sorted-by="m:latency-avg,desc"' in dom
    assert re.search(r'data-col="m:latency-avg" aria-sort="descending"', dom)
    rows = re.findall(r'<tr class="[^"]*" data-id="([^"]+)"', dom)
    assert rows == BY_LATENCY_DESC + NO_LATENCY


def test_report_paints_the_plot_in_chromium(tmp_path: Path, report: Path) -> None:
    image = pytest.importorskip("PIL.Image", reason="Pillow (with the report extra) reads the screenshot")
    shot = tmp_path / "shot.png"
    _run_chromium(tmp_path, report.as_uri(), f"--screenshot={shot}")
    colors = image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24)
    counts: dict[tuple[int, int, int], int] = {color: n for n, color in colors}

    def rgb(color: str) -> tuple[int, int, int]:
        return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)

    # Filled markers in their exact colours: the frontier (3 points + legend), the input model's diamond,
    # the goal line; anti-aliasing leaves the centres of the shapes exact.
    assert counts.get(rgb(COLORS["frontier"][0]), 0) > 100
    assert counts.get(rgb(COLORS["input"][0]), 0) > 50
    assert counts.get(rgb(COLORS["meets"][0]), 0) > 30
    assert counts.get(rgb(GOAL_COLOR), 0) > 100
