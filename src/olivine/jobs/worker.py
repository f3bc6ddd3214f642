"""The worker: ``python -m olivine.jobs.worker --job-dir DIR`` runs one job and exports it.

It reads ``DIR/job.json`` (:class:`~olivine.jobs.records.JobSpec`), fetches the bundle when the spec
names one on the datastore, unpacks it, seeds the cache
from an earlier export when resuming, and runs the same engine as ``olivine run`` with a listener that
exports every finished step at once. At the end it exports the cache, the output and the log, writes
``manifest.json`` and registers the data asset, and only then writes its final status. It reports only
through its status (:mod:`olivine.jobs.status`, in the job folder and on the datastore): it reads no
job store and no hosts file but the one of the machine it runs on. SIGTERM stops the
workflow after the running step (CANCELLED); a failure still exports the log and what finished.

Exit codes: 0 succeeded, 1 failed, 3 cancelled.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from olivine.datastores.exporter import Exporter
from olivine.datastores.redact import secret_values
from olivine.engine.claims import output_problems
from olivine.errors import CacheError, DatastoreError, HostError, OlivineError, UserCodeExitError
from olivine.exits import guard_os_exit, install_sigint_flag, user_code_exit
from olivine.jobs.folder import JobFolder
from olivine.jobs.progress import JobListener, JobReporter, export_cache
from olivine.jobs.records import ErrorKind, JobSpec, JobStatus, classify
from olivine.scrubbing import (
    ScrubbingFormatter,
    close_descriptor_scrubbing,
    process_scrubber,
    scrub_descriptors,
    scrub_standard_streams,
    sync_descriptor_scrubbing,
)

logger = logging.getLogger("olivine.worker")

EXIT_CODES = {JobStatus.SUCCEEDED: 0, JobStatus.FAILED: 1, JobStatus.CANCELLED: 3}
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def read_spec(job_dir: Path) -> JobSpec:
    path = JobFolder(job_dir).spec
    try:
        return JobSpec.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise HostError(f"cannot read the job spec {path}: {exc}") from exc


def write_spec(job_dir: Path, spec: JobSpec) -> Path:
    """Write ``job.json`` readable by its owner only (it names no secrets, but the paths are private)."""
    path = JobFolder(job_dir).spec
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(spec.to_json(), fh, indent=2, sort_keys=True)
    return path


def run_job(
    job_dir: Path,
    *,
    spec: JobSpec | None = None,
    stop: threading.Event | None = None,
    log_file: Path | None = None,
) -> JobStatus:
    """Run the job in ``job_dir`` to its end and return the final state.

    Args:
        job_dir: the job folder (``job.json``, the bundle; cache and output are created in it).
        spec: the spec, if the caller has it already.
        stop: set it to stop the workflow after the running step.
        log_file: also write Olivine's log records there (for in-process runs; a worker process's
            stdout and stderr already go to the job log).
    """
    spec = spec or read_spec(job_dir)
    reporter = JobReporter(spec, JobFolder(job_dir))
    if not reporter.start():
        logger.info("job %s ended before its worker started; nothing to do", spec.job_id)
        return JobStatus.CANCELLED
    with _logging_to(log_file):
        return _JobRun(job_dir, spec, reporter, stop or threading.Event()).execute()


class _JobRun:
    def __init__(self, job_dir: Path, spec: JobSpec, reporter: JobReporter, stop: threading.Event) -> None:
        self.job_dir = job_dir
        self.folder = JobFolder(job_dir)
        self.spec = spec
        self.reporter = reporter
        self.stop = stop
        self.log_path = self.folder.log
        self.cache_root = self.folder.cache_root(spec.workflow_id)
        self.output_dir = self.folder.output
        self.exporter: Exporter | None = None
        self.secrets: list[str] = []
        self.config: dict[str, Any] | None = None
        self.metrics: dict[str, Any] | None = None

    def execute(self) -> JobStatus:
        from olivine.engine.run import run_workflow
        from olivine.jobs.bundle import unpack
        from olivine.jobs.exports import open_export_url, open_spec_export, seed_cache

        state, kind, message = JobStatus.SUCCEEDED, None, "succeeded"
        interrupted: BaseException | None = None
        shipper: _LogShipper | None = None
        try:
            datastore, layout, options = open_spec_export(self.spec)
            self.secrets = secret_values(options)
            process_scrubber().add(self.secrets)
            self.exporter = Exporter(datastore, layout)
            self.reporter.attach(self.exporter)
            logger.info("job %s: exporting to %s", self.spec.job_id, layout.url)
            shipper = _LogShipper(
                self.exporter, self.reporter, self.log_path, self.spec.log_export_interval_s
            )
            self._hf_login()
            bundle = self._bundle(datastore)
            workflow = unpack(bundle, self.folder.unpacked if bundle.is_file() else None)
            self.config = workflow.to_json()
            if self.spec.resume_from:
                source = open_export_url(self.spec.resume_from, options)
                logger.info("seeding cache from %s", source.url)
                count = seed_cache(source, self.cache_root, self.folder.seed)
                logger.info("%d cached file(s) seeded", count)
            listener = JobListener(self.reporter, self.exporter, workflow.evaluator)
            executor = None
            if self.spec.search_spread:
                from olivine.engine.executor import SpreadSettings, executor_for

                executor = executor_for(SpreadSettings.from_json(self.spec.search_spread))
            with guard_os_exit(self._record_exit):
                result = run_workflow(
                    workflow,
                    listener=listener,
                    cache_dir=self.folder.cache,
                    output_dir=self.output_dir,
                    stop=self.stop,
                    executor=executor,
                )
            self.metrics = result.metrics
            message = f"succeeded; best model {result.best_model_id}"
            # Claim only what holds: the output must still be there, whole, before it is exported.
            problems = output_problems(self.output_dir)
            if problems:
                raise CacheError(f"the output does not hold what the run produced: {problems[0]}")
        except (KeyboardInterrupt, SystemExit) as exc:
            user_exit = user_code_exit(exc)
            if user_exit is None:  # a real interrupt: stop as cancelled, then let it propagate
                interrupted = exc if isinstance(exc, KeyboardInterrupt) else KeyboardInterrupt()
                state, kind, message = classify(exc)
            else:
                state, kind, message = classify(user_exit)
                logger.error("job %s failed (%s): %s", self.spec.job_id, kind, message)
        except Exception as exc:
            state, kind, message = classify(exc)
            message = process_scrubber()(message)
            logger.error(
                "job %s failed (%s): %s",
                self.spec.job_id,
                kind,
                message,
                exc_info=kind is not ErrorKind.CANCELLED,
            )
        finally:
            if shipper is not None:
                shipper.close()
        state = self._wrap_up(state, kind, process_scrubber()(message))
        if interrupted is not None:
            raise interrupted
        return state

    def _hf_login(self) -> None:
        """An Azure ML job with ``hf_token``: the Hugging Face token from Key Vault, as ``HF_TOKEN``."""
        from olivine.keyvault import hf_login_from_keyvault, hf_login_requested

        if not hf_login_requested():
            return
        token = hf_login_from_keyvault()
        if token:
            self.secrets.append(token)
            process_scrubber().add([token])

    def _record_exit(self, error: UserCodeExitError) -> None:
        """User code calls ``os._exit``: record the verdict before the process vanishes (the monitor
        seals the export with it)."""
        state, kind, message = classify(error)
        logger.error("job %s %s: %s", self.spec.job_id, state, message)
        self.reporter.final_status(state, message, kind)
        self.reporter.finish()
        close_descriptor_scrubbing()  # what the user code wrote must reach the log before the exit

    def _wrap_up(self, state: JobStatus, kind: ErrorKind | None, message: str) -> JobStatus:
        """Export what exists, seal the export, then set the final state (in that order)."""
        exporter = self.exporter
        if exporter is not None:
            try:
                if self.cache_root.is_dir():
                    export_cache(exporter, self.cache_root, "cache")
                if state is JobStatus.SUCCEEDED:
                    exporter.export_tree(self.output_dir, "output")
                    # The seal claims the output: check it is on the datastore (someone may have
                    # deleted a file since its upload) and copy back what the job folder still holds.
                    lost = exporter.restore_missing("output")
                    if lost:
                        raise DatastoreError(
                            f"{len(lost)} exported output file(s) vanished before the seal, e.g. {lost[0]}"
                        )
            except OlivineError as exc:
                logger.error("final export failed: %s", exc)
                if state is JobStatus.SUCCEEDED:
                    state, kind, message = JobStatus.FAILED, ErrorKind.INFRASTRUCTURE, f"export failed: {exc}"
            status = self.reporter.final_status(state, message, kind)
            logger.info("job %s %s: %s", self.spec.job_id, state, message)
            sealed = False
            try:
                sync_descriptor_scrubbing()  # the verdict line just logged is in the file before it ships
                exporter.export_log(self.log_path, "worker")
                # Every sealed export becomes a data-asset version, failed and cancelled ones too (their
                # state is in the summary): users look them up to resume or inspect them.
                exporter.finalize(
                    {
                        "status": status,
                        "config": self.config,
                        "metrics": self.metrics,
                        "job_id": self.spec.job_id,
                    },
                    register_asset=True,
                )
                # The manifest is the commit point: from here on the job's verdict is what it says.
                sealed = True
                # The final status last: a reader that sees it final finds the export sealed.
                exporter.write_status(status)
            except OlivineError as exc:
                if sealed:  # only status.json failed: the sealed manifest stands (doctor --fix rewrites it)
                    logger.warning("the export is sealed but its status.json could not be updated: %s", exc)
                else:
                    logger.error("could not seal the export: %s", exc)
                if state is JobStatus.SUCCEEDED and not sealed:
                    state, kind, message = JobStatus.FAILED, ErrorKind.INFRASTRUCTURE, f"export failed: {exc}"
                    self.reporter.final_status(state, message, kind)
                    logger.info("job %s %s: %s", self.spec.job_id, state, message)
                    self.reporter.publish()
        else:
            self.reporter.final_status(state, message, kind)
            logger.info("job %s %s: %s", self.spec.job_id, state, message)
        self.reporter.finish()
        return state

    def _bundle(self, datastore: Any) -> Path:
        """The bundle folder or tar: in the job folder, or downloaded from the datastore first."""
        if self.spec.bundle_url is None:
            return self.job_dir / self.spec.bundle
        from olivine.jobs.bundle import download_bundle

        return download_bundle(
            datastore, self.spec.bundle_url, self.spec.bundle_sha256, self.folder.bundle_tar
        )


class _LogShipper:
    """Exports the growing job log every ``interval_s`` seconds from a background thread, and rewrites
    ``status.json`` as the worker's heartbeat."""

    def __init__(self, exporter: Exporter, reporter: JobReporter, log_path: Path, interval_s: float) -> None:
        self.exporter = exporter
        self.reporter = reporter
        self.log_path = log_path
        self.interval_s = interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="olivine-log-export", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(self.interval_s):
            self.reporter.publish()
            if not self.log_path.is_file():
                continue
            try:
                self.exporter.export_log(self.log_path, "worker")
            except OlivineError as exc:
                logger.warning("log export failed (will retry): %s", exc)

    def close(self) -> None:
        self._done.set()
        self._thread.join()


