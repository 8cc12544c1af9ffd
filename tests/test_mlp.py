"""Bengio et al.'s (2003) MLP language model: the window, the equation, caching, saving, training."""

from __future__ import annotations

import json

import pytest
import torch

from lmlab.errors import LmlabError
from lmlab.models import load_model, model_from_config, save_model
from lmlab.models.mlp import BengioMLP, MLPConfig

TINY = dict(vocab_size=37, block_size=32, context=3, n_embd=8, hidden=16)


def tiny_mlp(seed: int = 0, **overrides) -> BengioMLP:
    torch.manual_seed(seed)
    return BengioMLP(MLPConfig(**{**TINY, **overrides})).eval()


@pytest.mark.parametrize("direct", [True, False])
def test_logits_follow_bengios_equation(direct):
    model = tiny_mlp(direct=direct)
    ids = torch.randint(0, 37, (1, 6))
    t = 4  # a position with a full window: tokens 2, 3, 4
    x = model.embed.weight[ids[0, t - 2 : t + 1]].reshape(-1)  # concatenated, oldest first
    y = model.output.bias + model.output.weight @ torch.tanh(model.hidden.bias + model.hidden.weight @ x)
    if direct:
        y = y + model.direct.weight @ x
    else:
        assert model.direct is None
    assert torch.allclose(model(ids).logits[0, t], y, atol=1e-6)


def test_prediction_depends_only_on_the_last_context_tokens():
    model = tiny_mlp()  # context 3: position t sees tokens t-2, t-1, t
    ids = torch.randint(0, 36, (1, 12))
    t = 7
    outside = ids.clone()
    outside[0, : t - 2] += 1
    outside[0, t + 1 :] += 1
    inside = ids.clone()
    inside[0, t - 2] += 1
    base = model(ids).logits[0, t]
    assert torch.equal(model(outside).logits[0, t], base)
    assert not torch.allclose(model(inside).logits[0, t], base)


def test_positions_before_the_start_see_the_zero_padding_embedding():
    model = tiny_mlp()
    ids = torch.randint(0, 37, (1, 5))
    assert torch.equal(model.embed.weight[model.pad_id], torch.zeros(8))
    # Position 1 sees (pad, ids0, ids1): the same as a window whose first slot is a zero vector.
    x = torch.cat([torch.zeros(8), model.embed.weight[ids[0, 0]], model.embed.weight[ids[0, 1]]])
    y = model.output(torch.tanh(model.hidden(x))) + model.direct(x)
    assert torch.allclose(model(ids).logits[0, 1], y, atol=1e-6)


def test_left_padding_gives_the_unpadded_logits():
    model = tiny_mlp()
    short = torch.randint(0, 37, (1, 5))
    padded = torch.cat([torch.randint(0, 37, (1, 3)), short], dim=1)  # any ids under the padding
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    assert torch.allclose(model(padded, attention_mask=mask).logits[0, 3:], model(short).logits[0], atol=1e-6)


def test_save_load_round_trip(tmp_path):
    model = tiny_mlp(direct=False, dropout=0.1)
    save_model(model, tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["family"] == "mlp"
    loaded = load_model(tmp_path)
    assert isinstance(loaded, BengioMLP) and loaded.config == model.config
    ids = torch.randint(0, 37, (2, 7))
    assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_bad_config_names_the_field():
    with pytest.raises(LmlabError, match="context"):
        model_from_config("mlp", {"context": 0})
    with pytest.raises(LmlabError, match="hidden must be int"):
        model_from_config("mlp", {"hidden": "wide"})
