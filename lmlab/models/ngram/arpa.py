"""The ARPA format: the text file every n-gram toolkit (KenLM, SRILM, NLTK's readers) exchanges models in.

    \\data\\
    ngram 1=5                    how many n-grams of each order follow
    ngram 2=7

    \\1-grams:
    -1.2041  the  -0.30103       log10 p(w), the word, log10 back-off weight (when it is a context)
    ...
    \\2-grams:
    -0.4771  the cat             log10 p(cat | the); the top order has no back-off column
    ...
    \\end\\

Fields and words are separated by whitespace, so a word cannot hold any; log 0 is written -99.
This module turns a model's tables into such a file and back (`NgramModel.write_arpa`, `read_arpa`).
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_text
from lmlab.models.ngram.counts import BOS, EOS, Vocabulary, lookup


class ArpaTables(NamedTuple):
    """What an ARPA file holds, as `NgramModel` stores it: the words, each order's sorted n-gram keys, p and
    back-off of each n-gram, and the file's own float32 log10 numbers of both (`NgramModel.log10_tables`)."""

    vocab: Vocabulary
    keys: list[np.ndarray]
    prob: list[np.ndarray]
    backoff: list[np.ndarray]
    log10: tuple[list[np.ndarray], list[np.ndarray]]


def write_arpa(
    path: str | os.PathLike[str], words: list[str], keys: list[np.ndarray], log_prob: list[np.ndarray],
    log_backoff: list[np.ndarray],
) -> None:
    """Write an ARPA file with KenLM's conventions (float32 log10, p(<s>) = 1, 0 not -99): a model's
    n-gram `keys` per order over `words`, and its float32 log10 tables (`NgramModel.log10_tables`).

    A 5-gram model of a million words has millions of lines, so they are assembled column by
    column with Arrow's string kernels instead of one by one in Python.
    """
    for word in words:
        if not word or re.search(r"\s", word):
            raise LmlabError(f"{path}: the word {word!r} contains whitespace, which ARPA cannot hold")
    text = pa.large_string()
    tab, space, newline = (pa.scalar(mark, text) for mark in ("\t", " ", "\n"))
    names = pa.array(words, text)
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(("\n\\data\\\n" + "".join(f"ngram {k}={len(order_keys)}\n" for k, order_keys in enumerate(keys, 1))
                   ).encode())
        ngrams = names
        for k, order_keys in enumerate(keys, start=1):
            if k > 1:  # an n-gram's text is its prefix's text and its last word
                ngrams = pc.binary_join_element_wise(ngrams.take(order_keys // len(names)),
                                                     names.take(order_keys % len(names)), space)
            columns = [_arpa_floats(log_prob[k - 1]), ngrams]
            if k < len(keys):
                columns.append(_arpa_floats(log_backoff[k - 1], few_distinct=True))
            lines = pc.binary_join_element_wise(*columns, tab)
            every_line = pa.LargeListArray.from_arrays(pa.array([0, len(lines)], pa.int64()), lines)
            out.write(f"\n\\{k}-grams:\n".encode())
            out.write(_string_bytes(pc.binary_join(every_line, newline)))
            out.write(b"\n")
        out.write(b"\n\\end\\\n")


def read_arpa(path: str | os.PathLike[str]) -> ArpaTables:
    """Read an ARPA file (KenLM's or SRILM's); every defect names the file and line."""
    lines = read_text(path, "ARPA file").split("\n")
    marks = [(i, line.strip()) for i, line in enumerate(lines) if line.startswith(("\\", "ngram "))]
    sizes = [int(m.group(1)) for _, line in marks if (m := re.fullmatch(r"ngram \d+\s*=\s*(\d+)", line))]
    headers = [i for i, line in marks if re.fullmatch(r"\\\d+-grams:", line)]
    ends = [i for i, line in marks if line == "\\end\\"]
    if not headers or len(headers) != len(sizes) or not ends:
        raise LmlabError(f"{path}: not an ARPA file (needs \\data\\, one \\k-grams: per ngram count, \\end\\)")
    vocab = Vocabulary()
    keys: list[np.ndarray] = []
    prob: list[np.ndarray] = []
    backoff: list[np.ndarray] = []
    log_prob: list[np.ndarray] = []
    log_backoff: list[np.ndarray] = []
    for k, (first, last) in enumerate(zip(headers, [*headers[1:], ends[-1]], strict=True), start=1):
        numbers, rows = _arpa_rows(path, lines, first, last, k)
        if len(rows) != sizes[k - 1]:
            raise LmlabError(f"{path}:{first + 1}: \\data\\ promises {sizes[k - 1]} {k}-grams, found {len(rows)}")
        if k == 1:
            listed = [row[1] for row in rows]
            if len(set(listed)) != len(listed) or not {BOS, EOS} <= set(listed):
                raise LmlabError(f"{path}:{first + 1}: the 1-grams must list each word once, <s> and </s> too")
            for word in listed:
                vocab.add(word)
        flat = [vocab.ids.get(word, -1) for row in rows for word in row[1:k + 1]]
        words = np.array(flat, dtype=np.int64).reshape(len(rows), k)
        if (words < 0).any():
            row = int(np.argmax((words < 0).any(axis=1)))
            ngram = " ".join(rows[row][1:k + 1])
            raise LmlabError(f"{path}:{numbers[row]}: {ngram!r} has a word not in the 1-grams")
        index = words[:, 0]
        for j in range(1, k - 1):  # walk down the stored prefixes (w1), (w1 w2), ... to the context
            index = lookup(keys[j], index * len(vocab) + words[:, j])
        if (index < 0).any():
            number = numbers[int(np.argmax(index < 0))]
            raise LmlabError(f"{path}:{number}: this {k}-gram's context is not itself in the file")
        logp, logb = (_arpa_column(path, numbers, rows, column) for column in (0, k + 1))
        values = np.where(logp <= -99, 0.0, 10.0**logp), np.where(logb <= -99, 0.0, 10.0**logb)
        if k == 1:  # unigrams are dense; an <unk> the file lacks (SRILM may omit it) gets probability 0
            keys.append(np.arange(len(vocab), dtype=np.int64))
            prob.append(np.zeros(len(vocab)))
            backoff.append(np.ones(len(vocab)))
            log_prob.append(np.full(len(vocab), -99.0, dtype=np.float32))
            log_backoff.append(np.zeros(len(vocab), dtype=np.float32))
            prob[0][index], backoff[0][index] = values
            log_prob[0][index], log_backoff[0][index] = logp, logb
            continue
        index = index * len(vocab) + words[:, -1]
        ranked = np.argsort(index)
        keys.append(index[ranked])
        prob.append(values[0][ranked])
        backoff.append(values[1][ranked])
        log_prob.append(logp[ranked].astype(np.float32))
        log_backoff.append(logb[ranked].astype(np.float32))
    return ArpaTables(vocab, keys, prob, backoff, (log_prob, log_backoff))


def _arpa_rows(
    path: str | os.PathLike[str], lines: list[str], first: int, last: int, k: int
) -> tuple[list[int], list[list[str]]]:
    """The (line numbers, fields) of the k-gram lines between two section headers."""
    numbers, rows = [], []
    for number, line in enumerate(lines[first + 1:last], start=first + 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (k + 1, k + 2):
            raise LmlabError(f"{path}:{number}: a {k}-gram line needs log10 p, {k} words, optional back-off")
        numbers.append(number)
        rows.append(fields)
    return numbers, rows


def _arpa_column(path: str | os.PathLike[str], numbers: list[int], rows: list[list[str]], column: int) -> np.ndarray:
    """Column `column` of every row as numbers (0 where a row lacks it: no back-off means log10 1)."""
    try:
        return np.array([row[column] if column < len(row) else "0" for row in rows], dtype=np.float64)
    except ValueError:
        for number, row in zip(numbers, rows, strict=True):
            try:
                float(row[column] if column < len(row) else 0)
            except ValueError:
                raise LmlabError(f"{path}:{number}: {row[column]!r} is not a number") from None
        raise


def _arpa_floats(values: np.ndarray, few_distinct: bool = False) -> pa.Array:
    """The shortest text of each float32 that reads back as the same value (as KenLM prints); -99 for log 0.

    With `few_distinct` (back-off weights), each distinct value is formatted once.
    """
    finite = np.where(np.isfinite(values), values, np.float32(-99.0)).astype(np.float32)
    if not few_distinct:
        return pc.cast(pa.array(finite), pa.large_string())
    distinct, inverse = _few_distinct(finite)
    return pc.cast(pa.array(distinct), pa.large_string()).take(inverse)


def _string_bytes(strings: pa.Array) -> memoryview:
    """The UTF-8 bytes of an Arrow string array, all strings back to back: one buffer, no copy."""
    _, offsets, data = strings.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[strings.offset:strings.offset + len(strings) + 1]
    return memoryview(data)[ends[0]:ends[-1]]


def _few_distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_inverse=True)` for values that take few distinct values, faster: a sort
    finds them, then binary search in that small table, which stays in cache, places each value."""
    distinct = np.unique(values)
    return distinct, np.searchsorted(distinct, values)
