"""Estimation: an n-gram model's configuration, and the registry of estimators that turn counts into a model.

`ESTIMATORS` maps each name `NgramConfig.estimator` accepts to one function, all with one signature:
``(counts, vocab, config, held_out) -> NgramModel``. Each reads its own settings from the config
and calls its method in `lmlab.models.ngram.smoothing`. The config's choice of names is the
registry's keys, so the two cannot drift: a new estimator is one function and one line below.
`estimate` looks the name up; `train_ngram` counts word sequences first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from lmlab.config import Config
from lmlab.errors import LmlabError
from lmlab.models.ngram.counts import NgramCounts, Vocabulary, count_words, predictable_size
from lmlab.models.ngram.model import NgramModel
from lmlab.models.ngram.smoothing import (
    absolute_discounting,
    adjusted_counts,
    fit_lambdas,
    interpolation,
    katz,
    kneser_ney,
    lidstone,
    lmplz_discount_counts,
    mle,
    modified_discounts,
    nltk_kneser_ney,
    single_discount,
    stupid_backoff,
    witten_bell,
)

Estimator = Callable[[NgramCounts, Vocabulary, "NgramConfig", Sequence[Sequence[int]]], NgramModel]
"""Counts, their vocabulary, the config, and held-out id sequences (only interpolation uses them) to a model."""

# The interpolated estimators return u and gamma per order; `NgramModel.from_estimates` runs the recursion.


def _mle(counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]) -> NgramModel:
    return NgramModel.from_estimates(vocab, counts, mle(counts), config.padding)


def _lidstone(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]
) -> NgramModel:
    predictable = predictable_size(len(vocab), config.padding)
    estimates = lidstone(counts, predictable, config.k, config.padding)
    return NgramModel.from_estimates(vocab, counts, estimates, config.padding)


def _interpolation(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]
) -> NgramModel:
    if config.lambdas:
        lambdas = config.lambdas
    elif held_out:
        lambdas = fit_lambdas(counts, held_out, config.padding)
    else:
        lambdas = [1.0 / (counts.order + 1)] * (counts.order + 1)
    return NgramModel.from_estimates(vocab, counts, interpolation(counts, lambdas), config.padding)


def _witten_bell(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]
) -> NgramModel:
    return NgramModel.from_estimates(vocab, counts, witten_bell(counts), config.padding)


def _absolute_discounting(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]
) -> NgramModel:
    estimates = absolute_discounting(counts, config.discount or 0.75)
    return NgramModel.from_estimates(vocab, counts, estimates, config.padding)


def _precision(config: NgramConfig) -> type[np.floating]:
    """The float type Kneser-Ney rounds every step to."""
    return np.float32 if config.precision == "float32" else np.float64


def _kneser_ney(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]
) -> NgramModel:
    singles = [config.discount or single_discount(a, k) for k, a in enumerate(adjusted_counts(counts), 1)]
    estimates = kneser_ney(counts, [(d, d, d) for d in singles], _precision(config))
    return NgramModel.from_estimates(vocab, counts, estimates, config.padding)


def _modified_kneser_ney(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]
) -> NgramModel:
    adjusted, dtype = adjusted_counts(counts), _precision(config)
    if config.precision == "float32":  # lmplz's numbers, to the bit
        adjusted = lmplz_discount_counts(counts, adjusted)
    discounts = [modified_discounts(a, k, config.discount_fallback, dtype) for k, a in enumerate(adjusted, 1)]
    return NgramModel.from_estimates(vocab, counts, kneser_ney(counts, discounts, dtype), config.padding)


def _nltk_kneser_ney(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]
) -> NgramModel:
    if config.order < 2:
        raise LmlabError("nltk-kneser-ney: order must be at least 2 (its unigrams come from bigram counts)")
    return NgramModel.from_estimates(vocab, counts, nltk_kneser_ney(counts, config.discount or 0.1), config.padding)


# The back-off estimators compute what the model stores, p and back-off weights, directly.


def _katz(counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]) -> NgramModel:
    prob, backoff = katz(counts, config.katz_k, config.padding)
    return NgramModel(vocab, config.padding, counts.keys, prob, backoff)


def _stupid_backoff(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]]
) -> NgramModel:
    prob, backoff = stupid_backoff(counts, config.alpha)
    return NgramModel(vocab, config.padding, counts.keys, prob, backoff, missing_backoff=config.alpha)


ESTIMATORS: dict[str, Estimator] = {
    "mle": _mle,
    "lidstone": _lidstone,
    "interpolation": _interpolation,
    "witten-bell": _witten_bell,
    "absolute-discounting": _absolute_discounting,
    "kneser-ney": _kneser_ney,
    "modified-kneser-ney": _modified_kneser_ney,
    "nltk-kneser-ney": _nltk_kneser_ney,
    "katz": _katz,
    "stupid-backoff": _stupid_backoff,
}

# The names a config may give are the registry's, so a config cannot name an estimator that does not exist.
EstimatorName = Literal[tuple(ESTIMATORS)]  # type: ignore[valid-type]


class NgramConfig(Config):
    order: int = Field(3, ge=1, le=6, description="n: the model sees n-1 words of context")
    estimator: EstimatorName = "modified-kneser-ney"
    k: float = Field(1.0, gt=0.0, description="lidstone: added to every count; 1 is Laplace (add-one)")
    lambdas: list[float] | None = Field(
        None,
        description="interpolation: weights of the uniform, unigram, ..., n-gram estimates, summing to 1; "
        "None fits them on held-out text when some is given, else weighs all equally",
    )
    discount: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="kneser-ney: one fixed discount, None estimates n1/(n1+2 n2) per order; "
        "absolute-discounting: 0.75 if None; nltk-kneser-ney: 0.1 if None"
    )
    alpha: float = Field(0.4, gt=0.0, description="stupid-backoff: the factor for each shorter context")
    katz_k: int = Field(
        5, ge=2, description="katz: counts up to k are Good-Turing discounted, larger ones trusted (Katz's k)"
    )
    discount_fallback: bool = Field(
        False, description="modified-kneser-ney: use 0.5, 1, 1.5 where counts of counts give no valid discounts"
    )
    padding: Literal["kenlm", "nltk"] = "kenlm"
    precision: Literal["float64", "float32"] = Field(
        "float64", description="kneser-ney arithmetic; float32 is what lmplz computes, to reproduce it bit for bit "
        "(with modified-kneser-ney, its counts of counts too)"
    )

    @model_validator(mode="after")
    def _check_lambdas(self) -> NgramConfig:
        if self.lambdas is not None:
            if len(self.lambdas) != self.order + 1:
                raise ValueError(f"lambdas needs order + 1 = {self.order + 1} weights, got {len(self.lambdas)}")
            if any(weight < 0 for weight in self.lambdas) or not math.isclose(sum(self.lambdas), 1.0):
                raise ValueError("lambdas must be non-negative and sum to 1")
        return self


def estimate(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]] = ()
) -> NgramModel:
    """Smooth `counts` with the estimator `config` names (`held_out` id sequences fit interpolation weights)."""
    return ESTIMATORS[config.estimator](counts, vocab, config, held_out)


def train_ngram(
    sentences: Iterable[Sequence[str]],
    config: NgramConfig,
    vocab: Vocabulary | None = None,
    held_out: Iterable[Sequence[str]] = (),
) -> NgramModel:
    """Count and smooth an n-gram model of word sequences (each one sentence or document)."""
    vocab = vocab or Vocabulary()
    return count_and_estimate(*vocab.add_all(list(sentences)), vocab, config, held_out)


def count_and_estimate(
    words: np.ndarray, lengths: np.ndarray, vocab: Vocabulary, config: NgramConfig, held_out: Iterable[Sequence[str]]
) -> NgramModel:
    """`train_ngram` of sentences already in `vocab`, as their word ids back to back and their lengths."""
    counts = count_words(words, lengths, config.order, len(vocab), config.padding)
    return estimate(counts, vocab, config, [vocab.encode(sentence) for sentence in held_out])
