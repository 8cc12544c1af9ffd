"""Estimation: the configuration of an n-gram model, and smoothing counts into one by the estimator it names.

`estimate` turns counts into an `NgramModel` with one of the smoothing methods of
`lmlab.models.ngram.smoothing`; `train_ngram` counts word sequences first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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
    witten_bell,
)


class NgramConfig(Config):
    order: int = Field(3, ge=1, le=6, description="n: the model sees n-1 words of context")
    estimator: Literal[
        "mle", "lidstone", "interpolation", "witten-bell", "absolute-discounting", "kneser-ney",
        "modified-kneser-ney", "nltk-kneser-ney", "katz", "stupid-backoff",
    ] = "modified-kneser-ney"
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



def stupid_backoff(vocab: Vocabulary, counts: NgramCounts, alpha: float, padding: str) -> NgramModel:
    """Stupid back-off (Brants et al. 2007): count(c w) / count(c •) if c w was seen, else alpha S(w | c').

    A score, not a distribution: nothing is discounted, so the scores after a context sum to more
    than 1. It is cheap and, on web-scale text, about as good as Kneser-Ney for translation.
    """
    relative_frequency = [u for u, _ in mle(counts)]
    backoff = [np.full(len(keys), alpha) for keys in counts.keys]
    return NgramModel(vocab, padding, counts.keys, relative_frequency, backoff, missing_backoff=alpha)


def estimate(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]] = ()
) -> NgramModel:
    """Smooth `counts` with the estimator `config` names (`held_out` id sequences fit interpolation weights)."""
    if config.estimator == "stupid-backoff":
        return stupid_backoff(vocab, counts, config.alpha, config.padding)
    if config.estimator == "katz":  # backs off rather than interpolates: katz computes what the model stores
        prob, backoff = katz(counts, config.katz_k, config.padding)
        return NgramModel(vocab, config.padding, counts.keys, prob, backoff)
    predictable = predictable_size(len(vocab), config.padding)
    if config.estimator == "mle":
        estimates = mle(counts)
    elif config.estimator == "lidstone":
        estimates = lidstone(counts, predictable, config.k, config.padding)
    elif config.estimator == "witten-bell":
        estimates = witten_bell(counts)
    elif config.estimator == "absolute-discounting":
        estimates = absolute_discounting(counts, config.discount or 0.75)
    elif config.estimator == "nltk-kneser-ney":
        if config.order < 2:
            raise LmlabError("nltk-kneser-ney: order must be at least 2 (its unigrams come from bigram counts)")
        estimates = nltk_kneser_ney(counts, config.discount or 0.1)
    elif config.estimator == "interpolation":
        if config.lambdas:
            lambdas = config.lambdas
        elif held_out:
            lambdas = fit_lambdas(counts, held_out, config.padding)
        else:
            lambdas = [1.0 / (counts.order + 1)] * (counts.order + 1)
        estimates = interpolation(counts, lambdas)
    else:  # kneser-ney, modified-kneser-ney
        adjusted = adjusted_counts(counts)
        dtype = np.float32 if config.precision == "float32" else np.float64
        if config.estimator == "modified-kneser-ney":
            if config.precision == "float32":  # lmplz's numbers, to the bit
                adjusted = lmplz_discount_counts(counts, adjusted)
            discounts = [modified_discounts(a, k, config.discount_fallback, dtype) for k, a in enumerate(adjusted, 1)]
        else:
            singles = [config.discount or single_discount(a, k) for k, a in enumerate(adjusted, 1)]
            discounts = [(d, d, d) for d in singles]
        estimates = kneser_ney(counts, discounts, dtype)
    return NgramModel.from_estimates(vocab, counts, estimates, config.padding)


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
