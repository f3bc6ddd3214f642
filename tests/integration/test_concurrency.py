"""Concurrency: 20 workflows submitted at once to one job store and one datastore, with status and list
read in a loop meanwhile, and foreground runs sharing one cache_dir. Everything succeeds, every export
verifies against its manifest, and no cache entry is torn.

Slow (about a minute on 2 cores): runs in CI's slow tier (``bash scripts/test.sh -m slow``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from olivine.engine.cache import WorkflowCache
from tiny_models import write_onnx_mlp

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUBMISSIONS = 20
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def _config(folder: Path, workflow_id: str, model: dict[str, Any], **extra: Any) -> Path:
    cfg = {
        "workflow_id": workflow_id,
        "input_model": model,
        "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
        "evaluators": {
            "ev": {"metrics": [{"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]}
        },
        "evaluator": "ev",
        **extra,
    }
    path = folder / f"{workflow_id}-{len(list(folder.glob('*.json')))}.json"
    path.write_text(json.dumps(cfg))
    return path


def _olivine(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "olivine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_twenty_concurrent_submissions_all_succeed_and_verify(tmp_path: Path) -> None:
    env = {**os.environ, "OLIVINE_HOME": str(tmp_path / "home")}
    model = write_onnx_mlp(tmp_path / "mlp")
    host = {"systems": {"w": {"type": "LocalWorker"}}, "workflow_host": "w"}
    # Half share one workflow id (claims in the same second, one asset index, seeding from each other),
    # half have their own.
    configs = [_config(tmp_path, "shared" if i % 2 else f"own{i}", model, **host) for i in range(SUBMISSIONS)]
    readers_failed: list[str] = []
    stop = threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            for args in (("list", "--json"), ("status", "--json")):
                done = _olivine(env, *args, cwd=tmp_path)
                # status without a job before the first submission: "no jobs" is exit 2, fine.
                if done.returncode not in (0, 2) or "Traceback" in done.stderr:
                    readers_failed.append(f"{args}: {done.returncode} {done.stderr.strip()[:200]}")

    reader = threading.Thread(target=read_loop, daemon=True)
    reader.start()
    with ThreadPoolExecutor(SUBMISSIONS) as pool:
        submitted = list(
            pool.map(lambda c: _olivine(env, "run", "--config", str(c), "--json", cwd=tmp_path), configs)
        )
    assert all(s.returncode == 0 for s in submitted), [s.stderr for s in submitted if s.returncode]
    jobs = [json.loads(s.stdout)["job_id"] for s in submitted]
    assert len(set(jobs)) == SUBMISSIONS
    deadline = time.monotonic() + 900
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        listed = json.loads(_olivine(env, "list", "--json", "--limit", "100", cwd=tmp_path).stdout)
        states = {j["job_id"]: j["state"] for j in listed if j["job_id"] in jobs}
        if len(states) == SUBMISSIONS and set(states.values()) <= TERMINAL:
            break
        time.sleep(1)
    stop.set()
    reader.join(timeout=60)
    assert set(states.values()) == {"SUCCEEDED"}, states
    assert not readers_failed, readers_failed[:3]
    exports = set()
    for job in jobs:
        fetched = _olivine(env, "fetch", job, "--all", "--to", str(tmp_path / "fetch" / job), cwd=tmp_path)
        assert fetched.returncode == 0, fetched.stderr
        status = json.loads(_olivine(env, "status", job, "--json", cwd=tmp_path).stdout)
        exports.add(status["export_root"])
    assert len(exports) == SUBMISSIONS  # one export folder each, even within one second
    assets = _olivine(env, "assets", "show", "shared", "--json", cwd=tmp_path)
    if assets.returncode == 0 and assets.stdout.strip().startswith("{"):
        assert json.loads(assets.stdout).get("name") == "shared"


def test_concurrent_foreground_runs_share_one_cache_dir_without_torn_entries(tmp_path: Path) -> None:
    env = {**os.environ, "OLIVINE_HOME": str(tmp_path / "home")}
    model = write_onnx_mlp(tmp_path / "mlp")
    cache = tmp_path / "cache"
    configs = [
        _config(tmp_path, "local", model, cache_dir=str(cache), output_dir=str(tmp_path / f"out{i}"))
        for i in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda c: _olivine(env, "run", "--config", str(c), cwd=tmp_path), configs))
    assert all(r.returncode == 0 for r in runs), [r.stderr[-500:] for r in runs if r.returncode]
    for i in range(4):
        assert any(p.is_file() for p in (tmp_path / f"out{i}" / "model").rglob("*"))
    wf_cache = WorkflowCache(cache, "local")
    keys = [p.name for p in wf_cache.runs.iterdir() if not p.name.startswith(".")]
    assert keys
    for key in keys:
        assert wf_cache.load_run(key) is not None, key  # complete: record and model files
    assert not [p for p in wf_cache.runs.iterdir() if p.name.startswith(".staging-")]
