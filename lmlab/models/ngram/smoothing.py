"""Smoothing estimators for n-gram counts: what each n-gram keeps (u) and what each context hands down (gamma).

Every estimator returns, per order k, ``u`` (one value per k-gram) and ``gamma`` (one value per
(k-1)-gram, the contexts; 1 for a context never seen, which hands everything down), for the
recursion ``p(w | c) = u(w | c) + gamma(c) p(w | c')`` that `lmlab.models.ngram.model` runs and stores.
Katz back-off and stupid back-off are the exceptions: they back off instead of interpolating, so
`katz` and `stupid_backoff` return the stored probabilities and back-off weights themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmlab.errors import LmlabError
from lmlab.models.ngram.counts import BOS_ID, UNK_ID, NgramCounts, concatenate, pad, predictable_size, window_ids

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback


def _per_context(counts: NgramCounts, k: int, values: np.ndarray) -> np.ndarray:
    """Sum of `values` (one per k-gram) over the k-grams sharing each context."""
    n_contexts = 1 if k == 1 else len(counts.keys[k - 2])
    return np.bincount(counts.prefix(k), weights=values, minlength=n_contexts)


def _divide(numerator: np.ndarray, denominator: np.ndarray, where_zero: float) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, where_zero)


def mle(counts: NgramCounts, orders: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """count(c w) / count(c •) at every order (or the first `orders`); nothing is handed down from a seen context."""
    estimates = []
    for k in range(1, (orders or counts.order) + 1):
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
    estimates = mle(counts, orders=1)
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
    estimates = mle(counts, orders=1)
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


def good_turing_discounts(counts: np.ndarray, max_count: int) -> np.ndarray | None:
    """Katz's discount ratios from the counts of counts: ``d[r]`` for r = 1..k (``d[0]`` is 1), or None.

    Good-Turing says an n-gram seen r times is worth only r* = (r + 1) n_{r+1} / n_r, where n_r is the
    number of n-grams seen exactly r times. Katz trusts counts above k and rescales the ratios r*/r
    below it so that the counts 1..k give up exactly the Good-Turing estimate of the unseen mass, n_1 / N:

        d_r = (r*/r - C) / (1 - C),    C = (k + 1) n_{k+1} / n_1,    1 <= r <= k

    Small or artificial text breaks the assumptions behind it: some n_r (r <= k) is 0, C is not below 1,
    or some d_r falls outside (0, 1] (with C < 1, d_r > 1 means r* > r: Good-Turing would raise the
    count). Then there is no valid discount for that order and the answer is None.
    """
    n = np.bincount(counts[counts <= max_count + 1], minlength=max_count + 2).astype(np.float64)
    r = np.arange(1, max_count + 1)
    if not n[r].all():
        return None
    common = (max_count + 1) * n[max_count + 1] / n[1]
    if common >= 1:
        return None
    d = ((r + 1) * n[r + 1] / (r * n[r]) - common) / (1.0 - common)
    if not ((d > 0).all() and (d <= 1).all()):
        return None
    return np.concatenate([[1.0], d])


_ROUNDING = 1e-12  # a probability mass this small is what is left of 1 after rounding, not a real remainder


def katz(counts: NgramCounts, max_count: int, padding: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Katz back-off (Katz 1987) with Good-Turing discounts, in the notation of SRILM's ngram-discount(7):

        p(w | c) = d_a a / A                        if a = count(c w) > 0    (d_a = 1 for a > k)
                 = bow(c) p(w | c')                 otherwise
        bow(c)   = (1 - sum of p(v | c) over the words v seen after c) / (1 - sum of p(v | c') over the same v)

    A *back-off* model, not an interpolated one: the shorter context c' only ever speaks for words never
    seen after c. In the terms of the other estimators u(w | c) = d_a a / A and gamma(c) = bow(c), but a
    seen n-gram's probability is u alone, never u + gamma p(w | c'). So this returns what an ARPA file
    stores, and what `lmlab.models.ngram.NgramModel` queries, directly: per order, p of every n-gram and
    the back-off weight of every n-gram as a context (1 at the top order and where nothing follows).

    The unigrams are discounted the same way, and the mass they give up is spread evenly over the whole
    vocabulary (|V| words, seen ones too), the uniform floor every other estimator here ends at; a word
    never seen, ``<unk>`` included, gets that share alone.

    Where nothing is discounted, nothing is left for the unseen, which then get probability 0 (SRILM
    reports them as "zeroprobs"). That happens after a context whose every follower was seen more than
    k times (a speaker's name at the end of a line of a play, say), and across a whole order whose
    counts of counts give no valid discounts (`good_turing_discounts` is None): that order is left
    undiscounted (SRILM is finer: it lowers k while n_{k+1} is 0 and leaves undiscounted only the counts
    r whose d_r is out of range). Natural text of a few thousand sentences or more has valid discounts
    at the low orders; a toy vocabulary often has none for its unigrams, so its unseen words get 0.
    An undiscounted order can leave a context above it with mass to hand down and no word left to hand
    it to; that context's seen probabilities are then scaled up to sum to 1, as SRILM does.
    """
    predictable = predictable_size(counts.vocab_size, padding)
    prob: list[np.ndarray] = []
    backoff: list[np.ndarray] = []
    for k in range(1, counts.order + 1):
        raw = counts.counts[k - 1]
        d = good_turing_discounts(raw, max_count)
        ratio = np.ones(len(raw)) if d is None else np.where(raw <= max_count, d[np.minimum(raw, max_count)], 1.0)
        prefix = counts.prefix(k)
        total = _per_context(counts, k, raw.astype(np.float64))
        p = _divide(ratio * raw, total[prefix], 0.0)
        if k == 1:
            p = p + max(1.0 - p.sum(), 0.0) / predictable
            if padding == "kenlm":
                p[BOS_ID] = 1.0  # KenLM's convention: <s> is given, log10 p = 0
        else:
            kept = _per_context(counts, k, p)  # sum of p(v | c) over the words v seen after c
            lower = _per_context(counts, k, prob[-1][counts.suffix[k - 1]])  # sum of p(v | c'), the same v
            left = np.where(1.0 - kept < _ROUNDING, 0.0, 1.0 - kept)  # what c hands down
            room = np.where(1.0 - lower < _ROUNDING, 0.0, 1.0 - lower)  # what c' has for the words c never saw
            stuck = (room == 0) & (left > 0)
            p = np.where(stuck[prefix], _divide(p, kept[prefix], 0.0), p)
            backoff.append(_divide(left, room, 0.0))
        prob.append(p)
    backoff.append(np.ones(len(counts.keys[-1])))
    return prob, backoff


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
    """D1, D2, D3+ from the counts of counts (Chen & Goodman eq. 26), rounded step by step to `dtype`.

    Y = n1 / (n1 + 2 n2);  D_k = k - (k + 1) Y n_{k+1} / n_k,  where n_k = #n-grams with adjusted count k.
    With float32 this is lmplz's arithmetic, operation for operation. As in lmplz, an order with no
    n-gram of adjusted count 1, 2 or 3, or with a D_k outside [0, k], is an error unless `fallback`
    substitutes 0.5, 1, 1.5 (n4 = 0 is fine: it only makes D3+ = 3).
    """
    n = [int(np.count_nonzero(adjusted == k)) for k in range(5)]
    f = dtype
    problem = next((f"no {order}-gram has adjusted count {k}" for k in (1, 2, 3) if n[k] == 0), None)
    if problem is None:
        y = f(n[1]) / f(n[1] + 2 * n[2])  # the denominator summed exactly and rounded once, as lmplz does
        discounts = tuple(f(k) - f(k + 1) * y * f(n[k + 1]) / f(n[k]) for k in (1, 2, 3))
        problem = next((f"the {order}-gram discount D{k}{'+' if k == 3 else ''} = {d!s} is outside [0, {k}]"
                        for k, d in zip((1, 2, 3), discounts, strict=True) if not 0 <= d <= k), None)
        if problem is None:
            return discounts  # type: ignore[return-value]
    if fallback:
        return tuple(f(d) for d in FALLBACK_DISCOUNTS)  # type: ignore[return-value]
    raise LmlabError(
        f"modified-kneser-ney: {problem} (counts of counts n1..n4 = {n[1:5]}), so the {order}-gram discounts "
        "cannot be estimated; the text is too small or artificial: use more text or set discount_fallback=true"
    )


