"""One lane of bench/faults.py: runs its share of the fault plan, one fault after another, in its own
``OLIVINE_HOME`` (job store, job folders, default ``file://`` datastore; hosts.yaml naming the object
stores of its storage servers). Lanes run in parallel; each owns everything it breaks.

    python bench/fault_lane.py --root DIR --plan PLAN.json --out RESULTS.jsonl

The plan is a list of ``{"kind", "point", "seed"}``; each line of the output is one fault's record:
``{"kind", "point", "landed", "counts": {...}, "problems": [...]}`` or ``{"bench_error": ...}``.
Submissions, status, resume, fetch and doctor go through ``olivine.api`` in this process (what the CLI
calls); concurrent resumes and the clean_cache runs are separate ``olivine`` processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fault_points import PointTimes, landed, wait_for

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
JOB_TIMEOUT_S = 240.0
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
CONTAINER = "olivine-faults"
#: Retries of the object stores in this bench: ride out about 2 s of outage, fail beyond (a user's
#: choice; the default rides out about a minute, which only makes the bench slower).
CLOUD_OPTIONS = {"retries": 4, "retry_backoff_s": 0.2, "retry_max_backoff_s": 0.8}
_PROGRESS = re.compile(r"^\d\d:\d\d:\d\d (INFO|WARNING) ")
_VERDICT = re.compile(r"job (\S+) (SUCCEEDED|FAILED|CANCELLED)\b")

SLOW_METRIC = """
import time

def slow_metric(model, device, execution_providers):
    time.sleep(0.3)  # an evaluation that takes a moment, as real ones do
    return 1.0
