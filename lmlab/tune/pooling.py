"""One vector per sequence from a backbone's hidden states, for the heads that read a whole text.

    first   the first token: an encoder's [CLS], which BERT puts there for this purpose
    last    the last real token: for a decoder, the only position that has seen the whole text
    mean    the mean over real tokens (sentence-transformers' sentence embedding)
"""

from __future__ import annotations

import torch
from torch import Tensor

from lmlab.models.base import Pooling


def pool(hidden: Tensor, attention_mask: Tensor | None, pooling: Pooling) -> Tensor:
    """One vector per row of (B, T, C) `hidden`; `attention_mask` (B, T) marks real tokens (right padding)."""
    if pooling == "first":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden[:, -1] if pooling == "last" else hidden.mean(dim=1)
    real = attention_mask.to(hidden.dtype)
    if pooling == "last":
        last = attention_mask.long().sum(dim=1) - 1  # (B,) the index of each row's last real token
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    return (hidden * real[..., None]).sum(dim=1) / real.sum(dim=1, keepdim=True).clamp(min=1)
