"""Scores as KenLM computes them: float32 log10, summed in float32, and the perplexity ``query`` prints.

`log10f` is the C library's single-precision log10, which lmplz writes into ARPA files;
`NgramModel.log10_scores` runs KenLM's query loop and returns a `Log10Scores`, whose `perplexity`
counts the out-of-vocabulary words or leaves them out, as KenLM's ``query`` reports both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from lmlab.errors import LmlabError
from lmlab.models.ngram import kernels


@dataclass
class Log10Scores:
    """Sentences scored as KenLM scores them (`NgramModel.log10_scores`): log10, float32.

    `tokens` holds the score of every predicted token, each sentence's words and its ``</s>`` in
    order; `oov` marks the words not in the vocabulary (scored as ``<unk>``); `totals` holds one
    float32 sum per sentence, what ``kenlm.Model.score`` returns.
    """

    tokens: np.ndarray
    oov: np.ndarray
    totals: np.ndarray

    def perplexity(self, include_oovs: bool = True) -> float:
        """10^(-mean log10 p) per token, ``</s>`` counted, as KenLM's ``query`` prints it.

        As there, sentence totals are float32 and the corpus sums them in float64, in order; without
        OOVs, their scores and their count are taken out of the sums.
        """
        total, count = _running_sum(self.totals), len(self.tokens)
        if not include_oovs:
            total, count = total - _running_sum(self.tokens[self.oov]), count - int(self.oov.sum())
        if count == 0:
            raise LmlabError("perplexity: no tokens to score")
        return 10.0 ** -(total / count)


def _running_sum(values: np.ndarray) -> float:
    """The float64 sum of `values` added one after another (np.sum adds pairwise, rounding differently)."""
    return float(np.cumsum(values, dtype=np.float64)[-1]) if len(values) else 0.0


def log10f(values: np.ndarray) -> np.ndarray:
    """log10 of each value rounded to float32 by the C library's log10f, as lmplz and KenLM round it.

    On CPUs with AVX-512, NumPy's float32 log10 is a vectorised routine of its own that differs from
    the C library's in the last bit for about half of all inputs, so a compiled loop calls the C function
    value by value (`kernels.log10f`). Where numba has Intel's SVML, it could vectorise that loop
    with SVML's own log10f, so there each value is passed to the C function on its own.
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    if numba.config.USING_SVML:
        return np.fromiter(map(kernels.log10f_one, values), dtype=np.float32, count=len(values))
    return kernels.log10f(values)

