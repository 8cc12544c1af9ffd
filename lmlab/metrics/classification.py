"""Classification metrics: accuracy, precision, recall, F-beta and the confusion matrix.

Every score here is built from three counts per label ``c``, taken over the examples:

- ``TP``, true positives: the truth is ``c`` and the prediction is ``c``;
- ``FP``, false positives: the prediction is ``c`` but the truth is not;
- ``FN``, false negatives: the truth is ``c`` but the prediction is not.

From them, precision asks "of what we called ``c``, how much was ``c``?", recall asks "of the real
``c``, how much did we find?", and F-beta is their weighted harmonic mean, written straight from the
counts so that it exists even where precision or recall does not::

    P = TP / (TP + FP)        R = TP / (TP + FN)        F = (1 + b²)·TP / (b²·(TP + FN) + (TP + FP))

``TP + FN`` is the label's *support* (how often it is the truth). One number for many labels comes
from an average:

- ``binary``: only the positive label ``pos_label`` (two-class problems);
- ``micro``: add the counts of every label first, then divide once; with every label included this
  is plain accuracy, since each wrong prediction is one FP and one FN;
- ``macro``: the unweighted mean of the per-label scores, so a rare label counts as much as a common one;
- ``weighted``: the mean weighted by support; it can leave F outside the range of P and R;
- ``None``: no average, one score per label.

A division by zero (a label never predicted, never true, or asked for through ``labels`` and absent
from both) has no answer; ``zero_division`` gives one: ``0``, ``1`` or ``nan``, where a ``nan`` is
left out of the averages. ``"warn"`` counts as ``0``; scikit-learn also warns, lmlab stays quiet.
These are scikit-learn's (>= 1.4) semantics exactly, and the tests hold lmlab to them value for value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lmlab.errors import LmlabError
from lmlab.files import atomic_path

Label = int | str
Average = Literal["binary", "micro", "macro", "weighted"] | None
ZeroDivision = Literal["warn"] | float
AVERAGES = (None, "binary", "micro", "macro", "weighted")


@dataclass
class PrecisionRecallF1:
    """The scores of `precision_recall_f1`: floats when averaged, one entry per label when not."""

    precision: float | np.ndarray
    recall: float | np.ndarray
    f: float | np.ndarray  # F-beta; F1 with the default beta
    support: np.ndarray | None  # how often each label is the truth; None when averaged
    labels: np.ndarray  # the labels scored, in the order of the per-label arrays


def _as_labels(values: Sequence[Label] | np.ndarray, name: str) -> np.ndarray:
    """One-dimensional array of class labels, ints or strings; anything else is the caller's mistake."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise LmlabError(f"{name}: expected a flat sequence of labels, got an array of shape {array.shape}")
    if array.dtype.kind == "f":
        # scikit-learn takes 0.0/1.0 as the labels 0/1 but refuses regression targets
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise LmlabError(f"{name}: holds non-integer numbers; class labels are ints or strings")
        array = array.astype(np.int64)
    if array.dtype.kind not in "iubU":
        raise LmlabError(f"{name}: class labels must be all ints or all strings, got {array.dtype} values")
    return array


