"""The report at the end of a real search (tiny MLP), and `olivine report` on a job and on what fetch got."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from olivine.api import load, run_local
from tiny_models import MLP_IN, write_onnx_mlp

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, *, plot: bool, **extra: Any) -> Path:
    cfg: dict[str, Any] = {
        "workflow_id": "mlp_search",
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "systems": {"worker": {"type": "LocalWorker"}},
        "data_configs": [
            {
                "name": "latency_data",
                "type": "DummyDataContainer",
                "load_dataset_config": {
                    "input_names": ["input"],
                    "input_shapes": [[1, MLP_IN]],
                    "input_types": ["float32"],
                    "max_samples": 1,
                },
            }
        ],
        "evaluators": {
            "e": {
                "metrics": [
                    {
                        "name": "latency",
                        "type": "latency",
                        "data_config": "latency_data",
                        "sub_types": [
                            {
                                "name": "avg",
                                "priority": 1,
                                "metric_config": {"warmup_num": 1, "repeat_test_num": 5},
                            }
                        ],
                    },
                    {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 2}]},
                ]
            }
        },
        "passes": {
            "quantize": {
                "type": "OnnxDynamicQuantization",
                "per_channel": "SEARCHABLE_VALUES",
                "reduce_range": "SEARCHABLE_VALUES",
                # Fixed, or Olive's rule would search them too (every searchable parameter left unset).
                "precision": "int8",
                "quant_preprocess": False,
            }
        },
        "engine": {
            "evaluator": "e",
            "search_strategy": {"execution_order": "joint", "sampler": "sequential"},
            "plot_pareto_frontier": plot,
            "cache_dir": str(tmp_path / "cache"),
            "output_dir": str(tmp_path / "out"),
        },
    }
    cfg.update(extra)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def _row_ids(page: str) -> list[str]:
    return re.findall(r'<tr class="[^"]*" data-id="([^"]+)"', page)


def test_search_run_writes_the_report_and_with_plot_pareto_frontier_the_plot(tmp_path: Path) -> None:
    result = run_local(load(_config(tmp_path, plot=True)))
    out = result.output_dir
    footprint = json.loads((out / "footprint.json").read_text())
    ids = [c["id"] for c in footprint["candidates"]]
    assert len(ids) == 4
    page = (out / "report.html").read_text()
    assert _row_ids(page) == ["input", *ids]
    assert f'data-id="{footprint["best"]}"' in page and 'class="best-ring"' in page
    assert (out / "pareto_frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "pareto_frontier_footprint_chart.html").is_file()


def test_search_run_without_plot_pareto_frontier_writes_only_the_page(tmp_path: Path) -> None:
    result = run_local(load(_config(tmp_path, plot=False)))
    assert (result.output_dir / "report.html").is_file()
    assert not (result.output_dir / "pareto_frontier.png").exists()
    assert not (result.output_dir / "pareto_frontier_footprint_chart.html").exists()


def _cli(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLIVINE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def test_report_command_on_a_job_and_on_its_fetched_output(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = _config(tmp_path, plot=False, workflow_host="worker")
    run = _cli(home, "run", "--config", str(config), "--follow", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    job = re.search(r"job (job-[0-9a-f]+)", run.stdout)
    assert job is not None, run.stdout
    job_id = job.group(1)

    done = _cli(home, "report", job_id, "--no-png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    page = tmp_path / "olivine-report" / job_id / "report.html"
    assert done.stdout.strip() == f"report -> {page}"
    assert len(_row_ids(page.read_text())) == 5

    fetched = _cli(home, "fetch", job_id, "--to", "got", cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    exported = (tmp_path / "got" / "output" / "report.html").read_text()  # the worker's, exported
    assert len(_row_ids(exported)) == 5
    again = _cli(home, "report", "got", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "got" / "output" / "pareto_frontier.png").is_file()
