"""The GPT model and lmlab's model format (model.safetensors + model.json)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from lmlab.cli import main
from lmlab.errors import LmlabError
from lmlab.models import (
    FAMILIES,
    LMOutput,
    load_model,
    model_from_config,
    read_safetensors,
    save_model,
)
from lmlab.models.gpt import GPT, GPTConfig

TINY = dict(vocab_size=61, block_size=32, n_layer=2, n_head=4, n_embd=32)


def tiny_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides})).eval()


def test_forward_shapes_and_unshifted_labels_loss():
    model = tiny_gpt()
    ids = torch.randint(0, 61, (3, 10))
    labels = torch.randint(0, 61, (3, 10))
    labels[0, :4] = -100
    out = model(ids, labels=labels)
    assert isinstance(out, LMOutput) and out.logits.shape == (3, 10, 61) and out.cache is None
    # labels[:, t] is the target of position t itself: no shift happens inside the model.
    log_probs = out.logits.log_softmax(-1)
    kept = labels != -100
    expected = -log_probs[kept].gather(1, labels[kept][:, None]).mean()
    assert out.loss.dtype == torch.float32
    assert torch.allclose(out.loss, expected, atol=1e-6)
    # Fresh GPT-2 initialisation predicts nearly uniformly.
    assert abs(out.loss.item() - math.log(61)) < 0.2


def test_attention_is_causal():
    model = tiny_gpt()
    ids = torch.randint(0, 61, (1, 12))
    changed = ids.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 61
    a, b = model(ids).logits, model(changed).logits
    assert torch.equal(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_left_padded_rows_match_unpadded():
    model = tiny_gpt()
    short, long = torch.randint(0, 61, (1, 5)), torch.randint(0, 61, (1, 9))
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, :4] = 0
    logits = model(batch, attention_mask=mask).logits
    assert torch.allclose(logits[0, 4:], model(short).logits[0], atol=1e-5)
    assert torch.allclose(logits[1], model(long).logits[0], atol=1e-5)
    assert torch.isfinite(logits).all()  # padding rows too: NaN there would spread through the cache


@pytest.mark.parametrize("padded", [False, True])
def test_kv_cache_matches_full_forward(padded):
    model = tiny_gpt()
    ids = torch.randint(0, 61, (2, 14))
    mask = torch.ones(2, 14, dtype=torch.long)
    if padded:
        mask[1, :3] = 0
    full = model(ids, attention_mask=mask if padded else None).logits
    cache = model.new_cache(2, 14)
    pieces = []
    # A prompt, a chunk of several tokens after it, then one token at a time.
    for start, end in [(0, 6), (6, 9), *[(t, t + 1) for t in range(9, 14)]]:
        out = model(ids[:, start:end], attention_mask=mask[:, :end] if padded else None, cache=cache)
        pieces.append(out.logits)
    assert cache.length == 14 and cache.keys[0].shape == (2, 4, 14, 8)
    stepped = torch.cat(pieces, dim=1)
    rows = slice(None) if not padded else (mask.bool())
    assert torch.allclose(stepped[rows], full[rows], atol=1e-5)
    last = model(ids, attention_mask=mask if padded else None, last_token_only=True).logits
    assert last.shape == (2, 1, 61) and torch.allclose(last[:, 0], full[:, -1], atol=1e-6)


def test_context_limits_are_errors():
    model = tiny_gpt()
    with pytest.raises(LmlabError, match="context of 32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(LmlabError, match="context of 32"):
        model.new_cache(1, 40)
    with pytest.raises(LmlabError, match="divisible"):
        GPT(GPTConfig(n_embd=30, n_head=4))


def test_tied_embeddings_and_gpt2_initialisation():
    model = tiny_gpt(n_layer=8, n_embd=128, n_head=4)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.transformer.h[0].attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual_std = 0.02 / math.sqrt(2 * 8)
    for block in model.transformer.h:
        assert block.attn.c_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
        assert block.mlp.c_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
        assert torch.all(block.attn.c_attn.bias == 0)


def test_parameter_count_and_flops_follow_nanogpt():
    V, P, L, d = 61, 32, 2, 32
    model = tiny_gpt()
    per_block = 12 * d * d + 13 * d  # qkv 3d^2+3d, proj d^2+d, mlp 8d^2+5d, two LayerNorms 4d
    total = V * d + P * d + L * per_block + 2 * d  # lm_head is wte, counted once; ln_f
    assert model.num_parameters(non_embedding=False) == total
    assert model.num_parameters() == total - P * d
    assert model.flops_per_token(32) == 6 * (total - P * d) + 12 * L * d * 32
    no_bias = tiny_gpt(bias=False)
    assert no_bias.num_parameters(non_embedding=False) == V * d + P * d + L * 12 * d * d + L * 2 * d + d


def test_dropout_only_while_training():
    model = tiny_gpt(dropout=0.3)
    ids = torch.randint(0, 61, (2, 8))
    assert torch.equal(model(ids).logits, model(ids).logits)
    model.train()
    assert not torch.equal(model(ids).logits, model(ids).logits)


def test_bfloat16_autocast_on_cpu_with_cache():
    model = tiny_gpt()
    ids = torch.randint(0, 61, (2, 6))
    reference = model(ids).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cache = model.new_cache(2, 8)
        out = model(ids, labels=ids, cache=cache)
        step = model(ids[:, :1], cache=cache)
    assert cache.keys[0].dtype == torch.bfloat16
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert torch.allclose(out.logits.float(), reference, atol=0.05)
    assert step.logits.shape == (2, 1, 61)


def test_training_step_reduces_loss():
    model = tiny_gpt().train()
    ids = torch.randint(0, 61, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(ids[:, :-1], labels=ids[:, 1:]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


# ---- the model format ----------------------------------------------------------------------------

def test_save_and_load_roundtrip(tmp_path):
    model = tiny_gpt(bias=False, layer_norm_eps=1e-6)
    save_model(model, tmp_path / "run")
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert spec["family"] == "gpt"
    assert spec["config"] == {**TINY, "dropout": 0.0, "bias": False, "layer_norm_eps": 1e-6, "init": "gpt2"}
    stored = load_file(tmp_path / "run" / "model.safetensors")
    assert "transformer.wte.weight" in stored and "lm_head.weight" not in stored  # tied: stored once
    loaded = load_model(tmp_path / "run")
    assert isinstance(loaded, GPT) and not loaded.training
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    ids = torch.randint(0, 61, (2, 9))
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert not list((tmp_path / "run").glob(".*"))  # no temporary files left behind


def test_registry_builds_families():
    assert FAMILIES["gpt"] is GPT
    model = model_from_config("gpt", {"n_layer": 1, "n_head": 2, "n_embd": 8, "vocab_size": 10})
    assert model.config == GPTConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=10)


@pytest.mark.parametrize(
    ("family", "config", "message"),
    [
        ("llama9", {}, "unknown model family 'llama9'"),
        ("gpt", {"n_layers": 2}, "no config key 'n_layers'"),
        ("gpt", {"n_layer": "2"}, "n_layer must be int"),
        ("gpt", {"bias": 1}, "bias must be bool"),
        ("gpt", {"n_head": 0}, "n_head must be at least 1"),
    ],
)
def test_model_config_mistakes(family, config, message):
    with pytest.raises(LmlabError, match=message):
        model_from_config(family, config)


def test_an_unknown_family_is_named_beside_every_registered_one(capsys, tmp_path):
    """Issue 11: the list left out ngram (and word2vec) when it was written by hand."""
    with pytest.raises(LmlabError) as refused:
        model_from_config("llama9", {})
    known = str(refused.value).split("(known: ", 1)[1].rstrip(")").split(", ")
    assert sorted(known) == sorted(FAMILIES) and {"ngram", "word2vec"} <= set(known)
    assert main(["train", "data=somewhere", "model.family=llama9", f"run_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and all(name in err for name in FAMILIES)
    assert not (tmp_path / "r").exists()
    # The list includes what `lmlab tune` makes; training one from scratch says where it comes from.
    assert main(["train", "data=somewhere", "model.family=tuned", f"run_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert "made by lmlab tune base=RUN" in err and err.count("\n") == 1 and not (tmp_path / "r").exists()


@pytest.fixture
def saved(tmp_path):
    save_model(tiny_gpt(), tmp_path)
    return tmp_path


def test_missing_or_corrupt_model_json(saved):
    (saved / "model.json").write_text('{"family": "gpt",\n "config": {,}}')
    with pytest.raises(LmlabError, match=r"model\.json:2: not valid JSON"):
        load_model(saved)
    (saved / "model.json").write_text('{"family": "gpt", "config": {"n_embdd": 4}}')
    with pytest.raises(LmlabError, match=r"model\.json: gpt has no config key 'n_embdd'"):
        load_model(saved)
    (saved / "model.json").write_text('{"config": {}}')
    with pytest.raises(LmlabError, match="family"):
        load_model(saved)
    (saved / "model.json").unlink()
    with pytest.raises(LmlabError, match=r"model\.json: no such file"):
        load_model(saved)


def test_truncated_or_corrupt_weights(saved):
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(LmlabError, match=r"model\.safetensors: not a readable safetensors file"):
        load_model(saved)
    weights.write_bytes(b"\x00garbage")
    with pytest.raises(LmlabError, match="truncated or corrupt"):
        read_safetensors(weights)
    weights.unlink()
    with pytest.raises(LmlabError, match=r"model\.safetensors: no such file"):
        load_model(saved)


def test_weights_that_do_not_fit_the_config(saved):
    weights = saved / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v for k, v in tensors.items() if k != "transformer.ln_f.weight"}, weights)
    with pytest.raises(LmlabError, match="missing tensor 'transformer.ln_f.weight'"):
        load_model(saved)
    save_file({**tensors, "transformer.wpe.weight": torch.zeros(16, 32)}, weights)
    with pytest.raises(LmlabError, match=r"transformer\.wpe\.weight has shape \(16, 32\)"):
        load_model(saved)
    save_file({**tensors, "extra.weight": torch.zeros(2)}, weights)
    with pytest.raises(LmlabError, match="unexpected tensor 'extra.weight'"):
        load_model(saved)


def test_cross_entropy_ignores_only_minus_100():
    model = tiny_gpt()
    ids = torch.randint(0, 61, (1, 6))
    labels = torch.full((1, 6), -100)
    labels[0, 2] = 7
    out = model(ids, labels=labels)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits[0, 2:3], torch.tensor([7])), atol=1e-6)
