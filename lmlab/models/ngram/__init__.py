"""N-gram language models: counting, smoothing, back-off, the ARPA format, and KenLM's arithmetic.

An n-gram model predicts a word from the n-1 words before it, with probabilities read off counts:

    p(w | c) = count(c w) / count(c •)          maximum likelihood (MLE); c is the context

MLE gives 0 to every n-gram the training text lacks, so every practical model *smooths*: it takes
some probability from seen n-grams and hands it to unseen ones through a shorter context. Every
estimator here is written as one recursion over orders, the interpolated form,

    p(w | c) = u(w | c) + gamma(c) * p(w | c')          c' is c without its oldest word
    p(w)     = u(w)     + gamma()  * 1 / |V|            the recursion ends at the uniform distribution

and differs only in `u` (what an n-gram keeps of its own count) and `gamma` (the mass a context
hands down):

    estimator             u(w | c)                                gamma(c)
    MLE                   a / A                                   0
    Lidstone (add-k)      a / (A + k|V|)   (full contexts only)   k|V| / (A + k|V|)
    linear interpolation  mu_n * a / A                            1 - mu_n
    Witten-Bell           a / (A + N1+(c•))                       N1+(c•) / (A + N1+(c•))
    absolute discounting  max(a - D, 0) / A                       D N1+(c•) / A
    Kneser-Ney            (a - D(a)) / A                          (D1 N1(c•) + D2 N2(c•) + D3 N3+(c•)) / A
    Katz back-off         d(a) a / A   (p = u alone if a > 0)     bow(c), which makes p(• | c) sum to 1

where a is count(c w), A = sum over w of a, N1+(c•) the number of distinct words seen after c
(Witten-Bell and absolute discounting end at the MLE unigram, as in NLTK). Kneser-Ney replaces a
below the highest order by the number of distinct words seen *before* the n-gram ("continuation
count": "Francisco" is frequent but follows only "San", so it is a poor guess after a new
context); plain Kneser-Ney uses one
discount D per order, modified Kneser-Ney (Chen & Goodman 1998) three, D1, D2 and D3+, from the
counts of counts n1..n4, exactly as KenLM's ``lmplz`` does (``precision="float32"`` rounds every step
as lmplz does). ``nltk-kneser-ney`` reproduces ``nltk.lm.KneserNeyInterpolated``, flaws included, to
check against it.

Sentence boundaries follow KenLM (``padding="kenlm"``): a sentence is ``<s> w1 ... wm </s>``, ``<s>``
is only ever context (probability 1, log10 0), ``</s>`` is predicted once, and a word unseen in
training is ``<unk>``, which gets the uniform share gamma()/|V|. ``padding="nltk"`` pads with n-1
``<s>`` and n-1 ``</s>`` and counts the pads as words, as ``nltk.lm`` does, so its scores can be
checked against NLTK's.

KenLM works in log10 and float32: lmplz rounds every step of the estimate to float32 and writes
log10f of each probability, and KenLM's query adds those float32 logs. `precision="float32"` and
`NgramModel.log10_scores` repeat that arithmetic operation for operation, so lmlab's ARPA file holds
lmplz's very numbers and its perplexities are KenLM's to the last bit (tests/test_kenlm.py runs
both programs to check).

The chapter is a package, one concern per module, read in this order:

    counts.py          words to ids, and n-grams counted into sorted NumPy arrays (not dicts: a
                       million lookups are one ``np.searchsorted``)
    smoothing.py       u and gamma of each estimator, computed from the counts
    model.py           `NgramModel`: the back-off tables, the queries on them, save and load
    estimators.py      `NgramConfig`, and the registry of estimators `estimate` picks from by the config's name
    arpa.py            the ARPA file format, written and read
    kenlm_scoring.py   float32 log10 scores and perplexity, as KenLM computes them
    language_model.py  `Splitter` and `NgramLanguageModel`: the `LanguageModel` interface over text
    kernels.py         the loops that run compiled (numba)
"""

from lmlab.models.ngram.counts import Vocabulary
from lmlab.models.ngram.estimators import NgramConfig, estimate, train_ngram
from lmlab.models.ngram.kenlm_scoring import Log10Scores, log10f
from lmlab.models.ngram.language_model import NgramLanguageModel, Splitter
from lmlab.models.ngram.model import NgramModel
from lmlab.models.ngram.smoothing import stupid_backoff

__all__ = [
    "Log10Scores", "NgramConfig", "NgramLanguageModel", "NgramModel", "Splitter", "Vocabulary", "estimate", "log10f",
    "stupid_backoff", "train_ngram",
]
