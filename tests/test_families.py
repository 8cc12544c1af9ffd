"""What every causal language-model family promises, checked once for all of them.

GPT, the Bengio MLP and the RNN/LSTM/GRU share one interface: logits for every position and the
loss on aligned labels, a generation cache whose step-by-step logits equal a full forward, greedy
generation through `lmlab.generate`, the safetensors + JSON checkpoint, and the one training loop.
A new family joins by adding a line to FAMILY_SPECS.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_train_overrides

from lmlab.config import load_config
from lmlab.generate import GenerationParams, generate_ids
from lmlab.models import load_model, model_from_config, save_model
from lmlab.train.loop import TrainConfig, train

VOCAB = 37
FAMILY_SPECS = {  # tiny configs, and a learning rate at which 30 steps clearly learn
    "gpt": ({"family": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 32}, 0.01),
    "mlp": ({"family": "mlp", "context": 3, "n_embd": 8, "hidden": 16, "block_size": 32}, 0.01),
    "rnn": ({"family": "rnn", "cell": "rnn", "n_embd": 32, "hidden": 32, "n_layer": 1, "block_size": 32}, 0.03),
    "lstm": ({"family": "rnn", "cell": "lstm", "n_embd": 32, "hidden": 32, "n_layer": 1, "block_size": 32}, 0.03),
    "gru": ({"family": "rnn", "cell": "gru", "n_embd": 32, "hidden": 32, "n_layer": 1, "block_size": 32}, 0.03),
}
pytestmark = pytest.mark.parametrize("name", FAMILY_SPECS)


def tiny(name: str, seed: int = 0, vocab_size: int = VOCAB) -> torch.nn.Module:
    spec = dict(FAMILY_SPECS[name][0])
    torch.manual_seed(seed)
    return model_from_config(spec.pop("family"), {**spec, "vocab_size": vocab_size}).eval()


def test_logits_and_loss_on_unshifted_labels(name):
    model = tiny(name)
    ids, labels = torch.randint(0, VOCAB, (2, 9)), torch.randint(0, VOCAB, (2, 9))
    labels[1, :3] = -100
    out = model(ids, labels=labels)
    assert out.logits.shape == (2, 9, VOCAB)
    kept = labels != -100
    assert torch.allclose(out.loss, F.cross_entropy(out.logits[kept], labels[kept]), atol=1e-6)
    assert model(ids, last_token_only=True).logits.shape == (2, 1, VOCAB)


def test_logits_at_gives_the_chosen_positions_logits_in_row_major_order(name):
    model = tiny(name)
    ids = torch.randint(0, VOCAB, (3, 8))
    chosen = torch.rand(3, 8) < 0.4
    chosen[1, 0] = chosen[2, 7] = True
    picked = model(ids, logits_at=chosen).logits
    assert picked.shape == (int(chosen.sum()), VOCAB)
    assert torch.allclose(picked, model(ids).logits[chosen], atol=1e-5)
    with pytest.raises(ValueError, match="labels need the logits of every position"):
        model(ids, labels=ids, logits_at=chosen)


def test_cached_steps_equal_the_full_forward(name):
    model = tiny(name)
    ids = torch.randint(0, VOCAB, (2, 11))
    full = model(ids).logits
    cache = model.new_cache(2, 11)
    pieces = [model(ids[:, :4], cache=cache).logits]
    pieces += [model(ids[:, t : t + 1], cache=cache, last_token_only=True).logits for t in range(4, 11)]
    assert cache.length == 11
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_greedy_generation_matches_argmax_of_full_forwards(name):
    model = tiny(name)
    prompts = [[3, 4, 5, 6, 7], [9, 2]]  # uneven: the batch is left-padded
    new = generate_ids(model, prompts, GenerationParams(max_new_tokens=6, temperature=0))
    for prompt, tokens in zip(prompts, new, strict=True):
        ids = list(prompt)
        for _ in range(6):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        assert tokens == ids[len(prompt) :]


def test_save_load_round_trip(name, tmp_path):
    model = tiny(name)
    save_model(model, tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["family"] == FAMILY_SPECS[name][0]["family"]
    loaded = load_model(tmp_path)
    ids = torch.randint(0, VOCAB, (2, 7))
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_the_shared_training_loop_lowers_validation_loss(name, packed_dir, tmp_path):
    spec, lr = FAMILY_SPECS[name]
    run = tmp_path / "run"
    overrides = [o for o in tiny_train_overrides(packed_dir, run, steps=30) if not o.startswith("model=")]
    model = "model={" + ", ".join(f"{k}: {v}" for k, v in spec.items()) + "}"
    train(load_config(TrainConfig, None, [*overrides, model, f"optimizer.lr={lr}", "train.checkpoint_every=30"]))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert val[-1] < val[0] - 0.5 and val[-1] < math.log(200)
    assert type(load_model(run)) is type(tiny(name, vocab_size=200))
