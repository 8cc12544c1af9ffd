"""The two standard evaluations of word vectors: analogy accuracy and correlation with human similarity.

Both fold case by default and search only the most frequent words, as word2vec's compute-accuracy
and gensim's evaluations do, so their figures compare with theirs.

Small English and Chinese sets written for lmlab ship in ``sets/`` (its README.md says how they were
made): `evaluation_set("analogies", "en")` is the path of one, and any other name is taken as a file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from lmlab.errors import LmlabError
from lmlab.files import read_text
from lmlab.models.word2vec.vectors import WordVectors

SetKind = Literal["analogies", "pairs"]
BUNDLED_SETS: dict[str, dict[str, str]] = {
    "analogies": {"en": "analogies-en.txt", "zh": "analogies-zh.txt"},
    "pairs": {"en": "similarity-en.tsv", "zh": "similarity-zh.tsv"},
}
_LANGUAGE_OF_WORDS = {"en": re.compile(r"[A-Za-z]"), "zh": re.compile(r"[\u3400-\u9fff]")}


def evaluation_set(kind: SetKind, name_or_path: str | os.PathLike[str]) -> Path:
    """The bundled set `name_or_path` names (``en``, ``zh``) for `kind`, or else the path itself."""
    name = str(name_or_path)
    if name in BUNDLED_SETS[kind]:
        return Path(str(resources.files(__package__) / "sets" / BUNDLED_SETS[kind][name]))
    return Path(name)


def set_label(kind: SetKind, name_or_path: str | os.PathLike[str]) -> str:
    """How a message names a set: a bundled one by kind and short name, a file as the user wrote it."""
    name = str(name_or_path)
    if name in BUNDLED_SETS[kind]:
        return f"the bundled {'analogy' if kind == 'analogies' else 'word-pair'} set {name}"
    return name


def bundled_languages(vectors: WordVectors, sample: int = 1000) -> list[str]:
    """The bundled sets' languages the vocabulary holds words of (among its `sample` most frequent)."""
    words = vectors.words[:sample]
    return [language for language, letters in _LANGUAGE_OF_WORDS.items() if any(letters.search(w) for w in words)]


def _folded_vocabulary(vectors: WordVectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Each word of the `restrict_vocab` most frequent, folded to upper case, to its most frequent spelling."""
    vocabulary: dict[str, int] = {}
    for i, word in enumerate(vectors.words[:restrict_vocab]):
        vocabulary.setdefault(word.upper() if case_insensitive else word, i)
    return vocabulary


@dataclass
class AnalogyResult:
    accuracy: float  # correct / answered, over all sections
    sections: dict[str, tuple[int, int]]  # section -> (correct, answered)
    skipped: int  # questions with a word outside the vocabulary


def evaluate_analogies(
    vectors: WordVectors, path: str | os.PathLike[str], restrict_vocab: int = 300_000, case_insensitive: bool = True,
) -> AnalogyResult:
    """Accuracy on "a b c d" questions (a is to b as c is to d) in sections opened by ": name" lines.

    The answer is the word nearest b - a + c (3CosAdd) among the `restrict_vocab` most frequent words,
    leaving out a, b, c in any spelling; a question with a word outside them is skipped, as word2vec's
    compute-accuracy and gensim's evaluate_word_analogies do.
    """
    vocabulary = _folded_vocabulary(vectors, restrict_vocab, case_insensitive)
    questions: dict[str, list[list[int]]] = {}
    section, skipped = None, 0
    for number, line in enumerate(read_text(path, "analogy file").splitlines(), 1):
        if line.startswith(": "):
            section = line[2:].strip()
            questions.setdefault(section, [])
            continue
        fields = (line.upper() if case_insensitive else line).split()
        if len(fields) != 4:
            continue
        if section is None:
            raise LmlabError(f"{path}:{number}: a question before the first ': section' line")
        if not all(word in vocabulary for word in fields):
            skipped += 1
            continue
        questions[section].append([vocabulary[word] for word in fields])
    unit = vectors.unit[:restrict_vocab]
    # Words that are another spelling of a more frequent word ("Paris" after "paris") are few: their
    # columns and the spelling they stand for, to leave out every spelling of a question's words.
    spelling = np.array([vocabulary[w.upper() if case_insensitive else w] for w in vectors.words[:restrict_vocab]])
    variants = np.flatnonzero(spelling != np.arange(len(spelling)))
    rows = max(1, 2**24 // len(unit))  # a block of scores stays near 64 MB whatever the vocabulary
    sections = {}
    for name, listed in questions.items():
        ids = np.array(listed, dtype=np.int64).reshape(-1, 4)
        correct = 0
        for block in range(0, len(ids), rows):
            a, b, c, expected = ids[block:block + rows].T
            query = unit[b] - unit[a] + unit[c]
            scores = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ unit.T
            at = np.arange(len(a))
            for given in (a, b, c):
                scores[at, given] = -np.inf
                hit, column = np.nonzero(spelling[variants][None, :] == given[:, None])
                scores[hit, variants[column]] = -np.inf
            correct += int((spelling[scores.argmax(1)] == expected).sum())  # any spelling of the answer counts
        sections[name] = (correct, len(ids))
    answered = sum(n for _, n in sections.values())
    accuracy = sum(c for c, _ in sections.values()) / answered if answered else 0.0
    return AnalogyResult(accuracy, sections, skipped)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks, tied values sharing their mean rank."""
    return _pearson(_ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64)))


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.diff(ordered, prepend=np.nan) != 0)  # where each run of equal values starts
    ends = np.append(starts[1:], len(values))
    mean_rank = (starts + ends + 1) / 2.0  # ranks counted from 1
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float((x @ y) / math.sqrt((x @ x) * (y @ y)))


@dataclass
class PairResult:
    spearman: float
    pearson: float
    pairs: int  # pairs with both words in the vocabulary
    skipped: int


def evaluate_word_pairs(
    vectors: WordVectors, path: str | os.PathLike[str], restrict_vocab: int = 300_000, case_insensitive: bool = True,
    delimiter: str = "\t", label: str | None = None,
) -> PairResult:
    """How well cosine similarity ranks word pairs as people did: "word1<tab>word2<tab>score" lines, # comments.

    `label` is how an error names the set (by default its path).
    """
    vocabulary = _folded_vocabulary(vectors, restrict_vocab, case_insensitive)
    human, model, skipped = [], [], 0
    for line in read_text(path, "word-pair file").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = (line.upper() if case_insensitive else line).split(delimiter)
        try:
            a, b, score = fields[0], fields[1], float(fields[2])
        except (IndexError, ValueError):
            continue  # not a pair line: a header or a note
        if len(fields) != 3:
            continue
        if a not in vocabulary or b not in vocabulary:
            skipped += 1
            continue
        human.append(score)
        model.append(float(vectors.unit[vocabulary[a]] @ vectors.unit[vocabulary[b]]))
    if len(human) < 2:
        raise LmlabError(f"{label or path}: fewer than two pairs have both words in the vocabulary")
    return PairResult(spearman(human, model), _pearson(np.array(human), np.array(model)), len(human), skipped)