@contextmanager
def _logging_to(log_file: Path | None) -> Iterator[None]:
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(ScrubbingFormatter(_LOG_FORMAT))
    root = logging.getLogger("olivine")
    level = root.level
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m olivine.jobs.worker", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--job-dir", required=True, type=Path, help="the job folder (holds job.json)")
    parser.add_argument(
        "--log-file",
        action="store_true",
        help="also write the log to the job folder's job.log (when stdout goes elsewhere, e.g. to Ray)",
    )
    args = parser.parse_args(argv)
    # Olivine's own progress at INFO; third-party libraries (onnxruntime's optimizer logs every fusion at
    # INFO) only from WARNING, as in a local run.
    # The worker's stdout and stderr are its job log, exported to a datastore others read: scrub
    # credentials from every line (log records, tracebacks, a user script's prints, and what native code
    # or a subprocess writes to descriptors 1 and 2) before it lands.
    scrub_standard_streams()
    scrub_descriptors()
    # Cache, output, logs and the unpacked bundle in the job folder: user-private.
    os.umask(os.umask(0o077) | 0o077)
    install_sigint_flag()
    logging.basicConfig(level=logging.WARNING, format=_LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("olivine").setLevel(logging.INFO)
    stop = threading.Event()

    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        logger.warning("SIGTERM received: stopping after the running step")
        stop.set()

    signal.signal(signal.SIGTERM, _on_sigterm)
    # The worker has its own session and no terminal, but a stray SIGHUP must not end it either.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        job_dir = args.job_dir.resolve()
        state = run_job(job_dir, stop=stop, log_file=JobFolder(job_dir).log if args.log_file else None)
    except OlivineError as exc:  # the spec or the job store is unusable: nothing to report to
        logger.error("%s", exc)
        return EXIT_CODES[JobStatus.FAILED]
    finally:
        close_descriptor_scrubbing()  # drain the pipe into the log before the process goes
    return EXIT_CODES[state]


if __name__ == "__main__":
    _code = main()
    from olivine.quick_exit import prepare_exit

    prepare_exit()  # the job's final state is recorded; the worker only has to go away
    raise SystemExit(_code)
