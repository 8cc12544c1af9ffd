"""What the one training loop asks of an objective, and the defaults most objectives keep.

An objective owns everything that differs between ways of training; the loop (`lmlab.train.loop.fit`)
owns only the steps, the optimizer, logging and checkpoints:

    batches      training_batch(step, micro_step) -> a dict of tensors, a pure function of the step,
                 so a resumed run draws exactly the batches an uninterrupted one would have
    loss         loss(model, batch) -> a scalar tensor to back-propagate (default: model(**batch).loss;
                 a pairwise objective such as DPO computes its own from two forwards)
    evaluation   evaluate(model, device) -> {"val_loss": ..., ...}, the figures early stopping reads
    state        state() / load_state(...): what must survive a checkpoint besides the weights
                 (a recurrent state carried from window to window)
    step figures step_figures() -> {"reward": ..., "kl": ...}: what the last step's loss calls measured
                 besides the loss, logged beside it (DPO's margin, GRPO's reward and KL)

A pretraining objective built from packed shards is registered in `lmlab.train.objectives.OBJECTIVES`
with a `build(model, shards, settings)` classmethod, so ``objective: NAME`` in a train config finds it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.modes import evaluating

Batch = dict[str, Tensor]


@dataclass(frozen=True)
class ObjectiveSettings:
    """The loop settings a pretraining objective is built with."""

    batch_size: int
    block_size: int
    seed: int
    grad_accum: int = 1
    eval_tokens: int | None = None  # validation targets per evaluation; None: the whole split


def batch_generator(seed: int, step: int, micro_step: int) -> torch.Generator:
    """A generator whose state depends only on (seed, step, micro_step): the data position is the step."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + micro_step)


def on_device(batch: Batch, device: torch.device) -> Batch:
    return {key: value.to(device) for key, value in batch.items()}


class Objective:
    """Base of every objective. A subclass writes `training_batch` and, to use the default evaluation,
    `eval_batches`; it overrides `loss`, `evaluate` or the state methods where it differs."""

    eval_tokens: int | None = None  # what the default evaluation reads of `eval_batches`
    eval_targets: int = 0  # the targets the last `validation_loss` averaged over

    def evaluation_note(self) -> str | None:
        """What val_loss and val_perplexity average over, in one clause (unit, how many, what context),
        printed with the final evaluation; None where the objective has nothing to add."""
        return None

    def training_batch(self, step: int, micro_step: int) -> Batch:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        return model(**batch).loss

    def eval_batches(self, max_tokens: int | None) -> Iterator[Batch]:
        raise NotImplementedError(f"{type(self).__name__} has no validation batches; give it an evaluate()")

    def validation_loss(self, model: nn.Module, device: torch.device) -> float:
        """Token-weighted mean loss over the validation batches (tokens labelled -100 do not count)."""
        total, count = 0.0, 0
        with evaluating(model):
            for batch in self.eval_batches(self.eval_tokens):
                batch = on_device(batch, device)
                targets = int((batch["labels"] != -100).sum())
                total += float(model(**batch).loss) * targets
                count += targets
        if count == 0:
            raise LmlabError("the validation split has no complete window to evaluate on")
        self.eval_targets = count
        return total / count

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        val_loss = self.validation_loss(model, device)
        return {"val_loss": val_loss, "val_perplexity": math.exp(val_loss)}

    def step_figures(self) -> dict[str, float]:
        """Figures of the optimizer step just taken (means over its micro-batches), logged with its loss;
        the loop calls this once per step, so an objective clears what it gathered here."""
        return {}

    def state(self) -> dict[str, Tensor]:
        """Tensors a checkpoint must keep for training to continue exactly (none by default)."""
        return {}

    def load_state(self, tensors: dict[str, Tensor], model: nn.Module, device: torch.device) -> None:
        """Restore what `state` returned, when resuming."""
