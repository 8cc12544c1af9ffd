"""Composed tuning methods (lora+adapters, lora+prompt, adapters+fgm): what trains, counted against PEFT.

What PEFT can and cannot compose, and so what each test compares:

- LoRA + prompt tuning: PEFT has both, but not as one model in which both train. ``PeftMixedModel``
  mixes only LoRA-like tuners (LoRA, LoHa, LoKr, AdaLoRA, OFT, SHiRA), and a prompt-tuning
  ``PeftModel`` freezes its whole base model, LoRA layers injected into it included. So each
  component's count is PEFT's (LoRA on one copy of the transformers twin, prompt tuning on another),
  lmlab's trainable count must be their sum, and its total the LoRA model's total plus the prompt.
  The composed *function* is PEFT's stack: LoRA injected into the transformers model
  (``inject_adapter_in_model``) under a prompt-tuning ``PeftModel``, holding lmlab's weights, gives
  lmlab's logits.
- Bottleneck adapters (Houlsby et al.): PEFT has none (they are AdapterHub's library's). The
  bottlenecks' count is computed here from the layers they sit on; the LayerNorms the method also
  trains are PEFT's LN tuning (``LNTuningConfig``), whose count is compared; LoRA's is PEFT's.
- FGM and PGD are no PEFT tuner; they add no weights, so ``adapters+fgm`` trains what ``adapters`` does.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from peft import LNTuningConfig, get_peft_model, inject_adapter_in_model
from peft import LoraConfig as PeftLoraConfig
from peft import PromptTuningConfig as PeftPromptTuningConfig
from tiny_backbones import TINY, exported_twin, padded_ids, randomize_b, tiny_gpt
from torch import nn

from lmlab.cli import main
from lmlab.tune.adapters import Adapted
from lmlab.tune.lora import lora_layers
from lmlab.tune.methods import MethodConfig, apply_method
from lmlab.tune.params import trainable_parameters
from lmlab.tune.runner import read_tune_config

# Per family: PEFT's LoRA settings for lmlab's default targets, and the prompt's task type in PEFT.
PEFT_LORA = {"gpt": dict(target_modules=["c_attn"], fan_in_fan_out=True),
             "bert": dict(target_modules=["query", "value"])}
PEFT_TASK = {"gpt": "CAUSAL_LM", "bert": "FEATURE_EXTRACTION"}


def peft_counts(twin_of, config) -> tuple[int, int]:
    return tuple(get_peft_model(twin_of(), config).get_nb_trainable_parameters())


@pytest.mark.parametrize("family", ["gpt", "bert"])
@pytest.mark.parametrize("written", ["lora+prompt", "prompt+lora", ["prompt", "lora"]])
def test_lora_plus_prompt_trains_peft_lora_and_peft_prompt(tmp_path, family, written):
    backbone = TINY[family]()
    twin_of = lambda: exported_twin(TINY[family](), tmp_path / "hf")  # noqa: E731 - a fresh copy each call
    method = MethodConfig(method=written, lora={"r": 4, "alpha": 8}, prompt={"num_virtual_tokens": 5})
    assert method.method == "lora+prompt"
    model = apply_method(backbone, method)
    lora_trainable, lora_total = peft_counts(twin_of, PeftLoraConfig(r=4, lora_alpha=8, **PEFT_LORA[family]))
    prompt_trainable, _ = peft_counts(twin_of, PeftPromptTuningConfig(task_type=PEFT_TASK[family],
                                                                      num_virtual_tokens=5))
    assert trainable_parameters(model) == (lora_trainable + prompt_trainable, lora_total + prompt_trainable)
    trains = {name for name, param in model.named_parameters() if param.requires_grad}
    assert "prompt_embeddings" in trains and trains == {"prompt_embeddings"} | {
        f"backbone.{name}.lora_{part}" for name, _ in lora_layers(backbone) for part in "AB"}


def test_lora_plus_prompt_computes_peft_lora_under_a_peft_prompt(tmp_path):
    backbone = tiny_gpt()
    twin = exported_twin(tiny_gpt(), tmp_path / "hf")
    model = apply_method(backbone, MethodConfig(method="prompt+lora", lora={"r": 4, "alpha": 8},
                                                prompt={"num_virtual_tokens": 5})).eval()
    randomize_b(backbone)
    inject_adapter_in_model(PeftLoraConfig(r=4, lora_alpha=8, **PEFT_LORA["gpt"]), twin)
    peft_model = get_peft_model(twin, PeftPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5)).eval()
    with torch.no_grad():
        for name, layer in lora_layers(backbone):
            theirs = twin.get_submodule(name)
            theirs.lora_A["default"].weight.copy_(layer.lora_A)
            theirs.lora_B["default"].weight.copy_(layer.lora_B)
        peft_model.prompt_encoder["default"].embedding.weight.copy_(model.prompt_embeddings)
        ids, mask = padded_ids()
        ours = model(ids, attention_mask=mask).logits
        theirs = peft_model(input_ids=ids, attention_mask=mask).logits
        real = torch.cat([torch.ones(len(mask), 5, dtype=torch.bool), mask.bool()], dim=1)
        assert (ours - theirs).abs()[real].max() <= 1e-4
        without_lora = exported_twin(tiny_gpt(), tmp_path / "plain")(inputs_embeds=torch.cat(
            [model.prompt_embeddings.expand(3, -1, -1), backbone.input_embeddings()(ids)], 1)).logits
        assert (ours - without_lora).abs()[real].max() > 1e-2  # the LoRA half matters too


def bottleneck_count(model: nn.Module, size: int) -> int:
    """down (d -> m, with bias) and up (m -> d, with bias) after every adapted layer of width d."""
    return sum(2 * m.layer.out_features * size + size + m.layer.out_features
               for m in model.modules() if isinstance(m, Adapted))


@pytest.mark.parametrize("family", ["gpt", "bert"])
def test_lora_plus_adapters_trains_peft_lora_peft_layer_norms_and_the_bottlenecks(tmp_path, family):
    backbone = TINY[family]()
    base_total = trainable_parameters(TINY[family]())[1]
    twin_of = lambda: exported_twin(TINY[family](), tmp_path / "hf")  # noqa: E731 - a fresh copy each call
    model = apply_method(backbone, MethodConfig(method="adapters+lora", lora={"r": 2}, adapters={"size": 8}))
    bottlenecks = bottleneck_count(model, 8)
    assert bottlenecks > 0 and any(True for _ in lora_layers(model))
    lora_trainable, _ = peft_counts(twin_of, PeftLoraConfig(r=2, **PEFT_LORA[family]))
    layer_norms = ["LayerNorm"] if family == "bert" else ["ln_1", "ln_2", "ln_f"]
    norms_trainable, _ = peft_counts(twin_of, LNTuningConfig(target_modules=layer_norms))
    assert trainable_parameters(model) == (lora_trainable + norms_trainable + bottlenecks,
                                           base_total + lora_trainable + bottlenecks)
    # Both kinds of added weights learn. B and up start at zero, so they are the ones a first gradient reaches.
    ids, mask = padded_ids()
    model.features(input_ids=ids, attention_mask=mask).pow(2).mean().backward()
    reached = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(".lora_B" in name for name in reached) and any(".adapter.up." in name for name in reached)


def test_an_adversary_in_the_method_name_is_the_adversarial_setting(tmp_path):
    cfg = read_tune_config(None, ["base=b", "data=d", "method.method=adapters+fgm", "adversarial.epsilon=0.1"])
    assert (cfg.method.method, cfg.adversarial.method, cfg.adversarial.epsilon) == ("adapters", "fgm", 0.1)
    plain, with_fgm = (apply_method(tiny_gpt(), MethodConfig(method=m)) for m in ("adapters", "adapters+fgm"))
    assert trainable_parameters(with_fgm) == trainable_parameters(plain)
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump({"base": "b", "data": "d",
                                                        "method": {"method": ["prompt", "lora", "pgd"]}}))
    cfg = read_tune_config(tmp_path / "tune.yaml", [])
    assert (cfg.method.method, cfg.adversarial.method) == ("lora+prompt", "pgd")


@pytest.mark.parametrize("overrides, says", [
    (["method.method=full+lora"], "full does not combine with lora"),
    (["method.method=features+prompt"], "features does not combine with prompt"),
    (["method.method=lora+adapters+lora"], "lora appears twice"),
    (["method.method=lora+ia3"], "unknown method 'ia3'"),
    (["method.method=lora+fgm+pgd"], "two adversaries (fgm and pgd)"),
    (["method.method=pgd"], "names no method for the weights"),
    (["method.method=adapters+fgm", "adversarial.method=pgd"], "names fgm but adversarial.method is pgd"),
])
def test_nonsense_combinations_are_one_line_errors(tmp_path, capsys, overrides, says):
    assert main(["tune", "base=b", "data=d", f"run_dir={tmp_path / 'run'}", *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err
    assert not (tmp_path / "run").exists()
    assert main(["tune", "compare", "base=b", "data=d", "--methods", f"lora,{overrides[0].split('=')[1]}",
                 "--out", str(tmp_path / "compare"), *overrides[1:]]) == 2
    assert says in capsys.readouterr().err and not (tmp_path / "compare").exists()
