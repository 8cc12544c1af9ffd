"""Counting n-grams into sorted NumPy arrays: the storage under every model in `lmlab.models.ngram`.

An n-gram of order k is the pair (index of its first k-1 words among the (k-1)-grams, last word),
packed into one integer key ``prefix * |V| + word``; the keys of each order are sorted, so looking up
a million n-grams is one ``np.searchsorted``, and an n-gram's context is ``key // |V|``:

    order 1   keys = 0 1 2 ... |V|-1                   (dense: the key is the word id)
    order 2   keys = sorted{ id(w1) * |V| + w2 }       prefix = key // |V| indexes order 1
    order 3   keys = sorted{ id(w1 w2) * |V| + w3 }    prefix indexes order 2, and so on

Word ids 0, 1, 2 are always ``<unk>``, ``<s>``, ``</s>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


class Vocabulary:
    """Words <-> ids, with ``<unk>``, ``<s>``, ``</s>`` always first (ids 0, 1, 2)."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words: list[str] = [UNK, BOS, EOS]
        self.ids: dict[str, int] = {UNK: UNK_ID, BOS: BOS_ID, EOS: EOS_ID}
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        if word not in self.ids:
            self.ids[word] = len(self.words)
            self.words.append(word)
        return self.ids[word]

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: Iterable[str]) -> list[int]:
        return [self.ids.get(word, UNK_ID) for word in words]


def pad(ids: Sequence[int], order: int, padding: str) -> list[int]:
    """``<s> w1 .. wm </s>`` (KenLM) or n-1 ``<s>`` and n-1 ``</s>`` around the words (NLTK)."""
    pads = 1 if padding == "kenlm" else max(order - 1, 1)
    return [BOS_ID] * pads + list(ids) + [EOS_ID] * pads


def concatenate(sentences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """All sentences in one id array, and for every position the index where its sentence starts."""
    lengths = np.array([len(s) for s in sentences], dtype=np.int64)
    stream = np.fromiter((i for s in sentences for i in s), dtype=np.int64, count=int(lengths.sum()))
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return stream, starts


def lookup(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each wanted key in the sorted `keys`, or -1 where it is absent."""
    if len(keys) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    index = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[index] == wanted, index, -1)


def _extend(
    ids: np.ndarray, stream: np.ndarray, starts: np.ndarray, k: int, vocab_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where a k-gram ends inside its sentence, and its packed key there, from the (k-1)-gram indices `ids`.

    The k-gram ending at t is the (k-1)-gram ending at t-1 followed by stream[t]: key ``prefix * |V| + word``.
    """
    prefix = np.full(len(stream), -1, dtype=np.int64)
    prefix[1:] = ids[:-1]
    inside = (np.arange(len(stream)) - (k - 1) >= starts) & (prefix >= 0)
    return inside, prefix[inside] * vocab_size + stream[inside]


def window_ids(
    stream: np.ndarray, starts: np.ndarray, keys: list[np.ndarray], vocab_size: int
) -> list[np.ndarray]:
    """For each order k, the index of the stored k-gram ending at every position (-1: none)."""
    ids = [stream.copy()]  # unigrams are dense: a word's index is its id
    for k in range(2, len(keys) + 1):
        inside, packed = _extend(ids[-1], stream, starts, k, vocab_size)
        found = np.full(len(stream), -1, dtype=np.int64)
        found[inside] = lookup(keys[k - 1], packed)
        ids.append(found)
    return ids


@dataclass
class NgramCounts:
    """Every n-gram of orders 1..n in the training text, as sorted packed keys with their counts.

    ``keys[k-1][i] = prefix * vocab_size + word``: n-gram i of order k is (k-1)-gram `prefix` then
    `word`; ``suffix[k-1][i]`` is the index of its last k-1 words among the (k-1)-grams. Unigrams are
    dense (``keys[0] = arange(vocab_size)``), so words never seen still have an entry, with count 0.
    """

    vocab_size: int
    keys: list[np.ndarray]
    counts: list[np.ndarray]
    suffix: list[np.ndarray]
    first_word: list[np.ndarray]

    @property
    def order(self) -> int:
        return len(self.keys)

    def prefix(self, k: int) -> np.ndarray:
        """Index of each k-gram's context among the (k-1)-grams (0, the empty context, for unigrams)."""
        return self.keys[k - 1] // self.vocab_size


def count_ngrams(sentences: Sequence[Sequence[int]], order: int, vocab_size: int, padding: str) -> NgramCounts:
    """Count every n-gram of orders 1..`order` in the padded `sentences` (lists of word ids)."""
    stream, starts = concatenate([pad(s, order, padding) for s in sentences])
    unigram_counts = np.bincount(stream, minlength=vocab_size).astype(np.int64)
    if padding == "kenlm":
        unigram_counts[BOS_ID] = 0  # <s> is context only: never predicted, so never counted as a word
    keys, counts = [np.arange(vocab_size, dtype=np.int64)], [unigram_counts]
    suffix, first_word = [np.zeros(vocab_size, dtype=np.int64)], [np.arange(vocab_size, dtype=np.int64)]
    ids = stream.copy()  # index of the k-gram ending at each position, order by order
    for k in range(2, order + 1):
        inside, packed = _extend(ids, stream, starts, k, vocab_size)
        order_keys, inverse, order_counts = np.unique(packed, return_inverse=True, return_counts=True)
        order_suffix = np.empty(len(order_keys), dtype=np.int64)
        order_suffix[inverse] = ids[inside]  # the (k-1)-gram ending at the same position
        keys.append(order_keys)
        counts.append(order_counts.astype(np.int64))
        suffix.append(order_suffix)
        first_word.append(first_word[-1][order_keys // vocab_size])
        ids = np.full(len(stream), -1, dtype=np.int64)
        ids[inside] = inverse
    return NgramCounts(vocab_size, keys, counts, suffix, first_word)


def predictable_size(vocab_size: int, padding: str) -> int:
    """|V|, the number of words a model predicts: KenLM's excludes <s>, which is only ever context."""
    return vocab_size - 1 if padding == "kenlm" else vocab_size
