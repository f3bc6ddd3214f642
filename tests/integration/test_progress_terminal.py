"""``olivine run --local`` shows a progress bar on a terminal and plain log lines elsewhere."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_search import search_config

pytestmark = pytest.mark.integration

PASSES = {"quant": {"type": "OnnxDynamicQuantization", "per_channel": "SEARCHABLE_VALUES"}}
STRATEGY = {"sampler": "sequential", "include_pass_params": False}


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(search_config(tmp_path, PASSES, STRATEGY)))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "400", "LINES": "50"}


def test_run_local_draws_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    command = [sys.executable, "-m", "olivine", "run", "--config", str(_config(tmp_path)), "--local"]
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=_env(), cwd=tmp_path)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=60) == 0
    out = b"".join(chunks).decode("utf-8", "replace")
    bars = [part.splitlines()[0] for part in out.split("\r\x1b[2K") if part.startswith("[")]
    assert any(b.startswith("[----------") and "candidate 1 of 2" in b for b in bars)
    assert any("candidate 2 of 2" in b and "quant.per_channel=False" in b and "best c000" in b for b in bars)
    assert any("evaluating input model" in part for part in out.split("\r\x1b[2K"))
    # Log lines still come, each on a line of its own above the bar.
    assert "candidate 2 of 2 [quant] quant.per_channel=False ->" in out


def test_run_local_writes_plain_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "olivine", "run", "--config", str(_config(tmp_path)), "--local"]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stderr and "\x1b[" not in done.stderr
    assert "candidate 1 of 2 [quant] quant.per_channel=True ->" in done.stderr
    assert "best so far: c000" in done.stderr
