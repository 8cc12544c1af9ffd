"""Hugging Face GPT-2 interop, checked against transformers itself on tiny random models."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, generate_ids
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2, import_gpt2

VOCAB = 71


def lmlab_gpt(**overrides) -> GPT:
    torch.manual_seed(0)
    settings = dict(vocab_size=VOCAB, block_size=48, n_layer=2, n_head=4, n_embd=32)
    config = GPTConfig(**{**settings, **overrides})
    model = GPT(config).eval()
    with torch.no_grad():  # non-zero biases and LayerNorm affine, so a transposition slip would show
        for name, param in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model


def load_hf(folder) -> GPT2LMHeadModel:
    model, info = GPT2LMHeadModel.from_pretrained(folder, output_loading_info=True,
                                                  attn_implementation="sdpa")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def hf_greedy(model: GPT2LMHeadModel, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
    """transformers' greedy generation on a left-padded batch, eos disabled."""
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, eos_token_id=None, pad_token_id=0)
    return out[:, width:].tolist()


@pytest.mark.parametrize("bias", [True, False])
def test_exported_model_loads_in_transformers_with_equal_logits(tmp_path, bias):
    model = lmlab_gpt(bias=bias)
    export_gpt2(model, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["activation_function"] == "gelu_new"
    assert config["n_positions"] == config["n_ctx"] == 48
    hf = load_hf(tmp_path / "hf")
    ids = torch.randint(0, VOCAB, (3, 20))
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max() <= 1e-4


def test_transformers_model_imports_with_equal_logits(tmp_path):
    torch.manual_seed(1)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=40, n_layer=3, n_head=2, n_embd=16,
                                    layer_norm_epsilon=1e-6)).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = import_gpt2(tmp_path / "hf")
    assert model.config.block_size == 40 and model.config.layer_norm_eps == 1e-6
    ids = torch.randint(0, VOCAB, (2, 30))
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max() <= 1e-4


def test_greedy_generation_identical_in_both_directions(tmp_path):
    prompts = [[5, 9, 2, 33, 7], [1, 2], [60, 61, 62, 63, 64, 65, 66]]  # different lengths: left padding
    model = lmlab_gpt()
    export_gpt2(model, tmp_path / "out")
    hf = load_hf(tmp_path / "out")
    params = GenerationParams(max_new_tokens=24, temperature=0)
    assert generate_ids(model, prompts, params) == hf_greedy(hf, prompts, 24)

    torch.manual_seed(2)
    hf_native = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=48, n_layer=2, n_head=2,
                                           n_embd=24)).eval()
    hf_native.save_pretrained(tmp_path / "in")
    imported = import_gpt2(tmp_path / "in")
    assert generate_ids(imported, prompts, params) == hf_greedy(hf_native, prompts, 24)


def test_repetition_penalty_generation_matches_transformers(tmp_path):
    model = lmlab_gpt()
    export_gpt2(model, tmp_path / "hf")
    hf = load_hf(tmp_path / "hf")
    prompt = [3, 4, 5, 3, 4]
    out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, 5, dtype=torch.long),
                      do_sample=False, max_new_tokens=20, repetition_penalty=1.5, eos_token_id=None,
                      pad_token_id=0)
    params = GenerationParams(max_new_tokens=20, temperature=0, repetition_penalty=1.5)
    assert generate_ids(model, [prompt], params) == [out[0, 5:].tolist()]


def test_left_padded_logits_match_transformers(tmp_path):
    model = lmlab_gpt()
    export_gpt2(model, tmp_path / "hf")
    hf = load_hf(tmp_path / "hf")
    ids = torch.randint(0, VOCAB, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, :5] = 0
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).logits
        theirs = hf(ids, attention_mask=mask, position_ids=positions).logits
        alone = model(ids[:1, 5:]).logits
    assert (ours[mask.bool()] - theirs[mask.bool()]).abs().max() <= 1e-4
    assert (ours[0, 5:] - alone[0]).abs().max() <= 1e-5


def test_tokenizer_is_exported_for_auto_tokenizer(tmp_path):
    corpus = ["Hello world, hello tokens.", "你好，世界！语言模型。", "The end.<|endoftext|>"] * 20
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    backend.save(str(tmp_path / "tokenizer.json"))
    model = lmlab_gpt(vocab_size=backend.get_vocab_size())
    export_gpt2(model, tmp_path / "hf", tokenizer_json=tmp_path / "tokenizer.json")

    hf_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "Hello 世界, tokens!"
    assert hf_tokenizer.encode(text) == backend.encode(text).ids
    assert hf_tokenizer.decode(backend.encode(text).ids) == text
    eos = backend.token_to_id("<|endoftext|>")
    assert hf_tokenizer.eos_token_id == eos
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["eos_token_id"] == eos
    load_hf(tmp_path / "hf")


def test_import_refuses_pickles_and_other_models(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    with pytest.raises(LmlabError, match=r"config\.json: no such file"):
        import_gpt2(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(LmlabError, match="model_type is 'bert'"):
        import_gpt2(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "activation_function": "relu"}))
    with pytest.raises(LmlabError, match="activation_function='relu' is not supported"):
        import_gpt2(folder)
    small = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8}
    (folder / "config.json").write_text(json.dumps(small))
    (folder / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(LmlabError, match="pickle that can run arbitrary code"):
        import_gpt2(folder)


def test_export_is_atomic_and_replaces_an_old_export(tmp_path):
    model = lmlab_gpt()
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "stale.bin").write_text("old")
    export_gpt2(model, tmp_path / "hf")
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]


def test_lmlab_export_and_import_round_trip_a_run_through_the_family_and_the_registry(tmp_path, capsys):
    """`lmlab export` finds GPT's exporter on the family, `lmlab import` the GPT-2 reader by model_type."""
    from lmlab.cli import main
    from lmlab.models import load_model, save_model

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(["Hello world.<|endoftext|>"] * 10, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = lmlab_gpt(vocab_size=backend.get_vocab_size())
    save_model(model, tmp_path / "run")
    backend.save(str(tmp_path / "run" / "tokenizer.json"))
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "hf")]) == 0
    assert main(["import", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    assert "GPT 2x32" in capsys.readouterr().out
    ids = torch.tensor([backend.encode("Hello world.").ids])
    with torch.no_grad():
        assert torch.allclose(load_model(tmp_path / "back")(ids).logits, model(ids).logits, atol=1e-5)
    assert main(["export", str(tmp_path / "hf"), str(tmp_path / "again")]) == 0  # an HF directory exports too
