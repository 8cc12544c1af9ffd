"""Prompt tuning: virtual tokens in front of a frozen GPT, checked against PEFT on the GPT-2 export."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from peft import PeftModel, get_peft_model
from peft import PromptTuningConfig as PeftPromptTuningConfig
from transformers import GPT2LMHeadModel

from lmlab.errors import LmlabError
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2
from lmlab.tune.params import trainable_parameters
from lmlab.tune.prompt import (
    PromptTuningConfig,
    apply_prompt_tuning,
    load_prompt_tuning,
    save_prompt_tuning,
)

VOCAB = 71


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=40, n_layer=2, n_head=2, n_embd=32)).eval()


def load_hf(folder) -> GPT2LMHeadModel:
    return GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa").eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows, the last two right-padded (the padding is past every real token, so it changes nothing)."""
    torch.manual_seed(3)
    ids = torch.randint(0, VOCAB, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 5:] = 0
    return ids, mask


def assert_equal_on_real_tokens(ours, theirs, mask, virtual: int) -> None:
    real = torch.cat([torch.ones(len(mask), virtual, dtype=torch.bool), mask.bool()], dim=1)
    assert (ours - theirs).abs()[real].max() <= 1e-4


@pytest.mark.parametrize("init", ["random", "text"])
def test_lmlab_prompt_loads_in_peft_with_equal_logits(tmp_path, init):
    backbone = tiny_gpt()
    export_gpt2(backbone, tmp_path / "hf")
    cfg = PromptTuningConfig(num_virtual_tokens=6, init=init, init_text="classify" if init == "text" else None)
    model = apply_prompt_tuning(backbone, cfg, tokenizer=CharCodes())
    with torch.no_grad():  # as if trained: away from where it started
        model.prompt_embeddings.add_(torch.randn_like(model.prompt_embeddings) * 0.1)
    save_prompt_tuning(model, tmp_path / "prompt", base_model_name_or_path=str(tmp_path / "hf"))
    written = json.loads((tmp_path / "prompt" / "adapter_config.json").read_text())
    assert written["prompt_tuning_init"] == init.upper() and written["token_dim"] == 32

    peft_model = PeftModel.from_pretrained(load_hf(tmp_path / "hf"), tmp_path / "prompt").eval()
    ids, mask = batch()
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).logits
        theirs = peft_model(input_ids=ids, attention_mask=mask).logits
        assert ours.shape == theirs.shape == (3, 6 + 12, VOCAB)
        assert_equal_on_real_tokens(ours, theirs, mask, 6)
        # The prompt matters: without it the text's logits differ.
        assert (ours[:, 6:] - backbone(ids, attention_mask=mask).logits).abs().max() > 1e-2


def test_peft_prompt_loads_into_lmlab_with_equal_logits(tmp_path):
    backbone = tiny_gpt(seed=1)
    export_gpt2(backbone, tmp_path / "hf")
    peft_model = get_peft_model(load_hf(tmp_path / "hf"),
                                PeftPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "prompt_encoder" in name:
                param.normal_(std=0.3)
    peft_model.save_pretrained(tmp_path / "prompt")

    model = load_prompt_tuning(backbone, tmp_path / "prompt")
    assert trainable_parameters(model) == tuple(peft_model.get_nb_trainable_parameters())
    ids, mask = batch()
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).logits
        theirs = peft_model.eval()(input_ids=ids, attention_mask=mask).logits
        assert_equal_on_real_tokens(ours, theirs, mask, 4)


@pytest.mark.parametrize("virtual", [1, 8, 20])
def test_trainable_parameter_counts_equal_peft(tmp_path, virtual):
    backbone = tiny_gpt()
    export_gpt2(backbone, tmp_path / "hf")
    peft_model = get_peft_model(load_hf(tmp_path / "hf"),
                                PeftPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=virtual))
    model = apply_prompt_tuning(backbone, PromptTuningConfig(num_virtual_tokens=virtual))
    assert trainable_parameters(model) == tuple(peft_model.get_nb_trainable_parameters())
    assert trainable_parameters(model)[0] == virtual * 32


class CharCodes:
    """A stand-in tokenizer: one id per character."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) % VOCAB for c in text]


def test_text_init_repeats_the_texts_embeddings():
    backbone = tiny_gpt()
    model = apply_prompt_tuning(backbone, PromptTuningConfig(num_virtual_tokens=7, init="text", init_text="abc"),
                                tokenizer=CharCodes())
    ids = torch.tensor(CharCodes().encode("abcabca"))
    assert torch.equal(model.prompt_embeddings.detach(), backbone.transformer.wte.weight[ids])
    with pytest.raises(LmlabError, match="needs the model's tokenizer"):
        apply_prompt_tuning(tiny_gpt(), PromptTuningConfig(init="text", init_text="abc"))


def test_only_the_prompt_trains_and_its_positions_have_no_loss():
    model = apply_prompt_tuning(tiny_gpt(), PromptTuningConfig(num_virtual_tokens=5))
    ids = torch.randint(0, VOCAB, (2, 10))
    labels = torch.roll(ids, -1, dims=1)
    labels[:, -1] = -100
    out = model(ids, labels=labels)
    expected = F.cross_entropy(out.logits[:, 5:].flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert [name for name, p in model.named_parameters() if p.grad is not None] == ["prompt_embeddings"]
    assert model.prompt_embeddings.grad.abs().sum() > 0


def test_features_are_the_real_tokens_hidden_states():
    model = apply_prompt_tuning(tiny_gpt(), PromptTuningConfig(num_virtual_tokens=3))
    ids, mask = batch()
    with torch.no_grad():
        hidden = model.features(ids, attention_mask=mask)
        assert hidden.shape == (3, 12, model.hidden_size)
        full = model.backbone.features(inputs_embeds=torch.cat([
            model.prompt_embeddings.expand(3, -1, -1), model.input_embeddings()(ids)], dim=1),
            attention_mask=torch.cat([torch.ones(3, 3, dtype=mask.dtype), mask], dim=1))
        assert torch.equal(hidden, full[:, 3:])
        # Token embeddings given directly (as an adversarial step does) mean the same as their ids.
        embeds = model.input_embeddings()(ids)
        assert torch.equal(model.features(inputs_embeds=embeds, attention_mask=mask), hidden)
        assert torch.equal(model(inputs_embeds=embeds, attention_mask=mask).logits,
                           model(ids, attention_mask=mask).logits)


def test_mistakes_are_named(tmp_path):
    with pytest.raises(ValueError, match="init=text needs init_text"):
        PromptTuningConfig(init="text")
    model = apply_prompt_tuning(tiny_gpt(), PromptTuningConfig(init="text", init_text="hi"), tokenizer=CharCodes())
    with pytest.raises(LmlabError, match="needs base_model_name_or_path"):
        save_prompt_tuning(model, tmp_path / "prompt")
    save_prompt_tuning(apply_prompt_tuning(tiny_gpt(), PromptTuningConfig(num_virtual_tokens=2)), tmp_path / "prompt")
    wider = GPT(GPTConfig(vocab_size=VOCAB, block_size=40, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(LmlabError, match=r"has shape \(2, 32\), expected \(2, 16\)"):
        load_prompt_tuning(wider, tmp_path / "prompt")