def _pair(y_true: Sequence[Label] | np.ndarray, y_pred: Sequence[Label] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true, pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if len(true) != len(pred):
        raise LmlabError(f"y_true has {len(true)} labels but y_pred has {len(pred)}; they must pair up one to one")
    if len(true) == 0:
        raise LmlabError("y_true and y_pred are empty; there is nothing to score")
    if (true.dtype.kind == "U") != (pred.dtype.kind == "U"):
        raise LmlabError("y_true and y_pred mix string and integer labels; use one kind for both")
    return true, pred


def _chosen_labels(labels: Sequence[Label] | np.ndarray | None, present: np.ndarray) -> np.ndarray:
    """The labels to report, in the caller's order; by default every label seen, sorted."""
    if labels is None:
        return present
    chosen = _as_labels(labels, "labels")
    if len(chosen) == 0:
        raise LmlabError("labels: is empty; name at least one label or pass None for all of them")
    if (chosen.dtype.kind == "U") != (present.dtype.kind == "U"):
        raise LmlabError("labels: mixes string and integer labels with those of y_true and y_pred")
    return chosen


def accuracy(y_true: Sequence[Label] | np.ndarray, y_pred: Sequence[Label] | np.ndarray) -> float:
    """The fraction of predictions equal to the truth."""
    true, pred = _pair(y_true, y_pred)
    return float(np.mean((true == pred).astype(np.float64)))


def _counts(true: np.ndarray, pred: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, TP+FP (predicted) and TP+FN (true) for each chosen label, as int64."""
    vocabulary = np.unique(np.concatenate([true, pred, chosen]))
    true_ids, pred_ids = np.searchsorted(vocabulary, true), np.searchsorted(vocabulary, pred)
    size = len(vocabulary)
    tp = np.bincount(true_ids[true_ids == pred_ids], minlength=size)
    predicted = np.bincount(pred_ids, minlength=size)
    actual = np.bincount(true_ids, minlength=size)
    where = np.searchsorted(vocabulary, chosen)
    return tp[where], predicted[where], actual[where]


def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_value: float) -> np.ndarray:
    """numerator / denominator, with `zero_value` wherever the denominator is 0."""
    numerator, denominator = numerator.astype(np.float64), denominator.astype(np.float64)
    undefined = denominator == 0
    result = numerator / np.where(undefined, 1.0, denominator)
    result[undefined] = zero_value
    return result


def _mean(scores: np.ndarray, weights: np.ndarray | None) -> float:
    """Average that skips NaN scores; zero total weight falls back to the plain mean."""
    kept = ~np.isnan(scores)
    if not kept.any():
        return math.nan
    if weights is None:
        return float(np.nanmean(scores))
    scores, weights = scores[kept], weights[kept].astype(np.float64)
    total = np.sum(weights)
    if total == 0:
        return float(np.mean(scores))
    return float(np.sum(scores * weights) / total)


def _zero_value(zero_division: ZeroDivision) -> float:
    if zero_division == "warn":
        return 0.0
    number = isinstance(zero_division, (int, float)) and not isinstance(zero_division, bool)
    if number and (math.isnan(zero_division) or zero_division in (0, 1)):
        return float(zero_division)
    raise LmlabError(f"zero_division: got {zero_division!r}; expected 'warn', 0, 1 or nan")


def precision_recall_f1(
    y_true: Sequence[Label] | np.ndarray,
    y_pred: Sequence[Label] | np.ndarray,
    average: Average = None,
    labels: Sequence[Label] | np.ndarray | None = None,
    pos_label: Label = 1,
    zero_division: ZeroDivision = "warn",
    beta: float = 1.0,
) -> PrecisionRecallF1:
    """Precision, recall and F-beta of `y_pred` against `y_true`, per label or averaged (see the module)."""
    if average not in AVERAGES:
        raise LmlabError(f"average: got {average!r}; expected one of {', '.join(map(repr, AVERAGES))}")
    if not beta >= 0:
        raise LmlabError(f"beta: got {beta}; expected a number >= 0 (1 weighs precision and recall equally)")
    zero_value = _zero_value(zero_division)
    true, pred = _pair(y_true, y_pred)
    present = np.unique(np.concatenate([true, pred]))
    if average == "binary":
        if len(present) > 2:
            raise LmlabError(f"average='binary' needs at most 2 labels but y_true and y_pred hold {len(present)}; "
                             "choose micro, macro, weighted or None")
        if pos_label not in present.tolist() and len(present) == 2:
            raise LmlabError(f"pos_label: {pos_label!r} is neither of the labels present, {present.tolist()}")
        chosen = _as_labels([pos_label], "pos_label")  # scikit-learn ignores `labels` here too
        if (chosen.dtype.kind == "U") != (present.dtype.kind == "U"):
            raise LmlabError(f"pos_label: {pos_label!r} is not the same kind of label as those of y_true and y_pred")
    else:
        chosen = _chosen_labels(labels, present)

    tp, predicted, actual = _counts(true, pred, chosen)
    if average == "micro":
        tp, predicted, actual = tp.sum(keepdims=True), predicted.sum(keepdims=True), actual.sum(keepdims=True)
    precision = _divide(tp, predicted, zero_value)
    recall = _divide(tp, actual, zero_value)
    if math.isinf(beta):
        f = recall
    elif beta == 0:
        f = precision
    else:
        b2 = beta**2
        f = _divide((1 + b2) * tp.astype(np.float64), b2 * actual.astype(np.float64) + predicted, zero_value)

    if average is None:
        return PrecisionRecallF1(precision, recall, f, actual, chosen)
    weights = actual if average == "weighted" else None
    return PrecisionRecallF1(_mean(precision, weights), _mean(recall, weights), _mean(f, weights), None, chosen)


def confusion_matrix(
    y_true: Sequence[Label] | np.ndarray,
    y_pred: Sequence[Label] | np.ndarray,
    labels: Sequence[Label] | np.ndarray | None = None,
) -> np.ndarray:
    """Counts with the truth on the rows and the prediction on the columns, in the order of `labels`.

    By default the labels are every one seen, sorted. Examples whose truth or prediction is not among
    `labels` are left out, so a subset of labels gives the sub-matrix of those classes.
    """
    true, pred = _pair(y_true, y_pred)
    chosen = _chosen_labels(labels, np.unique(np.concatenate([true, pred])))
    if len(np.unique(chosen)) != len(chosen):
        raise LmlabError(f"labels: names a label twice ({chosen.tolist()})")
    order = np.argsort(chosen)
    ranked = chosen[order]
    n = len(chosen)

    def index(values: np.ndarray) -> np.ndarray:
        # position of each value in `chosen`, or n for a value outside it
        at = np.minimum(np.searchsorted(ranked, values), n - 1)
        return np.where(ranked[at] == values, order[at], n)

    rows, cols = index(true), index(pred)
    kept = (rows < n) & (cols < n)
    return np.bincount(rows[kept] * n + cols[kept], minlength=n * n).reshape(n, n).astype(np.int64)


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 of always answering the commonest training label (0..num_labels-1): the score to beat."""
    majority = int(np.bincount(train_labels, minlength=num_labels).argmax())
    predictions = np.full(len(test_labels), majority)
    macro = precision_recall_f1(test_labels, predictions, average="macro", labels=list(range(num_labels)),
                                zero_division=0)
    return {"accuracy": accuracy(test_labels, predictions), "macro_f1": float(macro.f)}


def plot_confusion_matrix(
    y_true: Sequence[Label] | np.ndarray,
    y_pred: Sequence[Label] | np.ndarray,
    path: str | Path,
    labels: Sequence[Label] | np.ndarray | None = None,
) -> np.ndarray:
    """Draw the confusion matrix of `y_pred` against `y_true` as a PNG heat map at `path`; return it.

    The call is scikit-learn's ``confusion_matrix(y_true, y_pred, labels=...)`` plus where to draw:
    truth on the rows, prediction on the columns, each count written in its cell, the labels in the
    order of `labels` (default: every one seen, sorted).
    """
    true, pred = _pair(y_true, y_pred)
    names = _chosen_labels(labels, np.unique(np.concatenate([true, pred])))
    matrix = confusion_matrix(true, pred, labels=names)
    # matplotlib is slow to import and only drawing needs it, so it is imported here, not with the module.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    side = max(3.0, 0.5 * n + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = [str(label) for label in names]
    ax.set_xticks(range(n), ticks, rotation=45, ha="right")
    ax.set_yticks(range(n), ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    # dark text on pale cells, white on dark ones, so every count stays readable
    threshold = (matrix.max() + matrix.min()) / 2
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            ax.text(j, i, f"{value:,}", ha="center", va="center", color="white" if value > threshold else "black")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return matrix
