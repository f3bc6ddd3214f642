"""Feed batches through a :class:`~olivine.model.runner.Runner`: collect predictions for accuracy-style
metrics, or time repeated runs of one batch for latency and throughput."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from olivine.data.loader import Batch
from olivine.errors import EvaluationError
from olivine.model.runner import Runner


class ModelOutput(NamedTuple):
    """Olive's ``OliveModelOutput``: post-processed predictions and the raw outputs, as numpy arrays.

    ``logits`` is the model's output array; for an ONNX model with several outputs, a mapping output name
    -> array; for a PyTorch model with several, the first (as in Olive).
    """

    preds: Any
    logits: Any


def _feed(runner: Runner, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Tokenizers produce inputs (token_type_ids, ...) a model may not take; pass only the model's own.
    names = set(runner.input_names or ())
    return {k: v for k, v in inputs.items() if k in names} if names else inputs


def _as_output(runner: Runner, outputs: list[np.ndarray]) -> Any:
    """Olive's shapes: one output as an array; several named outputs (ONNX) as a mapping name -> array;
    unnamed outputs (PyTorch) as the first one, as Olive's PyTorch evaluator takes ``result[0]``."""
    names = list(runner.output_names or ())
    if len(outputs) == 1 or len(names) != len(outputs):
        return outputs[0]
    return dict(zip(names, outputs, strict=True))


def _concat(parts: list[Any]) -> Any:
    if parts and isinstance(parts[0], dict):
        return {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in parts[0]}
    return np.concatenate([np.atleast_1d(np.asarray(p)) for p in parts])


def run_for_predictions(
    runner: Runner, batches: Iterable[Batch], post_process: Callable[[Any], Any]
) -> tuple[ModelOutput, np.ndarray]:
    """Run every batch; return the concatenated (predictions, raw outputs) and targets.

    Raises:
        EvaluationError: a batch has no labels, or there are no batches.
    """
    preds: list[Any] = []
    logits: list[Any] = []
    targets: list[np.ndarray] = []
    for inputs, labels in batches:
        if labels is None:
            raise EvaluationError("the data config gives no labels (samples must be (inputs, label) pairs)")
        output = _as_output(runner, runner.run(_feed(runner, inputs)))
        preds.append(post_process(output))
        logits.append(output)
        targets.append(np.atleast_1d(labels))
    if not targets:
        raise EvaluationError("the data config produced no batches")
    return ModelOutput(preds=_concat(preds), logits=_concat(logits)), np.concatenate(targets)


def time_runs(
    runner: Runner, inputs: dict[str, np.ndarray], *, warmup_num: int, repeat_test_num: int, sleep_s: float
) -> list[float]:
    """Seconds per run of ``inputs``, after ``warmup_num`` untimed runs; sleeps ``sleep_s`` after each run
    (Olive's ``sleep_num``)."""
    measured = time_rounds(
        runner, inputs, warmup_num=warmup_num, repeat_test_num=repeat_test_num, sleep_s=sleep_s
    )
    return [x for r in measured for x in r]


def time_rounds(
    runner: Runner,
    inputs: dict[str, np.ndarray],
    *,
    warmup_num: int,
    repeat_test_num: int,
    sleep_s: float,
    rounds: int = 1,
    on_round: Callable[[int, int], None] | None = None,
) -> list[list[float]]:
    """Seconds per run of ``inputs``, after ``warmup_num`` untimed runs, in ``rounds`` consecutive rounds
    that share the ``repeat_test_num`` runs (the first rounds take the remainder); sleeps ``sleep_s``
    after each run (Olive's ``sleep_num``). ``on_round(i, rounds)`` is called before round ``i``
    (1-based), outside the timed sections."""
    feed = _feed(runner, inputs)
    for _ in range(warmup_num):
        runner.run(feed)
        if sleep_s:
            time.sleep(sleep_s)
    rounds = max(1, min(rounds, repeat_test_num))
    base, extra = divmod(repeat_test_num, rounds)
    measured: list[list[float]] = []
    for r in range(rounds):
        if on_round is not None:
            on_round(r + 1, rounds)
        latencies: list[float] = []
        for _ in range(base + (1 if r < extra else 0)):
            start = time.perf_counter()
            runner.run(feed)
            latencies.append(time.perf_counter() - start)
            if sleep_s:
                time.sleep(sleep_s)
        measured.append(latencies)
    return measured


def samples_per_run(inputs: dict[str, np.ndarray], batch_size: int | None) -> int:
    """Samples one run processes: the first input's leading (batch) dimension; for scalar inputs the
    loader's batch size, else 1."""
    first = next(iter(inputs.values()), None)
    if first is not None and first.ndim > 0:
        return int(first.shape[0])
    return batch_size or 1
