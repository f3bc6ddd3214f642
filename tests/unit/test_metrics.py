"""Metric maths: hand-computed values, and scikit-learn on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from olivine.evaluate import metrics as m

# Binary example: tp = 3 (idx 0, 2, 6), fp = 1 (idx 3), fn = 2 (idx 1, 7), tn = 2 (idx 4, 5).
BIN_PRED = np.array([1, 0, 1, 1, 0, 0, 1, 0])
BIN_TRUE = np.array([1, 1, 1, 0, 0, 0, 1, 1])


def test_binary_scores_match_hand_counts() -> None:
    assert m.accuracy_score(BIN_PRED, BIN_TRUE) == pytest.approx(5 / 8)
    assert m.precision(BIN_PRED, BIN_TRUE) == pytest.approx(3 / 4)
    assert m.recall(BIN_PRED, BIN_TRUE) == pytest.approx(3 / 5)
    assert m.f1_score(BIN_PRED, BIN_TRUE) == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))


# Multiclass example, per class (tp, fp, fn, support):
#   0: (2, 1, 0, 2)   1: (1, 1, 2, 3)   2: (1, 1, 1, 2)
MC_PRED = np.array([0, 0, 1, 2, 0, 1, 2])
MC_TRUE = np.array([0, 0, 1, 1, 1, 2, 2])


def test_multiclass_micro_scores_equal_plain_accuracy() -> None:
    for fn in (m.accuracy_score, m.precision, m.recall, m.f1_score):
        assert fn(MC_PRED, MC_TRUE, task="multiclass", num_classes=3) == pytest.approx(4 / 7)


def test_multiclass_macro_and_weighted_match_hand_values() -> None:
    precision = [2 / 3, 1 / 2, 1 / 2]
    recall = [1.0, 1 / 3, 1 / 2]
    f1 = [4 / 5, 2 / 5, 2 / 4]
    support = np.array([2, 3, 2]) / 7
    kw = {"task": "multiclass", "num_classes": 3}
    assert m.precision(MC_PRED, MC_TRUE, average="macro", **kw) == pytest.approx(np.mean(precision))
    assert m.recall(MC_PRED, MC_TRUE, average="macro", **kw) == pytest.approx(np.mean(recall))
    assert m.f1_score(MC_PRED, MC_TRUE, average="macro", **kw) == pytest.approx(np.mean(f1))
    assert m.f1_score(MC_PRED, MC_TRUE, average="weighted", **kw) == pytest.approx(np.dot(f1, support))
    # torchmetrics' macro accuracy is the mean per-class recall
    assert m.accuracy_score(MC_PRED, MC_TRUE, average="macro", **kw) == pytest.approx(np.mean(recall))


def test_macro_average_leaves_out_classes_never_seen_when_num_classes_is_larger() -> None:
    kw = {"task": "multiclass", "average": "macro"}
    assert m.f1_score(MC_PRED, MC_TRUE, num_classes=10, **kw) == pytest.approx(
        m.f1_score(MC_PRED, MC_TRUE, **kw)
    )


def test_to_labels_turns_scores_into_labels_like_torchmetrics() -> None:
    # binary logits outside [0, 1] get a sigmoid, then the threshold: logit 0.1 -> 0.525 > 0.5
    assert m.to_labels(np.array([-2.0, 0.1, 3.0])).tolist() == [0, 1, 1]
    # binary probabilities are thresholded directly
    assert m.to_labels(np.array([0.2, 0.6]), threshold=0.7).tolist() == [0, 0]
    # two-column binary scores: the larger column wins
    assert m.to_labels(np.array([[0.3, 0.1], [0.1, 0.9]])).tolist() == [0, 1]
    # multiclass scores: argmax
    assert m.to_labels(np.array([[0.1, 2.0, 0.3], [5.0, 0.0, 0.0]]), "multiclass").tolist() == [1, 0]


def test_accuracy_score_argmaxes_multiclass_logits() -> None:
    logits = np.eye(3)[MC_PRED] * 4.0 - 1.0
    assert m.accuracy_score(logits, MC_TRUE, task="multiclass") == pytest.approx(4 / 7)


def test_ignore_index_drops_those_targets() -> None:
    target = np.array([0, 1, -100, 1])
    pred = np.array([0, 0, 1, 1])
    assert m.accuracy_score(pred, target, ignore_index=-100) == pytest.approx(2 / 3)


def test_binary_task_rejects_labels_above_one() -> None:
    with pytest.raises(ValueError, match="multiclass"):
        m.accuracy_score(MC_PRED, MC_TRUE)


def test_binary_task_on_multiclass_scores_says_how_to_fix_the_config() -> None:
    with pytest.raises(ValueError, match="task: multiclass, num_classes: 3"):
        m.accuracy_score(np.zeros((2, 3)), np.array([0, 1]))


def test_label_at_or_above_num_classes_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        m.f1_score(MC_PRED, MC_TRUE, task="multiclass", num_classes=2, average="macro")


def test_binary_auroc_counts_ties_as_half() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    target = np.array([0, 0, 1, 1, 1])
    # pairs (pos, neg): 0.35>0.1 yes, 0.35>0.4 no, 0.8>both yes yes, 0.4>0.1 yes, 0.4=0.4 half -> 4.5 / 6
    assert m.auroc(scores, target) == pytest.approx(4.5 / 6)


def test_binary_auroc_uses_the_positive_column_of_two_column_logits() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [0.0, 3.0]])
    target = np.array([0, 1, 0, 1])
    assert m.auroc(logits, target) == pytest.approx(1.0)


def test_auroc_is_an_error_when_targets_hold_one_class() -> None:
    with pytest.raises(ValueError, match="one class"):
        m.auroc(np.array([0.2, 0.9]), np.array([1, 1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
def test_classification_scores_match_sklearn_on_random_multiclass_labels(seed: int, average: str) -> None:
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 5, size=200)
    true = rng.integers(0, 5, size=200)
    kw = {"task": "multiclass", "num_classes": 5, "average": average}
    sk = {"average": average, "zero_division": 0}
    assert m.precision(pred, true, **kw) == pytest.approx(skm.precision_score(true, pred, **sk))
    assert m.recall(pred, true, **kw) == pytest.approx(skm.recall_score(true, pred, **sk))
    assert m.f1_score(pred, true, **kw) == pytest.approx(skm.f1_score(true, pred, **sk))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_scores_match_sklearn_on_random_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 2, size=150)
    true = rng.integers(0, 2, size=150)
    assert m.accuracy_score(pred, true) == pytest.approx(skm.accuracy_score(true, pred))
    assert m.precision(pred, true) == pytest.approx(skm.precision_score(true, pred, zero_division=0))
    assert m.recall(pred, true) == pytest.approx(skm.recall_score(true, pred, zero_division=0))
    assert m.f1_score(pred, true) == pytest.approx(skm.f1_score(true, pred, zero_division=0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_on_random_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 2, size=120)
    # rounded so that ties occur
    scores = np.round(rng.random(120) + 0.3 * target, 1)
    assert m.auroc(scores, target) == pytest.approx(skm.roc_auc_score(target, scores))


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_multiclass_auroc_matches_sklearn_one_vs_rest(average: str) -> None:
    rng = np.random.default_rng(7)
    target = rng.integers(0, 4, size=160)
    logits = rng.normal(size=(160, 4)) + np.eye(4)[target]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = skm.roc_auc_score(target, probs, multi_class="ovr", average=average)
    # raw logits get the same softmax inside
    assert m.auroc(logits, target, task="multiclass", num_classes=4, average=average) == pytest.approx(
        expected
    )


def test_latency_stats_are_milliseconds_with_numpy_percentiles() -> None:
    latencies_s = [0.001, 0.002, 0.003, 0.004, 0.010]
    stats = m.latency_stats(latencies_s)
    assert stats["avg"] == pytest.approx(4.0)
    assert stats["min"] == pytest.approx(1.0)
    assert stats["max"] == pytest.approx(10.0)
    assert stats["p50"] == pytest.approx(3.0)
    assert stats["p75"] == pytest.approx(4.0)
    assert stats["p90"] == pytest.approx(4.0 + 0.6 * 6.0)  # linear interpolation between 4 and 10
    assert set(stats) == set(m.LATENCY_SUB_TYPES)


def test_throughput_stats_are_samples_per_second_with_min_and_max_swapped() -> None:
    stats = m.throughput_stats([0.010, 0.020, 0.040], samples_per_run=4)
    assert stats["max"] == pytest.approx(4 / 0.010)
    assert stats["min"] == pytest.approx(4 / 0.040)
    assert stats["p50"] == pytest.approx(4 / 0.020)
    assert set(stats) == set(m.LATENCY_SUB_TYPES)


def test_latency_stats_reject_an_empty_measurement() -> None:
    with pytest.raises(ValueError):
        m.latency_stats([])
