"""Weight initialisation, one set of schemes for every neural family: a family's config names one (``init``).

    gpt2     weights and embeddings N(0, 0.02), biases 0; the projections that write onto a residual
             stream N(0, 0.02 / sqrt(2 n_layer)), since each block adds two of them and the stream's
             variance would otherwise grow with depth (Radford et al., 2019)
    normal   weights and embeddings N(0, 0.02), biases 0, no scaling (BERT's)
    xavier   weights and embeddings Glorot-uniform U(-a, a), a = sqrt(6 / (fan_in + fan_out)), biases 0
             (Glorot & Bengio, 2010): the variance of activations and gradients kept equal across layers
    uniform  embeddings and the output layer U(-0.1, 0.1), the output bias 0; every other layer keeps
             PyTorch's own initialisation (PyTorch's word_language_model)
    torch    every layer keeps PyTorch's own initialisation (Kaiming-uniform linears, N(0, 1) embeddings)

"Weights" are those of linear layers and of recurrent cells (each cell's matrices); LayerNorm starts
as the identity under every scheme, and an embedding's padding row is zero under every scheme.
Each family keeps the scheme it always had as its default, so existing runs start from the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from torch import Tensor, nn

from lmlab.errors import LmlabError

INIT_SCHEMES = ("gpt2", "normal", "xavier", "uniform", "torch")
STD = 0.02  # GPT-2's and BERT's standard deviation
UNIFORM_RANGE = 0.1  # word_language_model's


def check_scheme(scheme: str) -> None:
    if scheme not in INIT_SCHEMES:
        raise LmlabError(f"init {scheme!r} is not a scheme; choose one of {', '.join(INIT_SCHEMES)}")


def initialise(model: nn.Module, scheme: str, *, n_layer: int = 1, residual: Iterable[nn.Linear] = (),
               output: nn.Linear | None = None) -> None:
    """Initialise `model`'s weights by `scheme`, in place.

    `residual` are the projections onto a residual stream (scaled under gpt2), `output` the layer that
    gives the logits (the uniform scheme's second matrix; skipped when tied to an embedding).
    """
    check_scheme(scheme)
    if scheme == "uniform":
        embeddings = [module for module in model.modules() if isinstance(module, nn.Embedding)]
        for module in embeddings:
            nn.init.uniform_(module.weight, -UNIFORM_RANGE, UNIFORM_RANGE)
            _zero_padding(module)
        if output is not None:
            if output.bias is not None:
                nn.init.zeros_(output.bias)
            if all(output.weight is not module.weight for module in embeddings):
                nn.init.uniform_(output.weight, -UNIFORM_RANGE, UNIFORM_RANGE)
    elif scheme != "torch":
        model.apply(_normal if scheme in ("gpt2", "normal") else _xavier)
        if scheme == "gpt2":
            for module in residual:
                nn.init.normal_(module.weight, mean=0.0, std=STD / math.sqrt(2 * n_layer))


def _normal(module: nn.Module) -> None:
    _each_layer(module, lambda weight: nn.init.normal_(weight, mean=0.0, std=STD))


def _xavier(module: nn.Module) -> None:
    _each_layer(module, nn.init.xavier_uniform_)


def _each_layer(module: nn.Module, init_weight: Callable[[Tensor], object]) -> None:
    """Apply `init_weight` to the weight matrices of one linear, embedding or recurrent layer; biases to 0."""
    if isinstance(module, nn.Linear):
        init_weight(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        init_weight(module.weight)
        _zero_padding(module)
    elif isinstance(module, nn.RNNBase):
        for name, param in module.named_parameters(recurse=False):
            if name.startswith("weight"):
                init_weight(param)
            else:
                nn.init.zeros_(param)


def _zero_padding(module: nn.Embedding) -> None:
    if module.padding_idx is not None:
        nn.init.zeros_(module.weight[module.padding_idx])
