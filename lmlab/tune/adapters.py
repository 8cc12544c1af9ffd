"""Bottleneck adapters (Houlsby et al., 2019): a small trainable detour inside every frozen block.

Each adapter sits on the output of a sublayer (attention, feed-forward), before that output joins
the residual stream:

    sublayer output h ──> h + up(GELU(down(h)))        down: d -> m, up: m -> d, m << d

``up`` starts at zero, so a freshly adapted model computes exactly what the pretrained one did, and
training moves it away only as far as the task needs. With two adapters per block and m = 64 on a
768-wide BERT, about 2% of the weights train; the backbone's LayerNorms train too, as in the paper.

The adapters find their places by module name, so they fit any lmlab family: ``attn.c_proj`` and
``mlp.c_proj`` in a GPT, ``attention.output.dense`` and ``output.dense`` in a BERT.
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from lmlab.config import Config
from lmlab.errors import LmlabError

DEFAULT_TARGETS = ["attn.c_proj", "mlp.c_proj", "attention.output.dense", "output.dense"]


class AdapterConfig(Config):
    size: int = Field(64, ge=1, description="the bottleneck width m")
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS),
                                      description="linear layers (by name suffix) whose output gets an adapter")
    train_layer_norms: bool = True


class Adapter(nn.Module):
    def __init__(self, width: int, size: int):
        super().__init__()
        self.down = nn.Linear(width, size)
        self.up = nn.Linear(size, width)
        nn.init.normal_(self.down.weight, std=1e-3)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)  # the identity at the start
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(F.gelu(self.down(h)))


class Adapted(nn.Module):
    """A frozen linear layer followed by its adapter."""

    def __init__(self, layer: nn.Linear, size: int):
        super().__init__()
        self.layer = layer
        self.adapter = Adapter(layer.out_features, size)

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter(self.layer(x))


def _named_like(name: str, targets: list[str]) -> bool:
    return any(name == target or name.endswith("." + target) for target in targets)


def apply_adapters(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    """Freeze `model` and add an adapter after each target layer; returns the same model."""
    for param in model.parameters():
        param.requires_grad_(False)
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and _named_like(name, cfg.target_modules)]
    if not targets:
        raise LmlabError(f"adapters.target_modules: no linear layer of this model is named like {cfg.target_modules}")
    for name, layer in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Adapted(layer, cfg.size).to(layer.weight.device))
    if cfg.train_layer_norms:
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                for param in module.parameters():
                    param.requires_grad_(True)
    return model