def lmplz_discount_counts(counts: NgramCounts, adjusted: list[np.ndarray]) -> list[np.ndarray]:
    """The counts lmplz takes its counts of counts n1..n4 from: `adjusted`, but for one n-gram per order.

    lmplz collects n1..n4 while it walks the top-order n-grams sorted by their last word, then the
    word before, and so on (word ids in order of first appearance, as lmlab's own). The lower-order
    n-grams it still holds when the walk ends, the suffixes of the last one, are counted with their
    raw count instead of their adjusted count. The discounts move by a hair, but to match lmplz bit
    for bit those n-grams are given their raw counts here too.
    """
    adjusted = [a.copy() for a in adjusted]
    counted = np.flatnonzero(counts.counts[0] > 0)
    if len(counted) == 0:
        return adjusted
    index = int(counted[-1])  # the last word of the last n-gram of the walk
    for k in range(1, counts.order):
        adjusted[k - 1][index] = counts.counts[k - 1][index]
        if counts.first_word[k - 1][index] == BOS_ID:
            break  # lmplz keeps an n-gram that starts the sentence at its own length
        # the walk's last (k+1)-gram ending in this k-gram is the one with the greatest word in front
        extensions = np.flatnonzero(counts.suffix[k] == index)
        index = int(extensions[np.argmax(counts.first_word[k][extensions])])
    return adjusted


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


def stupid_backoff(counts: NgramCounts, alpha: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Stupid back-off (Brants et al. 2007): count(c w) / count(c •) if c w was seen, else alpha S(w | c').

    A score, not a distribution: nothing is discounted, so the scores after a context sum to more
    than 1. It is cheap and, on web-scale text, about as good as Kneser-Ney for translation. Returns
    the relative frequencies and a back-off weight of alpha for every n-gram, as `katz` returns its own.
    """
    relative_frequency = [u for u, _ in mle(counts)]
    return relative_frequency, [np.full(len(keys), alpha) for keys in counts.keys]
