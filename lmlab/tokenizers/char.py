"""Character tokenizer: one token per Unicode character, the simplest tokenizer that works.

    "你好, AI"  ->  ["你", "好", ",", " ", "A", "I"]

The vocabulary is the special tokens, ``<unk>``, and the most frequent characters of the corpus
up to `vocab_size`; a character outside it becomes ``<unk>``. Decoding joins the characters with
nothing in between, so any text made of known characters comes back exactly. Sequences are long
(one id per character) but nothing is hidden, which makes it the tokenizer to learn on; for
Chinese, where a character is already close to a word, it is a reasonable choice outright.
"""

from __future__ import annotations

from collections.abc import Iterable

import tokenizers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers

UNK = "<unk>"


def train_char(
    texts: Iterable[str],
    *,
    vocab_size: int,
    min_frequency: int,
    special_tokens: list[str],
    lowercase: bool,
    show_progress: bool = False,
) -> tokenizers.Tokenizer:
    """Count the characters of `texts` and keep the `vocab_size` most frequent (specials included)."""
    backend = tokenizers.Tokenizer(models.WordLevel(unk_token=UNK))
    if lowercase:
        backend.normalizer = normalizers.Lowercase()
    # Every character, newlines included, is a "word" of its own for the word-level model.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()  # join with no separator
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens if UNK in special_tokens else [*special_tokens, UNK],
        show_progress=show_progress,
    )
    backend.train_from_iterator(texts, trainer)
    return backend
