"""Classification metrics against scikit-learn, run here on the same random label sets."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from png_checks import drawn_png, saved_figures
from sklearn import metrics as sk

from lmlab.errors import LmlabError
from lmlab.metrics.classification import accuracy, confusion_matrix, plot_confusion_matrix, precision_recall_f1

ZERO_DIVISIONS = ["warn", 0, 1, np.nan]
NAMES = np.array(["ant", "bee", "cat", "dog", "eel", "fox"])


def random_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y_true, y_pred and the full label set of 2..6 classes, some missing from the truth or the predictions."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    classes = NAMES[:k] if seed % 2 else np.arange(k) * 3 - 2  # strings, or ints with gaps and a negative one
    n = int(rng.integers(1, 25))
    # draw truth and predictions from different random subsets so that labels go missing from one or both
    true_from = rng.choice(classes, size=int(rng.integers(1, k + 1)), replace=False)
    pred_from = rng.choice(classes, size=int(rng.integers(1, k + 1)), replace=False)
    y_true = rng.choice(true_from, size=n)
    y_pred = np.where(rng.random(n) < 0.4, y_true, rng.choice(pred_from, size=n))
    return y_true, y_pred, classes


def same(ours, theirs) -> bool:
    """Exact equality, NaN equal to NaN."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    return ours.shape == theirs.shape and bool(np.all((ours == theirs) | (np.isnan(ours) & np.isnan(theirs))))


