"""LoRA: the layer's formula, merging, and adapters that PEFT itself reads and writes on GPT-2."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import GPT2LMHeadModel

from lmlab.config import build_config
from lmlab.errors import LmlabError
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2
from lmlab.train.objectives import Objective
from lmlab.tune.lora import (
    LoraConfig,
    LoraLinear,
    apply_lora,
    load_lora,
    lora_layers,
    merge_lora,
    remove_lora,
    save_lora,
    unmerge_lora,
)
from lmlab.tune.params import trainable_parameters

VOCAB = 71


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()


def randomize_b(model: nn.Module) -> None:
    """B starts at zero, which would make every parity check trivially pass."""
    with torch.no_grad():
        for _, layer in lora_layers(model):
            layer.lora_B.normal_(std=0.5)


def load_hf(folder) -> GPT2LMHeadModel:
    return GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa").eval()


def test_lora_layer_computes_the_low_rank_update_on_any_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 4), nn.Linear(4, 3))
    x = torch.randn(5, 6)
    before = model(x)
    apply_lora(model, LoraConfig(r=2, alpha=6, target_modules=["0", "2"]), trainable=["3"])
    assert isinstance(model[0], LoraLinear) and isinstance(model[2], LoraLinear) and type(model[3]) is nn.Linear
    assert torch.equal(model(x), before)  # B = 0: training starts from the pretrained function
    randomize_b(model)
    layer = model[0]
    expected = x @ layer.weight.T + layer.bias + x @ layer.lora_A.T @ layer.lora_B.T * (6 / 2)
    torch.testing.assert_close(layer(x), expected)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"0.lora_A", "0.lora_B", "2.lora_A", "2.lora_B", "3.weight", "3.bias"}


def test_only_the_factors_get_gradients_and_ties_survive():
    model = tiny_gpt()
    apply_lora(model, LoraConfig(r=4, target_modules=["c_attn", "lm_head"]))
    assert model.lm_head.weight is model.transformer.wte.weight  # the tie is the same Parameter still
    ids = torch.randint(0, VOCAB, (2, 12))
    model(ids, labels=ids).loss.backward()
    got_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert got_grad == {name for name, _ in model.named_parameters() if "lora_" in name}


def test_merge_then_unmerge_restores_the_weights():
    model = tiny_gpt()
    original = {name: t.clone() for name, t in model.state_dict().items()}
    apply_lora(model, LoraConfig(r=4, alpha=16, target_modules=["c_attn", "c_proj", "c_fc"]))
    randomize_b(model)
    ids = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        adapted = model(ids).logits
        merge_lora(model)
        assert all(layer.merged for _, layer in lora_layers(model))
        assert (model(ids).logits - adapted).abs().max() <= 1e-5
        changed = model.transformer.h[0].attn.c_attn.weight
        assert (changed - original["transformer.h.0.attn.c_attn.weight"]).abs().max() > 0.1
        unmerge_lora(model)
        # Subtracting the update again rounds twice: equal within float32 rounding, not bit for bit.
        for name, tensor in model.state_dict().items():
            if "lora_" not in name:
                torch.testing.assert_close(tensor, original[name], rtol=0, atol=1e-6)
        torch.testing.assert_close(model(ids).logits, adapted, rtol=0, atol=1e-5)

        remove_lora(model, merge=True)  # a plain model that computes what the adapted one did
        assert not any(isinstance(m, LoraLinear) for m in model.modules())
        assert model.state_dict().keys() == original.keys()
        torch.testing.assert_close(model(ids).logits, adapted, rtol=0, atol=1e-5)


def test_remove_without_merge_gives_back_the_original_model():
    model = tiny_gpt()
    ids = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        before = model(ids).logits
        apply_lora(model, LoraConfig(r=2, target_modules=r"transformer\.h\.\d+\.mlp\.c_fc"))
        assert [name for name, _ in lora_layers(model)] == ["transformer.h.0.mlp.c_fc", "transformer.h.1.mlp.c_fc"]
        randomize_b(model)
        assert (model(ids).logits - before).abs().max() > 1e-3
        remove_lora(model)
        assert torch.equal(model(ids).logits, before)


LORA_SETTINGS = [
    dict(r=4, alpha=8, target_modules=["c_attn"]),
    dict(r=2, alpha=5, target_modules=["c_attn", "c_proj", "c_fc"]),
    dict(r=8, alpha=16, target_modules=r".*\.attn\.c_proj", use_rslora=True),
    dict(r=3, alpha=3, target_modules=["h.1.mlp.c_fc", "h.0.attn.c_proj"]),
]


@pytest.mark.parametrize("settings", LORA_SETTINGS)
def test_lmlab_adapter_loads_in_peft_with_equal_logits(tmp_path, settings):
    model = tiny_gpt()
    export_gpt2(model, tmp_path / "hf")
    cfg = LoraConfig(**settings)
    apply_lora(model, cfg)
    randomize_b(model)
    save_lora(model, tmp_path / "adapter", cfg, base_model_name_or_path=str(tmp_path / "hf"))
    written = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert written["peft_type"] == "LORA" and written["fan_in_fan_out"] is True

    peft_model = PeftModel.from_pretrained(load_hf(tmp_path / "hf"), tmp_path / "adapter").eval()
    assert peft_model.get_nb_trainable_parameters()[1] == trainable_parameters(model)[1]
    ids = torch.randint(0, VOCAB, (3, 20))
    with torch.no_grad():
        ours, theirs = model(ids).logits, peft_model(input_ids=ids).logits
        assert (ours - theirs).abs().max() <= 1e-4
        assert (ours - load_hf(tmp_path / "hf")(ids).logits).abs().max() > 1e-2  # the adapter matters


@pytest.mark.parametrize("settings", LORA_SETTINGS[1:3])
def test_peft_adapter_loads_into_lmlab_with_equal_logits(tmp_path, settings):
    model = tiny_gpt(seed=1)
    export_gpt2(model, tmp_path / "hf")
    peft_settings = dict(r=settings["r"], lora_alpha=settings["alpha"], target_modules=settings["target_modules"],
                         use_rslora=settings.get("use_rslora", False), fan_in_fan_out=True)
    peft_model = get_peft_model(load_hf(tmp_path / "hf"), PeftLoraConfig(**peft_settings))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    peft_model.save_pretrained(tmp_path / "adapter")

    load_lora(model, tmp_path / "adapter")
    assert trainable_parameters(model) == tuple(peft_model.get_nb_trainable_parameters())
    ids = torch.randint(0, VOCAB, (3, 20))
    with torch.no_grad():
        assert (model(ids).logits - peft_model.eval()(input_ids=ids).logits).abs().max() <= 1e-4


@pytest.mark.parametrize("settings", [
    dict(r=1, target_modules=["c_fc"]),
    dict(r=16, target_modules=["c_attn", "c_proj"]),
    dict(r=4, target_modules=r".*\.(c_attn|c_fc)"),
])
def test_trainable_parameter_counts_equal_peft(tmp_path, settings):
    model = tiny_gpt()
    export_gpt2(model, tmp_path / "hf")
    peft_config = PeftLoraConfig(r=settings["r"], target_modules=settings["target_modules"], fan_in_fan_out=True)
    peft_model = get_peft_model(load_hf(tmp_path / "hf"), peft_config)
    apply_lora(model, LoraConfig(**settings))
    assert trainable_parameters(model) == tuple(peft_model.get_nb_trainable_parameters())


def test_mistakes_are_named(tmp_path):
    model = tiny_gpt()
    with pytest.raises(LmlabError, match="matches no module"):
        apply_lora(model, LoraConfig(target_modules=["q_proj"]))
    with pytest.raises(LmlabError, match="is a CausalSelfAttention, not an nn.Linear"):
        apply_lora(model, LoraConfig(target_modules=["attn"]))
    with pytest.raises(LmlabError, match="no module named 'score'"):
        apply_lora(model, LoraConfig(target_modules=["c_attn"]), trainable=["score"])
    model = tiny_gpt()
    cfg = LoraConfig(target_modules=["c_attn"])
    apply_lora(model, cfg)
    with pytest.raises(LmlabError, match="LoRA layers already"):
        apply_lora(model, cfg)
    save_lora(model, tmp_path / "adapter", cfg)
    config_path = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(LmlabError, match="use_dora=True is not supported"):
        load_lora(tiny_gpt(), tmp_path / "adapter")
    config_path.write_text(json.dumps({**config, "r": 4}))
    fresh = tiny_gpt()
    with pytest.raises(LmlabError, match=r"has shape \(8, 32\), expected \(4, 32\)"):
        load_lora(fresh, tmp_path / "adapter")
    assert not any(True for _ in lora_layers(fresh))  # a refused adapter leaves the model untouched
    with pytest.raises(LmlabError, match="unknown key 'lora_alpha'"):
        build_config(LoraConfig, {"target_modules": ["c_attn"], "lora_alpha": 16})


class RepeatObjective(Objective):
    """Next-token batches of one repeated pattern: a task LoRA on a random GPT learns in a few dozen steps."""

    def __init__(self) -> None:
        pattern = torch.arange(3, 3 + 7).repeat(5)[:33]
        self.inputs, self.labels = pattern[:-1].repeat(4, 1), pattern[1:].repeat(4, 1)

    def training_batch(self, step: int, micro_step: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.inputs, "labels": self.labels}

    def eval_batches(self, max_tokens):
        yield self.training_batch(0, 0)


def test_an_adapter_trained_by_lmlabs_loop_loads_in_peft_with_equal_logits(tmp_path):
    from lmlab.train.loop import LoopConfig, fit
    from lmlab.train.optim import OptimizerConfig, ScheduleConfig

    class Settings:
        optimizer, schedule = OptimizerConfig(lr=1e-2), ScheduleConfig(kind="constant")
        train = LoopConfig(max_steps=40, batch_size=4, eval_every=40, log_every=10, checkpoint_every=40,
                           device="cpu")

    model = tiny_gpt()
    export_gpt2(model, tmp_path / "hf")
    cfg = LoraConfig(r=4, alpha=8, target_modules=["c_attn", "c_fc"])
    apply_lora(model, cfg)
    objective = RepeatObjective()
    result = fit(model.train(), objective, Settings(), tmp_path / "run")
    batch = objective.training_batch(0, 0)
    with torch.no_grad():
        start_loss = load_hf(tmp_path / "hf")(input_ids=batch["input_ids"]).logits
        start_loss = torch.nn.functional.cross_entropy(start_loss.flatten(0, 1), batch["labels"].flatten())
    assert result.train_loss < float(start_loss) - 0.3  # the adapter learned something of the pattern
    save_lora(model.eval(), tmp_path / "adapter", cfg, base_model_name_or_path=str(tmp_path / "hf"))
    peft_model = PeftModel.from_pretrained(load_hf(tmp_path / "hf"), tmp_path / "adapter").eval()
    with torch.no_grad():
        ours, theirs = model(batch["input_ids"]).logits, peft_model(input_ids=batch["input_ids"]).logits
    assert (ours - theirs).abs().max() <= 1e-4
