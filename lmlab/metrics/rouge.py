"""ROUGE: the recall-oriented overlap score of summarisation, with the `rouge-score` package's defaults.

ROUGE (Lin, 2004) compares a predicted summary with a reference one. Where BLEU asks how much of
the hypothesis is in the reference, ROUGE reports both directions and their harmonic mean:

    ROUGE-N   matched n-grams (clipped counts)  / n-grams of the prediction   = precision
              matched n-grams (clipped counts)  / n-grams of the reference    = recall
    ROUGE-L   LCS(prediction, reference) / len(prediction)                    = precision
              LCS(prediction, reference) / len(reference)                     = recall
    F         2 · P · R / (P + R), 0 when P + R = 0

LCS is the longest common subsequence: tokens in the same order but not necessarily adjacent, so
ROUGE-L rewards word order without demanding contiguous n-grams. Every choice below follows
Google's `rouge-score` 0.1.x (``rouge_scorer.RougeScorer``), the tool whose numbers papers quote:

- text is lower-cased, every character outside ``[a-z0-9]`` becomes a space, and the result is
  split on whitespace. **Anything that is not ASCII letters or digits vanishes**: accented words lose
  their accents' letters (``naïve`` -> ``na``, ``ve``) and Chinese text becomes no tokens at all,
  so every Chinese pair scores 0. That is rouge-score's behaviour and we reproduce it;
- with ``use_stemmer=True`` tokens longer than three characters go through NLTK's Porter stemmer
  (``running`` and ``runs`` both become ``run``); shorter ones are left alone;
- an empty prediction or reference scores 0 for precision, recall and F.

``tokenizer="char"`` is lmlab's own addition, *not* in rouge-score: each letter or digit of any
script is a token (lower-cased, punctuation and spaces dropped). It is the usual way to score
Chinese, which has no spaces between words; its numbers are not comparable with rouge-score's.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from lmlab.errors import LmlabError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True)
class RougeScore:
    precision: float
    recall: float
    fmeasure: float


# ----------------------------------------------------------------------------------------------
# 1. Tokenizers. Each maps a text to its list of tokens.

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@cache
def _porter() -> Callable[[str], str]:
    # Imported late: nltk is only needed when stemming is asked for.
    from nltk.stem import porter

    return porter.PorterStemmer().stem


def tokenize_default(text: str, use_stemmer: bool = False) -> list[str]:
    """rouge-score's tokenizer: lower-case, keep runs of ASCII letters and digits, Porter-stem words over 3 chars."""
    tokens = _NOT_ALNUM.sub(" ", text.lower()).split()
    if use_stemmer:
        stem = _porter()
        tokens = [stem(token) if len(token) > 3 else token for token in tokens]
        # The stemmer could in principle emit something outside [a-z0-9]; rouge-score drops such tokens.
        tokens = [token for token in tokens if _NOT_ALNUM.search(token) is None]
    return tokens


def tokenize_char(text: str, use_stemmer: bool = False) -> list[str]:
    """One token per letter or digit of any script (for Chinese); not a rouge-score tokenizer."""
    if use_stemmer:
        raise LmlabError("ROUGE use_stemmer=True needs tokenizer='default'; stemming means nothing per character")
    return [char for char in text.lower() if char.isalnum()]


TOKENIZERS: dict[str, Callable[[str, bool], list[str]]] = {"default": tokenize_default, "char": tokenize_char}


# ----------------------------------------------------------------------------------------------
# 2. The two kinds of overlap.


def _fmeasure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(prediction: Sequence[str], reference: Sequence[str], n: int) -> RougeScore:
    """ROUGE-N of two token lists: each n-gram matches at most as often as it occurs on both sides."""
    pred, ref = _ngrams(prediction, n), _ngrams(reference, n)
    matched = sum((pred & ref).values())  # & keeps the smaller count: clipped matches
    # max(.., 1): a side too short to have any n-gram gives 0, not a division by zero.
    precision = matched / max(sum(pred.values()), 1)
    recall = matched / max(sum(ref.values()), 1)
    return RougeScore(precision, recall, _fmeasure(precision, recall))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming over one row at a time."""
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b):
            # Extend the diagonal on a match; otherwise carry the better of dropping a token from either side.
            current.append(previous[j] + 1 if token_a == token_b else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: Sequence[str], reference: Sequence[str]) -> RougeScore:
    """ROUGE-L of two token lists (sentence level: the whole text is one sequence, as rouge-score's rougeL)."""
    if not prediction or not reference:
        return RougeScore(0.0, 0.0, 0.0)
    lcs = lcs_length(reference, prediction)
    precision, recall = lcs / len(prediction), lcs / len(reference)
    return RougeScore(precision, recall, _fmeasure(precision, recall))


# ----------------------------------------------------------------------------------------------
# 3. The public entry points.


def _check(rouge_types: Sequence[str], tokenizer: str) -> None:
    for rouge_type in rouge_types:
        if rouge_type not in ROUGE_TYPES:
            raise LmlabError(f"ROUGE type {rouge_type!r} is unknown; choose among {', '.join(map(repr, ROUGE_TYPES))}")
    if tokenizer not in TOKENIZERS:
        raise LmlabError(f"ROUGE tokenizer={tokenizer!r} is unknown; choose one of {', '.join(map(repr, TOKENIZERS))}")


def rouge(prediction: str, reference: str, rouge_types: Sequence[str] = ROUGE_TYPES, use_stemmer: bool = False,
          tokenizer: str = "default") -> dict[str, RougeScore]:
    """ROUGE of one prediction against its reference, as ``RougeScorer(rouge_types).score(reference, prediction)``."""
    _check(rouge_types, tokenizer)
    if not isinstance(prediction, str) or not isinstance(reference, str):
        raise LmlabError("ROUGE takes one prediction string and one reference string")
    tokenize = TOKENIZERS[tokenizer]
    pred, ref = tokenize(prediction, use_stemmer), tokenize(reference, use_stemmer)
    return {rouge_type: rouge_l(pred, ref) if rouge_type == "rougeL" else rouge_n(pred, ref, int(rouge_type[-1]))
            for rouge_type in rouge_types}


def corpus_rouge(predictions: Sequence[str], references: Sequence[str], rouge_types: Sequence[str] = ROUGE_TYPES,
                 use_stemmer: bool = False, tokenizer: str = "default") -> dict[str, RougeScore]:
    """Mean precision, recall and F over prediction/reference pairs (unlike BLEU, ROUGE is averaged per pair).

    This is the plain mean; rouge-score's ``BootstrapAggregator`` reports a resampled estimate of it.
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise LmlabError("corpus ROUGE takes a list of predictions and a list of references, not single strings")
    if len(predictions) != len(references):
        raise LmlabError(f"corpus ROUGE got {len(predictions)} predictions but {len(references)} references; "
                         "give one reference per prediction")
    if not predictions:
        raise LmlabError("corpus ROUGE got no prediction/reference pairs; the mean of nothing is undefined")
    _check(rouge_types, tokenizer)
    per_pair = [rouge(p, r, rouge_types, use_stemmer, tokenizer) for p, r in zip(predictions, references, strict=True)]
    count = len(per_pair)
    return {rouge_type: RougeScore(sum(s[rouge_type].precision for s in per_pair) / count,
                                   sum(s[rouge_type].recall for s in per_pair) / count,
                                   sum(s[rouge_type].fmeasure for s in per_pair) / count)
            for rouge_type in rouge_types}
