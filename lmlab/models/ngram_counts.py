"""Counting n-grams into sorted NumPy arrays: the storage under every model in `lmlab.models.ngram`.

An n-gram of order k is the pair (index of its first k-1 words among the (k-1)-grams, last word),
packed into one integer key ``prefix * |V| + word``; the keys of each order are sorted, so looking up
a million n-grams is one ``np.searchsorted``, and an n-gram's context is ``key // |V|``:

    order 1   keys = 0 1 2 ... |V|-1                   (dense: the key is the word id)
    order 2   keys = sorted{ id(w1) * |V| + w2 }       prefix = key // |V| indexes order 1
    order 3   keys = sorted{ id(w1 w2) * |V| + w3 }    prefix indexes order 2, and so on

Word ids 0, 1, 2 are always ``<unk>``, ``<s>``, ``</s>``. Scoring, which looks up every n-gram of
the text at once, goes faster still through `KeyIndex`, a hash table built and probed with NumPy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


class _IdsOrUnk(dict):
    """Word -> id, answering <unk>'s id for any other word (without adding it, unlike a defaultdict)."""

    def __missing__(self, word: str) -> int:
        return UNK_ID


class Vocabulary:
    """Words <-> ids, with ``<unk>``, ``<s>``, ``</s>`` always first (ids 0, 1, 2)."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words: list[str] = [UNK, BOS, EOS]
        self.ids: dict[str, int] = {UNK: UNK_ID, BOS: BOS_ID, EOS: EOS_ID}
        self._encoder: _IdsOrUnk | None = None
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        if word not in self.ids:
            self.ids[word] = len(self.words)
            self.words.append(word)
            self._encoder = None
        return self.ids[word]

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: Iterable[str]) -> list[int]:
        return [self.ids.get(word, UNK_ID) for word in words]

    def encode_all(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Every sentence's ids back to back (<unk> for an unknown word) and each sentence's length.

        The words are looked up by `map` over a dict whose misses answer <unk>, so no Python code runs
        per word.
        """
        if self._encoder is None:
            self._encoder = _IdsOrUnk(self.ids)
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
        ids = map(self._encoder.__getitem__, chain.from_iterable(sentences))
        return np.fromiter(ids, dtype=np.int64, count=int(lengths.sum())), lengths


def pad(ids: Sequence[int], order: int, padding: str) -> list[int]:
    """``<s> w1 .. wm </s>`` (KenLM) or n-1 ``<s>`` and n-1 ``</s>`` around the words (NLTK)."""
    pads = 1 if padding == "kenlm" else max(order - 1, 1)
    return [BOS_ID] * pads + list(ids) + [EOS_ID] * pads


def concatenate(sentences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """All sentences in one id array, and for every position the index where its sentence starts."""
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    stream = np.fromiter(chain.from_iterable(sentences), dtype=np.int64, count=int(lengths.sum()))
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return stream, starts


def padded_stream(sentences: Sequence[Sequence[int]], order: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """`concatenate` of the `pad`-ded sentences, with the pads written by NumPy rather than per sentence."""
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    words = np.fromiter(chain.from_iterable(sentences), dtype=np.int64, count=int(lengths.sum()))
    return pad_words(words, lengths, order, padding)


def pad_words(words: np.ndarray, lengths: np.ndarray, order: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """`padded_stream` of sentences given as all their word ids back to back and the length of each."""
    pads = 1 if padding == "kenlm" else max(order - 1, 1)
    lengths = lengths + 2 * pads
    ends = np.cumsum(lengths)
    begins = ends - lengths
    stream = np.empty(len(words) + 2 * pads * len(lengths), dtype=np.int64)
    is_word = np.ones(len(stream), dtype=bool)
    for j in range(pads):
        stream[begins + j], stream[ends - 1 - j] = BOS_ID, EOS_ID
        is_word[begins + j] = is_word[ends - 1 - j] = False
    stream[is_word] = words
    return stream, np.repeat(begins, lengths)


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


class KeyIndex:
    """A hash table over one order's sorted keys: ``find`` answers what `lookup` does, several times faster.

    Binary search reads about log2(n) scattered places per key; this table, at most half full, reads
    one or two. It is open addressing with linear probing: a key's home slot is the top bits of
    key * 2^64/phi (Fibonacci hashing), and it sits in the first free slot from there on. Placing the
    keys in order of home slot makes that a running maximum instead of a loop:
    slot_i = i + max over j <= i of (home_j - j). Slots run past the end instead of wrapping around.
    """

    def __init__(self, keys: np.ndarray) -> None:
        self.bits = max(1, (2 * len(keys)).bit_length())  # 2^bits slots > 2n: at most half full
        home = self._home(keys)
        placed = np.argsort(home, kind="stable")
        rank = np.arange(len(keys))
        slot = np.maximum.accumulate(home[placed] - rank) + rank if len(keys) else rank
        # an empty slot past every home slot and every key ends every probe
        size = max(int(slot[-1]) + 2 if len(keys) else 0, 2**self.bits + 1)
        self.slot_key = np.full(size, -1, dtype=np.int64)  # keys are >= 0: -1 marks an empty slot
        self.slot_key[slot] = keys[placed]
        self.slot_index = np.full(size, -1, dtype=np.int32 if len(keys) < 2**31 else np.int64)
        self.slot_index[slot] = placed

    def _home(self, keys: np.ndarray) -> np.ndarray:
        spread = np.asarray(keys, dtype=np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # wraps mod 2^64
        spread >>= np.uint64(64 - self.bits)
        return spread.view(np.int64)

    def find(self, wanted: np.ndarray) -> np.ndarray:
        """Index of each wanted key in `keys`, or -1 where it is absent."""
        slot = self._home(wanted)
        key = self.slot_key[slot]
        hit = key == wanted
        pending = np.flatnonzero(~hit & (key >= 0))  # the home slot holds another key: look further on
        probe = slot[pending] + 1
        while len(pending):
            key = self.slot_key[probe]
            now = key == wanted[pending]
            slot[pending[now]], hit[pending[now]] = probe[now], True
            onward = ~now & (key >= 0)
            pending, probe = pending[onward], probe[onward] + 1
        found = self.slot_index[slot].astype(np.int64)
        found[~hit] = -1
        return found


def window_ids(
    stream: np.ndarray, starts: np.ndarray, keys: list[np.ndarray], vocab_size: int,
    index: Sequence[KeyIndex] | None = None,
) -> list[np.ndarray]:
    """For each order k, the index of the stored k-gram ending at every position (-1: none).

    `index`, one `KeyIndex` per order from 2 up, finds the keys faster than binary search.
    """
    ids = [stream.copy()]  # unigrams are dense: a word's index is its id
    for k in range(2, len(keys) + 1):
        inside, packed = _extend(ids[-1], stream, starts, k, vocab_size)
        found = np.full(len(stream), -1, dtype=np.int64)
        found[inside] = index[k - 2].find(packed) if index else lookup(keys[k - 1], packed)
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
    stream, starts = padded_stream(sentences, order, padding)
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