def sklearn_prf(y_true, y_pred, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk.precision_recall_fscore_support(y_true, y_pred, **kwargs)


@pytest.mark.parametrize("seed", range(40))
def test_precision_recall_f1_equal_sklearn(seed):
    y_true, y_pred, classes = random_case(seed)
    rng = np.random.default_rng(1000 + seed)
    beta = [1.0, 1.0, 0.5, 2.0, 0.0, math.inf][seed % 6]
    subset = list(rng.choice(classes, size=int(rng.integers(1, len(classes) + 1)), replace=False))
    for labels in [None, subset]:
        for average in [None, "micro", "macro", "weighted"]:
            for zero_division in ZERO_DIVISIONS:
                kwargs = dict(average=average, labels=labels, zero_division=zero_division, beta=beta)
                ours = precision_recall_f1(y_true, y_pred, **kwargs)
                p, r, f, support = sklearn_prf(y_true, y_pred, **kwargs)
                context = f"{kwargs} on {y_true.tolist()} vs {y_pred.tolist()}"
                assert same(ours.precision, p), context
                assert same(ours.recall, r), context
                assert same(ours.f, f), context
                if average is None:
                    assert np.array_equal(ours.support, support), context
                    assert ours.labels.tolist() == (labels if labels is not None else
                                                    np.unique(np.r_[y_true, y_pred]).tolist())


@pytest.mark.parametrize("seed", range(40))
def test_binary_average_equal_sklearn_or_both_refuse(seed):
    y_true, y_pred, classes = random_case(seed)
    rng = np.random.default_rng(2000 + seed)
    two = rng.choice(classes, size=2, replace=False)  # squash onto two classes, sometimes only one of them present
    y_true, y_pred = np.where(np.isin(y_true, two), y_true, two[0]), np.where(np.isin(y_pred, two), y_pred, two[1])
    for pos_label in [*two.tolist(), classes[0].item()]:
        for zero_division in ZERO_DIVISIONS:
            kwargs = dict(average="binary", pos_label=pos_label, zero_division=zero_division)
            try:
                expected = sklearn_prf(y_true, y_pred, **kwargs)
            except ValueError:
                with pytest.raises(LmlabError):
                    precision_recall_f1(y_true, y_pred, **kwargs)
                continue
            ours = precision_recall_f1(y_true, y_pred, **kwargs)
            assert same([ours.precision, ours.recall, ours.f], expected[:3]), f"{kwargs} {y_true} {y_pred}"


def test_binary_with_one_label_present_scores_the_absent_positive():
    # pos_label 1 never appears: precision and recall are both undefined, F too
    result = precision_recall_f1([0, 0, 0], [0, 0, 0], average="binary", zero_division=np.nan)
    expected = sklearn_prf([0, 0, 0], [0, 0, 0], average="binary", zero_division=np.nan)
    assert same([result.precision, result.recall, result.f], expected[:3])
    assert math.isnan(result.f)


def test_f1_is_computed_from_counts_not_from_p_and_r():
    # scikit-learn < 1.4 returned 1.0 here; a label with TP=0 cannot score F=1
    assert precision_recall_f1([1, 0, 0], [0, 1, 0], average="binary", zero_division=1).f == 0.0


@pytest.mark.filterwarnings("ignore:A single label was found")
@pytest.mark.parametrize("seed", range(30))
def test_accuracy_and_confusion_matrix_equal_sklearn(seed):
    y_true, y_pred, classes = random_case(seed)
    assert accuracy(y_true, y_pred) == sk.accuracy_score(y_true, y_pred)
    assert np.array_equal(confusion_matrix(y_true, y_pred), sk.confusion_matrix(y_true, y_pred))
    rng = np.random.default_rng(3000 + seed)
    shuffled = list(rng.permutation(classes))
    assert np.array_equal(confusion_matrix(y_true, y_pred, labels=shuffled),
                          sk.confusion_matrix(y_true, y_pred, labels=shuffled))
    subset = shuffled[: max(1, len(shuffled) // 2)]
    if np.isin(subset, y_true).any():  # scikit-learn refuses a subset absent from y_true
        assert np.array_equal(confusion_matrix(y_true, y_pred, labels=subset),
                              sk.confusion_matrix(y_true, y_pred, labels=subset))


def test_micro_average_over_all_labels_is_accuracy():
    y_true, y_pred, _ = random_case(7)
    result = precision_recall_f1(y_true, y_pred, average="micro")
    assert result.precision == result.recall == pytest.approx(accuracy(y_true, y_pred))


def test_plot_confusion_matrix_writes_a_png(tmp_path, monkeypatch):
    saved = saved_figures(monkeypatch)
    y_true, y_pred = ["cat", "dog", "cat", "eel"], ["cat", "cat", "cat", "eel"]
    labels = ["cat", "dog", "eel"]
    path = tmp_path / "figs" / "confusion.png"
    # the documented call is scikit-learn's: truth, predictions, then where to draw
    drawn = plot_confusion_matrix(y_true, y_pred, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    drawn_png(path)
    (figure,) = saved  # a count written in each of the 3 x 3 cells, row by row
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    assert [text.get_text() for text in figure.axes[0].texts] == [f"{v:,}" for v in matrix.flatten()]
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == labels
    assert [p.name for p in path.parent.iterdir()] == ["confusion.png"]  # no temporary file left behind
    assert (drawn == sk.confusion_matrix(y_true, y_pred, labels=labels)).all()
    reordered = plot_confusion_matrix(y_true, y_pred, tmp_path / "eel-first.png", labels=["eel", "cat"])
    assert (reordered == sk.confusion_matrix(y_true, y_pred, labels=["eel", "cat"])).all()
    with pytest.raises(LmlabError, match="4 labels but y_pred has 3"):
        plot_confusion_matrix(y_true, y_pred[:3], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: accuracy([0, 1, 1], [0, 1]), "3 labels but y_pred has 2"),
    (lambda: precision_recall_f1([0, 1], [0, 1, 1]), "2 labels but y_pred has 3"),
    (lambda: confusion_matrix([], []), "empty"),
    (lambda: precision_recall_f1([0, 1, 2], [0, 1, 1], average="binary"), "at most 2 labels"),
    (lambda: precision_recall_f1([0, 2], [0, 2], average="binary"), "pos_label"),
    (lambda: precision_recall_f1([0, 1], [0, 1], average="samples"), "average"),
    (lambda: precision_recall_f1([0, 1], [0, 1], zero_division=0.5), "zero_division"),
    (lambda: precision_recall_f1([0, 1], [0, 1], beta=-1.0), "beta"),
    (lambda: precision_recall_f1([0, 1], ["a", "b"]), "mix string and integer"),
    (lambda: accuracy([0.5, 1.0], [0.0, 1.0]), "non-integer"),
    (lambda: confusion_matrix([0, 1], [0, 1], labels=[0, 0]), "twice"),
])
def test_bad_input_raises_lmlab_error(call, message):
    with pytest.raises(LmlabError, match=message):
        call()
