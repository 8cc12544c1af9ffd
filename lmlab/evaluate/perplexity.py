"""Perplexity and bits per byte on a packed validation split, and the unigram baseline to beat.

Perplexity is exp(mean negative log-likelihood per token); it depends on the tokenizer, so two
models with different vocabularies cannot be compared on it. Bits per byte divides the total
negative log-likelihood (in bits) by the UTF-8 bytes of the text instead, which is
tokenizer-independent: it is the figure to compare across tokenizers and model generations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmlab.data.packing import TokenShards


@dataclass
class SplitScore:
    split: str
    tokens: int  # tokens predicted
    bytes: int  # UTF-8 bytes of the split's text
    nll: float  # total negative log-likelihood, nats

    @property
    def loss(self) -> float:
        return self.nll / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.bytes

    def to_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "loss": self.loss, "perplexity": self.perplexity, "bits_per_byte": self.bits_per_byte}


@torch.inference_mode()
def score_split(model: nn.Module, shards: TokenShards, split: str = "val", block_size: int | None = None,
                batch_size: int = 8) -> SplitScore:
    """Score every token of `split` with non-overlapping windows of the model's context."""
    model.eval()
    device = next(model.parameters()).device
    block_size = block_size or model.config.block_size
    nll, tokens = 0.0, 0
    for inputs, targets in shards.iter_windows(split, block_size, batch_size):
        logits = model(inputs.to(device)).logits.float()
        losses = F.cross_entropy(logits.flatten(0, 1), targets.to(device).flatten(), reduction="sum")
        nll += losses.item()
        tokens += targets.numel()
    return SplitScore(split, tokens, shards.meta.splits[split].bytes, nll)


def unigram_baseline(shards: TokenShards, split: str = "val", chunk: int = 1 << 22) -> SplitScore:
    """A unigram model (add-one smoothed token frequencies of the train split) scored on `split`.

    The simplest model that knows the tokens' frequencies and nothing of their order: a trained
    model that does not beat it has learned nothing about context.
    """
    vocab = shards.meta.vocab_size
    counts = np.ones(vocab, dtype=np.float64)  # add-one: no token gets probability zero
    train = shards.tokens("train")
    for start in range(0, len(train), chunk):
        counts += np.bincount(np.asarray(train[start : start + chunk]), minlength=vocab)[:vocab]
    logprob = np.log(counts) - np.log(counts.sum())
    scored = shards.tokens(split)[1:]  # the first token has no context, as in score_split
    nll = 0.0
    for start in range(0, len(scored), chunk):
        nll -= float(logprob[np.asarray(scored[start : start + chunk])].sum())
    return SplitScore(split, len(scored), shards.meta.splits[split].bytes, nll)
