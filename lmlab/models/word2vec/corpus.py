"""A corpus read once into memory as word ids, and the splitting of raw text into sentences of words.

Words are numbered by descending count, so row i of every matrix is the i-th most frequent word and
"the most frequent n words" is a slice.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lmlab.errors import LmlabError


@dataclass
class Corpus:
    """A corpus as word ids: sentence s is ``ids[bounds[s]:bounds[s+1]]``, words by descending count."""

    words: list[str]
    counts: np.ndarray  # (V,) int64
    ids: np.ndarray  # (N,) int32, words below min_count removed
    bounds: np.ndarray  # (S+1,) int64


def read_corpus(sentences: Iterable[Sequence[str]], min_count: int, max_sentence: int) -> Corpus:
    """Read `sentences` once: count, keep words seen `min_count` times, number them by descending count.

    A sentence longer than `max_sentence` kept words is cut into pieces, as no window crosses a cut.
    """
    index: dict[str, int] = {}
    flat = array("i")
    lengths = array("q")
    for number, sentence in enumerate(sentences):
        if isinstance(sentence, str):
            raise LmlabError(f"sentence {number}: is a string; word2vec needs lists of words, e.g. line.split()")
        flat.extend([index.setdefault(word, len(index)) for word in sentence])
        lengths.append(len(sentence))
    first_seen = np.frombuffer(flat, dtype=np.int32) if flat else np.zeros(0, np.int32)
    counts = np.bincount(first_seen, minlength=len(index))
    # Ties in count keep the order of first appearance, so the numbering is a function of the text.
    by_count = [i for i in np.lexsort((np.arange(len(counts)), -counts)) if counts[i] >= min_count]
    if not by_count:
        raise LmlabError(f"word2vec: no word occurs min_count={min_count} times in {len(first_seen)} words of text")
    renumber = np.full(len(counts), -1, dtype=np.int64)
    renumber[by_count] = np.arange(len(by_count))
    ids = renumber[first_seen]
    sentence_of = np.repeat(np.arange(len(lengths)), np.frombuffer(lengths, dtype=np.int64))
    known = ids >= 0
    ids, sentence_of = ids[known], sentence_of[known]
    position = np.arange(len(ids)) - np.searchsorted(sentence_of, sentence_of)  # place within its sentence
    piece = sentence_of * (len(ids) // max_sentence + 1) + position // max_sentence
    starts = np.flatnonzero(np.diff(piece, prepend=-1))
    words = list(index)
    return Corpus(
        words=[words[i] for i in by_count],
        counts=counts[by_count].astype(np.int64),
        ids=ids.astype(np.int32),
        bounds=np.append(starts, len(ids)).astype(np.int64),
    )


_WORD = re.compile(r"\w+(?:['’]\w+)*")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def text_sentences(texts: Iterable[str], unit: Literal["word", "character"] = "word",
                   lowercase: bool = True) -> Iterator[list[str]]:
    """Each non-empty line of `texts` as a sentence of units: words (letters, digits, inner apostrophes;
    Chinese characters count as words, having no spaces between them) or every non-space character."""
    for text in texts:
        for line in text.splitlines():
            line = line.lower() if lowercase else line
            if unit == "character":
                units = [char for char in line if not char.isspace()]
            else:
                units = [piece for word in _WORD.findall(line) for piece in
                         (_CJK.findall(word) if _CJK.search(word) else [word])]
            if units:
                yield units
