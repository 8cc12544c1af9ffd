"""Training objectives: what a batch is and which tokens the loss is taken on.

The training loop knows nothing about language modelling; it asks an objective for the batch of a
given step and hands it to ``model(**batch)``, which returns the loss. A batch is a pure function of
(seed, step, micro-step), so a resumed run draws exactly the batches an uninterrupted one would have.

Two objectives predict the next token:

- `CausalLM` (``causal_lm``) draws random windows, each read from scratch: a GPT's context is its
  window, so nothing is lost, and random windows decorrelate the batch.
- `StreamingCausalLM` (``causal_lm_stream``) reads the text in order, as a recurrent model is
  trained with truncated back-propagation through time (below).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError

Batch = dict[str, torch.Tensor]


class Objective(Protocol):
    streaming: bool  # True: each window continues the previous one, and the model's state is carried over

    def training_batch(self, step: int, micro_step: int) -> Batch: ...

    def starts_stream(self, step: int, micro_step: int) -> bool: ...

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]: ...


def batch_generator(seed: int, step: int, micro_step: int) -> torch.Generator:
    """A generator whose state depends only on (seed, step, micro_step): the data position is the step."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + micro_step)


class CausalLM:
    """Next-token prediction on random windows of packed token shards (GPT pretraining)."""

    streaming = False

    def __init__(self, shards: TokenShards, batch_size: int, block_size: int, seed: int):
        self.shards, self.batch_size, self.block_size, self.seed = shards, batch_size, block_size, seed

    def training_batch(self, step: int, micro_step: int) -> Batch:
        generator = batch_generator(self.seed, step, micro_step)
        inputs, targets = self.shards.sample_batch("train", self.batch_size, self.block_size, generator)
        return {"input_ids": inputs, "labels": targets}

    def starts_stream(self, step: int, micro_step: int) -> bool:
        return True  # every random window starts from nothing

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]:
        """Validation windows: the whole split, or `max_tokens` targets' worth spread evenly over it."""
        for inputs, targets in self.shards.iter_windows("val", self.block_size, self.batch_size, max_tokens):
            yield {"input_ids": inputs, "labels": targets}


class StreamingCausalLM:
    """Next-token prediction on the text in order, for truncated back-propagation through time.

    The split of N tokens is cut into B = batch_size contiguous streams of L = (N - 1) // B tokens,
    one per batch row (the "batchify" layout of PyTorch's word_language_model), and window w of an
    epoch is the next T = block_size tokens of every stream:

        split   | stream 0 ........ | stream 1 ........ | ... | stream B-1 ...... |
        row b, window w:  inputs  tokens[b*L + w*T     : b*L + (w+1)*T    ]
                          targets tokens[b*L + w*T + 1 : b*L + (w+1)*T + 1]

    So row b of window w + 1 is the text right after row b of window w, and the model's final state
    after one window is the right state to start the next from. The loop carries it across, cut
    from the autograd graph: the loss of a window back-propagates through its own T steps only
    (the truncation), yet the forward values are those of one long pass over the stream.

    The position is the step: micro-step m of optimizer step s reads window ``s * grad_accum + m``
    (consecutive windows, each back-propagated on its own, gradients summed). An epoch is the
    W = L // T full windows of each stream (a stream's last L mod T tokens are skipped); then the
    streams start over, and the state is reset to zero there. Only windows are read from the
    memory-mapped split, never the whole of it.
    """

    streaming = True

    def __init__(self, shards: TokenShards, batch_size: int, block_size: int, grad_accum: int = 1):
        self.shards, self.batch_size, self.block_size, self.grad_accum = shards, batch_size, block_size, grad_accum
        tokens = shards.num_tokens("train")
        self.stream_length = max(0, tokens - 1) // batch_size
        self.windows_per_epoch = self.stream_length // block_size
        if self.windows_per_epoch == 0:
            raise LmlabError(
                f"{shards.directory / 'train.bin'}: {tokens} tokens cut into train.batch_size={batch_size} streams "
                f"give {self.stream_length} tokens per stream, fewer than train.block_size={block_size}; "
                "lower one of them or pack more text"
            )

    def window(self, step: int, micro_step: int) -> int:
        """Which window of the epoch optimizer step `step`, micro-step `micro_step` reads."""
        return (step * self.grad_accum + micro_step) % self.windows_per_epoch

    def training_batch(self, step: int, micro_step: int) -> Batch:
        T = self.block_size
        starts = np.arange(self.batch_size) * self.stream_length + self.window(step, micro_step) * T  # (B,)
        rows = starts[:, None] + np.arange(T + 1)  # (B, T+1) indices into the split
        windows = torch.from_numpy(self.shards.tokens("train")[rows].astype(np.int64))
        return {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}

    def starts_stream(self, step: int, micro_step: int) -> bool:
        """True at the first window of an epoch, where the carried state must be reset."""
        return self.window(step, micro_step) == 0

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]:
        """The validation split read as streams, window after window, for the loop to carry the state
        through: the perplexity an LSTM language model is reported with.

        The split is cut into min(batch_size, N - 1) streams of L tokens as for training, every
        position of a stream after its first is a target once (the last window may be shorter), and
        only the last < B tokens of the split are left out. With `max_tokens`, each stream is read
        only for its first max_tokens // B targets: the streams still start all over the split.
        """
        tokens = self.shards.tokens("val")
        streams = min(self.batch_size, len(tokens) - 1)
        if streams < 1:
            raise LmlabError(f"{self.shards.directory / 'val.bin'}: {len(tokens)} tokens, too few to predict any")
        length = (len(tokens) - 1) // streams
        targets = length if max_tokens is None else min(length, max(1, max_tokens // streams))
        for start in range(0, targets, self.block_size):
            T = min(self.block_size, targets - start)
            rows = np.arange(streams)[:, None] * length + start + np.arange(T + 1)  # (B, T+1)
            windows = torch.from_numpy(tokens[rows].astype(np.int64))
            yield {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}
