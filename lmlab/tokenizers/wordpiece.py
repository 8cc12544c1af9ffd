"""WordPiece, BERT's tokenizer: whole words where it can, ``##`` pieces where it must.

Text is first normalized (control characters dropped, optionally lowercased with accents
stripped) and cut at spaces and punctuation. Chinese, Japanese and Korean ideographs get a space
on each side, so each one is a word of its own: written Chinese has no spaces to cut at, and a
character is the unit BERT's Chinese models use. Each word is then split greedily into the
longest pieces in the vocabulary, later pieces marked with ``##``:

    "Tokenizing 中文!"  ->  ["token", "##izing", "中", "文", "!"]     (lowercase=True, a learnt vocabulary)

A word that cannot be built from the vocabulary becomes ``[UNK]``. Decoding glues ``##`` pieces
back on and puts a space between words, so the text comes back normalized and re-spaced, not
byte for byte; that is the price of a vocabulary of words.
"""

from __future__ import annotations

from collections.abc import Iterable

import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from lmlab.tokenizers.tokenizer import with_digits_split

UNK = "[UNK]"


def train_wordpiece(
    texts: Iterable[str],
    *,
    vocab_size: int,
    min_frequency: int,
    special_tokens: list[str],
    lowercase: bool,
    show_progress: bool = False,
    split_digits: bool = False,
) -> tokenizers.Tokenizer:
    """Learn a BERT-style WordPiece vocabulary of up to `vocab_size` entries from `texts`."""
    backend = tokenizers.Tokenizer(models.WordPiece(unk_token=UNK, continuing_subword_prefix="##"))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase
    )
    backend.pre_tokenizer = with_digits_split(pre_tokenizers.BertPreTokenizer(), split_digits)
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens if UNK in special_tokens else [*special_tokens, UNK],
        continuing_subword_prefix="##",
        show_progress=show_progress,
    )
    backend.train_from_iterator(texts, trainer)
    _add_cls_sep_frame(backend)
    return backend


def _add_cls_sep_frame(backend: tokenizers.Tokenizer) -> None:
    """``[CLS] a [SEP]`` and ``[CLS] a [SEP] b [SEP]`` when special tokens are asked for, as BERT expects."""
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        return
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
