"""Metric maths in numpy, following torchmetrics' semantics (the backend Olive uses), so that an Olive
``metric_config`` (``task``, ``num_classes``, ``average``, ``threshold``, ``ignore_index``) means the same.

- ``task="binary"``: the positive class is 1; float predictions are scores, turned into labels with
  ``threshold`` (after a sigmoid when they fall outside [0, 1]); two-column scores use the second column.
- ``task="multiclass"``: float predictions of shape (N, C) are scores (argmax); integer ones are labels.
  ``average``: ``micro`` (default, as torchmetrics), ``macro`` (classes neither predicted nor present are
  left out, as in torchmetrics and scikit-learn), ``weighted`` (by support).
- 0 / 0 counts as 0 (torchmetrics' and scikit-learn's ``zero_division=0``).

Latency statistics are in milliseconds, throughput in samples per second, rounded to 5 decimals as Olive does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Task = Literal["binary", "multiclass"]
Average = Literal["micro", "macro", "weighted"]

LATENCY_SUB_TYPES = ("avg", "max", "min", "p50", "p75", "p90", "p95", "p99", "p999")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True))


def _is_float(a: np.ndarray) -> bool:
    return a.dtype.kind == "f"


def to_labels(preds: Any, task: Task = "binary", *, threshold: float = 0.5) -> np.ndarray:
    """Predicted labels (int64, shape (N,)) from labels or scores."""
    p = np.asarray(preds)
    if task == "binary":
        if p.ndim == 2 and p.shape[1] == 2:
            return np.asarray(np.argmax(p, axis=1), dtype=np.int64)
        p = p.reshape(-1)
        if _is_float(p):
            if p.size and (p.min() < 0 or p.max() > 1):
                p = _sigmoid(p)
            return (p > threshold).astype(np.int64)
        return p.astype(np.int64)
    if _is_float(p) and p.ndim >= 2:
        return np.asarray(np.argmax(p, axis=-1), dtype=np.int64).reshape(-1)
    return p.astype(np.int64).reshape(-1)


def _prepare(
    preds: Any, target: Any, task: Task, threshold: float, ignore_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(preds)
    if task == "binary" and scores.ndim == 2 and scores.shape[1] > 2:
        raise ValueError(
            f"predictions have {scores.shape[1]} classes but task is 'binary' (Olive's default); set "
            f"metric_config task: multiclass, num_classes: {scores.shape[1]}"
        )
    p = to_labels(scores, task, threshold=threshold)
    t = np.asarray(target).astype(np.int64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"{p.shape[0]} predictions for {t.shape[0]} targets")
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    if task == "binary" and (np.any((t != 0) & (t != 1)) or np.any((p != 0) & (p != 1))):
        raise ValueError("task 'binary' needs labels 0 and 1; use task 'multiclass' with num_classes")
    return p, t


def _counts(p: np.ndarray, t: np.ndarray, num_classes: int | None) -> tuple[np.ndarray, ...]:
    n = int(max(p.max(initial=-1), t.max(initial=-1)) + 1)
    if num_classes is not None:
        if n > num_classes:
            raise ValueError(f"a label is >= num_classes ({num_classes})")
        n = num_classes
    if min(p.min(initial=0), t.min(initial=0)) < 0:
        raise ValueError("labels must be non-negative")
    tp = np.bincount(t[p == t], minlength=n).astype(np.float64)
    pred_count = np.bincount(p, minlength=n).astype(np.float64)
    support = np.bincount(t, minlength=n).astype(np.float64)
    return tp, pred_count - tp, support - tp


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den != 0)


def _average(score: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, average: Average) -> float:
    weights = tp + fn if average == "weighted" else ((tp + fp + fn) > 0).astype(np.float64)
    total = weights.sum()
    return float((weights * score).sum() / total) if total else 0.0


def _per_class(kind: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    if kind == "precision":
        return _div(tp, tp + fp)
    if kind in ("recall", "accuracy"):  # torchmetrics' multiclass macro accuracy is the mean recall
        return _div(tp, tp + fn)
    return _div(2 * tp, 2 * tp + fp + fn)


def _score(
    kind: str,
    preds: Any,
    target: Any,
    task: Task,
    num_classes: int | None,
    average: Average,
    threshold: float,
    ignore_index: int | None,
) -> float:
    p, t = _prepare(preds, target, task, threshold, ignore_index)
    if p.size == 0:
        return 0.0
    if kind == "accuracy" and (task == "binary" or average == "micro"):
        return float(np.mean(p == t))
    if task == "binary":
        tp1 = np.array([np.sum((p == 1) & (t == 1))], dtype=np.float64)
        fp1 = np.array([np.sum((p == 1) & (t == 0))], dtype=np.float64)
        fn1 = np.array([np.sum((p == 0) & (t == 1))], dtype=np.float64)
        return float(_per_class(kind, tp1, fp1, fn1)[0])
    tp, fp, fn = _counts(p, t, num_classes)
    if average == "micro":
        return float(_per_class(kind, np.array([tp.sum()]), np.array([fp.sum()]), np.array([fn.sum()]))[0])
    return _average(_per_class(kind, tp, fp, fn), tp, fp, fn, average)


def accuracy_score(
    preds: Any,
    target: Any,
    *,
    task: Task = "binary",
    num_classes: int | None = None,
    average: Average = "micro",
    threshold: float = 0.5,
    ignore_index: int | None = None,
) -> float:
    """Fraction of correct predictions (``macro``/``weighted``: averaged per-class recall)."""
    return _score("accuracy", preds, target, task, num_classes, average, threshold, ignore_index)


def precision(
    preds: Any,
    target: Any,
    *,
    task: Task = "binary",
    num_classes: int | None = None,
    average: Average = "micro",
    threshold: float = 0.5,
    ignore_index: int | None = None,
) -> float:
    """tp / (tp + fp)."""
    return _score("precision", preds, target, task, num_classes, average, threshold, ignore_index)


def recall(
    preds: Any,
    target: Any,
    *,
    task: Task = "binary",
    num_classes: int | None = None,
    average: Average = "micro",
    threshold: float = 0.5,
    ignore_index: int | None = None,
) -> float:
    """tp / (tp + fn)."""
    return _score("recall", preds, target, task, num_classes, average, threshold, ignore_index)


def f1_score(
    preds: Any,
    target: Any,
    *,
    task: Task = "binary",
    num_classes: int | None = None,
    average: Average = "micro",
    threshold: float = 0.5,
    ignore_index: int | None = None,
) -> float:
    """2 tp / (2 tp + fp + fn): the harmonic mean of precision and recall."""
    return _score("f1", preds, target, task, num_classes, average, threshold, ignore_index)


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney U statistic (ties count one half)."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties: every tie block gets the mean of its 1-based positions.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    block_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(block_rank, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auroc(
    logits: Any,
    target: Any,
    *,
    task: Task = "binary",
    num_classes: int | None = None,
    average: Literal["macro", "weighted"] = "macro",
    ignore_index: int | None = None,
) -> float:
    """Area under the ROC curve from scores: binary, or multiclass one-vs-rest (``macro``/``weighted``).

    Multiclass scores outside [0, 1] get a softmax first (torchmetrics). Classes without positives or
    without negatives among the targets are left out of the average.

    Raises:
        ValueError: the AUC is undefined (the targets hold a single class).
    """
    s = np.asarray(logits, dtype=np.float64)
    t = np.asarray(target).astype(np.int64).reshape(-1)
    if ignore_index is not None:
        keep = t != ignore_index
        s, t = s[keep], t[keep]
    if task == "binary":
        if s.ndim == 2 and s.shape[1] == 2:
            s = _softmax(s)[:, 1]
        s = s.reshape(-1)
        if s.shape != t.shape:
            raise ValueError(f"{s.size} scores for {t.size} targets")
        value = _binary_auc(s, t == 1)
        if np.isnan(value):
            raise ValueError("auroc is undefined when the targets hold only one class")
        return value
    if s.ndim != 2 or s.shape[0] != t.size:
        raise ValueError(f"multiclass auroc needs scores of shape (N, C); got {s.shape} for {t.size} targets")
    if num_classes is not None and s.shape[1] != num_classes:
        raise ValueError(f"scores have {s.shape[1]} columns but num_classes is {num_classes}")
    if s.size and (s.min() < 0 or s.max() > 1):
        s = _softmax(s)
    per_class = np.array([_binary_auc(s[:, c], t == c) for c in range(s.shape[1])])
    support = np.bincount(t, minlength=s.shape[1])[: s.shape[1]].astype(np.float64)
    defined = ~np.isnan(per_class)
    if not defined.any():
        raise ValueError("auroc is undefined: no class has both positive and negative targets")
    if average == "weighted":
        weights = support[defined] / support[defined].sum()
        return float((per_class[defined] * weights).sum())
    return float(per_class[defined].mean())


def perplexity(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100) -> float:
    """Olive's perplexity (torchmetrics' ``Perplexity`` over every sample): each token's logits predict the
    next token's label; labels equal to ``ignore_index`` (padding, context) do not count.

    Args:
        logits: ``[samples, sequence, vocab]``.
        targets: ``[samples, sequence]`` token ids.
    """
    logits = np.asarray(logits, dtype=np.float64)[:, :-1, :]
    labels = np.asarray(targets).astype(np.int64)[:, 1:]
    keep = labels != ignore_index
    if not keep.any():
        raise ValueError("perplexity: every label is ignore_index; there is no token to score")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, np.where(keep, labels, 0)[..., None], axis=-1)[..., 0]
    return float(np.exp(-picked[keep].mean()))


def latency_stats(latencies_s: Sequence[float]) -> dict[str, float]:
    """avg, min, max and percentiles of per-run latencies, in milliseconds."""
    if not latencies_s:
        raise ValueError("no latencies measured")
    ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    stats = {"avg": ms.mean(), "max": ms.max(), "min": ms.min()}
    for name, q in (("p50", 50), ("p75", 75), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9)):
        stats[name] = np.percentile(ms, q)
    return {k: round(float(v), 5) for k, v in stats.items()}


def throughput_stats(latencies_s: Sequence[float], samples_per_run: int) -> dict[str, float]:
    """Samples per second for each latency statistic (the fastest run gives the ``max`` throughput)."""
    latency = latency_stats(latencies_s)
    swap = {"min": "max", "max": "min"}
    return {
        name: round(samples_per_run / latency[swap.get(name, name)] * 1000.0, 5)
        if latency[swap.get(name, name)] > 0
        else float("inf")
        for name in LATENCY_SUB_TYPES
    }