"""


class Lane:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.rng = random.Random(0)
        self.servers: dict[str, Any] = {}
        configs = root / "configs"
        configs.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_models import write_onnx_mlp

        model = write_onnx_mlp(configs / "mlp")
        (configs / "slow.py").write_text(SLOW_METRIC)
        metrics = [
            {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes", "priority": 1}]},
            {
                "name": "slow",
                "type": "custom",
                "sub_types": [{"name": "value", "priority": 2, "higher_is_better": True}],
                "user_config": {"user_script": "slow.py", "evaluate_func": "slow_metric"},
            },
        ]
        meta = {"type": "AddOliveMetadata", "graph_name": "faults"}
        io = {"type": "OnnxIODataTypeConverter", "source_dtype": 1, "target_dtype": 10}
        self.workflows: dict[str, dict[str, Any]] = {
            # "pass" faults need a pass that lasts: dynamic quantization imports and runs ORT's quantizer.
            "heavy": {"meta": meta, "quantize": {"type": "OnnxDynamicQuantization"}},
            "light": {"meta": meta, "io": io},
        }
        self.configs: dict[str, Path] = {}
        for name, passes in self.workflows.items():
            cfg = {
                "workflow_id": f"faults-{name}",
                "input_model": model,
                "passes": passes,
                "evaluators": {"ev": {"metrics": metrics}},
                "evaluator": "ev",
                "systems": {"worker": {"type": "LocalWorker", "cancel_grace_s": 5}},
                "workflow_host": "worker",
            }
            path = configs / f"{name}.json"
            path.write_text(json.dumps(cfg), encoding="utf-8")
            self.configs[name] = path
        self.times: dict[str, PointTimes] = {}

    # -- olivine ------------------------------------------------------------------------------------
    def submit(self, workflow: str, *, datastore: str | None = None) -> Any:
        from olivine import api

        sub = api.submit(api.load(self.configs[workflow]), datastore=datastore, fresh=True)
        assert sub.job is not None
        return sub.job

    def status(self, job_id: str) -> Any:
        from olivine import api

        return api.status(job_id)

    def wait(self, job_id: str) -> Any:
        from olivine import api

        return api.wait(job_id, timeout_s=JOB_TIMEOUT_S)

    def reconcile(self) -> None:
        from olivine import api

        report = api.doctor(fix=True)
        self.counts["doctor_fixed"] += sum(1 for f in report.findings if f.fixed)

    def verifies(self, job_id: str, which: str = "output") -> str | None:
        """None if ``fetch`` of ``which`` verifies (and an output holds a model), else why not."""
        from olivine import api
        from olivine.errors import OlivineError

        dest = self.root / "fetch" / f"{job_id}-{which}"
        shutil.rmtree(dest, ignore_errors=True)
        try:
            api.fetch(job_id, dest, which=which)  # type: ignore[arg-type]
        except OlivineError as exc:
            return str(exc).splitlines()[0][:200]
        finally:
            shutil.rmtree(dest / "logs", ignore_errors=True)
        if which == "output":
            model = dest / "output" / "model"
            if not (model.is_dir() and any(p.is_file() for p in model.rglob("*"))):
                return "the fetched output holds no model"
        shutil.rmtree(dest, ignore_errors=True)
        return None

    def worker(self, job: Any) -> tuple[int | None, Callable[[], bool]]:
        from olivine.hosts.process import process_alive

        pid = job.host_info.get("pid")
        ticks = job.host_info.get("pid_start_ticks")
        return pid, (lambda: pid is not None and process_alive(int(pid), ticks))

    def job_dir(self, job_id: str) -> Path:
        return self.home / "jobs" / job_id

    def problem(self, text: str) -> None:
        self.problems.append(text)

    # -- calibration --------------------------------------------------------------------------------
    def calibrate(self) -> None:
        for name in self.workflows:
            job = self.submit(name)
            _, alive = self.worker(job)
            log = self.job_dir(job.job_id) / "job.log"
            wait_for(log, "commit", 0, alive, JOB_TIMEOUT_S)
            seen = time.monotonic()
            while alive() and time.monotonic() - seen < 30:
                time.sleep(0.003)
            commit_s = time.monotonic() - seen
            final = self.wait(job.job_id)
            if final.state.value != "SUCCEEDED":
                raise RuntimeError(f"calibration job {job.job_id} ended {final.state.value}: {final.message}")
            self.times[name] = PointTimes.from_log(log.read_text(errors="replace"), commit_s)

    # -- striking at a point ------------------------------------------------------------------------
    def strike(
        self, point: str, action: Callable[[Any], None], *, datastore: str | None = None
    ) -> tuple[Any, str]:
        """Submit a job, wait for a random moment of ``point`` in it, run ``action(job)``; returns the
        job and where the action landed."""
        workflow = "heavy" if point == "pass" else "light"
        times = self.times[workflow]
        job = self.submit(workflow, datastore=datastore)
        _, alive = self.worker(job)
        log = self.job_dir(job.job_id) / "job.log"
        occurrence = self.rng.randrange(max(1, times.count.get(point, 1)))
        if wait_for(log, point, occurrence, alive, JOB_TIMEOUT_S):
            time.sleep(self.rng.uniform(0, times.duration_s.get(point, 0.0)))
        where = landed(log.read_text(errors="replace") if log.is_file() else "", alive())
        export = _local_export(job)
        if where == "commit" and export is not None:  # before or after the commit point (the seal)?
            where += " (sealed)" if (export / "manifest.json").is_file() else " (before the seal)"
        action(job)
        self.counts[f"landed:{where}"] += 1
        return job, where

    # -- checks -------------------------------------------------------------------------------------
    def settle(self, job_id: str, kind: str, *, export_touched: bool = False, recover: bool = True) -> str:
        """Wait for the end, reconcile, check store / datastore / log, recover a failure by resume."""
        self.wait(job_id)
        self.reconcile()
        job = self.status(job_id)
        state = job.state.value
        self.counts[f"state:{state}"] += 1
        self.check_consistent(job, kind)
        if state == "SUCCEEDED":
            why = self.verifies(job_id)
            if why is not None and job.damage is not None:
                # Damaged after it ended (the fault hit the sealed export): reconciliation marked it, and
                # status / fetch say so. Honest, not a false SUCCEEDED.
                self.counts["damage_marked"] += 1
            elif why is not None:
                self.counts["false_succeeded"] += 1
                self.problem(f"{job_id} ({kind}): SUCCEEDED but its output does not verify: {why}")
            elif not export_touched:
                why = self.verifies(job_id, "all")
                if why is not None:
                    self.counts["lost"] += 1
                    self.problem(f"{job_id} ({kind}): SUCCEEDED but its export does not verify: {why}")
        elif recover:
            self.recover(job_id, kind)
        return state

    def check_consistent(self, job: Any, kind: str) -> bool:
        """The store, the sealed manifest, ``status.json`` and the exported log's last verdict agree."""
        views = self.views(job)
        if job.damage is not None and views.get("manifest") == "not sealed":
            # The fault removed the sealed manifest after the job ended; doctor marked the record
            # damaged and it says so. The other views must still agree.
            views.pop("manifest")
            self.counts["consistent_with_damage_mark"] += 1
        distinct = {v for k, v in views.items() if k != "log" or v is not None}
        if len(distinct) == 1 and views["store"] in TERMINAL:
            self.counts["consistent"] += 1
            return True
        self.counts["inconsistent"] += 1
        self.problem(f"{job.job_id} ({kind}): inconsistent after reconciliation: {views}")
        return False

    def views(self, job: Any) -> dict[str, str | None]:
        from olivine.jobs.exports import open_job_export

        views: dict[str, str | None] = {"store": job.state.value}
        if job.export_root is None:
            return views
        layout = open_job_export(job)
        ds = layout.datastore
        if not ds.walk_files(layout.root):
            return views  # it never wrote anything there: the store is the only truth
        manifest = _json(ds.read_bytes_if_exists(layout.manifest))
        status = (manifest or {}).get("status")
        views["manifest"] = status.get("state") if isinstance(status, dict) else "not sealed"
        views["status.json"] = (_json(ds.read_bytes_if_exists(layout.status)) or {}).get("state", "missing")
        text = "".join(
            ds.read_bytes(rel).decode(errors="replace") for rel, _ in sorted(ds.walk_files(layout.logs))
        )
        verdicts = [m.group(2) for m in _VERDICT.finditer(text) if m.group(1) == job.job_id]
        views["log"] = verdicts[-1] if verdicts else None
        return views

    def recover(self, job_id: str, kind: str) -> None:
        from olivine import api
        from olivine.errors import OlivineError

        try:
            new = api.resume(job_id).job
        except OlivineError as exc:
            self.counts["lost"] += 1
            self.problem(f"{job_id} ({kind}): resume refused: {exc}")
            return
        assert new is not None
        self.finish_resume(job_id, new.job_id, kind)

    def finish_resume(self, job_id: str, new_id: str, kind: str) -> bool:
        final = self.wait(new_id)
        self.reconcile()
        final = self.status(new_id)
        self.check_consistent(final, f"{kind} resume")
        why = self.verifies(new_id) if final.state.value == "SUCCEEDED" else final.message
        if why is None:
            self.counts["recovered_by_resume"] += 1
            log = self.job_dir(new_id) / "job.log"
            hits = log.read_text(errors="replace").count("cache hit") if log.is_file() else 0
            self.counts["resume_cache_hits"] += hits
            return True
        self.counts["lost"] += 1
        self.problem(f"{job_id} ({kind}): resume {new_id} ended {final.state.value}: {why}")
        return False

    # -- the faults ---------------------------------------------------------------------------------
    def fault_sigkill(self, point: str) -> str:
        job, where = self.strike(point, lambda job: _killpg(job, signal.SIGKILL))
        self.settle(job.job_id, "sigkill")
        return where

    def fault_sigterm(self, point: str) -> str:
        job, where = self.strike(point, lambda job: _killpg(job, signal.SIGTERM))
        self.settle(job.job_id, "sigterm")
        return where

    def _damage_cache(self, point: str, kind: str, *, delete: bool) -> str:
        def action(job: Any) -> None:
            if _touch_random(self.job_dir(job.job_id) / "cache", self.rng, delete=delete):
                self.counts[f"{kind}:touched"] += 1

        job, where = self.strike(point, action)
        self.settle(job.job_id, kind)
        return where

    def fault_cache_delete(self, point: str) -> str:
        return self._damage_cache(point, "cache_delete", delete=True)

    def fault_cache_corrupt(self, point: str) -> str:
        return self._damage_cache(point, "cache_corrupt", delete=False)

    def fault_export_delete(self, point: str) -> str:
        """Delete a file of the job's export while it runs (another user's clean-up, a lifecycle rule)."""
        touched: list[bool] = []

        def action(job: Any) -> None:
            export = _local_export(job)
            touched.append(export is not None and _touch_random(export, self.rng, delete=True))

        job, where = self.strike(point, action)
        self.settle(job.job_id, "export_delete", export_touched=any(touched))
        return where

    def fault_export_corrupt(self, point: str) -> str:
        """Flip a byte of an exported file after the job ended: ``fetch`` must refuse it, and the next
        run of the workflow, seeded from that export, must still succeed."""
        job = self.submit("light")
        self.wait(job.job_id)
        export = _local_export(self.status(job.job_id))
        touched = export is not None and _touch_random(export / "cache", self.rng, delete=False)
        self.settle(job.job_id, "export_corrupt", export_touched=True)
        if touched:
            if self.verifies(job.job_id, "all") is None:
                self.problem(f"{job.job_id} (export_corrupt): fetch --all accepted a corrupted export")
            else:
                self.counts["export_damage_detected"] += 1
            from olivine import api

            follow = api.submit(api.load(self.configs["light"])).job  # seeded from the damaged export
            assert follow is not None
            self.settle(follow.job_id, "export_corrupt follow-up")
        return "after exit"

    def fault_unwritable(self, point: str) -> str:
        """The export folder cannot be written for a moment (a plain file stands where it was: as root,
        permission bits stop nothing)."""
        flipped: list[tuple[Path, Path]] = []

        def action(job: Any) -> None:
            export = _local_export(job)
            if export is None or not export.is_dir():
                return
            hidden = export.with_name(export.name + ".away")
            os.rename(export, hidden)
            export.write_bytes(b"")
            flipped.append((export, hidden))

        job, where = self.strike(point, action)
        if flipped:
            time.sleep(self.rng.uniform(0.3, 3.0))
            export, hidden = flipped[0]
            export.unlink()
            os.rename(hidden, export)
        self.settle(job.job_id, "unwritable")
        return where

    def fault_resume_race(self, point: str) -> str:
        """SIGKILL at the point, then two ``olivine resume`` processes at once."""
        job, where = self.strike(point, lambda job: _killpg(job, signal.SIGKILL))
        state = self.settle(job.job_id, "resume_race", recover=False)
        if state == "SUCCEEDED":
            return where
        procs = [_olivine(self.home, "resume", job.job_id, "--json") for _ in range(2)]
        news = []
        for proc in procs:
            out, err = proc.communicate(timeout=JOB_TIMEOUT_S)
            if proc.returncode == 0:
                news.append(str(json.loads(out)["job_id"]))
            elif proc.returncode not in (1, 2) or len(err.strip().splitlines()) != 1:
                self.problem(f"{job.job_id}: a concurrent resume failed unclearly: {err.strip()[-300:]}")
        results = [self.finish_resume(job.job_id, new, "resume_race") for new in news]
        if not news:
            self.counts["lost"] += 1
            self.problem(f"{job.job_id}: both concurrent resumes were refused")
        self.counts["resume_race:both_started"] += len(news) == 2
        self.counts["resume_race:ok"] += all(results) and bool(results)
        return where

    def fault_clean_cache(self, point: str) -> str:
        """Two foreground runs on one cache_dir: the second, with clean_cache, starts at the point of
        the first."""
        cache = self.root / "shared-cache"
        outs = [self.root / f"cc-out-{i}" for i in range(2)]
        configs = []
        for i, out in enumerate(outs):
            shutil.rmtree(out, ignore_errors=True)
            cfg = json.loads(self.configs["heavy" if point == "pass" else "light"].read_text())
            for key in ("systems", "workflow_host"):
                cfg.pop(key)
            cfg.update(cache_dir=str(cache), output_dir=str(out), clean_cache=i == 1)
            path = self.root / "configs" / f"cc-{i}.json"
            path.write_text(json.dumps(cfg))
            configs.append(path)
        log = self.root / "cc-0.log"  # a foreground run's progress lines go to its stderr
        first = _olivine(self.home, "run", "--config", str(configs[0]), stderr=log)
        times = self.times["heavy" if point == "pass" else "light"]
        occurrence = self.rng.randrange(max(1, times.count.get(point, 1)))
        if wait_for(log, point, occurrence, lambda: first.poll() is None, JOB_TIMEOUT_S):
            time.sleep(self.rng.uniform(0, times.duration_s.get(point, 0.0)))
        where = landed(log.read_text(errors="replace"), first.poll() is None)
        self.counts[f"landed:{where}"] += 1
        second = _olivine(self.home, "run", "--config", str(configs[1]))
        for i, proc in enumerate((first, second)):
            _, err = proc.communicate(timeout=JOB_TIMEOUT_S)
            err = err or (log.read_text(errors="replace") if i == 0 else "")
            if proc.returncode == 0:
                model = outs[i] / "model"
                if model.is_dir() and any(p.is_file() for p in model.rglob("*")):
                    self.counts["local:SUCCEEDED"] += 1
                else:
                    self.counts["false_succeeded"] += 1
                    self.problem(f"clean_cache run {i} exited 0 with an empty output")
            else:
                lines = [ln for ln in err.strip().splitlines() if not _PROGRESS.match(ln)]
                if proc.returncode != 1 or "Traceback" in err or len(lines) > 1:
                    self.problem(f"clean_cache run {i} failed without one clear line: {err.strip()[-300:]}")
                self.counts["local:FAILED"] += 1
        self.counts["consistent"] += 1  # no job store involved: the output check above is the check
        return where

    def fault_bad_row(self, point: str) -> str:
        """While a job runs, another job's row in jobs.db becomes garbage: list and status of the others
        keep working, doctor --fix rebuilds the row."""
        from olivine import api

        victims = [j.job_id for j in api.list_jobs() if j.state.is_terminal()]

        def action(job: Any) -> None:
            if not victims:
                return
            victim = self.rng.choice(victims)
            with contextlib.closing(sqlite3.connect(self.home / "jobs.db", timeout=30)) as conn, conn:
                conn.execute("UPDATE jobs SET record = ? WHERE job_id = ?", ("{not json", victim))
            try:  # one bad row must not break the listing or another job's status
                api.list_jobs()
                api.status(job.job_id)
            except Exception as exc:  # a product failure: counted, not a bench error
                self.counts["inconsistent"] += 1
                self.problem(f"one bad row broke list/status: {type(exc).__name__}: {exc}")

        job, where = self.strike(point, action)
        self.settle(job.job_id, "bad_row")
        return where

    # -- storage servers ----------------------------------------------------------------------------
    def fault_storage_stop(self, point: str) -> str:
        """Stop the object-store server (Azurite or moto S3) at the point for 0.5-5 s, then start it."""
        backend = self.rng.choice(sorted(self.servers))
        server = self.servers[backend]
        down: list[float] = []

        def action(job: Any) -> None:
            server.stop()
            down.append(time.monotonic())

        job, where = self.strike(point, action, datastore=backend)
        time.sleep(self.rng.uniform(0.5, 5.0))
        server.start()
        self.counts[f"storage:{backend}"] += 1
        self.settle(job.job_id, f"storage_stop {backend}")
        return where

    def fault_storage_kill(self, point: str) -> str:
        """Stop the object-store server, SIGKILL the worker while it is down, reconcile while it is
        down (status must answer), start it again, then reconcile, check and resume."""
        backend = self.rng.choice(sorted(self.servers))
        server = self.servers[backend]

        def action(job: Any) -> None:
            server.stop()
            _killpg(job, signal.SIGKILL)

        job, where = self.strike(point, action, datastore=backend)
        try:
            self.wait(job.job_id)
            self.status(job.job_id)
        finally:
            server.start()
        self.counts[f"storage:{backend}"] += 1
        self.settle(job.job_id, f"storage_kill {backend}")
        return where

    def start_servers(self, kinds: list[str]) -> None:
        from cloud_servers import MOTO_ENV, Azurite, MotoS3

        if "az" in kinds:
            azurite = Azurite(self.root / "azurite").start()
            azurite.create_container(CONTAINER)
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string()
            self.servers["az"] = azurite
        if "s3" in kinds:
            os.environ.update(MOTO_ENV)
            moto = MotoS3().start()
            moto.create_bucket(CONTAINER)
            os.environ["AWS_ENDPOINT_URL_S3"] = moto.endpoint
            self.servers["s3"] = moto
        datastores = {
            name: {"url": f"{name}://{CONTAINER}/{self.root.name}", "options": CLOUD_OPTIONS}
            for name in self.servers
        }
        (self.home / "hosts.yaml").write_text(json.dumps({"datastores": datastores}))

    def stop_servers(self) -> None:
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                server.stop()


