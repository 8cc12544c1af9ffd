"""RNN, LSTM and GRU language models: reference parity, causality, state, caching, saving, training."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from lmlab.errors import LmlabError
from lmlab.models import load_model, model_from_config, save_model
from lmlab.models.rnn import RNNConfig, RNNLanguageModel

CELLS = ["rnn", "lstm", "gru"]
TINY = dict(vocab_size=41, block_size=32, n_embd=16, hidden=16, n_layer=2)


def tiny_rnn(cell: str = "lstm", seed: int = 0, **overrides) -> RNNLanguageModel:
    torch.manual_seed(seed)
    return RNNLanguageModel(RNNConfig(cell=cell, **{**TINY, **overrides})).eval()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("tied", [True, False])
def test_matches_pytorchs_word_language_model(cell, tied):
    """Rebuilt from torch modules as PyTorch's example does (time-major), fed this model's weights."""
    model = tiny_rnn(cell, tie_embeddings=tied, hidden=16 if tied else 24)
    encoder, decoder = nn.Embedding(41, 16), nn.Linear(16 if tied else 24, 41)
    rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](16, 16 if tied else 24, 2)
    reference = nn.ModuleDict(dict(encoder=encoder, rnn=rnn, decoder=decoder))
    reference.load_state_dict(model.state_dict())
    ids = torch.randint(0, 41, (2, 9))
    output, _ = rnn(encoder(ids.T))  # (T, B, hidden)
    expected = decoder(output).transpose(0, 1)
    assert torch.allclose(model(ids).logits, expected, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_is_causal(cell):
    model = tiny_rnn(cell)
    ids = torch.randint(0, 40, (1, 12))
    changed = ids.clone()
    changed[0, 7:] += 1
    a, b = model(ids).logits, model(changed).logits
    assert torch.equal(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("cell", CELLS)
def test_left_padding_leaves_the_state_untouched(cell):
    model = tiny_rnn(cell)
    short, long = torch.randint(0, 41, (1, 5)), torch.randint(0, 41, (1, 8))
    batch = torch.cat([torch.cat([torch.randint(0, 41, (1, 3)), short], dim=1), long])
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, :3] = 0
    cache = model.new_cache(2, 12)
    logits = model(batch, attention_mask=mask, cache=cache).logits
    assert torch.allclose(logits[0, 3:], model(short).logits[0], atol=1e-5)
    assert torch.allclose(logits[1], model(long).logits[0], atol=1e-5)
    # The next step continues each row from its own state.
    step = torch.tensor([[5], [6]])
    after = model(step, attention_mask=torch.ones(2, 9, dtype=torch.long), cache=cache).logits[:, -1]
    assert torch.allclose(after[0], model(torch.cat([short, step[:1]], 1)).logits[0, -1], atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_carried_across_windows_equals_one_long_forward(cell):
    """What truncated back-propagation through time relies on: window 2 picks up where window 1 ended."""
    model = tiny_rnn(cell).train()  # dropout is 0: training mode changes nothing but autograd
    ids = torch.randint(0, 41, (2, 12))
    whole = model(ids).logits
    first = model(ids[:, :6])
    first.cache.detach_()
    second = model(ids[:, 6:], cache=first.cache, labels=ids[:, 6:])
    assert torch.allclose(torch.cat([first.logits, second.logits], 1), whole, atol=1e-5)
    second.loss.backward()  # reaches back only to the boundary, so the first graph is not needed
    assert model.encoder.weight.grad is not None


@pytest.mark.parametrize("cell", CELLS)
def test_state_survives_a_round_trip_through_tensors(cell):
    """How a training checkpoint keeps the carried state: named tensors, loaded into a fresh cache."""
    model = tiny_rnn(cell)
    ids = torch.randint(0, 41, (2, 10))
    first = model(ids[:, :6])
    saved = first.cache.tensors()
    assert sorted(saved) == (["c", "h"] if cell == "lstm" else ["h"])
    assert all(t.shape == (2, 2, 16) for t in saved.values())
    restored = model.new_cache(2, 10)
    restored.load_tensors({name: t.clone() for name, t in saved.items()})
    assert torch.equal(model(ids[:, 6:], cache=restored).logits, model(ids[:, 6:], cache=first.cache).logits)
    empty = model.new_cache(2, 10)
    empty.load_tensors({})
    assert empty.state is None and empty.tensors() == {}
    with pytest.raises(LmlabError, match="not c"):
        empty.load_tensors({"c": saved["h"]})


def test_tied_embeddings_with_a_projection_are_stored_once(tmp_path):
    model = tiny_rnn("lstm", hidden=24)
    assert model.decoder.weight is model.encoder.weight and model.proj.weight.shape == (16, 24)
    save_model(model, tmp_path)
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert "encoder.weight" in stored and "decoder.weight" not in stored
    assert model.num_parameters() == sum(tensor.numel() for tensor in stored.values())
    loaded = load_model(tmp_path)
    assert loaded.decoder.weight is loaded.encoder.weight
    ids = torch.randint(0, 41, (2, 6))
    assert torch.equal(loaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("cell", CELLS)
def test_save_load_round_trip(tmp_path, cell):
    model = tiny_rnn(cell, tie_embeddings=False, dropout=0.2)
    save_model(model, tmp_path)
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["family"] == "rnn" and spec["config"]["cell"] == cell
    loaded = load_model(tmp_path)
    ids = torch.randint(0, 41, (2, 7))
    assert loaded.config == model.config and torch.equal(loaded(ids).logits, model(ids).logits)


def test_bad_config_names_the_field():
    with pytest.raises(LmlabError, match="cell must be one of rnn, lstm, gru"):
        model_from_config("rnn", {"cell": "transformer"})
    with pytest.raises(LmlabError, match="n_layer"):
        model_from_config("rnn", {"n_layer": 0})
