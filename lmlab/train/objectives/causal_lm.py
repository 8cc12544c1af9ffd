"""Next-token prediction on packed token shards: the objectives of decoders (GPT, MLP, RNN/LSTM/GRU).

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
from torch import Tensor, nn

from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError
from lmlab.modes import evaluating
from lmlab.train.objectives.base import Batch, Objective, ObjectiveSettings, batch_generator, on_device


class CarriedState(Protocol):
    """The cache of a model that carries state across windows (`lmlab.models.rnn.RecurrentState`)."""

    def detach_(self) -> None: ...

    def tensors(self) -> dict[str, Tensor]: ...

    def load_tensors(self, tensors: dict[str, Tensor]) -> None: ...


def _targets_of_split(shards: TokenShards, targets: int, eval_tokens: int | None) -> str:
    """"N targets of the packed val split", and whether they are a sample of it (`eval_tokens`)."""
    whole = shards.num_tokens("val") - 1  # every token but the first is a target once
    sampled = eval_tokens is not None and eval_tokens < whole
    return f"{targets:,} targets of the packed val split" + (
        f" (a sample spread over its {whole:,}: train.eval_tokens)" if sampled else "")


class CausalLM(Objective):
    """Next-token prediction on random windows of packed token shards (GPT pretraining).

    The micro-batches of one optimizer step are the consecutive slices of one draw of
    ``batch_size * grad_accum`` windows, so accumulating gradients over them is exactly training on
    that larger batch (every window has the same number of targets, so the mean of the micro-batches'
    mean losses is the large batch's mean). With ``grad_accum`` 1 the draw is what it always was.
    """

    def __init__(self, shards: TokenShards, batch_size: int, block_size: int, seed: int,
                 eval_tokens: int | None = None, grad_accum: int = 1):
        self.shards, self.batch_size, self.block_size, self.seed = shards, batch_size, block_size, seed
        self.eval_tokens, self.grad_accum = eval_tokens, grad_accum

    @classmethod
    def build(cls, model: nn.Module, shards: TokenShards, settings: ObjectiveSettings) -> CausalLM:
        kind = getattr(model, "kind", None)
        if kind == "encoder":
            # A bidirectional encoder sees the token it is asked for: next-token prediction would teach it to copy.
            raise LmlabError(f"objective: causal_lm predicts the next token, which a {model.family} model can see; "
                             "use masked_lm or masked_lm_nsp")
        if kind != "decoder":
            raise LmlabError(f"objective: causal_lm trains a decoder, and a {model.family} model is a {kind}")
        return cls(shards, settings.batch_size, settings.block_size, settings.seed, settings.eval_tokens,
                   settings.grad_accum)

    def training_batch(self, step: int, micro_step: int) -> Batch:
        # The step's whole draw is repeated for each micro-step (the batch is a pure function of the step),
        # then sliced: reading the windows costs far less than the forward and backward over them.
        generator = batch_generator(self.seed, step, 0)
        inputs, targets = self.shards.sample_batch("train", self.batch_size * self.grad_accum, self.block_size,
                                                   generator)
        rows = slice(micro_step * self.batch_size, (micro_step + 1) * self.batch_size)
        return {"input_ids": inputs[rows], "labels": targets[rows]}

    def evaluation_note(self) -> str:
        targets = _targets_of_split(self.shards, self.eval_targets, self.eval_tokens)
        return (f"per token: {targets}, document ends included, the split read as one stream in consecutive "
                f"windows of {self.block_size} tokens, each from its start (a window runs across document ends, "
                "and its first prediction sees one token)")

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]:
        """Validation windows: the whole split, or `max_tokens` targets' worth spread evenly over it."""
        for inputs, targets in self.shards.iter_windows("val", self.block_size, self.batch_size, max_tokens):
            yield {"input_ids": inputs, "labels": targets}


class StreamingCausalLM(Objective):
    """Next-token prediction on the text in order, for truncated back-propagation through time.

    The split of N tokens is cut into B = batch_size contiguous streams of L = (N - 1) // B tokens,
    one per batch row (the "batchify" layout of PyTorch's word_language_model), and window w of an
    epoch is the next T = block_size tokens of every stream:

        split   | stream 0 ........ | stream 1 ........ | ... | stream B-1 ...... |
        row b, window w:  inputs  tokens[b*L + w*T     : b*L + (w+1)*T    ]
                          targets tokens[b*L + w*T + 1 : b*L + (w+1)*T + 1]

    So row b of window w + 1 is the text right after row b of window w, and the model's final state
    after one window is the right state to start the next from. The objective carries it across
    (`loss` keeps each window's final state for the next, and checkpoints save it), cut from the
    autograd graph: the loss of a window back-propagates through its own T steps only
    (the truncation), yet the forward values are those of one long pass over the stream.

    The position is the step: micro-step m of optimizer step s reads window ``s * grad_accum + m``
    (consecutive windows, each back-propagated on its own, gradients summed). An epoch is the
    W = L // T full windows of each stream (a stream's last L mod T tokens are skipped); then the
    streams start over, and the state is reset to zero there. Only windows are read from the
    memory-mapped split, never the whole of it.
    """

    def __init__(self, shards: TokenShards, batch_size: int, block_size: int, grad_accum: int = 1,
                 eval_tokens: int | None = None):
        self.shards, self.batch_size, self.block_size, self.grad_accum = shards, batch_size, block_size, grad_accum
        self.eval_tokens = eval_tokens
        self.carried: CarriedState | None = None  # the state the last training window ended in
        self.continues = False  # whether the batch last drawn continues the window before it
        self.drawn = False  # whether that batch's loss is still to be taken (once: it moves the state on)
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

    @classmethod
    def build(cls, model: nn.Module, shards: TokenShards, settings: ObjectiveSettings) -> StreamingCausalLM:
        if not getattr(model, "carries_state", False):
            raise LmlabError(f"objective: causal_lm_stream carries a recurrent state from window to window, and a "
                             f"{model.family} model has none; use a model that carries one, or use causal_lm")
        return cls(shards, settings.batch_size, settings.block_size, settings.grad_accum, settings.eval_tokens)

    def training_batch(self, step: int, micro_step: int) -> Batch:
        self.continues, self.drawn = not self.starts_stream(step, micro_step), True
        T = self.block_size
        starts = np.arange(self.batch_size) * self.stream_length + self.window(step, micro_step) * T  # (B,)
        rows = starts[:, None] + np.arange(T + 1)  # (B, T+1) indices into the split
        windows = torch.from_numpy(self.shards.tokens("train")[rows].astype(np.int64))
        return {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}

    def starts_stream(self, step: int, micro_step: int) -> bool:
        """True at the first window of an epoch, where the carried state must be reset."""
        return self.window(step, micro_step) == 0

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        if not self.drawn:
            raise LmlabError("objective: causal_lm_stream takes each window's loss once, since it carries the "
                             "state on from it; it does not combine with adversarial training")
        self.drawn = False
        out = model(**batch, cache=self.carried if self.continues else None)
        self.carried = out.cache
        self.carried.detach_()  # the next window starts from these values, but back-propagates no further
        return out.loss

    def state(self) -> dict[str, Tensor]:
        return self.carried.tensors() if self.carried is not None else {}

    def load_state(self, tensors: dict[str, Tensor], model: nn.Module, device: torch.device) -> None:
        if tensors:
            self.carried = model.new_cache(self.batch_size, self.block_size)
            self.carried.load_tensors({name: t.to(device) for name, t in tensors.items()})

    def validation_loss(self, model: nn.Module, device: torch.device) -> float:
        """Token-weighted mean loss over the validation streams, the state carried through them."""
        total, count, carried = 0.0, 0, None
        with evaluating(model):
            for batch in self.eval_batches(self.eval_tokens):
                out = model(**on_device(batch, device), cache=carried)
                carried = out.cache
                targets = batch["labels"].numel()
                total += float(out.loss) * targets
                count += targets
        self.eval_targets = count
        return total / count

    def evaluation_note(self) -> str:
        targets = _targets_of_split(self.shards, self.eval_targets, self.eval_tokens)
        streams = min(self.batch_size, self.shards.num_tokens("val") - 1)
        return (f"per token: {targets}, document ends included, the split read as {streams} streams in windows of "
                f"{self.block_size} tokens, the state carried from one window to the next")

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]:
        """The validation split read as streams, window after window, for `validation_loss` to carry the
        state through: the perplexity an LSTM language model is reported with.

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
