"""Byte-level BPE, the GPT-2 tokenizer: trained from a corpus or loaded from OpenAI's files.

Byte-pair encoding starts from single symbols and repeatedly merges the most frequent adjacent
pair into a new symbol, until the vocabulary is full. GPT-2's twist is to run it over *bytes*:

    "你好 👋"  --UTF-8-->  e4 bd a0 e5 a5 bd | 20 f0 9f 91 8b  --shown as-->  "ä½łå¥½" | "ĠðŁĳĭ"
                                                     --merges, e.g.-->  ["ä½ł", "å¥½"] | ["Ġ", "ðŁĳĭ"]

Every string is a sequence of the 256 possible bytes, and all 256 are in the vocabulary from the
start, so no text is ever unknown: Chinese, emoji, tabs and runs of spaces all encode, and decoding
gives back exactly the input. (The odd-looking symbols are bytes shown as printable characters,
e.g. "Ġ" is the space byte 0x20, so a vocabulary stays a JSON dictionary of strings.)

Before merging, GPT-2 cuts text into pieces with a regex (contractions, letters, digits,
punctuation, whitespace), so merges never cross a piece boundary: " dog." gives " dog" and ".",
never a symbol "g.". The ByteLevel pre-tokenizer with ``use_regex=True`` is that same regex.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from lmlab.errors import LmlabError
from lmlab.files import read_json
from lmlab.tokenizers.tokenizer import Tokenizer, with_digits_split


def byte_level_tokenizer(model: models.BPE, split_digits: bool = False) -> tokenizers.Tokenizer:
    """Wrap a BPE model in GPT-2's pipeline: regex pieces -> bytes -> merges, and back."""
    backend = tokenizers.Tokenizer(model)
    # No prefix space: GPT-2 encodes "Hello" and " Hello" differently, and adding a space
    # would break the exact round trip decode(encode(text)) == text.
    backend.pre_tokenizer = with_digits_split(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
                                              split_digits)
    backend.decoder = decoders.ByteLevel()
    # Only adjusts character offsets; kept because GPT-2's own tokenizer.json has it.
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return backend


def train_bpe(
    texts: Iterable[str],
    *,
    vocab_size: int,
    min_frequency: int,
    special_tokens: list[str],
    lowercase: bool,
    show_progress: bool = False,
    split_digits: bool = False,
) -> tokenizers.Tokenizer:
    """Learn byte-level BPE merges from `texts` (streamed) until `vocab_size` symbols exist."""
    backend = byte_level_tokenizer(models.BPE(), split_digits)
    if lowercase:
        backend.normalizer = normalizers.Lowercase()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, even unseen ones
        show_progress=show_progress,
    )
    backend.train_from_iterator(texts, trainer)
    return backend


def load_gpt2_tokenizer(encoder_json_path: str | os.PathLike[str], vocab_bpe_path: str | os.PathLike[str]) -> Tokenizer:
    """Build GPT-2's tokenizer from OpenAI's original ``encoder.json`` and ``vocab.bpe``.

    ``encoder.json`` maps each symbol to its id; ``vocab.bpe`` lists the merges in the order they
    were learnt, one ``left right`` pair a line after a ``#version`` header.
    """
    vocab = _read_encoder(Path(encoder_json_path))
    merges = _read_merges(Path(vocab_bpe_path))
    try:
        model = models.BPE(vocab=vocab, merges=merges)
    except Exception as exc:  # e.g. a merge whose symbols are not in encoder.json
        raise LmlabError(f"{vocab_bpe_path}: does not fit {encoder_json_path} ({exc})") from None
    backend = byte_level_tokenizer(model)
    if "<|endoftext|>" in vocab:
        # Marked special so that the literal text "<|endoftext|>" maps to its single id.
        backend.add_special_tokens(["<|endoftext|>"])
    return Tokenizer(backend)


def _read_encoder(path: Path) -> dict[str, int]:
    vocab = read_json(path, "file (GPT-2's encoder.json)")
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise LmlabError(f"{path}: expected a JSON object mapping each token to an integer id")
    return vocab


def _read_merges(path: Path) -> list[tuple[str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise LmlabError(f"{path}: no such file (GPT-2's vocab.bpe)") from None
    merges = []
    for line_number, line in enumerate(lines, start=1):
        if line.startswith("#version") or not line.strip():
            continue
        pair = line.split(" ")
        if len(pair) != 2 or not all(pair):
            raise LmlabError(f"{path}:{line_number}: expected a merge 'left right', got {line!r}")
        merges.append((pair[0], pair[1]))
    return merges
