"""Realising a chain of passes through the content-addressed cache.

A step's run key hashes its input model id, pass type, version, config, accelerator and library
versions, so chains that share a prefix share its runs: the prefix runs once (and in one process it is
not even looked up again). Steps shared below the level of a pass (quantization pre-processing of the
same graph) are shared through :mod:`olivine.engine.shared`.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olivine.config.data import DataConfig
from olivine.engine.cache import CachedRun, WorkflowCache
from olivine.engine.events import PassFailed, PassFinished, PassStarted
from olivine.engine.keys import library_versions, run_key
from olivine.engine.phase import Phases
from olivine.engine.shared import SharedStore
from olivine.errors import OlivineError, PassRunError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.passes.base import PassContext
from olivine.redaction import redact_config
from olivine.search.space import ResolvedPass

logger = logging.getLogger("olivine.engine")


@dataclass(frozen=True)
class RealisedChain:
    model: ModelHandle
    model_id: str
    runs: tuple[CachedRun, ...]  # one per step


class ChainRunner:
    """Runs chains of steps from one input model; remembers the runs it realised in this process."""

    def __init__(
        self,
        workflow_id: str,
        cache: WorkflowCache,
        accelerator: Accelerator,
        phases: Phases,
        input_model: ModelHandle,
        input_model_id: str,
        data_configs: Mapping[str, DataConfig] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.cache = cache
        self.accelerator = accelerator
        self.phases = phases
        self.input_model = input_model
        self.input_model_id = input_model_id
        self.data_configs = dict(data_configs or {})
        self.base_dir = base_dir
        self.shared = SharedStore(cache.root)
        self._done: dict[str, CachedRun] = {}
        self._failed: dict[str, PassRunError] = {}  # a run that failed here is not retried in this process

    def key(self, step: ResolvedPass, model_id: str) -> str:
        return run_key(
            input_model_id=model_id,
            pass_type=step.type,
            pass_version=step.cls.version,
            pass_config=self.key_config(step),
            accelerator=self.accelerator.to_json(),
            versions=library_versions(step.cls.libraries),
        )

    def key_config(self, step: ResolvedPass) -> dict[str, Any]:
        """The pass config for the run key; a pass that reads a data config (calibration) adds its
        content."""
        config = step.canonical_config()
        name = step.cls.data_config_name(step.config)
        if name is not None and name in self.data_configs:
            from olivine.data import content_fingerprint

            data_config = self.data_configs[name]
            config["data_config_content"] = content_fingerprint(data_config, base_dir=self.base_dir)
        return config

    def realise(self, steps: Sequence[ResolvedPass], label: str = "") -> RealisedChain:
        """Run ``steps`` in order (cached runs are reused); raise :class:`PassRunError` naming the pass."""
        model, model_id = self.input_model, self.input_model_id
        runs: list[CachedRun] = []
        for index, step in enumerate(steps, start=1):
            key = self.key(step, model_id)
            run = self._done.get(key)
            if key in self._failed:
                raise self._failed[key]
            if run is None:
                self.phases.set(f"{label}running pass {step.name} ({step.type})")
                try:
                    run = self._run(step, model, model_id, key, index, len(steps))
                except PassRunError as exc:
                    self._failed[key] = exc
                    raise
                self._done[key] = run
            model, model_id = run.model, run.key
            runs.append(run)
        return RealisedChain(model, model_id, tuple(runs))

    def _run(
        self, step: ResolvedPass, model: ModelHandle, model_id: str, key: str, index: int, total: int
    ) -> CachedRun:
        prefix = f"[{index}/{total}] {step.type} '{step.name}'"
        emit = self.phases.emit
        emit(PassStarted(self.workflow_id, step.name, step.type, index, total))
        if model.kind not in step.cls.accepts:
            raise PassRunError(
                step.name,
                f"{step.type} does not accept a {model.type_name} (accepts: {', '.join(step.cls.accepts)})",
            )
        hit = self.cache.load_run(key)
        if hit is not None:
            logger.info("%s: cache hit (run %s)", prefix, key[:12])
            emit(PassFinished(self.workflow_id, step.name, key, hit.run_dir, True, 0.0))
            return hit
        logger.info("%s: running", prefix)
        record: dict[str, Any] = {
            "pass_name": step.name,
            "pass_type": step.type,
            "pass_version": step.cls.version,
            "config": redact_config(step.canonical_config()),
            "input_model_id": model_id,
            "accelerator": self.accelerator.to_json(),
            "versions": library_versions(step.cls.libraries),
        }
        staging = self.cache.new_run_dir()
        start = time.perf_counter()
        try:
            ctx = PassContext(
                accelerator=self.accelerator,
                logger=logging.getLogger(f"olivine.passes.{step.name}"),
                data_configs=self.data_configs,
                base_dir=self.base_dir,
                shared=self.shared.for_model(model_id, library_versions(step.cls.libraries)),
                model_id=model_id,
            )
            instance = step.cls()
            output = instance.run(model, step.config, staging / "model", ctx)
            try:
                instance.check_output(output)
            except PassRunError as exc:
                raise _blame_the_input(exc, model) from exc
        except Exception as exc:
            self.cache.discard(staging)
            message = str(exc) if isinstance(exc, OlivineError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, PassRunError) and exc.pass_name in (step.name, step.type):
                # said once: not "pass 'q' failed: pass 'OnnxQuantization' failed: ..."
                message = message.removeprefix(f"pass '{exc.pass_name}' failed: ")
            path = self.cache.record_failure(
                key, {**record, "error": message, "traceback": traceback.format_exc()}
            )
            emit(PassFailed(self.workflow_id, step.name, key, path, message))
            logger.error("%s: failed: %s", prefix, message)
            raise PassRunError(step.name, message) from exc
        duration = time.perf_counter() - start
        run = self.cache.commit_run(key, staging, output, {**record, "duration_s": round(duration, 3)})
        logger.info("%s: done in %.1fs (run %s)", prefix, duration, key[:12])
        emit(PassFinished(self.workflow_id, step.name, key, run.run_dir, False, duration))
        return run


def _blame_the_input(exc: PassRunError, model: ModelHandle) -> PassRunError:
    """A pass's output that onnxruntime refuses is often the input's own fault (duplicate node names, an
    invalid graph): say so when the input model is refused too (checked only after a failure)."""
    if model.kind != "onnx":
        return exc
    from olivine.passes.onnx_io import check_onnx_file

    try:
        check_onnx_file(model.onnx_path)
    except ValueError as problem:
        return PassRunError(
            exc.pass_name,
            f"the input model is not a usable model either ({problem}): fix the input model; "
            f"the pass's own error: {str(exc).split(': ', 1)[-1]}",
        )
    except Exception:  # the input cannot even be located: the pass's error stands
        return exc
    return exc
