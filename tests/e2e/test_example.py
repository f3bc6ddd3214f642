"""The real MiniLM example end to end (slow tier): fused export, fidelity goal, cached rerun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "minilm"


def _run(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLIVINE_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "olivine", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=1800,
    )


def test_example_runs_in_process_meets_fidelity_goal_and_reruns_from_cache(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(EXAMPLE / "prepare.py")], check=True)
    cfg = json.loads((EXAMPLE / "config.json").read_text())
    cfg.pop("workflow_host")  # in this process: the remote path has its own tests
    cfg["engine"]["cache_dir"] = str(tmp_path / "cache")
    cfg["engine"]["output_dir"] = str(tmp_path / "out")
    folder = tmp_path / "example"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".fidelity_cache", "__pycache__"))
    config = folder / "config.json"
    config.write_text(json.dumps(cfg))

    first = _run(tmp_path, config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "fused: Attention=6" in first.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["fidelity-cosine"]["value"] >= 0.99
    footprint = json.loads((tmp_path / "out" / "footprint.json").read_text())
    assert len(footprint["nodes"]) == 4

    second = _run(tmp_path, config)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("cache hit") == 3 + 4
    assert "best model:" in second.stdout
