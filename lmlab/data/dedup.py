"""Removing duplicate documents: exact copies by hashing, near copies by MinHash LSH.

Web-scale corpora repeat themselves (mirrored pages, boilerplate, reposts), and a model trained on
repeats memorises them and wastes compute. Two passes catch them while streaming:

Exact duplicates. Each document's 64-bit BLAKE2b digest goes into a table; a digest seen before marks
a copy. Two different documents share a digest with probability ~n²/2⁶⁵ (about 3 in a million for
ten million documents).

Near duplicates. Two documents are alike when their sets of character n-grams ("shingles", n=5 by
default, taken after lower-casing and single-spacing) overlap: the Jaccard similarity |A ∩ B| / |A ∪ B|.
Character shingles need no word segmentation, so Chinese works as well as English. Comparing every pair is O(n²), so:

    text ──> shingles ──> MinHash signature ──> LSH bands ──> candidates ──> confirm
             {"the q",    num_perm minima of     b bands of r    earlier docs   estimated
              "he qu"…}   random hash functions  rows each       sharing a band Jaccard >= threshold

MinHash: for a random hash function h, P[min h(A) = min h(B)] = Jaccard(A, B), so the share of
equal entries in two signatures of `num_perm` minima estimates the Jaccard similarity.
LSH: the signature is cut into b bands of r rows; two documents become candidates when all rows of
any band agree, which happens with probability 1 - (1 - s^r)^b for similarity s: an S-curve that
`optimal_bands` places at the threshold. A candidate is confirmed when the estimated Jaccard of the
two signatures reaches the threshold, so "near duplicate" means exactly "estimated Jaccard >=
threshold with an earlier kept document", found for all but a small share of such pairs.

Memory per kept document, so that a corpus ten times larger needs only a few megabytes more:

    signature      num_perm / 2 bytes (64)   the low 4 bits of each minimum (see `_CompactSignatures`)
    band keys      12 bytes x bands (9)      a 64-bit key and a 32-bit document number per band
    exact digest   12 bytes                  a 64-bit digest and its 32-bit sighting number
                   ~190 bytes in all         (Python sets and dicts of ints would take ~1.4 KB)

Keys live in a `_KeyTable` (sorted numpy arrays searched by bisection, plus a small dict of recent
inserts) and signatures in blocks of fixed size, so the index never copies itself whole as it grows,
and both in memory mapped from the operating system (`_os_array`), away from the heap's churn.
The band table keeps only the first document that produced a key, which keeps it small.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import mmap

import numpy as np

from lmlab.errors import LmlabError

_POLY_BASE = np.uint64(0x100000001B3)  # the FNV prime: an odd multiplier that spreads code points
_NO_SHINGLE = np.uint32(0xFFFFFFFF)  # the minimum over no shingles: the largest 32-bit value
# Shingles x permutations hashed at once: temporaries of 512 KiB, so that a long document needs
# little memory, and large blocks that come and go do not fragment the heap around the index.
_MAX_BLOCK_ENTRIES = 1 << 16
_KEY_PARTITIONS, _PARTITION_SHIFT = 16, 60  # key tables are split by their top 4 bits
_SIGNATURE_BITS = 4  # bits kept of each minimum of a stored signature
_SIGNATURE_BLOCK_ROWS = 4096  # stored signatures are kept in blocks of this many


def _os_array(shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """An uninitialised array in memory mapped straight from the operating system, not malloc's heap.

    The pipeline allocates and frees many short-lived strings and lists on the heap. The index's
    arrays, long-lived and replaced by larger ones as they grow, would leave holes among those that
    the heap cannot give back, and peak memory would grow about twice as fast as the index; mapped
    memory goes back to the operating system as soon as its array is freed.
    """
    size = math.prod(shape)
    memory = mmap.mmap(-1, max(1, size * np.dtype(dtype).itemsize))  # anonymous; mmap refuses 0 bytes
    return np.frombuffer(memory, dtype=dtype, count=size).reshape(shape)


def _inserted(array: np.ndarray, positions: np.ndarray, items: np.ndarray) -> np.ndarray:
    """`np.insert(array, positions, items)` for sorted `positions`, into a new `_os_array`."""
    result = _os_array((array.size + items.size,), array.dtype.type)
    item_slots = positions + np.arange(items.size)  # each earlier item shifts the later ones by one
    is_old = np.ones(result.size, dtype=bool)
    is_old[item_slots] = False
    result[item_slots] = items
    result[is_old] = array
    return result


class _KeyTable:
    """A map from 64-bit keys to int32 values that keeps each key's first value, in ~12 bytes a key.

    Most keys sit in numpy arrays sorted by key and found by bisection; the latest inserts wait in a
    dict, because inserting into a sorted array one key at a time would move the whole array. When
    the dict holds a sixteenth as many keys as the arrays (at least 4096) it is merged into them: a
    merge moves every key once and the next comes 1/16 more inserts later, so a key is moved ~16
    times in all however large the table grows, and the dict (~70 bytes a key) stays a small share.
    The sorted keys are split by their top 4 bits into 16 pairs of arrays, so a merge never holds two
    copies of the whole table, only of one sixteenth.
    """

    def __init__(self) -> None:
        self._keys = [np.empty(0, dtype=np.uint64)] * _KEY_PARTITIONS
        self._values = [np.empty(0, dtype=np.int32)] * _KEY_PARTITIONS
        self._merged = 0
        self._recent: dict[int, int] = {}

    def get(self, keys: list[int]) -> list[int]:
        """The value stored for each of `keys`, -1 where a key is absent."""
        found = []
        for key in keys:
            value = self._recent.get(key, -1)
            if value < 0:
                part = key >> _PARTITION_SHIFT
                sorted_keys = self._keys[part]
                at = sorted_keys.searchsorted(key)
                if at < sorted_keys.size and sorted_keys[at] == key:
                    value = int(self._values[part][at])
            found.append(value)
        return found

    def add(self, keys: list[int], value: int) -> None:
        """Store `value` for `keys`, which `get` just reported absent."""
        self._recent.update(dict.fromkeys(keys, value))
        if len(self._recent) >= max(4096, self._merged // 16):
            self._merge()

    def _merge(self) -> None:
        keys = np.fromiter(self._recent.keys(), dtype=np.uint64, count=len(self._recent))
        values = np.fromiter(self._recent.values(), dtype=np.int32, count=len(self._recent))
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        partition_starts = np.searchsorted(keys, np.arange(_KEY_PARTITIONS, dtype=np.uint64) << _PARTITION_SHIFT)
        for part, (start, stop) in enumerate(itertools.pairwise([*partition_starts.tolist(), keys.size])):
            if start < stop:
                at = self._keys[part].searchsorted(keys[start:stop])  # no key is in both, so no ties
                self._keys[part] = _inserted(self._keys[part], at, keys[start:stop])
                self._values[part] = _inserted(self._values[part], at, values[start:stop])
        self._merged += keys.size
        self._recent.clear()

    def __len__(self) -> int:
        return self._merged + len(self._recent)


class ExactDeduplicator:
    """Remembers a 64-bit digest of every document it has seen."""

    def __init__(self) -> None:
        self._seen = _KeyTable()

    def is_duplicate(self, text: str) -> bool:
        """True if `text` was seen before; otherwise remember it and return False."""
        digest = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
        if self._seen.get([digest])[0] >= 0:
            return True
        self._seen.add([digest], len(self._seen))
        return False

    def __len__(self) -> int:
        return len(self._seen)


def normalize_for_shingles(text: str) -> str:
    """Lower-case and single-space the text, so casing and layout do not count as differences."""
    return " ".join(text.lower().split())


def shingles(text: str, size: int = 5) -> set[str]:
    """The set of character n-grams of the normalized text (the whole text if shorter than `size`)."""
    text = normalize_for_shingles(text)
    if len(text) <= size:
        return {text} if text else set()
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def jaccard(a: str, b: str, shingle_size: int = 5) -> float:
    """The exact Jaccard similarity of two texts' shingle sets (1.0 for two empty texts)."""
    set_a, set_b = shingles(a, shingle_size), shingles(b, shingle_size)
    union = len(set_a | set_b)
    return len(set_a & set_b) / union if union else 1.0


