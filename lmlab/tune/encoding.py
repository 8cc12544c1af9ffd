"""Texts as the backbone reads them, and examples as padded batches: what every task's encoding shares.

A text is framed the way the backbone was trained to read one: ``[CLS] text [SEP]`` for a
BERT-style tokenizer, the text then end-of-text for a GPT one (so its last token, where a decoder
pools, is the same marker in every example). Longer texts are cut to ``block_size`` tokens, the
closing marker kept. Batches are right-padded to their longest row and carry an attention mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lmlab.errors import LmlabError
from lmlab.tokenizers import Tokenizer


def cls_sep_frame(tokenizer: Tokenizer) -> tuple[int, int] | None:
    """([CLS], [SEP]) ids for a BERT-style tokenizer, None for a decoder's."""
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    return None if cls is None or sep is None else (cls, sep)


def frame_text(text: str, tokenizer: Tokenizer, block_size: int) -> list[int]:
    """One text's ids as the backbone reads a whole text: framed by [CLS]/[SEP] or ended by end-of-text, cut to fit."""
    if tokenizer.token_to_id("[CLS]") is not None:
        tokens = tokenizer.encode(text, add_special_tokens=True)
        if len(tokens) > block_size:  # keep [SEP] at the end: it is part of what BERT was trained on
            tokens = tokens[: block_size - 1] + tokens[-1:]
    else:
        tokens = tokenizer.encode(text)[: block_size - 1]
        tokens += [tokenizer.eos_id] if tokenizer.eos_id is not None else []
    if not tokens:
        raise LmlabError(f"the text {text[:40]!r} encodes to no tokens")
    return tokens


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-padded (B, T) ids and their (B, T) attention mask."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return ids, mask
