"""The inner loop of word2vec, compiled: stochastic gradient descent over (word, context) examples.

Negative sampling turns "predict the word from its context" into k+1 logistic regressions per
example: the true word against k words drawn from the noise distribution, each scored by a dot
product of the input vector h and an output vector v'_t (Mikolov et al., 2013b):

    loss = -log sigma(v'_w . h) - sum over k noise words t of log sigma(-v'_t . h)
    g_t  = alpha * (label_t - sigma(v'_t . h))       label 1 for the word, 0 for a noise word
    v'_t += g_t * h          and, after all k+1:     h += sum over t of g_t * v'_t (before its update)

Skip-gram (``sg``) makes one example per (centre word, context word) pair, h = the context word's
input vector; CBOW makes one per centre word, h = the mean of its context's input vectors, and the
summed error goes back to every one of them, as word2vec.c and gensim do.

An example costs three loops over ``dim`` numbers, so per-example Python or per-example PyTorch is
hundreds of times too slow; numba compiles these loops to SIMD machine code (``fastmath`` lets the
dot product's sum be reordered into vector lanes). The functions release the GIL (``nogil``), so
``workers`` Python threads train on different chunks of the corpus at once, sharing the two matrices
without locks: "Hogwild" SGD (Recht et al., 2011), word2vec.c's and gensim's scheme, sound because
two threads rarely touch the same row at the same moment. ``cache=True`` keeps the machine code on
disk, so only the first run ever pays the compilation.

Random numbers come from word2vec.c's 48-bit linear congruential generator, one stream per chunk
seeded by the caller, so a run with one worker is reproducible whatever the chunking.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LCG_MULTIPLIER = np.uint64(25214903917)
_LCG_INCREMENT = np.uint64(11)
_LCG_MASK = np.uint64((1 << 48) - 1)
_SHIFT = np.uint64(16)
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _advance(state: np.uint64) -> np.uint64:
    return (state * _LCG_MULTIPLIER + _LCG_INCREMENT) & _LCG_MASK


@njit(cache=True, nogil=True, inline="always")
def _draw32(state: np.uint64) -> np.int64:
    # The low bits of an LCG are poor; word2vec keeps the high 32 of the 48.
    return np.int64((state >> _SHIFT) & _LOW32)


@njit(cache=True, nogil=True, fastmath=True)
def _negative_sampling(h, word, syn1neg, error, negative, cum_table, alpha, state, with_loss):
    """One example: the k+1 logistic regressions above. Adds h's gradient into `error`; returns (state, loss)."""
    dim = h.shape[0]
    loss = 0.0
    for d in range(negative + 1):
        if d == 0:
            target, label = word, np.float32(1.0)
        else:
            state = _advance(state)
            target = np.searchsorted(cum_table, _draw32(state) % cum_table[-1], side="right")
            if target == word:  # the true word drawn as noise teaches nothing
                continue
            label = np.float32(0.0)
        out = syn1neg[target]
        f = np.float32(0.0)
        for i in range(dim):
            f += h[i] * out[i]
        # sigma(f) and, on request, -log sigma(+-f), from one exp(-|f|): stable for any f.
        e = math.exp(-abs(f))
        sigma = 1.0 / (1.0 + e) if f >= 0 else e / (1.0 + e)
        if with_loss:
            loss += math.log1p(e) + (max(-f, 0.0) if label > 0 else max(f, 0.0))
        g = np.float32((label - sigma) * alpha)
        for i in range(dim):
            error[i] += g * out[i]
            out[i] += g * h[i]
    return state, loss


@njit(cache=True, nogil=True, fastmath=True)
def train_chunk(ids, bounds, first, last, syn0, syn1neg, keep, cum_table, window, negative, skipgram,
                alpha, min_alpha, position, total, state, with_loss):
    """Train on sentences ``first`` .. ``last``-1 (word ids ``ids[bounds[s]:bounds[s+1]]``); return (loss, examples).

    ``keep[w]`` is the subsampling threshold on a 32-bit draw (2**32: always kept); ``cum_table`` the
    cumulative noise distribution scaled to 2**31-1; ``position`` the number of corpus words trained
    on before this chunk out of ``total`` (epochs x words), which sets the learning rate: alpha decays
    linearly to min_alpha over the whole run, recomputed at every sentence.
    """
    dim = syn0.shape[1]
    longest = 0
    for s in range(first, last):
        longest = max(longest, bounds[s + 1] - bounds[s])
    kept = np.empty(longest, np.int64)
    hidden = np.empty(dim, np.float32)
    error = np.empty(dim, np.float32)
    loss, examples = 0.0, 0
    for s in range(first, last):
        lr = alpha - (alpha - min_alpha) * position / total
        position += bounds[s + 1] - bounds[s]
        # Subsampling happens before windowing, so a dropped frequent word widens every window across it.
        n = 0
        for k in range(bounds[s], bounds[s + 1]):
            w = ids[k]
            if keep[w] < 4294967296.0:
                state = _advance(state)
                if _draw32(state) >= keep[w]:
                    continue
            kept[n] = w
            n += 1
        for c in range(n):
            # word2vec's random window: an effective size b drawn from 1..window weights near words more.
            state = _advance(state)
            b = window - _draw32(state) % window
            lo, hi = max(0, c - b), min(n, c + b + 1)
            word = kept[c]
            if skipgram:
                for j in range(lo, hi):
                    if j == c:
                        continue
                    h = syn0[kept[j]]
                    error[:] = 0.0
                    state, step = _negative_sampling(h, word, syn1neg, error, negative, cum_table, lr, state,
                                                     with_loss)
                    for i in range(dim):
                        h[i] += error[i]
                    loss += step
                    examples += 1
            else:
                if hi - lo < 2:
                    continue
                hidden[:] = 0.0
                for j in range(lo, hi):
                    if j != c:
                        v = syn0[kept[j]]
                        for i in range(dim):
                            hidden[i] += v[i]
                inverse = np.float32(1.0 / (hi - lo - 1))
                for i in range(dim):
                    hidden[i] *= inverse
                error[:] = 0.0
                state, step = _negative_sampling(hidden, word, syn1neg, error, negative, cum_table, lr, state,
                                                 with_loss)
                for j in range(lo, hi):
                    if j != c:
                        v = syn0[kept[j]]
                        for i in range(dim):
                            v[i] += error[i]
                loss += step
                examples += 1
    return loss, examples
