"""Tokenizers: turning text into the integer ids a model reads, and back.

A model sees a sequence of ids from a fixed vocabulary. Three ways to cut text into vocabulary
entries are offered, each one file, all built on Hugging Face `tokenizers` and saved as its
``tokenizer.json``:

    kind        unit                      unknown text          decode(encode(t)) == t
    char        one Unicode character     <unk>                 if every character is known
    wordpiece   words and ##pieces (BERT) [UNK]                 up to normalization and spacing
    bpe         byte-level merges (GPT-2) never: 256 bytes      always

    texts ──train_tokenizer(texts, cfg)──> Tokenizer ──save──> tokenizer.json ──Tokenizer.load──> ...

`load_gpt2_tokenizer` builds the real GPT-2 tokenizer from OpenAI's ``encoder.json`` and
``vocab.bpe``.

What a user types first:

    from lmlab.tokenizers import TokenizerConfig, train_tokenizer, Tokenizer
    tokenizer = train_tokenizer(texts, TokenizerConfig(kind="bpe", vocab_size=8000))
    tokenizer.encode("To be, or not"), tokenizer.decode(ids), tokenizer.save("tokenizer.json")
    Tokenizer.load("tokenizer.json")

A text too small to fill `vocab_size` gives a smaller vocabulary and a `lmlab.errors.LmlabWarning`
saying what it reached and why (the CLI prints it as one ``warning:`` line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal

import tokenizers
from pydantic import Field, model_validator

from lmlab.config import Config
from lmlab.errors import LmlabError, warn
from lmlab.tokenizers.bpe import load_gpt2_tokenizer, train_bpe
from lmlab.tokenizers.char import train_char
from lmlab.tokenizers.tokenizer import Tokenizer
from lmlab.tokenizers.wordpiece import train_wordpiece

__all__ = ["Tokenizer", "TokenizerConfig", "load_gpt2_tokenizer", "train_tokenizer"]

TokenizerKind = Literal["bpe", "wordpiece", "char"]

TRAINERS: dict[str, Callable[..., tokenizers.Tokenizer]] = {
    "bpe": train_bpe,
    "wordpiece": train_wordpiece,
    "char": train_char,
}

DEFAULT_SPECIAL_TOKENS: dict[str, list[str]] = {
    "bpe": ["<|endoftext|>"],
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "char": ["<|endoftext|>"],
}


class TokenizerConfig(Config):
    """How to train a tokenizer. `special_tokens` defaults by kind (see DEFAULT_SPECIAL_TOKENS)."""

    kind: TokenizerKind = "bpe"
    vocab_size: int = Field(8000, ge=1)
    min_frequency: int = Field(2, ge=1)
    special_tokens: list[str] = Field(default_factory=list)
    lowercase: bool = False
    split_digits: bool = Field(False, description="every digit a token of its own (LLaMA, Qwen2): for arithmetic")

    @model_validator(mode="after")
    def _digits_split_where_they_can_merge(self) -> TokenizerConfig:
        if self.split_digits and self.kind == "char":
            raise ValueError("split_digits: a char tokenizer reads every digit alone already")
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_special_tokens(cls, data: object) -> object:
        # Filled in before validation so the saved config shows the tokens actually used.
        if isinstance(data, dict) and "special_tokens" not in data:
            kind = data.get("kind", "bpe")
            if isinstance(kind, str) and kind in DEFAULT_SPECIAL_TOKENS:  # a bad kind is reported below
                data = {**data, "special_tokens": DEFAULT_SPECIAL_TOKENS[kind]}
        return data


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig, *, show_progress: bool = False) -> Tokenizer:
    """Train a tokenizer of kind `cfg.kind` on `texts`, read once as a stream (never held in memory)."""
    if cfg.kind == "bpe" and cfg.vocab_size < 256 + len(cfg.special_tokens):
        raise LmlabError(
            f"tokenizer.vocab_size: byte-level BPE needs at least 256 + {len(cfg.special_tokens)} "
            f"special tokens = {256 + len(cfg.special_tokens)} entries, got {cfg.vocab_size}"
        )
    if cfg.vocab_size <= len(cfg.special_tokens):
        raise LmlabError(f"tokenizer.vocab_size: {cfg.vocab_size} leaves no room beyond the "
                         f"{len(cfg.special_tokens)} special tokens")
    characters_seen = 0

    def counted(texts: Iterable[str]) -> Iterator[str]:
        nonlocal characters_seen
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise LmlabError(f"training text {index}: expected text, got {type(text).__name__}")
            characters_seen += len(text)
            yield text

    backend = TRAINERS[cfg.kind](
        counted(texts),
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=cfg.special_tokens,
        lowercase=cfg.lowercase,
        show_progress=show_progress,
        **({"split_digits": True} if cfg.split_digits else {}),
    )
    if characters_seen == 0:
        raise LmlabError("train_tokenizer: the training texts are empty, so there is nothing to learn from")
    tokenizer = Tokenizer(backend)
    if tokenizer.vocab_size < cfg.vocab_size:
        warn(f"tokenizer.vocab_size: asked for {cfg.vocab_size:,} but the {cfg.kind} tokenizer reached "
             f"{tokenizer.vocab_size:,}, because {SHORT_OF_VOCABULARY[cfg.kind].format(cfg=cfg)} in the "
             f"{characters_seen:,} characters it was trained on; give it more text, or a smaller vocab_size")
    return tokenizer


# Why each kind can stop short of the vocabulary asked for: it has nothing more to add.
SHORT_OF_VOCABULARY = {
    "char": "that text holds no more distinct characters seen at least min_frequency={cfg.min_frequency} times",
    "bpe": "no pair of adjacent tokens left to merge occurs at least min_frequency={cfg.min_frequency} times",
    "wordpiece": "no more words or word pieces occur at least min_frequency={cfg.min_frequency} times",
}