def estimate_jaccard(signature_a: np.ndarray, signature_b: np.ndarray) -> float:
    """The MinHash estimate of Jaccard similarity: the share of positions where the minima agree."""
    return float(np.mean(signature_a == signature_b))


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit flips about half the output bits (uint64, wrapping)."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def shingle_hashes(text: str, size: int = 5) -> np.ndarray:
    """64-bit hashes of the distinct shingles of `text` (the same set as `shingles`), vectorized."""
    codes = np.frombuffer(normalize_for_shingles(text).encode("utf-32-le"), dtype=np.uint32)
    if codes.size == 0:
        return np.empty(0, dtype=np.uint64)
    size = min(size, codes.size)
    count = codes.size - size + 1
    # A polynomial hash of each window, built one column at a time over all windows at once.
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(size):
        hashes = hashes * _POLY_BASE + codes[offset : offset + count].astype(np.uint64)
    return np.unique(_mix64(hashes))


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Choose (bands, rows), bands * rows <= num_perm, for an S-curve that switches at `threshold`.

    Minimizes the sum of the false-positive area (probability of becoming candidates, integrated
    over similarities below the threshold) and the false-negative area (probability of being missed,
    integrated above it), each weighted 0.5, as datasketch's MinHashLSH does.
    """
    below = np.linspace(0.0, threshold, 201)
    above = np.linspace(threshold, 1.0, 201)
    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = np.trapezoid(1 - (1 - below**rows) ** bands, below)
            false_negative = np.trapezoid((1 - above**rows) ** bands, above)
            error = 0.5 * false_positive + 0.5 * false_negative
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


class _CompactSignatures:
    """The kept documents' MinHash signatures, `_SIGNATURE_BITS` low bits of each minimum ("b-bit MinHash").

    Keeping b bits of each minimum makes two signatures agree by chance too, 1 time in 2^b where the
    full minima differ: P[agree] = J + (1 - J) / 2^b, which `estimate_jaccard` below solves for J.
    With b = 4 that costs little accuracy (at J = 0.8 and 128 minima the standard error grows from
    0.035 to 0.037) for an eighth of the memory. The bits are packed into blocks holding a fixed
    number of signatures, so storing one never moves the others.
    """

    def __init__(self, num_perm: int) -> None:
        self._num_perm = num_perm
        self._row_bytes = (num_perm * _SIGNATURE_BITS + 7) // 8
        self._blocks: list[np.ndarray] = []
        self._count = 0

    def _pack(self, signature: np.ndarray) -> np.ndarray:
        low_bits = (signature[:, None] >> np.arange(_SIGNATURE_BITS, dtype=np.uint32)) & 1  # (num_perm, bits)
        return np.packbits(low_bits.astype(np.uint8))

    def append(self, signature: np.ndarray) -> None:
        """Keep the low bits of `signature` (uint32 minima) as the next stored signature."""
        if self._count % _SIGNATURE_BLOCK_ROWS == 0:
            self._blocks.append(_os_array((_SIGNATURE_BLOCK_ROWS, self._row_bytes), np.uint8))
        self._blocks[-1][self._count % _SIGNATURE_BLOCK_ROWS] = self._pack(signature)
        self._count += 1

    def estimate_jaccard(self, index: int, signature: np.ndarray) -> float:
        """The Jaccard similarity of stored signature `index` and `signature`, estimated from their low bits."""
        stored = self._blocks[index // _SIGNATURE_BLOCK_ROWS][index % _SIGNATURE_BLOCK_ROWS]
        differing_bits = np.unpackbits(stored ^ self._pack(signature), count=self._num_perm * _SIGNATURE_BITS)
        agree = 1.0 - float(np.mean(differing_bits.reshape(self._num_perm, _SIGNATURE_BITS).any(axis=1)))
        chance = 2.0**-_SIGNATURE_BITS
        return max(0.0, (agree - chance) / (1.0 - chance))

    def __len__(self) -> int:
        return self._count


class MinHashDeduplicator:
    """Flags documents whose estimated shingle Jaccard with an earlier kept document is >= threshold."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 5, seed: int = 0) -> None:
        if not 0.0 < threshold <= 1.0:
            raise LmlabError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        if num_perm < 1:
            raise LmlabError(f"num_perm must be at least 1, got {num_perm}")
        if shingle_size < 1:
            raise LmlabError(f"shingle_size must be at least 1, got {shingle_size}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.bands, self.rows = optimal_bands(threshold, num_perm)
        rng = np.random.default_rng(seed)
        # h_i(x) = top 32 bits of (a_i * x + b_i) mod 2^64, with odd a_i: multiply-shift hashing, one
        # cheap random hash function per permutation, applied to already well-mixed shingle hashes.
        self._mult = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._add = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2)
        # A band's key is sum_j w_j * row_j mod 2^64 with random odd weights w drawn anew for each band
        # (multilinear hashing): two different row tuples, in one band or in two, get the same key
        # with probability ~2^-63, so one table serves all bands.
        band_shape = (self.bands, self.rows)
        self._band_weights = rng.integers(0, 1 << 63, size=band_shape, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._band_table = _KeyTable()
        self._signatures = _CompactSignatures(num_perm)

    def signature(self, text: str) -> np.ndarray:
        """The MinHash signature of `text`: `num_perm` uint32 minima, one per hash function."""
        hashes = shingle_hashes(text, self.shingle_size)
        minima = np.full(self.num_perm, _NO_SHINGLE, dtype=np.uint32)
        block = max(1, _MAX_BLOCK_ENTRIES // self.num_perm)
        for start in range(0, hashes.size, block):
            chunk = hashes[start : start + block, None]  # (k, 1) against (num_perm,) -> (k, num_perm)
            values = ((chunk * self._mult + self._add) >> np.uint64(32)).astype(np.uint32)
            np.minimum(minima, values.min(axis=0), out=minima)
        return minima

    def _band_keys(self, signature: np.ndarray) -> np.ndarray:
        rows = signature[: self.bands * self.rows].reshape(self.bands, self.rows).astype(np.uint64)
        return (rows * self._band_weights).sum(axis=1, dtype=np.uint64)

    def is_duplicate(self, text: str) -> bool:
        """True if `text` nearly duplicates an earlier kept document; otherwise keep it and return False."""
        signature = self.signature(text)
        keys = self._band_keys(signature).tolist()
        earlier = self._band_table.get(keys)  # per band, the first kept document with that band, or -1
        candidates = {index for index in earlier if index >= 0}
        if any(self._signatures.estimate_jaccard(index, signature) >= self.threshold for index in candidates):
            return True
        new_keys = [key for key, index in zip(keys, earlier, strict=True) if index < 0]
        self._band_table.add(new_keys, len(self._signatures))
        self._signatures.append(signature)
        return False

    def __len__(self) -> int:
        return len(self._signatures)
