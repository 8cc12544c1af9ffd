"""The two distributions word2vec draws from: which occurrences survive subsampling, and the noise words.

Frequent words are subsampled, so "the" is mostly dropped and windows reach further; noise words
come from the unigram distribution raised to 3/4, which draws rare words more than their share.
"""

from __future__ import annotations

import numpy as np


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """The chance each occurrence of a word survives subsampling: (sqrt(c / sN) + 1) * sN / c, at most 1.

    N is the number of words in the vocabulary's text, c each word's count; ``sample`` 0 keeps all.
    That is sqrt(sN / c) + sN / c, word2vec.c's and gensim's formula; the paper's sqrt(sN / c) keeps
    a little less of the frequent words.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum((np.sqrt(counts / threshold) + 1.0) * threshold / counts, 1.0)


NOISE_DOMAIN = 2**31 - 1


def noise_table(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """The cumulative noise distribution c**exponent / sum(c**exponent), scaled to integers up to 2**31 - 1.

    Word i is drawn for a uniform integer r in [table[i-1], table[i]), found by binary search: exact
    proportions in a table as long as the vocabulary (word2vec.c fills 10**8 slots instead).
    """
    weights = np.asarray(counts, dtype=np.float64) ** exponent
    return np.round(np.cumsum(weights) / weights.sum() * NOISE_DOMAIN).astype(np.int64)
