"""Extractive question answering scores, as the SQuAD v1.1 evaluation script defines them.

An answer is compared with every gold answer after normalisation (lowercase, punctuation removed,
the articles "a", "an", "the" removed, whitespace collapsed), and the best match counts:

    exact match   1 if the normalised strings are equal, else 0
    token F1      harmonic mean of precision and recall over the answers' normalised tokens,
                  counted with multiplicity ("the cat sat" vs "cat cat": 1 common token)

Corpus scores are the mean over questions, times 100, as the official script reports them. Its
tokens are whitespace-separated words, so a Chinese answer is one token; ``unit="char"`` counts
characters instead, punctuation of any script left out (what CMRC-style Chinese evaluations do),
which is not part of SQuAD's script.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lmlab.errors import LmlabError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation and the English articles, collapse whitespace (SQuAD v1.1)."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str, unit: Literal["word", "char"]) -> list[str]:
    normalized = normalize_answer(text)
    if unit == "word":
        return normalized.split()
    return [char for char in normalized if not char.isspace() and not unicodedata.category(char).startswith("P")]


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str, unit: Literal["word", "char"] = "word") -> float:
    predicted, wanted = _tokens(prediction, unit), _tokens(gold, unit)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


@dataclass
class QAScore:
    exact_match: float  # percent of questions answered exactly
    f1: float  # mean best token F1, percent
    questions: int


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]],
                 unit: Literal["word", "char"] = "word") -> QAScore:
    """Mean best-over-gold exact match and F1 (x100) of `predictions`; `golds[i]` lists question i's answers."""
    if isinstance(predictions, str) or len(predictions) != len(golds):
        raise LmlabError(f"squad_scores: {len(predictions)} predictions for {len(golds)} questions; "
                         "give a list of answers and, for each question, a list of gold answers")
    if not golds:
        raise LmlabError("squad_scores: no questions to score")
    exact = f1 = 0.0
    for number, (prediction, answers) in enumerate(zip(predictions, golds, strict=True)):
        if isinstance(answers, str) or not answers:
            raise LmlabError(f"squad_scores: question {number} needs a non-empty list of gold answers")
        exact += max(exact_match(prediction, gold) for gold in answers)
        f1 += max(token_f1(prediction, gold, unit) for gold in answers)
    return QAScore(100.0 * exact / len(golds), 100.0 * f1 / len(golds), len(golds))
