"""Counting n-grams into sorted NumPy arrays: the storage under every model in `lmlab.models.ngram`.

An n-gram of order k is the pair (index of its first k-1 words among the (k-1)-grams, last word),
packed into one integer key ``prefix * |V| + word``; the keys of each order are sorted, so looking up
a million n-grams is one ``np.searchsorted``, and an n-gram's context is ``key // |V|``:

    order 1   keys = 0 1 2 ... |V|-1                   (dense: the key is the word id)
    order 2   keys = sorted{ id(w1) * |V| + w2 }       prefix = key // |V| indexes order 1
    order 3   keys = sorted{ id(w1 w2) * |V| + w3 }    prefix indexes order 2, and so on

Word ids 0, 1, 2 are always ``<unk>``, ``<s>``, ``</s>``. KenLM's query looks n-grams up faster
still, in `KeyIndex` hash tables. The loops that pad, count, hash and split text run compiled, in
`lmlab.models.ngram.kernels`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmlab.errors import LmlabError
from lmlab.models.ngram import kernels

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


class Vocabulary:
    """Words <-> ids, with ``<unk>``, ``<s>``, ``</s>`` always first (ids 0, 1, 2)."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words: list[str] = [UNK, BOS, EOS]
        self.ids: dict[str, int] = {UNK: UNK_ID, BOS: BOS_ID, EOS: EOS_ID}
        self._word_table: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        if word not in self.ids:
            self.ids[word] = len(self.words)
            self.words.append(word)
            self._word_table = None
        return self.ids[word]

    def add_all(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Add every new word of `sentences`, numbered in order of first appearance (as lmplz numbers them);
        return the ids of all their words back to back and each sentence's length.

        Arrow finds the distinct words and which of them the vocabulary knows (hash tables in C++), so
        Python touches only the new words, once each.
        """
        try:
            column = pa.array(sentences, pa.large_list(pa.large_string()))
            known = pa.array(self.words, pa.large_string())
        except (UnicodeEncodeError, pa.ArrowException) as exc:
            raise LmlabError(f"ngram: every word must be a string that UTF-8 can encode ({exc})") from None
        encoded = column.flatten().dictionary_encode()
        found = pc.index_in(encoded.dictionary, value_set=known)
        new = encoded.dictionary.filter(pc.is_null(found)).to_pylist()  # in order of first appearance
        to_id = pc.fill_null(found, -1).to_numpy().astype(np.int64)
        to_id[to_id < 0] = np.arange(len(self.words), len(self.words) + len(new))
        self._append(new)
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[:len(column) + 1]
        return to_id[encoded.indices.to_numpy()], np.diff(offsets)

    def add_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`add_all` of each text split at whitespace as ``str.split()`` splits it, without a Python string
        per word: a compiled loop cuts the texts' UTF-8 bytes and numbers the words (`kernels.add_words`);
        only the new words become Python strings, once each."""
        try:
            text, offsets = _utf8(texts)
            words, word_offsets = _utf8(self.words)
        except (UnicodeEncodeError, pa.ArrowException) as exc:
            raise LmlabError(f"ngram: every text must be a string that UTF-8 can encode ({exc})") from None
        ids, lengths, new_bytes, new_offsets = kernels.add_words(text, offsets, words, word_offsets)
        new = pa.LargeStringArray.from_buffers(len(new_offsets) - 1, pa.py_buffer(new_offsets),
                                               pa.py_buffer(new_bytes)).to_pylist()
        self._append(new)
        return ids, lengths

    def _append(self, new: list[str]) -> None:
        """Number the `new` words, none of them known yet, from ``len(self)`` on."""
        self.ids.update(zip(new, range(len(self.words), len(self.words) + len(new)), strict=True))
        self.words.extend(new)
        if new:
            self._word_table = None

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: Iterable[str]) -> list[int]:
        return [self.ids.get(word, UNK_ID) for word in words]

    def encode_all(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Every sentence's ids back to back (<unk> for an unknown word) and each sentence's length.

        The words are looked up by `map` over ``dict.get`` with <unk> as the default, so no Python code
        runs per word.
        """
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
        ids = map(self.ids.get, chain.from_iterable(sentences), repeat(UNK_ID))
        return np.fromiter(ids, dtype=np.int64, count=int(lengths.sum())), lengths

    def encode_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`encode_all` of each text split at whitespace, as ``str.split()`` splits it, without a Python
        string per word: a compiled loop cuts the texts' UTF-8 bytes and hashes each word's bytes.
        """
        try:
            text, offsets = _utf8(texts)
            if self._word_table is None:
                words, word_offsets = _utf8(self.words)
                bits = table_bits(len(self.words))
                self._word_table = words, word_offsets, kernels.word_table(words, word_offsets, bits), bits
        except UnicodeEncodeError:  # a lone surrogate, which UTF-8 cannot hold: let Python split and look up
            return self.encode_all([text.split() for text in texts])
        return kernels.split_words(text, offsets, *self._word_table)


def _utf8(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of all `strings` back to back, and where each begins (and the last ends)."""
    array = pa.array(strings, pa.large_string())
    _, offsets, data = array.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[:len(array) + 1]
    return (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)), ends


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


def pad_words(words: np.ndarray, lengths: np.ndarray, order: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """`concatenate` of the `pad`-ded sentences, given as all their word ids back to back and the length of each."""
    pads = 1 if padding == "kenlm" else max(order - 1, 1)
    return kernels.pad_words(np.asarray(words, dtype=np.int64), np.asarray(lengths, dtype=np.int64), pads)


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
    one or two. It is open addressing with linear probing (`kernels`): a key's home slot is the
    top bits of its 64-bit hash, by default the key times 2^64/phi (Fibonacci hashing), and it sits in
    the first free slot from there on, wrapping around. A slot is two int64: the key, and its index
    shifted up 32 bits with 32 bits of `payload` below, so a hit reads both from one place in memory.
    `slots` lets several tables live in one array (`OrderIndex`).
    """

    def __init__(
        self, keys: np.ndarray, slots: np.ndarray | None = None, hashes: np.ndarray | None = None,
        payload: np.ndarray | None = None,
    ) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) >= 2**31:
            raise LmlabError(f"ngram: {len(keys):,} n-grams of one order are more than a hash table here holds")
        self.bits = table_bits(len(keys))
        if slots is None:
            slots = np.full((2**self.bits, 2), -1, dtype=np.int64)  # keys are >= 0: -1 marks an empty slot
        hashes = self._spread(keys) if hashes is None else hashes
        payload = np.zeros(len(keys), dtype=np.uint32) if payload is None else payload
        kernels.fill_table(keys, hashes, payload, slots, self.bits)
        self.slots, self.slot_key = slots, slots[:, 0]

    @staticmethod
    def _spread(keys: np.ndarray) -> np.ndarray:
        return np.asarray(keys, dtype=np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # wraps mod 2^64

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return (self._spread(keys) >> np.uint64(64 - self.bits)).view(np.int64)

    def find(self, wanted: np.ndarray) -> np.ndarray:
        """Index of each wanted key in `keys`, or -1 where it is absent."""
        wanted = np.asarray(wanted, dtype=np.int64)
        return kernels.find_keys(self.slots, self.bits, wanted, self._spread(wanted))


def table_bits(size: int) -> int:
    """log2 of the slots of a `KeyIndex` over `size` keys: more than 2 * size, so at most half full."""
    return max(1, (2 * size).bit_length())


@dataclass
class OrderIndex:
    """A `KeyIndex` over the keys of every order from 2 up, in one array, as KenLM's compiled query takes
    them: order k's table is ``2^bits[k]`` rows of `slots` from row ``first_row[k]``. An n-gram's home
    slot comes from the hash of its words (`kernels.extend_hash`), which the query computes
    without a lookup, and its payload is its float32 log10 p."""

    slots: np.ndarray
    first_row: np.ndarray
    bits: np.ndarray

    @classmethod
    def build(cls, keys: Sequence[np.ndarray], log_prob: Sequence[np.ndarray]) -> OrderIndex:
        """The tables over ``keys[1:]`` (orders 2 and up; unigrams need none, a unigram's key is its id)."""
        vocab_size = len(keys[0])
        bits = np.array([0, 0, *(table_bits(len(order_keys)) for order_keys in keys[1:])], dtype=np.int64)
        bounds = np.cumsum([0, *(2**bits[2:])])
        slots = np.full((bounds[-1], 2), -1, dtype=np.int64)
        hashes = kernels.extend_hashes(np.zeros(vocab_size, dtype=np.uint64), keys[0])
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), start=2):
            hashes = kernels.extend_hashes(hashes[keys[k - 1] // vocab_size], keys[k - 1] % vocab_size)
            payload = np.asarray(log_prob[k - 1], dtype=np.float32).view(np.uint32)
            KeyIndex(keys[k - 1], slots[a:b], hashes, payload)
        return cls(slots, np.concatenate([[0, 0], bounds[:-1]]).astype(np.int64), bits)


def window_ids(stream: np.ndarray, starts: np.ndarray, keys: list[np.ndarray], vocab_size: int) -> list[np.ndarray]:
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
    _prefix: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def order(self) -> int:
        return len(self.keys)

    def prefix(self, k: int) -> np.ndarray:
        """Index of each k-gram's context among the (k-1)-grams (0, the empty context, for unigrams)."""
        if k not in self._prefix:  # every estimator asks for it several times
            self._prefix[k] = self.keys[k - 1] // self.vocab_size
        return self._prefix[k]


def count_ngrams(sentences: Sequence[Sequence[int]], order: int, vocab_size: int, padding: str) -> NgramCounts:
    """Count every n-gram of orders 1..`order` in the padded `sentences` (lists of word ids)."""
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    words = np.fromiter(chain.from_iterable(sentences), dtype=np.int64, count=int(lengths.sum()))
    return count_words(words, lengths, order, vocab_size, padding)


def count_words(words: np.ndarray, lengths: np.ndarray, order: int, vocab_size: int, padding: str) -> NgramCounts:
    """`count_ngrams` of sentences given as all their word ids back to back and the length of each."""
    stream, starts = pad_words(words, lengths, order, padding)
    unigram_counts = np.bincount(stream, minlength=vocab_size).astype(np.int64)
    if padding == "kenlm":
        unigram_counts[BOS_ID] = 0  # <s> is context only: never predicted, so never counted as a word
    keys, counts = [np.arange(vocab_size, dtype=np.int64)], [unigram_counts]
    suffix, first_word = [np.zeros(vocab_size, dtype=np.int64)], [np.arange(vocab_size, dtype=np.int64)]
    ids = stream  # index of the k-gram ending at each position, order by order
    for k in range(2, order + 1):
        order_keys, order_counts, order_suffix, ids = kernels.count_order(ids, stream, starts, k, len(keys[-1]),
                                                                          vocab_size)
        keys.append(order_keys)
        counts.append(order_counts)
        suffix.append(order_suffix)
        first_word.append(first_word[-1][order_keys // vocab_size])
    return NgramCounts(vocab_size, keys, counts, suffix, first_word)


def predictable_size(vocab_size: int, padding: str) -> int:
    """|V|, the number of words a model predicts: KenLM's excludes <s>, which is only ever context."""
    return vocab_size - 1 if padding == "kenlm" else vocab_size
