"""Fault injection: submit tiny workflows to the LocalWorker host, break things at random, count the damage.

Each round submits a small workflow (an ONNX MLP, one quantization pass, a size metric) in one shared
``OLIVINE_HOME`` (one job store, one default ``file://`` datastore) and injects one fault at a random
moment:

    sigkill         SIGKILL of the worker's process group at a random time
    sigkill_commit  SIGKILL right after the engine logged "finished in" (during the final export/commit)
    sigterm         SIGTERM of the worker (the cancel path) at a random time
    cache_delete    delete a random file of the job's local cache while it runs
    cache_corrupt   flip a byte of a random file of the job's local cache while it runs
    export_corrupt  flip a byte of a random exported cache file after the job ended
    export_delete   delete a random exported cache file after the job ended
    unwritable      make the export folder read-only for a moment while the job runs
    resume_race     SIGKILL the worker, then resume the job twice at the same time
    clean_cache     two runs in this machine's foreground on one cache_dir, one with clean_cache: true
    bad_row         overwrite another job's row in jobs.db with garbage while this one runs

Then it reconciles (``olivine doctor --fix``) and checks:

    consistent      job store, the export's status.json, its manifest and the log's last verdict agree
    false SUCCEEDED a job (or a foreground run) reported success but its output does not verify
    lost            a job that failed from a fault could not be recovered by ``olivine resume``, or a
                    SUCCEEDED job's export does not verify (when the fault did not touch the export)
    detected        an injected export corruption that ``olivine fetch`` refused (expected)

    .venv/bin/python bench/faults.py [--faults 200] [--seed 1] [--json OUT] [--keep]

It starts only the processes it kills (workers it submitted) and removes its folder unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import MAIN_VENV, REPO, bench_env

OLIVINE = [str(MAIN_VENV / "bin" / "python"), "-m", "olivine"]
KINDS = (
    "sigkill",
    "sigkill_commit",
    "sigterm",
    "cache_delete",
    "cache_corrupt",
    "export_corrupt",
    "export_delete",
    "unwritable",
    "resume_race",
    "clean_cache",
    "bad_row",
)
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
JOB_TIMEOUT_S = 300.0


class Bench:
    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.home = root / "home"
        self.env = bench_env({"OLIVINE_HOME": str(self.home)})
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.typical_s = 8.0
        self.config = self._workflow("faults", host=True)

    # -- set-up ------------------------------------------------------------------------------------
    def _workflow(self, workflow_id: str, *, host: bool, extra: dict[str, Any] | None = None) -> Path:
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_models import write_onnx_mlp

        folder = self.root / "configs"
        folder.mkdir(parents=True, exist_ok=True)
        model = folder / "mlp"
        cfg: dict[str, Any] = {
            "workflow_id": workflow_id,
            "input_model": write_onnx_mlp(model) if not model.exists() else _mlp_config(model),
            "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
            "evaluators": {
                "ev": {
                    "metrics": [{"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]}]
                }
            },
            "evaluator": "ev",
            **(extra or {}),
        }
        if host:
            cfg["systems"] = {"worker": {"type": "LocalWorker", "cancel_grace_s": 3}}
            cfg["workflow_host"] = "worker"
        path = folder / f"{workflow_id}-{len(list(folder.glob('*.json')))}.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        return path

    def olivine(
        self, *args: str, check: bool = False, timeout: float = JOB_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*OLIVINE, *args], capture_output=True, text=True, env=self.env, timeout=timeout, cwd=self.root
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"olivine {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def submit(self, config: Path | None = None, *, fresh: bool = False) -> str:
        args = ["run", "--config", str(config or self.config), "--json"]
        done = self.olivine(*args, *(["--fresh"] if fresh else []), check=True)
        return str(json.loads(done.stdout)["job_id"])

    def status(self, job_id: str) -> dict[str, Any]:
        done = self.olivine("status", job_id, "--json")
        if done.returncode != 0:
            return {"state": "UNREADABLE", "error": done.stderr.strip()}
        doc: dict[str, Any] = json.loads(done.stdout)
        return doc

    def wait(self, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            doc = self.status(job_id)
            if doc.get("state") in TERMINAL or time.monotonic() > deadline:
                return doc
            time.sleep(0.3)

    def job_dir(self, job_id: str) -> Path:
        return self.home / "jobs" / job_id

    def pid(self, job_id: str, timeout_s: float = 30.0) -> int | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            doc = self.status(job_id)
            pid = (doc.get("host_info") or {}).get("pid")
            if pid:
                return int(pid)
            if doc.get("state") in TERMINAL:
                return None
            time.sleep(0.1)
        return None

    def export_dir(self, doc: dict[str, Any]) -> Path | None:
        root = doc.get("export_root")
        if not root or not str(root).startswith("file://"):
            return None
        return Path(str(root)[len("file://") :])

    # -- checks ------------------------------------------------------------------------------------
    def reconcile(self) -> None:
        done = self.olivine("doctor", "--fix")
        if done.returncode not in (0, 1):
            self.problem(f"doctor --fix exited {done.returncode}: {done.stderr.strip()[:200]}")

    def consistent(self, job_id: str) -> bool:
        """Store, status.json, manifest and the log's last verdict agree on the final state."""
        doc = self.status(job_id)
        state = doc.get("state")
        export = self.export_dir(doc)
        if state not in TERMINAL:
            self.problem(f"{job_id}: still {state} after reconciliation")
            return False
        if export is None or not export.exists():
            return True  # never got as far as an export: the store is the only truth
        views = {"store": state}
        status_file = export / "status.json"
        if status_file.is_file():
            views["status.json"] = json.loads(status_file.read_text()).get("state")
        manifest = export / "manifest.json"
        if manifest.is_file():
            status = json.loads(manifest.read_text()).get("status") or {}
            views["manifest"] = status.get("state") if isinstance(status, dict) else status
        else:
            views["manifest"] = "missing"
        verdict = _last_verdict(export / "logs", job_id)
        if verdict is not None:
            views["log"] = verdict
        if len(set(views.values())) != 1:
            self.problem(f"{job_id}: inconsistent {views}")
            return False
        return True

    def output_verifies(self, job_id: str, which: str = "output") -> bool:
        dest = self.root / "fetch" / f"{job_id}-{which}"
        shutil.rmtree(dest, ignore_errors=True)
        done = self.olivine("fetch", job_id, f"--{which}", "--to", str(dest))
        if done.returncode != 0:
            return False
        if which == "output":
            model = dest / "output" / "model"
            return model.is_dir() and any(p.is_file() for p in model.rglob("*"))
        return True

    def settle(self, job_id: str, kind: str, *, export_touched: bool = False) -> None:
        """Wait, reconcile, check; recover a failed job by resume."""
        doc = self.wait(job_id)
        self.reconcile()
        doc = self.status(job_id)
        self.counts[f"state:{doc.get('state')}"] += 1
        if self.consistent(job_id):
            self.counts["consistent"] += 1
        else:
            self.counts["inconsistent"] += 1
        if doc.get("state") == "SUCCEEDED":
            if not self.output_verifies(job_id):
                self.counts["false_succeeded"] += 1
                self.problem(f"{job_id} ({kind}): SUCCEEDED but its output does not verify")
            elif not export_touched and not self.output_verifies(job_id, "all"):
                self.counts["lost"] += 1
                self.problem(f"{job_id} ({kind}): SUCCEEDED but its export does not verify")
        elif doc.get("state") in ("FAILED", "CANCELLED"):
            self.recover(job_id, kind)

    def recover(self, job_id: str, kind: str) -> None:
        done = self.olivine("resume", job_id, "--json")
        if done.returncode != 0:
            self.counts["lost"] += 1
            self.problem(f"{job_id} ({kind}): resume refused: {done.stderr.strip()[:200]}")
            return
        new = str(json.loads(done.stdout)["job_id"])
        final = self.wait(new)
        if final.get("state") == "SUCCEEDED" and self.output_verifies(new):
            self.counts["recovered_by_resume"] += 1
        else:
            self.counts["lost"] += 1
            self.problem(
                f"{job_id} ({kind}): resume {new} ended {final.get('state')}: {final.get('message')}"
            )

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  ! {text}", flush=True)

    # -- faults ------------------------------------------------------------------------------------
    def fault_sigkill(self) -> None:
        self._signal_at_random(signal.SIGKILL, "sigkill")

    def fault_sigterm(self) -> None:
        self._signal_at_random(signal.SIGTERM, "sigterm")

    def _signal_at_random(self, sig: signal.Signals, kind: str) -> None:
        job = self.submit()
        pid = self.pid(job)
        if pid is not None:
            time.sleep(self.rng.uniform(0, self.typical_s))
            _killpg(pid, sig)
        self.settle(job, kind)

    def fault_sigkill_commit(self) -> None:
        job = self.submit()
        pid = self.pid(job)
        log = self.job_dir(job) / "job.log"
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while pid is not None and time.monotonic() < deadline:
            if log.is_file() and "finished in" in log.read_text(errors="replace"):
                time.sleep(self.rng.uniform(0, 0.08))
                _killpg(pid, signal.SIGKILL)
                break
            if self.status(job).get("state") in TERMINAL:
                break
            time.sleep(0.01)
        self.settle(job, "sigkill_commit")

    def _during_run(self, kind: str, action: Callable[[str], None]) -> None:
        job = self.submit()
        self.pid(job)
        time.sleep(self.rng.uniform(0, self.typical_s * 0.8))
        action(job)
        self.settle(job, kind)

    def fault_cache_delete(self) -> None:
        self._during_run(
            "cache_delete", lambda job: _touch_random(self.job_dir(job) / "cache", self.rng, delete=True)
        )

    def fault_cache_corrupt(self) -> None:
        self._during_run(
            "cache_corrupt", lambda job: _touch_random(self.job_dir(job) / "cache", self.rng, delete=False)
        )

    def fault_unwritable(self) -> None:
        def action(job: str) -> None:
            # Permission bits do not stop root (CI runs as root): put a plain file where the export
            # folder is, so every write under it fails (ENOTDIR), then put the folder back.
            export = self.export_dir(self.status(job))
            if export is None or not export.exists():
                return
            hidden = export.with_name(export.name + ".away")
            os.rename(export, hidden)
            export.write_bytes(b"")
            time.sleep(self.rng.uniform(0.2, 2.0))
            export.unlink()
            os.rename(hidden, export)

        self._during_run("unwritable", action)

    def _after_end(self, kind: str, delete: bool) -> None:
        job = self.submit()
        doc = self.wait(job)
        export = self.export_dir(doc)
        touched = export is not None and _touch_random(export / "cache", self.rng, delete=delete)
        self.settle(job, kind, export_touched=True)
        if touched:
            if self.output_verifies(job, "all"):
                self.problem(f"{job} ({kind}): fetch --all accepted a damaged export")
            else:
                self.counts["detected"] += 1
            # The next run of the workflow seeds from the damaged export: it must still succeed.
            follow = self.submit()
            final = self.wait(follow)
            if final.get("state") != "SUCCEEDED" or not self.output_verifies(follow):
                self.counts["lost"] += 1
                self.problem(
                    f"{follow}: run after a damaged export ended {final.get('state')}: {final.get('message')}"
                )
            self.counts["consistent" if self.consistent(follow) else "inconsistent"] += 1

    def fault_export_corrupt(self) -> None:
        self._after_end("export_corrupt", delete=False)

    def fault_export_delete(self) -> None:
        self._after_end("export_delete", delete=True)

    def fault_resume_race(self) -> None:
        job = self.submit()
        pid = self.pid(job)
        if pid is not None:
            time.sleep(self.rng.uniform(0, self.typical_s))
            _killpg(pid, signal.SIGKILL)
        self.wait(job)
        self.reconcile()
        state = self.status(job).get("state")
        self.counts["consistent" if self.consistent(job) else "inconsistent"] += 1
        self.counts[f"state:{state}"] += 1
        if state == "SUCCEEDED":
            return
        procs = [
            subprocess.Popen(
                [*OLIVINE, "resume", job, "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
                cwd=self.root,
            )
            for _ in range(2)
        ]
        news = []
        for proc in procs:
            out, err = proc.communicate(timeout=JOB_TIMEOUT_S)
            if proc.returncode == 0:
                news.append(str(json.loads(out)["job_id"]))
            else:
                self.problem(f"{job}: concurrent resume refused: {err.strip()[:200]}")
        ok = 0
        for new in news:
            final = self.wait(new)
            self.counts["consistent" if self.consistent(new) else "inconsistent"] += 1
            if final.get("state") == "SUCCEEDED" and self.output_verifies(new):
                ok += 1
        if ok:
            self.counts["recovered_by_resume"] += 1
        else:
            self.counts["lost"] += 1
            self.problem(f"{job}: neither concurrent resume succeeded")

    def fault_clean_cache(self) -> None:
        cache = self.root / "shared-cache"
        configs = [
            self._workflow(
                "cc",
                host=False,
                extra={
                    "cache_dir": str(cache),
                    "output_dir": str(self.root / f"out-{i}"),
                    "clean_cache": i == 1,
                },
            )
            for i in range(2)
        ]
        procs = [
            subprocess.Popen(
                [*OLIVINE, "run", "--config", str(c)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
                cwd=self.root,
            )
            for c in configs
        ]
        for i, proc in enumerate(procs):
            _, err = proc.communicate(timeout=JOB_TIMEOUT_S)
            out = self.root / f"out-{i}"
            if proc.returncode == 0:
                model = out / "model"
                if not (model.is_dir() and any(p.is_file() for p in model.rglob("*"))):
                    self.counts["false_succeeded"] += 1
                    self.problem(f"clean_cache run {i} exited 0 with an empty output")
                else:
                    self.counts["local:SUCCEEDED"] += 1
            else:
                lines = err.strip().splitlines()
                if len(lines) != 1 or "Traceback" in err:
                    self.problem(f"clean_cache run {i} failed without one clear line: {err.strip()[-300:]}")
                self.counts["local:FAILED"] += 1
        self.counts["consistent"] += 1  # no job store involved: consistency is the output check above

    def fault_bad_row(self) -> None:
        victim = self.submit()
        self.wait(victim)
        job = self.submit()
        db = self.home / "jobs.db"
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn, conn:
            conn.execute("UPDATE jobs SET record = ? WHERE job_id = ?", ("{not json", victim))
        listed = self.olivine("list", "--json")
        if listed.returncode != 0:
            self.problem(f"list failed with one bad row: {listed.stderr.strip()[:200]}")
        self.settle(job, "bad_row")
        self.reconcile()  # doctor --fix repairs or quarantines the row
        if self.olivine("list").returncode != 0:
            self.problem("list still fails after doctor --fix")

    # -- the loop ----------------------------------------------------------------------------------
    def calibrate(self) -> None:
        start = time.monotonic()
        job = self.submit(fresh=True)
        doc = self.wait(job)
        self.typical_s = max(2.0, time.monotonic() - start)
        print(f"baseline job {job}: {doc.get('state')} in {self.typical_s:.1f}s", flush=True)
        if doc.get("state") != "SUCCEEDED":
            raise SystemExit(f"the baseline job did not succeed: {doc.get('message')}")

    def run(self, faults: int) -> None:
        streak = 0
        for i in range(faults):
            kind = self.rng.choice(KINDS)
            started = time.monotonic()
            try:
                getattr(self, f"fault_{kind}")()
            except Exception as exc:  # a bench bug or a hung command: count it, go on
                self.problem(f"fault {i + 1} ({kind}) raised {type(exc).__name__}: {exc}")
                self.counts["bench_errors"] += 1
                streak += 1
                if streak >= 3:  # the environment is broken (e.g. the venv vanished): stop counting
                    message = "3 bench errors in a row: stopping; the counts above are not valid"
                    raise SystemExit(message) from exc
                continue
            finally:
                self.counts["faults"] += 1
                self.counts[f"kind:{kind}"] += 1
                print(f"[{i + 1}/{faults}] {kind} ({time.monotonic() - started:.1f}s)", flush=True)
            streak = 0


def _mlp_config(model: Path) -> dict[str, Any]:
    return {"type": "ONNXModel", "model_path": str(model)}


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _touch_random(folder: Path, rng: random.Random, *, delete: bool) -> bool:
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        return False
    victim = rng.choice(files)
    try:
        if delete:
            victim.unlink()
        else:
            data = bytearray(victim.read_bytes())
            if not data:
                return False
            data[rng.randrange(len(data))] ^= 0xFF
            mode = victim.stat().st_mode
            victim.chmod(0o600)
            victim.write_bytes(bytes(data))
            victim.chmod(mode)
    except OSError:
        return False
    return True


def _last_verdict(logs: Path, job_id: str) -> str | None:
    """The state in the last ``job <id> <STATE>`` line of the exported log, if there is one."""
    if not logs.is_dir():
        return None
    text = "".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*")) if p.is_file())
    verdict = None
    for line in text.splitlines():
        for state in TERMINAL:
            if f"job {job_id} {state}" in line:
                verdict = state
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=200, help="faults to inject (default 200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the counts here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="olivine-faults-"))
    bench = Bench(root, random.Random(args.seed))
    start = time.monotonic()
    try:
        bench.calibrate()
        bench.run(args.faults)
    finally:
        counts = dict(sorted(bench.counts.items()))
        counts["wall_s"] = round(time.monotonic() - start, 1)
        summary = {
            "faults injected": counts.get("faults", 0),
            "jobs recovered by resume": counts.get("recovered_by_resume", 0),
            "states consistent (store/datastore/log)": counts.get("consistent", 0),
            "states inconsistent after reconciliation": counts.get("inconsistent", 0),
            "artifacts lost": counts.get("lost", 0),
            "false SUCCEEDED": counts.get("false_succeeded", 0),
            "export damage detected by fetch": counts.get("detected", 0),
        }
        print("\n".join(f"{k}: {v}" for k, v in summary.items()))
        print("details:", json.dumps(counts))
        if args.json:
            args.json.write_text(
                json.dumps({"summary": summary, "counts": counts, "problems": bench.problems}, indent=2)
            )
        if not args.keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(root)
        else:
            print(f"work folder kept: {root}")
    bad = counts.get("inconsistent", 0) + counts.get("lost", 0) + counts.get("false_succeeded", 0)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
