"""Bengio et al.'s (2003) MLP language model: the window, the equation, caching, saving, training."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_train_overrides

from lmlab.config import load_config
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, generate_ids
from lmlab.models import load_model, model_from_config, save_model
from lmlab.models.mlp import BengioMLP, MLPConfig
from lmlab.train.loop import TrainConfig, train

TINY = dict(vocab_size=37, block_size=32, context=3, n_embd=8, hidden=16)


def tiny_mlp(seed: int = 0, **overrides) -> BengioMLP:
    torch.manual_seed(seed)
    return BengioMLP(MLPConfig(**{**TINY, **overrides})).eval()


def test_shapes_and_unshifted_labels_loss():
    model = tiny_mlp()
    ids, labels = torch.randint(0, 37, (2, 9)), torch.randint(0, 37, (2, 9))
    labels[1, :3] = -100
    out = model(ids, labels=labels)
    assert out.logits.shape == (2, 9, 37)
    kept = labels != -100
    expected = F.cross_entropy(out.logits[kept], labels[kept])
    assert torch.allclose(out.loss, expected, atol=1e-6)
    assert model(ids, last_token_only=True).logits.shape == (2, 1, 37)


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


def test_cached_steps_equal_the_full_forward():
    model = tiny_mlp()
    ids = torch.randint(0, 37, (2, 11))
    full = model(ids).logits
    cache = model.new_cache(2, 11)
    pieces = [model(ids[:, :4], cache=cache).logits]
    pieces += [model(ids[:, t : t + 1], cache=cache, last_token_only=True).logits for t in range(4, 11)]
    assert cache.length == 11
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_greedy_generation_matches_argmax_of_full_forwards():
    model = tiny_mlp()
    prompts = [[3, 4, 5, 6, 7], [9, 2]]  # uneven: the batch is left-padded
    new = generate_ids(model, prompts, GenerationParams(max_new_tokens=6, temperature=0))
    for prompt, tokens in zip(prompts, new, strict=True):
        ids = list(prompt)
        for _ in range(6):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        assert tokens == ids[len(prompt) :]


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


def test_shared_training_loop_lowers_validation_loss(packed_dir, tmp_path):
    run = tmp_path / "run"
    overrides = [o for o in tiny_train_overrides(packed_dir, run, steps=30) if not o.startswith("model=")]
    model = "model={family: mlp, context: 4, n_embd: 16, hidden: 64, block_size: 32}"
    train(load_config(TrainConfig, None, [*overrides, model, "train.checkpoint_every=30"]))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert val[-1] < val[0] - 0.5 and val[-1] < math.log(200)
    assert isinstance(load_model(run), BengioMLP)
