"""``olivine doctor [--fix]`` on real damage: a bad job row, a truncated job store, a worker killed
mid-run, a corrupt cache entry, a status.json that disagrees with its sealed manifest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tiny_models import write_onnx_mlp

pytestmark = pytest.mark.integration
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.env = {**os.environ, "OLIVINE_HOME": str(self.home)}

    def olivine(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "olivine", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=300,
        )

    def submit(self, workflow_id: str = "doc", **extra: Any) -> str:
        cfg = {
            "workflow_id": workflow_id,
            "input_model": write_onnx_mlp(self.root / "mlp"),
            "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
            "systems": {"w": {"type": "LocalWorker", "cancel_grace_s": 2}},
            "workflow_host": "w",
            **extra,
        }
        path = self.root / f"{workflow_id}.json"
        path.write_text(json.dumps(cfg))
        done = self.olivine("run", "--config", str(path), "--json")
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["job_id"])

    def status(self, job: str) -> dict[str, Any]:
        done = self.olivine("status", job, "--json")
        assert done.returncode == 0, done.stderr
        doc: dict[str, Any] = json.loads(done.stdout)
        return doc

    def wait(self, job: str) -> dict[str, Any]:
        deadline = time.monotonic() + 240
        while True:
            doc = self.status(job)
            if doc["state"] in TERMINAL or time.monotonic() > deadline:
                return doc
            time.sleep(0.3)

    def doctor(self, *args: str) -> tuple[int, dict[str, Any]]:
        done = self.olivine("doctor", "--json", *args)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)

    def export_dir(self, job: str) -> Path:
        return Path(str(self.status(job)["export_root"]).removeprefix("file://"))


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_doctor_fix_rebuilds_a_bad_row_and_a_truncated_store(env: Env) -> None:
    job = env.submit()
    assert env.wait(job)["state"] == "SUCCEEDED"
    assert env.doctor() == (
        0,
        {"checked": {"jobs": 1, "caches": 1, "datastores": 1}, "findings": [], "problems_left": 0},
    )
    db = env.home / "jobs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE jobs SET record = 'garbage' WHERE job_id = ?", (job,))
    assert env.olivine("list").returncode == 0  # one bad row is not fatal to the others
    code, report = env.doctor()
    assert code == 1 and report["findings"][0]["area"] == "store"
    code, report = env.doctor("--fix")
    assert code == 0 and all(f["fixed"] for f in report["findings"])
    assert env.status(job)["state"] == "SUCCEEDED"
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            path.write_bytes(b"")
    listed = env.olivine("list")
    assert (
        listed.returncode == 1
        and "doctor --fix" in listed.stderr
        and len(listed.stderr.strip().splitlines()) == 1
    )
    code, report = env.doctor("--fix")
    assert code == 0, report
    assert env.status(job)["state"] == "SUCCEEDED"
    assert list(env.home.glob("jobs.db.corrupt-*"))  # the damaged file is kept


def test_doctor_fix_reconciles_a_killed_worker_and_repairs_cache_and_status(env: Env) -> None:
    job = env.submit("killed")
    deadline = time.monotonic() + 120
    while not env.status(job).get("host_info", {}).get("pid") and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = int(env.status(job)["host_info"]["pid"])
    os.killpg(pid, signal.SIGKILL)
    while (env.home / "jobs" / job).exists() and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    code, report = env.doctor()
    assert code == 1 and any(f["area"] == "job" for f in report["findings"]), report
    code, report = env.doctor("--fix")
    assert code == 0, report
    doc = env.status(job)
    assert doc["state"] == "FAILED" and doc["error_kind"] == "infrastructure"
    export = env.export_dir(job)
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["status"]["state"] == "FAILED"
    assert json.loads((export / "status.json").read_text())["state"] == "FAILED"
    log = "".join(p.read_text() for p in sorted((export / "logs").rglob("*")) if p.is_file())
    assert f"job {job} FAILED" in log.strip().splitlines()[-1]
    assert env.doctor() == (0, env.doctor()[1])

    good = env.submit("good")
    assert env.wait(good)["state"] == "SUCCEEDED"
    cached = next((env.home / "jobs" / good / "cache").rglob("*.onnx"))
    cached.write_bytes(b"rotten")
    status_json = env.export_dir(good) / "status.json"
    status = json.loads(status_json.read_text())
    os.chmod(status_json, 0o600)
    status_json.write_text(json.dumps({**status, "state": "RUNNING"}))
    code, report = env.doctor()
    areas = {f["area"] for f in report["findings"]}
    assert code == 1 and {"cache", "job"} <= areas, report
    code, report = env.doctor("--fix")
    assert code == 0, report
    assert json.loads(status_json.read_text())["state"] == "SUCCEEDED"
    assert env.doctor()[0] == 0


def test_doctor_fix_marks_a_succeeded_job_whose_output_is_gone_and_keeps_its_record(env: Env) -> None:
    job = env.submit("lost")
    assert env.wait(job)["state"] == "SUCCEEDED"
    export = env.export_dir(job)
    model = next((export / "output" / "model").rglob("*.onnx"))
    kept = model.read_bytes()
    model.unlink()  # a clean-up by someone else, a lifecycle rule
    code, report = env.doctor()
    lost = [f for f in report["findings"] if f["area"] == "job"]
    assert code == 1 and len(lost) == 1 and "output is lost" in lost[0]["problem"], report
    assert not any(f["area"] == "export" and "/output/" in f["where"] for f in report["findings"])
    assert env.status(job).get("damage") is None  # without --fix nothing changes
    code, report = env.doctor("--fix")
    assert code == 0, report
    doc = env.status(job)
    assert doc["state"] == "SUCCEEDED" and "output lost" in doc["damage"]  # the record is kept
    text = env.olivine("status", job).stdout
    assert "SUCCEEDED (damaged)" in text and "output/model" in text
    assert "SUCCEEDED (damaged)" in env.olivine("list").stdout
    fetched = env.olivine("fetch", job, "--to", str(env.root / "got"))
    assert fetched.returncode == 2 and len(fetched.stderr.strip().splitlines()) == 1, fetched.stderr
    assert "output lost" in fetched.stderr
    assert env.doctor() == (0, env.doctor()[1])  # marked: nothing new to report

    model.write_bytes(kept)  # the file is back: the mark goes
    code, report = env.doctor("--fix")
    assert code == 0 and any("verifies again" in f["problem"] for f in report["findings"]), report
    assert env.status(job).get("damage") is None
    assert env.olivine("fetch", job, "--to", str(env.root / "got")).returncode == 0

    # The whole export removed: reported and marked, never sealed again as if the output were there.
    shutil.rmtree(export)
    code, report = env.doctor("--fix")
    assert env.status(job)["damage"].endswith("is gone (no manifest)"), report
    assert not (export / "manifest.json").exists()
    # Left open (exports are append-only): the data-asset record that points at the removed export.
    left = [f for f in report["findings"] if not f["fixed"]]
    assert code == 1 and len(left) == 1 and "its export is gone" in left[0]["problem"], report


def test_doctor_fix_makes_the_store_follow_a_seal_the_monitor_could_not_read(env: Env) -> None:
    """The worker sealed SUCCEEDED, then died while the datastore was unreachable: the monitor recorded
    "worker process died" (found by bench/faults.py storage_kill@commit). The seal is the commit point."""
    job = env.submit("sealed")
    assert env.wait(job)["state"] == "SUCCEEDED"
    db = env.home / "jobs.db"
    with sqlite3.connect(db) as conn:
        record = json.loads(conn.execute("SELECT record FROM jobs WHERE job_id = ?", (job,)).fetchone()[0])
        record.update(state="FAILED", error_kind="infrastructure", message="worker process died (pid 1)")
        conn.execute(
            "UPDATE jobs SET state = 'FAILED', record = ? WHERE job_id = ?", (json.dumps(record), job)
        )
    code, report = env.doctor()
    assert code == 1 and any("sealed export SUCCEEDED" in f["problem"] for f in report["findings"]), report
    code, report = env.doctor("--fix")
    assert code == 0, report
    doc = env.status(job)
    assert (
        doc["state"] == "SUCCEEDED" and doc["error_kind"] is None and doc["message"].startswith("succeeded")
    )
    assert env.olivine("fetch", job, "--to", str(env.root / "got")).returncode == 0