# -- helpers -------------------------------------------------------------------------------------------
def _json(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return {"state": "unparsable"}
    return doc if isinstance(doc, dict) else None


def _killpg(job: Any, sig: signal.Signals) -> None:
    pid = job.host_info.get("pid")
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), sig)


def _local_export(job: Any) -> Path | None:
    root = job.export_root or ""
    return Path(root[len("file://") :]) if root.startswith("file://") else None


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
            victim.chmod(0o600)
            victim.write_bytes(bytes(data))
    except OSError:
        return False
    return True


def _olivine(home: Path, *args: str, stderr: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "OLIVINE_HOME": str(home)}
    err: Any = subprocess.PIPE
    if stderr is not None:
        err = open(stderr, "w")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(
        [sys.executable, "-m", "olivine", *args],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env=env,
        cwd=home.parent,
    )
    if stderr is not None:
        err.close()
    return proc


def run_lane(root: Path, plan: list[dict[str, Any]], out: Path, retries: int = 2) -> None:
    lane = Lane(root)
    if any(p["kind"].startswith("storage") for p in plan):
        lane.start_servers(["az", "s3"])
    try:
        lane.calibrate()
        with out.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps({"calibration": {k: vars(v) for k, v in lane.times.items()}}) + "\n")
        for entry in plan:
            record = _one_fault(lane, entry, retries)
            with out.open("a", encoding="utf-8") as sink:
                sink.write(json.dumps(record) + "\n")
    finally:
        lane.stop_servers()


def _one_fault(lane: Lane, entry: dict[str, Any], retries: int) -> dict[str, Any]:
    """Run one fault; a bench error (an exception of this bench or a hung command) is retried with a
    fresh job and is never counted as a fault."""
    errors = []
    for _ in range(1 + retries):
        lane.counts, lane.problems = Counter(), []
        lane.rng = random.Random(entry["seed"] + len(errors))
        started = time.monotonic()
        try:
            where = getattr(lane, f"fault_{entry['kind']}")(entry["point"])
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=3)[-600:]}")
            with contextlib.suppress(Exception):
                lane.reconcile()
            continue
        return {
            **entry,
            "landed": where,
            "seconds": round(time.monotonic() - started, 1),
            "counts": dict(lane.counts),
            "problems": lane.problems,
            "bench_retries": errors,
        }
    return {**entry, "bench_error": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    os.environ["OLIVINE_HOME"] = str(args.root / "home")
    (args.root / "home").mkdir(parents=True, exist_ok=True)
    run_lane(args.root, json.loads(args.plan.read_text()), args.out)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "lane"
    raise SystemExit(main())
