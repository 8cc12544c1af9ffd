"""Smoothing estimators for n-gram counts: what each n-gram keeps (u) and what each context hands down (gamma).

Every estimator returns, per order k, ``u`` (one value per k-gram) and ``gamma`` (one value per
(k-1)-gram, the contexts; 1 for a context never seen, which hands everything down), for the
recursion ``p(w | c) = u(w | c) + gamma(c) p(w | c')`` that `lmlab.models.ngram` runs and stores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmlab.errors import LmlabError
from lmlab.models.ngram_counts import BOS_ID, UNK_ID, NgramCounts, concatenate, pad, predictable_size, window_ids

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback


def _per_context(counts: NgramCounts, k: int, values: np.ndarray) -> np.ndarray:
    """Sum of `values` (one per k-gram) over the k-grams sharing each context."""
    n_contexts = 1 if k == 1 else len(counts.keys[k - 2])
    return np.bincount(counts.prefix(k), weights=values, minlength=n_contexts)


def _divide(numerator: np.ndarray, denominator: np.ndarray, where_zero: float) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, where_zero)


def mle(counts: NgramCounts) -> list[tuple[np.ndarray, np.ndarray]]:
    """count(c w) / count(c •) at every order; nothing is handed down from a seen context."""
    estimates = []
    for k in range(1, counts.order + 1):
        total = _per_context(counts, k, counts.counts[k - 1].astype(np.float64))
        u = _divide(counts.counts[k - 1], total[counts.prefix(k)], 0.0)
        estimates.append((u, np.where(total > 0, 0.0, 1.0)))
    return estimates


def _full_context(counts: NgramCounts, k: int, padding: str) -> np.ndarray:
    """Which k-grams carry the whole context a prediction can have: the top order, or <s>-initial (KenLM)."""
    if k == counts.order:
        return np.ones(len(counts.keys[k - 1]), dtype=bool)
    if padding == "kenlm" and k > 1:
        return counts.first_word[k - 1] == BOS_ID
    return np.zeros(len(counts.keys[k - 1]), dtype=bool)


def lidstone(counts: NgramCounts, predictable: int, add: float, padding: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(count + k) / (total + k|V|) in the full context, not interpolated (as ``nltk.lm.Lidstone``).

    In the recursion that is u = count / (total + k|V|) and gamma = k|V| / (total + k|V|) handing down to a
    uniform 1/|V|: every shorter context is made transparent (u = 0, gamma = 1), so the add-k share
    reaches the uniform distribution unchanged. An unseen full context gives 1/|V|, as NLTK does.
    """
    estimates = []
    for k in range(1, counts.order + 1):
        full = _full_context(counts, k, padding)
        own = np.where(full, counts.counts[k - 1], 0).astype(np.float64)
        total = _per_context(counts, k, own)
        has_full = _per_context(counts, k, full.astype(np.float64)) > 0
        denominator = (total + add * predictable)[counts.prefix(k)]
        u = np.where(full, own / denominator, 0.0)
        gamma = np.where(has_full, add * predictable / (total + add * predictable), 1.0)
        estimates.append((u, gamma))
    return estimates


