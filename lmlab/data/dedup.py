"""Removing duplicate documents: exact copies by hashing, near copies by MinHash LSH.

Web-scale corpora repeat themselves (mirrored pages, boilerplate, reposts), and a model trained on
repeats memorises them and wastes compute. Two passes catch them while streaming:

Exact duplicates. Each document's 64-bit BLAKE2b digest goes into a set; a digest seen before marks
a copy. Eight bytes a document; two different documents share a digest with probability ~n²/2⁶⁵
(about 3 in a million for ten million documents).

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

Memory per kept document: its signature (num_perm 32-bit integers) and one table entry per band.
Each band table remembers the first document that produced a key, which keeps the tables small.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from lmlab.errors import LmlabError

_POLY_BASE = np.uint64(0x100000001B3)  # the FNV prime: an odd multiplier that spreads code points
_NO_SHINGLE = np.uint32(0xFFFFFFFF)  # the minimum over no shingles: the largest 32-bit value
_MAX_BLOCK_ENTRIES = 1 << 20  # shingles x permutations hashed at once, bounding memory for long documents


class ExactDeduplicator:
    """Remembers a 64-bit digest of every document it has seen."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def is_duplicate(self, text: str) -> bool:
        """True if `text` was seen before; otherwise remember it and return False."""
        digest = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
        if digest in self._seen:
            return True
        self._seen.add(digest)
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
        self._band_tables: list[dict[int, int]] = [{} for _ in range(self.bands)]
        self._signatures = np.empty((0, num_perm), dtype=np.uint32)
        self._kept = 0

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

    def _band_keys(self, signature: np.ndarray) -> list[int]:
        rows = signature[: self.bands * self.rows].reshape(self.bands, self.rows).astype(np.uint64)
        keys = np.zeros(self.bands, dtype=np.uint64)
        for column in rows.T:
            keys = _mix64(keys * _POLY_BASE + column)
        return keys.tolist()

    def is_duplicate(self, text: str) -> bool:
        """True if `text` nearly duplicates an earlier kept document; otherwise keep it and return False."""
        signature = self.signature(text)
        keys = self._band_keys(signature)
        candidates = {table[key] for table, key in zip(self._band_tables, keys, strict=True) if key in table}
        if any(estimate_jaccard(signature, self._signatures[c]) >= self.threshold for c in candidates):
            return True
        self._remember(signature, keys)
        return False

    def _remember(self, signature: np.ndarray, keys: list[int]) -> None:
        if self._kept == len(self._signatures):  # grow by doubling: amortized O(1) per document
            grown = np.empty((max(16, 2 * self._kept), self.num_perm), dtype=np.uint32)
            grown[: self._kept] = self._signatures[: self._kept]
            self._signatures = grown
        self._signatures[self._kept] = signature
        for table, key in zip(self._band_tables, keys, strict=True):
            table.setdefault(key, self._kept)
        self._kept += 1

    def __len__(self) -> int:
        return self._kept
