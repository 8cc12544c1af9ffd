"""Packing: a corpus becomes two flat files of token ids that training reads without loading them.

A language model trains on windows of consecutive tokens, and document boundaries only matter as
far as the model should learn where text ends. So every document is tokenized, followed by the
end-of-text token, and appended to one long stream per split:

    doc 0  "你好"          -> [17, 42] + [eos]
    doc 1  "Hello there"  -> [91, 7, 33] + [eos]        train.bin: 17 42 eos 91 7 33 eos ...
    doc 2  ...            -> val                        val.bin:   ...

Each stream is written as raw little-endian integers (``uint16`` while every id fits, else
``uint32``) and later opened with `numpy.memmap`: the operating system pages in only the windows a
batch touches, so a corpus larger than RAM trains as easily as a small one. ``meta.json`` records
the dtype, the vocabulary size, the eos id and, per split, the number of tokens, documents and
UTF-8 bytes of text (the last turns a loss per token into bits per byte, comparable across
tokenizers).

Which split a document goes to depends only on (seed, document index), through a hash, so the split
is the same however the corpus is chunked and whichever machine packs it; whole documents go one
way, so no validation text leaks into training.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, write_json
from lmlab.tokenizers import Tokenizer

FORMAT_VERSION = 1
SPLITS = ("train", "val")


class SplitMeta(BaseModel):
    """What one split holds."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    tokens: int = Field(ge=0)
    documents: int = Field(ge=0)
    bytes: int = Field(ge=0)  # UTF-8 bytes of the split's documents, for bits per byte


class PackMeta(BaseModel):
    """What ``meta.json`` says about a packed directory."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format: Literal[1] = FORMAT_VERSION
    dtype: Literal["uint16", "uint32"]
    vocab_size: int = Field(ge=1)
    eos_id: int | None
    splits: dict[str, SplitMeta]

    @field_validator("splits")
    @classmethod
    def _both_splits(cls, splits: dict[str, SplitMeta]) -> dict[str, SplitMeta]:
        if sorted(splits) != sorted(SPLITS):
            raise ValueError(f"expected the splits {', '.join(SPLITS)}, got {', '.join(splits) or 'none'}")
        return splits

    @classmethod
    def read(cls, path: Path) -> PackMeta:
        """Read and check ``meta.json``; every problem is an error naming the file and field."""
        data = read_json(path, "meta.json; is this a packed token directory?")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise LmlabError(f"{path}: {field}: {first['msg']}") from None


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest little-endian unsigned integer type that holds every id below `vocab_size`."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def assign_split(document_index: int, seed: int, val_fraction: float) -> str:
    """'val' for about `val_fraction` of documents, 'train' for the rest, the same on every run.

    A hash of (seed, index) stands in for a coin flip: unlike a random generator it needs no state
    carried from one document to the next, so chunking cannot change the outcome.
    """
    digest = hashlib.blake2b(f"{seed}:{document_index}".encode(), digest_size=8).digest()
    coin = int.from_bytes(digest, "little") / 2**64  # uniform in [0, 1)
    return "val" if coin < val_fraction else "train"


class _SplitWriter:
    """Appends documents' tokens to one ``.bin`` file and counts what went in."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.file: BinaryIO = path.open("wb")
        self.dtype = dtype
        self.tokens = self.documents = self.bytes = 0
        # The last document is remembered so that it can be moved to the other split (see pack_corpus).
        self.last: tuple[np.ndarray, int] | None = None

    def append(self, ids: np.ndarray, num_bytes: int) -> None:
        ids.tofile(self.file)
        self.tokens += len(ids)
        self.documents += 1
        self.bytes += num_bytes
        self.last = (ids, num_bytes)

    def pop_last(self) -> tuple[np.ndarray, int]:
        """Remove the last document appended (called once, at the end) and return it."""
        assert self.last is not None, "pop_last on a split with no documents"
        ids, num_bytes = self.last
        self.tokens -= len(ids)
        self.documents -= 1
        self.bytes -= num_bytes
        self.last = None
        self.file.truncate(self.tokens * self.dtype.itemsize)
        self.file.seek(0, os.SEEK_END)
        return ids, num_bytes

    def meta(self) -> SplitMeta:
        return SplitMeta(tokens=self.tokens, documents=self.documents, bytes=self.bytes)