def interpolation(counts: NgramCounts, lambdas: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Jelinek-Mercer: p = lambda_0 / |V| + lambda_1 p_MLE(w) + ... + lambda_n p_MLE(w | n-1 words).

    Nested as p_k = mu_k p_MLE_k + (1 - mu_k) p_{k-1} with mu_k = lambda_k / (lambda_0 + .. + lambda_k), which
    is the same sum when every context was seen and, when one was not, shares its weight among the
    shorter ones, so the result is still a distribution.
    """
    estimates = []
    for k, (u_mle, gamma_mle) in enumerate(mle(counts), start=1):
        below = sum(lambdas[: k + 1])
        mu = lambdas[k] / below if below > 0 else 0.0
        seen = gamma_mle == 0.0
        estimates.append((mu * u_mle, np.where(seen, 1.0 - mu, 1.0)))
    return estimates


def _left_extensions(counts: NgramCounts, k: int) -> np.ndarray:
    """For each k-gram g, how many distinct words v precede it: #{v : count(v g) > 0}."""
    return np.bincount(counts.suffix[k], minlength=len(counts.keys[k - 1]))


def witten_bell(counts: NgramCounts) -> list[tuple[np.ndarray, np.ndarray]]:
    """Witten-Bell, interpolated (``nltk.lm.WittenBellInterpolated``): a context that was followed by many
    different words is likely to be followed by a new one, so it hands down N1+(c•) / (N1+(c•) + count(c•)).
    The recursion ends at the MLE unigram, as in NLTK, so a word never seen gets 0.
    """
    estimates = mle(counts)[:1]
    for k in range(2, counts.order + 1):
        total = _per_context(counts, k, counts.counts[k - 1].astype(np.float64))
        followers = _per_context(counts, k, np.ones(len(counts.keys[k - 1])))
        u = counts.counts[k - 1] / (total + followers)[counts.prefix(k)]
        estimates.append((u, _divide(followers, followers + total, 1.0)))
    return estimates


def absolute_discounting(counts: NgramCounts, discount: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Absolute discounting, interpolated (``nltk.lm.AbsoluteDiscountingInterpolated``): every seen n-gram
    gives up the same D, so gamma = D N1+(c•) / count(c•). Kneser-Ney is this with continuation counts
    below the top order. The recursion ends at the MLE unigram, as in NLTK.
    """
    estimates = mle(counts)[:1]
    for k in range(2, counts.order + 1):
        total = _per_context(counts, k, counts.counts[k - 1].astype(np.float64))
        followers = _per_context(counts, k, np.ones(len(counts.keys[k - 1])))
        u = np.maximum(counts.counts[k - 1] - discount, 0.0) / total[counts.prefix(k)]
        estimates.append((u, _divide(discount * followers, total, 1.0)))
    return estimates


def fit_lambdas(
    counts: NgramCounts, held_out: Sequence[Sequence[int]], padding: str, steps: int = 200
) -> list[float]:
    """Interpolation weights that maximise the likelihood of held-out text, by expectation-maximisation.

    Each held-out word is explained by one of the n + 1 estimates (uniform, unigram, ..., n-gram MLE);
    the E step asks how likely each one was to have produced it, the M step makes each weight the
    average of those shares. Fitting on the training text instead would put all weight on the
    n-gram MLE, which has seen every training n-gram.
    """
    stream, starts = concatenate([pad(s, counts.order, padding) for s in held_out])
    predicted = np.arange(len(stream)) - starts >= (1 if padding == "kenlm" else max(counts.order - 1, 1))
    ids = window_ids(stream, starts, counts.keys, counts.vocab_size)
    columns = [np.full(int(predicted.sum()), 1.0 / predictable_size(counts.vocab_size, padding))]
    for k, (u, _) in enumerate(mle(counts), start=1):
        found = ids[k - 1][predicted]
        columns.append(np.where(found >= 0, u[np.maximum(found, 0)], 0.0))
    estimates = np.column_stack(columns)  # (held-out words, n + 1)
    lambdas = np.full(counts.order + 1, 1.0 / (counts.order + 1))
    for _ in range(steps):
        shares = lambdas * estimates
        shares /= shares.sum(axis=1, keepdims=True)
        lambdas = shares.mean(axis=0)
    return lambdas.tolist()


def adjusted_counts(counts: NgramCounts) -> list[np.ndarray]:
    """Kneser-Ney's counts: raw at the top order and for <s>-initial n-grams, else distinct left extensions.

    An n-gram that starts with <s> has no word before it to count, so it keeps its own count (lmplz).
    """
    adjusted = [counts.counts[-1]]
    for k in range(counts.order - 1, 0, -1):
        starts_sentence = counts.first_word[k - 1] == BOS_ID
        adjusted.insert(0, np.where(starts_sentence, counts.counts[k - 1], _left_extensions(counts, k)))
    adjusted[0][[UNK_ID, BOS_ID]] = 0
    return adjusted


def modified_discounts(
    adjusted: np.ndarray, order: int, fallback: bool, dtype: type[np.floating] = np.float64
) -> tuple[float, float, float]:
    """D1, D2, D3+ from the counts of counts (Chen & Goodman eq. 26); lmplz computes them in float32.

    Y = n1 / (n1 + 2 n2);  D_k = k - (k + 1) Y n_{k+1} / n_k,  where n_k = #n-grams with adjusted count k.
    """
    n = [int(np.count_nonzero(adjusted == k)) for k in range(5)]
    f = dtype
    if all(n[1:5]):
        y = f(f(n[1]) / (f(n[1]) + f(2.0) * f(n[2])))
        discounts = tuple(f(k) - f(k + 1) * y * f(n[k + 1]) / f(n[k]) for k in (1, 2, 3))
        if all(0 <= d <= k for k, d in zip((1, 2, 3), discounts, strict=True)):
            return discounts  # type: ignore[return-value]
    if fallback:
        return tuple(f(d) for d in FALLBACK_DISCOUNTS)  # type: ignore[return-value]
    raise LmlabError(
        f"modified-kneser-ney: the {order}-gram counts of counts n1..n4 = {n[1:5]} give no valid discounts "
        "(the text is too small or artificial); use more text or set discount_fallback=true"
    )


def single_discount(adjusted: np.ndarray, order: int) -> float:
    """Ney's estimate D = n1 / (n1 + 2 n2) for plain Kneser-Ney."""
    n1, n2 = int(np.count_nonzero(adjusted == 1)), int(np.count_nonzero(adjusted == 2))
    if n1 == 0:
        raise LmlabError(f"kneser-ney: no {order}-gram occurs once, so no discount can be estimated; set discount")
    return n1 / (n1 + 2 * n2)


def kneser_ney(
    counts: NgramCounts, discounts: Sequence[tuple[float, float, float]], dtype: type[np.floating] = np.float64
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Interpolated (modified) Kneser-Ney; discounts[k-1] = (D1, D2, D3+) of order k (all equal: plain KN).

    Every step is rounded to `dtype`, so with float32 the arithmetic is lmplz's.
    """
    estimates = []
    for k, adjusted in enumerate(adjusted_counts(counts), start=1):
        d1, d2, d3 = (dtype(d) for d in discounts[k - 1])
        table = np.array([0.0, d1, d2, d3], dtype=dtype)
        bucket = np.minimum(adjusted, 3)  # which discount applies: D1, D2, D3+ (and 0 for a count of 0)
        prefix = counts.prefix(k)
        total = _per_context(counts, k, adjusted.astype(np.float64)).astype(dtype)
        u = _divide(adjusted.astype(dtype) - table[bucket], total[prefix], 0.0).astype(dtype)
        n1, n2, n3 = (_per_context(counts, k, (bucket == j).astype(np.float64)).astype(dtype) for j in (1, 2, 3))
        gamma = _divide(d1 * n1 + d2 * n2 + d3 * n3, total, 1.0).astype(dtype)
        estimates.append((u, gamma))
    return estimates


def nltk_kneser_ney(counts: NgramCounts, discount: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``nltk.lm.KneserNeyInterpolated``, reproduced to check against it; prefer the two estimators above.

    It differs from lmplz in three ways: one discount for every order; continuation counts for every
    lower-order n-gram, <s>-initial ones too; and unigrams that are continuation counts alone, with no
    uniform share, so <unk> and <s> get probability 0. Its gamma counts the distinct words after a
    context in the raw counts, which after <s> is not the number discounted, so there a distribution
    does not quite sum to 1.
    """
    extensions = [_left_extensions(counts, k) for k in range(1, counts.order)]
    unigram = extensions[0] / extensions[0].sum()
    estimates = [(unigram, np.zeros(1))]
    for k in range(2, counts.order + 1):
        kept = counts.counts[k - 1] if k == counts.order else extensions[k - 1]
        total = _per_context(counts, k, kept.astype(np.float64))
        u = _divide(np.maximum(kept - discount, 0.0), total[counts.prefix(k)], 0.0)
        followers = _per_context(counts, k, np.ones(len(kept)))  # N1+(c •) in the raw counts
        estimates.append((u, _divide(discount * followers, total, 1.0)))
    return estimates
