"""Adversarial training on the embeddings: FGM (Miyato et al., 2017) and PGD (Madry et al., 2018).

Text is discrete, so the attack moves the token embeddings instead of the input: the direction
that raises the loss fastest is the gradient g of the loss with respect to the embedding table, and

    FGM   one step:     r = epsilon * g / ||g||                        (fast gradient method, L2)
    PGD   K steps:      r <- project_{||r|| <= epsilon}(r + alpha * g_k / ||g_k||)

Sizes are relative, since token vectors are ~0.2 long in a small GPT and ~1.5 in BERT-base: with k
tokens in the batch whose vectors average length s, epsilon = 0.03 means ||r|| = 0.03 * s * sqrt(k),
as if each of those vectors moved by 3% of its length. (The usual FGM setting for BERT, an absolute
||r|| = 1 over a batch of some 500 distinct tokens of length ~1.4, is about that.)

A training step then adds the gradient of the loss at the perturbed embeddings to the ordinary
one, and puts the table back: the model learns to keep its answer when each word's vector is
nudged the worst way within epsilon. The perturbation goes on ``model.input_embeddings().weight``,
so it wraps any model and combines with any tuning method (LoRA + FGM: the table is frozen, yet
its gradient still says where the loss rises, and the adapters learn to resist).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, get_args

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from lmlab.config import Config
from lmlab.modes import evaluating

AdversaryName = Literal["none", "fgm", "pgd"]
ADVERSARIES: tuple[str, ...] = tuple(name for name in get_args(AdversaryName) if name != "none")


class AdversarialConfig(Config):
    method: AdversaryName = "none"
    epsilon: float = Field(0.03, gt=0, description="the perturbation's size relative to the token vectors it moves")
    alpha: float = Field(0.012, gt=0, description="PGD: the size of each step, relative as epsilon")
    steps: int = Field(3, ge=1, description="PGD: the number of steps")


def _table(model: nn.Module) -> nn.Parameter:
    return model.input_embeddings().weight


def _scale(table: nn.Parameter, gradient: Tensor) -> Tensor:
    """s * sqrt(k): the norm of a perturbation that moves each of the batch's k token vectors by its length s."""
    used = gradient.norm(dim=1) > 0
    k = int(used.sum())
    return table.detach()[used].norm(dim=1).mean() * k**0.5 if k else torch.zeros((), device=table.device)


def _fresh_gradient(table: nn.Parameter, loss_of_batch: Callable[[], Tensor], scale: float) -> Tensor:
    """d loss / d table at the table's current values, leaving every ``.grad`` as it is; a frozen table
    (LoRA, adapters) is unfrozen for the call, since the attack needs its gradient all the same."""
    frozen = not table.requires_grad
    table.requires_grad_(True)
    try:
        (gradient,) = torch.autograd.grad(loss_of_batch() * scale, table)
    finally:
        table.requires_grad_(not frozen)
    return gradient


def _first_gradient(table: nn.Parameter, loss_of_batch: Callable[[], Tensor], scale: float) -> Tensor:
    # A trainable table already holds this micro-batch's gradient from the ordinary backward
    # (with grad_accum > 1, plus earlier micro-batches': the direction is what matters).
    if table.requires_grad and table.grad is not None:
        return table.grad.detach().clone()
    return _fresh_gradient(table, loss_of_batch, scale)


class FGM:
    """One perturbation along the normalised gradient; its loss's gradient is added to the step's."""

    def __init__(self, epsilon: float):
        self.epsilon = epsilon

    def backward(self, model: nn.Module, loss_of_batch: Callable[[], Tensor], scale: float) -> None:
        table = _table(model)
        gradient = _first_gradient(table, loss_of_batch, scale)
        norm = gradient.norm()
        if norm == 0 or not torch.isfinite(norm):
            return
        rows = (gradient.norm(dim=1) > 0).nonzero().squeeze(1)  # only the batch's tokens move
        original = table.detach()[rows].clone()
        shift = self.epsilon * _scale(table, gradient) * gradient[rows] / norm
        with torch.no_grad():
            table[rows] += shift
        try:
            (loss_of_batch() * scale).backward()
        finally:
            with torch.no_grad():
                table[rows] = original  # exactly as before: adding and subtracting would round


class PGD:
    """K steps of size alpha, each projected back into the epsilon ball; the loss at the last one trains."""

    def __init__(self, epsilon: float, alpha: float, steps: int):
        self.epsilon, self.alpha, self.steps = epsilon, alpha, steps

    def backward(self, model: nn.Module, loss_of_batch: Callable[[], Tensor], scale: float) -> None:
        table = _table(model)
        gradient = _first_gradient(table, loss_of_batch, scale)
        rows = (gradient.norm(dim=1) > 0).nonzero().squeeze(1)  # only the batch's tokens move
        original = table.detach()[rows].clone()
        size_of = _scale(table, gradient)
        epsilon, alpha = self.epsilon * size_of, self.alpha * size_of
        try:
            for step in range(self.steps):
                norm = gradient.norm()
                if norm == 0 or not torch.isfinite(norm):
                    break
                with torch.no_grad():
                    shift = table[rows] - original + alpha * gradient[rows] / norm
                    size = shift.norm()
                    if size > epsilon:
                        shift = shift * (epsilon / size)
                    table[rows] = original + shift
                if step < self.steps - 1:
                    gradient = _fresh_gradient(table, loss_of_batch, scale)
            (loss_of_batch() * scale).backward()  # added to the ordinary gradient already in .grad
        finally:
            with torch.no_grad():
                table[rows] = original


def build_adversary(cfg: AdversarialConfig) -> FGM | PGD | None:
    if cfg.method == "fgm":
        return FGM(cfg.epsilon)
    if cfg.method == "pgd":
        return PGD(cfg.epsilon, cfg.alpha, cfg.steps)
    return None


def attacked_logits(model: nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device,
                    epsilon: float) -> np.ndarray:
    """Label logits on inputs perturbed by FGM at `epsilon` against their true labels, batch by batch:
    how much of a model's accuracy survives the attack it may (or may not) have been trained against."""
    table = _table(model)
    logits = []
    with evaluating(model, grad=True):
        for batch in batches:
            batch = {key: value.to(device) for key, value in batch.items()}
            gradient = _fresh_gradient(table, lambda batch=batch: model(**batch).loss, 1.0)
            rows = (gradient.norm(dim=1) > 0).nonzero().squeeze(1)
            original = table.detach()[rows].clone()
            norm = gradient.norm()
            with torch.no_grad():
                if norm > 0:
                    table[rows] += epsilon * _scale(table, gradient) * gradient[rows] / norm
                inputs = {key: value for key, value in batch.items() if key != "labels"}
                logits.append(model(**inputs).logits.float().cpu())
                table[rows] = original
    return torch.cat(logits).numpy()
