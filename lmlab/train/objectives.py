"""Training objectives: what a batch is and which tokens the loss is taken on.

The training loop knows nothing about language modelling; it asks an objective for the batch of a
given step and hands it to ``model(**batch)``, which returns the loss. A batch is a pure function of
(seed, step, micro-step), so a resumed run draws exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from lmlab.data.packing import TokenShards

Batch = dict[str, torch.Tensor]


class Objective(Protocol):
    def training_batch(self, step: int, micro_step: int) -> Batch: ...

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]: ...


def batch_generator(seed: int, step: int, micro_step: int) -> torch.Generator:
    """A generator whose state depends only on (seed, step, micro_step): the data position is the step."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + micro_step)


class CausalLM:
    """Next-token prediction on random windows of packed token shards (GPT pretraining)."""

    def __init__(self, shards: TokenShards, batch_size: int, block_size: int, seed: int):
        self.shards, self.batch_size, self.block_size, self.seed = shards, batch_size, block_size, seed

    def training_batch(self, step: int, micro_step: int) -> Batch:
        generator = batch_generator(self.seed, step, micro_step)
        inputs, targets = self.shards.sample_batch("train", self.batch_size, self.block_size, generator)
        return {"input_ids": inputs, "labels": targets}

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]:
        """Validation windows: the whole split, or `max_tokens` targets' worth spread evenly over it."""
        for inputs, targets in self.shards.iter_windows("val", self.block_size, self.batch_size, max_tokens):
            yield {"input_ids": inputs, "labels": targets}