def pack_corpus(
    documents: Iterable[str],
    tokenizer: Tokenizer,
    out_dir: str | os.PathLike[str],
    *,
    val_fraction: float = 0.05,
    seed: int = 0,
    chunk_documents: int = 1024,
) -> PackMeta:
    """Tokenize `documents` (streamed, `chunk_documents` at a time) into ``out_dir/{train,val}.bin``.

    Each document is followed by `tokenizer.eos_id` (when the tokenizer has one) and goes whole to
    the split `assign_split` picks. Two corrections keep both splits usable: train is never empty
    (if every document hashed to val, the last one moves to train), and val is never empty when
    there are at least two documents (if none hashed to val, the last train document moves there).
    `out_dir` appears only once complete; an error midway leaves nothing behind.
    """
    if not 0 < val_fraction < 1:
        raise LmlabError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if chunk_documents < 1:
        raise LmlabError(f"chunk_documents must be at least 1, got {chunk_documents}")
    dtype = token_dtype(tokenizer.vocab_size)
    eos = [] if tokenizer.eos_id is None else [tokenizer.eos_id]
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        writers = {split: _SplitWriter(tmp / f"{split}.bin", dtype) for split in SPLITS}
        train, val = writers["train"], writers["val"]
        try:
            index = 0
            for chunk in _chunks(documents, chunk_documents):
                for position, text in enumerate(chunk, start=index):
                    if not isinstance(text, str):
                        raise LmlabError(f"document {position}: expected text, got {type(text).__name__}")
                for text, ids in zip(chunk, tokenizer.encode_batch(chunk), strict=True):
                    split = assign_split(index, seed, val_fraction)
                    writers[split].append(np.array(ids + eos, dtype=dtype), len(text.encode("utf-8")))
                    index += 1
            if train.documents == 0 and val.documents > 0:
                train.append(*val.pop_last())
            if val.documents == 0 and train.documents >= 2:
                val.append(*train.pop_last())
        finally:
            for writer in writers.values():
                writer.file.close()
        if index == 0:
            raise LmlabError("pack_corpus: there are no documents to pack")
        if train.tokens + val.tokens == 0:
            raise LmlabError(f"pack_corpus: the {index} documents hold no tokens (are they all empty?)")
        meta = PackMeta(
            dtype=dtype.name,
            vocab_size=tokenizer.vocab_size,
            eos_id=tokenizer.eos_id,
            splits={split: writer.meta() for split, writer in writers.items()},
        )
        write_json(tmp / "meta.json", meta.model_dump())
    return meta


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class TokenShards:
    """A packed directory opened for training: memory-mapped splits and the batches drawn from them."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.meta = PackMeta.read(self.directory / "meta.json")
        self.dtype = np.dtype(self.meta.dtype).newbyteorder("<")
        self._tokens: dict[str, np.ndarray] = {}
        for split in SPLITS:
            self._check_size(split)

    def _bin_path(self, split: str) -> Path:
        if split not in SPLITS:
            raise LmlabError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        return self.directory / f"{split}.bin"

    def _check_size(self, split: str) -> None:
        path = self._bin_path(split)
        expected = self.meta.splits[split].tokens * self.dtype.itemsize
        actual = path.stat().st_size if path.exists() else None
        if actual != expected:
            found = "missing" if actual is None else f"{actual} bytes"
            raise LmlabError(
                f"{path}: {found}, but meta.json says {self.meta.splits[split].tokens} {self.meta.dtype} "
                f"tokens ({expected} bytes); the directory is incomplete or damaged, pack it again"
            )

    def num_tokens(self, split: str) -> int:
        self._bin_path(split)
        return self.meta.splits[split].tokens

    def tokens(self, split: str) -> np.ndarray:
        """The split's token ids as a read-only `np.memmap` (a plain empty array for an empty split)."""
        if split not in self._tokens:
            path = self._bin_path(split)
            # numpy cannot map an empty file, and an empty split has nothing to map anyway.
            if self.num_tokens(split) == 0:
                self._tokens[split] = np.zeros(0, dtype=self.dtype)
            else:
                self._tokens[split] = np.memmap(path, dtype=self.dtype, mode="r")
        return self._tokens[split]

    def sample_batch(
        self, split: str, batch_size: int, block_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random windows: inputs ``x = tokens[i:i+T]`` and targets ``y = tokens[i+1:i+T+1]``.

        Window starts come from `generator` alone, so reseeding it reproduces the batch exactly (how
        a resumed run continues as if never stopped). Returns two int64 tensors of shape (B, T).
        """
        tokens = self.tokens(split)
        if len(tokens) < block_size + 1:
            raise LmlabError(
                f"{self._bin_path(split)}: {len(tokens)} tokens, fewer than block_size + 1 = {block_size + 1}; "
                f"lower block_size or pack more text"
            )
        starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
        rows = starts.numpy()[:, None] + np.arange(block_size + 1)  # (B, T+1) indices into the split
        windows = torch.from_numpy(tokens[rows].astype(np.int64))
        return windows[:, :-1], windows[:, 1:]

    def iter_windows(
        self, split: str, block_size: int, batch_size: int, max_targets: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive windows over the whole split, for validation loss: every token after the first
        is a target exactly once.

            tokens  t0 t1 t2 t3 t4 t5 t6      block_size 3
            x       t0 t1 t2 | t3 t4 t5       y  t1 t2 t3 | t4 t5 t6

        Full windows come `batch_size` at a time; a shorter last window comes alone as a batch of
        one, so the mean loss is the sum of per-token losses over ``num_tokens - 1`` targets.

        With `max_targets`, only that many targets' worth of full windows are taken, spread evenly
        over the split: a quick evaluation during training then sees every part of the split (both
        languages of a bilingual corpus, say), not just its beginning.
        """
        tokens = self.tokens(split)
        if len(tokens) < 2:
            raise LmlabError(
                f"{self._bin_path(split)}: {len(tokens)} tokens, too few to predict any (a corpus of one "
                f"document has no validation split)"
            )
        return self._windows(tokens, block_size, batch_size, max_targets)

    @staticmethod
    def _windows(
        tokens: np.ndarray, block_size: int, batch_size: int, max_targets: int | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        num_targets = len(tokens) - 1
        full_windows = num_targets // block_size
        chosen = np.arange(full_windows)
        if max_targets is not None and max_targets < num_targets:
            keep = min(full_windows, max(1, max_targets // block_size))
            chosen = np.unique(np.linspace(0, full_windows - 1, keep).round().astype(np.int64))
        for first in range(0, len(chosen), batch_size):
            rows = chosen[first : first + batch_size, None] * block_size + np.arange(block_size + 1)  # (B, T+1)
            windows = torch.from_numpy(tokens[rows].astype(np.int64))
            yield windows[:, :-1], windows[:, 1:]
        if num_targets % block_size and len(chosen) == full_windows:
            tail = torch.from_numpy(tokens[full_windows * block_size :].astype(np.int64))[None]  # (1, T'+1)
            yield tail[:, :-1], tail[:, 1:]


def split_documents(shards: TokenShards, tokenizer: Tokenizer, split: str = "val") -> list[str]:
    """The documents of a packed split decoded back to text (packing ends each with end-of-text)."""
    eos = shards.meta.eos_id
    if eos is None:
        raise LmlabError(f"{shards.directory}: packed without an end-of-text token, so documents cannot be told apart")
    tokens = shards.tokens(split)
    ends = np.flatnonzero(tokens == eos)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [tokenizer.decode(tokens[start:end].tolist()) for start, end in zip(starts, ends, strict=True)]
