"""The optimizer and the learning-rate schedule.

AdamW applies weight decay *decoupled* from the gradient step (Loshchilov & Hutter), and only to the
matrices that do the work: biases, LayerNorm gains and other 1-D parameters are left undecayed, as in
GPT-2 and nanoGPT, because shrinking a gain towards zero is not regularisation but damage.

Explicit L1 and L2 penalties are offered as well, added to the loss, so a learner can compare them
with decoupled decay on the same run.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from lmlab.config import Config

Beta = Annotated[float, Field(ge=0.0, lt=1.0)]  # a moment's decay: 1 would never forget its start


class OptimizerConfig(Config):
    lr: float = Field(3e-4, ge=0.0, description="the peak learning rate; 0 runs the loop with the weights held "
                      "still, to measure what a fixed model scores on the training batches")
    weight_decay: float = Field(0.1, ge=0.0)
    betas: tuple[Beta, Beta] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0.0)
    grad_clip: float | None = Field(1.0, gt=0.0, description="the largest gradient norm; None: no clipping")
    l1: float = Field(0.0, ge=0.0, description="added to the loss: l1 * sum |w| over the decayed matrices")
    l2: float = Field(0.0, ge=0.0, description="added to the loss: l2 * sum w^2 over the decayed matrices")


class ScheduleConfig(Config):
    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0, description="steps of linear warmup (a shorter run stops before the peak)")
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0, description="the last learning rate as a share of lr")


def parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split trainable parameters into (decayed, not decayed): matrices decay, vectors do not."""
    decayed: list[nn.Parameter] = []
    undecayed: list[nn.Parameter] = []
    seen: set[int] = set()
    for param in model.parameters():
        if not param.requires_grad or id(param) in seen:  # tied weights appear once
            continue
        seen.add(id(param))
        (decayed if param.dim() >= 2 else undecayed).append(param)
    return decayed, undecayed


def build_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.AdamW:
    decayed, undecayed = parameter_groups(model)
    groups = [
        {"params": decayed, "weight_decay": cfg.weight_decay},
        {"params": undecayed, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def penalty(model: nn.Module, cfg: OptimizerConfig) -> torch.Tensor | None:
    """The explicit L1/L2 penalty on the decayed parameters, or None when both are off."""
    if cfg.l1 == 0 and cfg.l2 == 0:
        return None
    decayed, _ = parameter_groups(model)
    total = torch.zeros((), device=decayed[0].device)
    for param in decayed:
        if cfg.l1:
            total = total + cfg.l1 * param.abs().sum()
        if cfg.l2:
            total = total + cfg.l2 * param.pow(2).sum()
    return total


def lr_at(step: int, max_steps: int, base_lr: float, cfg: ScheduleConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then the chosen decay."""
    if step < cfg.warmup_steps:
        return base_lr * (step + 1) / cfg.warmup_steps
    if cfg.kind == "constant":
        return base_lr
    decay_steps = max(1, max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    min_lr = base_lr * cfg.min_lr_ratio
    if cfg.kind == "linear":
        return base_lr - (base_lr - min_lr) * progress
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))
