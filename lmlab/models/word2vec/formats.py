"""word2vec.c's vector format, text or binary: what word2vec.c, gensim and most other tools read and write.

    V dim                          the header: how many words, how many numbers each
    word x1 x2 ... xdim            text: one word and its numbers per line
    word <4*dim bytes>\n           binary: the word, a space, float32 little-endian (the newline optional)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmlab.errors import LmlabError
from lmlab.files import atomic_path


def write_word2vec_format(
    words: Sequence[str], vectors: np.ndarray, path: str | os.PathLike[str], binary: bool = False
) -> None:
    """Write a "V dim" line, then per word its text and its vector (text or float32 bytes).

    Text writes 9 significant digits, enough to read back every float32 exactly.
    """
    for word in words:
        if not word or any(ch.isspace() for ch in word):
            raise LmlabError(f"word {word!r}: the word2vec format cannot hold empty words or ones with spaces")
    dim = vectors.shape[1]
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(f"{len(words)} {dim}\n".encode())
        row_format = " ".join(["%.9g"] * dim)
        for word, vector in zip(words, vectors, strict=True):
            if binary:  # word2vec.c ends each vector with a newline; readers skip it
                out.write(word.encode() + b" " + vector.astype("<f4").tobytes() + b"\n")
            else:
                out.write(f"{word} {row_format % tuple(vector.tolist())}\n".encode())


def read_word2vec_format(path: str | os.PathLike[str], binary: bool | None = None) -> tuple[list[str], np.ndarray]:
    """The words and (V, dim) float32 vectors of a word2vec file (`binary` None: decided from the bytes
    after the first word)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise LmlabError(f"{path}: no such file") from None
    header, _, body = data.partition(b"\n")
    try:
        vocab, dim = (int(part) for part in header.split())
    except ValueError:
        raise LmlabError(f"{path}:1: the header must be two numbers, words and dimension, as '3000 100'") from None
    if binary is None:
        binary = _looks_binary(body, dim)
    words: list[str] = []
    vectors = np.empty((vocab, dim), dtype=np.float32)
    offset = 0
    for row in range(vocab):
        if binary:
            while body[offset:offset + 1] in (b"\n", b" "):
                offset += 1
            space = body.find(b" ", offset)
            end = space + 1 + 4 * dim
            if space < 0 or end > len(body):
                raise LmlabError(f"{path}: ends after {row} of the {vocab} vectors its header announces")
            words.append(_decode(body[offset:space], path, row))
            vectors[row] = np.frombuffer(body, dtype="<f4", count=dim, offset=space + 1)
            offset = end
        else:
            newline = body.find(b"\n", offset)
            line = body[offset:] if newline < 0 else body[offset:newline]
            offset = len(body) if newline < 0 else newline + 1
            parts = _decode(line, path, row).rstrip().split(" ")
            if len(parts) != dim + 1:
                raise LmlabError(f"{path}:{row + 2}: expected a word and {dim} numbers, found {len(parts)} fields")
            words.append(parts[0])
            try:
                vectors[row] = np.array(parts[1:], dtype=np.float64)
            except ValueError:
                raise LmlabError(f"{path}:{row + 2}: a vector holds something that is not a number") from None
    return words, vectors


def _decode(raw: bytes, path: str | os.PathLike[str], row: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LmlabError(f"{path}: word {row + 1} is not valid UTF-8") from None


def _looks_binary(body: bytes, dim: int) -> bool:
    """Text has the word then `dim` numbers on its first line; binary has 4 * dim raw bytes after the word."""
    fields = body.split(b"\n", 1)[0].rstrip().split(b" ")
    if len(fields) != dim + 1:
        return True
    try:
        [float(number) for number in fields[1:]]
    except ValueError:
        return True
    return False
