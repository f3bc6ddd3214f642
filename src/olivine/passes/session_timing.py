"""Interleaved timing of one model under several onnxruntime session settings (OrtSessionParamsTuning).

All sessions are created before the first timed run, so loading and graph optimization never fall inside
a measurement; each round times every candidate once, in a rotated order, so a slow spell on a shared
machine spreads over the candidates instead of landing on one of them.
"""

from __future__ import annotations

import os
import statistics
from typing import TYPE_CHECKING, Any

from olivine.errors import PassRunError
from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle
from olivine.passes.base import PassContext

if TYPE_CHECKING:
    from olivine.passes.session_params_tuning import OrtSessionParamsTuningConfig, Setting

#: Every candidate keeps a session (a copy of the weights) open during timing.
MAX_CANDIDATES = 24


def time_settings(
    model: ModelHandle,
    candidates: list[Setting],
    inputs: dict[str, Any],
    cfg: OrtSessionParamsTuningConfig,
    ctx: PassContext,
) -> dict[Setting, list[float]]:
    """Seconds per run of each candidate, one median per round."""
    from olivine.evaluate.inference import time_runs
    from olivine.model.runner import OnnxRunner

    if len(candidates) > MAX_CANDIDATES:
        raise PassRunError(
            "OrtSessionParamsTuning",
            f"{len(candidates)} setting combinations to time (at most {MAX_CANDIDATES}); shorten the "
            "*_list parameters or give the thread counts",
        )
    _warn_if_busy(ctx)
    bare = model.with_config(inference_settings=None)  # each candidate's options exactly, nothing inherited
    runners = {}
    for setting in candidates:
        try:
            runners[setting] = OnnxRunner(
                bare,
                Accelerator(execution_providers=(setting.provider,)),
                session_options=setting.session_options,
                provider_options=[setting.provider_options],
            )
        except Exception as exc:  # ModelLoadError: provider missing, bad option value
            raise PassRunError("OrtSessionParamsTuning", f"{setting.label()}: {exc}") from exc
    rounds: dict[Setting, list[float]] = {s: [] for s in candidates}
    for index in range(cfg.rounds):
        shift = index % len(candidates)
        for setting in candidates[shift:] + candidates[:shift]:
            latencies = time_runs(
                runners[setting],
                inputs,
                warmup_num=cfg.warmup_num if index == 0 else 1,
                repeat_test_num=cfg.repeat_test_num,
                sleep_s=0.0,
            )
            rounds[setting].append(statistics.median(latencies))
    return rounds


def _warn_if_busy(ctx: PassContext) -> None:
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return
    cores = os.cpu_count() or 1
    if load > cores:
        ctx.logger.warning(
            "load average %.1f on %d logical cores: other processes compete for the CPU, so the session "
            "timings (and the settings chosen) are less reliable",
            load,
            cores,
        )
