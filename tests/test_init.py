"""Weight initialisation is a config choice (``model.init``): each scheme's statistics, and each family's
default giving bitwise the weights it gave before the choice existed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lmlab.models import model_from_config
from lmlab.models.init import INIT_SCHEMES

GPT = {"vocab_size": 64, "block_size": 8, "n_layer": 4, "n_head": 4, "n_embd": 256}
BERT = {"vocab_size": 64, "hidden_size": 256, "n_layer": 2, "n_head": 4, "intermediate_size": 512, "block_size": 8}
MLP = {"vocab_size": 64, "n_embd": 32, "hidden": 256, "context": 4}
RNN = {"cell": "lstm", "vocab_size": 64, "n_embd": 64, "hidden": 128, "n_layer": 2, "tie_embeddings": False}
FAMILIES = {"gpt": GPT, "bert": BERT, "mlp": MLP, "rnn": RNN}


def build(family: str, seed: int = 0, **changes) -> nn.Module:
    torch.manual_seed(seed)
    return model_from_config(family, {**FAMILIES[family], **changes})


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_gpt2_scales_the_residual_projections_by_depth():
    model = build("gpt", init="gpt2")
    block = model.transformer.h[1]
    scaled = 0.02 / math.sqrt(2 * GPT["n_layer"])
    for projection in (block.attn.c_proj, block.mlp.c_proj):  # 65k and 262k weights: std within 2%
        assert projection.weight.std().item() == pytest.approx(scaled, rel=0.02)
        assert projection.weight.mean().abs().item() < 0.05 * scaled
        assert torch.all(projection.bias == 0)
    assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.transformer.wpe.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(block.ln_1.weight == 1) and torch.all(block.ln_1.bias == 0)


def test_normal_does_not_scale():
    model = build("gpt", init="normal")
    for block in model.transformer.h:
        assert block.attn.c_proj.weight.std().item() == pytest.approx(0.02, rel=0.02)
        assert block.mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.02)


def assert_glorot(weight: torch.Tensor) -> None:
    fan_out, fan_in = weight.shape
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.99 * bound  # spread over the whole range, not a narrower one
    assert weight.var().item() == pytest.approx(bound**2 / 3, rel=0.03)  # the variance of U(-a, a)


@pytest.mark.parametrize("family", ["gpt", "bert", "mlp", "rnn"])
def test_xavier_bounds_and_variance(family):
    model = build(family, init="xavier")
    matrices = {name: p for name, p in model.named_parameters() if p.dim() == 2 and p.numel() >= 16_384}
    assert matrices
    for weight in matrices.values():
        assert_glorot(weight.detach())
    for name, param in model.named_parameters():
        if param.dim() == 1 and "bias" in name:
            assert torch.all(param == 0), name


def test_uniform_is_word_language_models_scheme():
    model = build("rnn", init="uniform")
    for weight in (model.encoder.weight, model.decoder.weight):
        assert weight.abs().max().item() <= 0.1
        assert weight.var().item() == pytest.approx(0.01 / 3, rel=0.05)
    assert torch.all(model.decoder.bias == 0)
    hidden = RNN["hidden"]  # the cells keep PyTorch's U(-1/sqrt(hidden), 1/sqrt(hidden))
    assert model.rnn.weight_hh_l0.abs().max().item() <= 1 / math.sqrt(hidden)
    assert model.rnn.weight_hh_l0.abs().max().item() > 0.99 / math.sqrt(hidden)


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_padding_rows_stay_zero_under_every_scheme(scheme):
    """BERT's [PAD] vector and the MLP's "before the text" token are zero whatever the scheme."""
    assert torch.all(build("bert", init=scheme).bert.embeddings.word_embeddings.weight[0] == 0)
    mlp = build("mlp", init=scheme)
    assert torch.all(mlp.embed.weight[mlp.pad_id] == 0)


def test_schemes_differ():
    """A scheme is not ignored: each gives a GPT different weights from the same seed."""
    built = {scheme: weights(build("gpt", init=scheme))["transformer.h.0.mlp.c_proj.weight"] for scheme in INIT_SCHEMES}
    for a in INIT_SCHEMES:
        for b in INIT_SCHEMES:
            if a < b and {a, b} != {"uniform", "torch"}:  # uniform leaves linears other than the output alone
                assert not torch.equal(built[a], built[b]), (a, b)


# The initialisation each family did before `init` existed, copied from lmlab as it was. It is applied to a
# model built with init=torch (modules constructed, nothing re-drawn), so the random numbers are drawn in
# the same order as they were then.
def _old_normal(module: nn.Module, zero_padding: bool) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if zero_padding and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])


def _old_gpt(model: nn.Module) -> None:
    model.apply(lambda module: _old_normal(module, zero_padding=False))
    for name, param in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * model.config.n_layer))


def _old_bert(model: nn.Module) -> None:
    # It initialised before tying, so the decoder drew its own matrix, then dropped it for the embeddings'.
    decoder, embeddings = model.cls.predictions.decoder, model.bert.embeddings.word_embeddings
    decoder.weight = nn.Parameter(torch.empty_like(embeddings.weight))
    model.apply(lambda module: _old_normal(module, zero_padding=True))
    decoder.weight = embeddings.weight


def _old_rnn(model: nn.Module) -> None:
    nn.init.uniform_(model.encoder.weight, -0.1, 0.1)
    nn.init.zeros_(model.decoder.bias)
    if not model.config.tie_embeddings:
        nn.init.uniform_(model.decoder.weight, -0.1, 0.1)


OLD = {"gpt": _old_gpt, "bert": _old_bert, "mlp": lambda model: None, "rnn": _old_rnn}
DEFAULTS = {"gpt": "gpt2", "bert": "normal", "mlp": "torch", "rnn": "uniform"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_default_init_is_bitwise_what_it_was(family):
    default = weights(build(family, seed=3))
    explicit = weights(build(family, seed=3, init=DEFAULTS[family]))
    old = build(family, seed=3, init="torch")
    OLD[family](old)
    for name, tensor in weights(old).items():
        assert torch.equal(default[name], tensor), name
        assert torch.equal(explicit[name], tensor), name


def test_tied_rnn_default_is_bitwise_what_it_was():
    default = weights(build("rnn", seed=4, tie_embeddings=True, hidden=96))  # a projection bridges 96 -> 64
    old = build("rnn", seed=4, tie_embeddings=True, hidden=96, init="torch")
    _old_rnn(old)
    assert all(torch.equal(default[name], tensor) for name, tensor in weights(old).items())
