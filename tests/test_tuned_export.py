"""`lmlab export` of tuned runs as PEFT adapter directories over a Hugging Face base, and of a BERT run.

PEFT itself loads what lmlab writes (``PeftModel.from_pretrained`` on the transformers class of the
exported base), and must compute the hidden states the tuned backbone computes in lmlab.
"""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from tiny_backbones import TINY, padded_ids, randomize_b
from transformers import AutoTokenizer, BertForPreTraining, GPT2LMHeadModel, LlamaForCausalLM

from lmlab.cli import main
from lmlab.models import load_model, save_model, unique_state_dict
from lmlab.tokenizers import TokenizerConfig, train_tokenizer
from lmlab.tune.methods import MethodConfig
from lmlab.tune.model import TunedModel, tuned_config_from
from lmlab.tune.tasks.base import HeadConfig

HF_CLASS = {"gpt": GPT2LMHeadModel, "bert": BertForPreTraining, "llama": LlamaForCausalLM}
VIRTUAL = 4


def save_with_tokenizer(model: torch.nn.Module, run_dir) -> None:
    save_model(model, run_dir)
    texts = ["the film was good", "a sad and awful story", "lovely"]
    train_tokenizer(texts, TokenizerConfig(kind="wordpiece", vocab_size=60)).save(run_dir / "tokenizer.json")


def tuned_run(tmp_path, family: str, method: str) -> TunedModel:
    """A tuned run on a tiny base, its added weights moved as if trained; the model as the run reloads it."""
    backbone = TINY[family]()
    model = TunedModel(tuned_config_from(backbone, ["neg", "pos"], HeadConfig(),
                                         MethodConfig(method=method, lora={"r": 4, "alpha": 8},
                                                      prompt={"num_virtual_tokens": VIRTUAL}), 32),
                       backbone=backbone)
    randomize_b(model)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("prompt_embeddings"):
                param.add_(torch.randn_like(param) * 0.5)
    save_with_tokenizer(model, tmp_path / "run")
    return load_model(tmp_path / "run").eval()


def hidden_states(hf_model: torch.nn.Module, ids, mask, virtual: int = 0) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1][:, virtual:]


@pytest.mark.parametrize("family", ["bert", "gpt", "llama"])
@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_a_tuned_run_exports_as_a_peft_adapter_over_its_base(tmp_path, capsys, family, method):
    model = tuned_run(tmp_path, family, method)
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "run"), str(out)]) == 0
    assert "PEFT adapter directory" in capsys.readouterr().out
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == {"lora": "LORA", "prompt": "PROMPT_TUNING"}[method]
    assert config["base_model_name_or_path"] == str((out / "base").resolve())
    base = HF_CLASS[family].from_pretrained(out / "base", attn_implementation="sdpa").eval()
    plain = hidden_states(base, *padded_ids())
    peft_model = PeftModel.from_pretrained(base, out).eval()
    ids, mask = padded_ids()
    virtual = VIRTUAL if method == "prompt" else 0
    with torch.no_grad():
        ours = model.backbone.features(input_ids=ids, attention_mask=mask)
    real = mask.bool()
    assert (ours - hidden_states(peft_model, ids, mask, virtual))[real].abs().max() <= 1e-5
    assert (ours - plain)[real].abs().max() > 1e-2  # the adapter is in there, and it matters
    assert (out / "base" / "tokenizer.json").exists() and AutoTokenizer.from_pretrained(out / "base")


@pytest.mark.parametrize("method", ["adapters", "lora+prompt"])
def test_methods_peft_cannot_load_are_refused_and_nothing_is_written(tmp_path, capsys, method):
    tuned_run(tmp_path, "bert", method)
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: method {method} has no PEFT adapter") and err.count("\n") == 1
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [tmp_path / "run"]


def test_a_fully_tuned_run_exports_its_backbone(tmp_path):
    model = tuned_run(tmp_path, "bert", "full")
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    hf = BertForPreTraining.from_pretrained(tmp_path / "out", attn_implementation="sdpa").eval()
    ids, mask = padded_ids()
    with torch.no_grad():
        ours = model.backbone.features(input_ids=ids, attention_mask=mask)
    assert (ours - hidden_states(hf, ids, mask))[mask.bool()].abs().max() <= 1e-5


def test_a_bert_run_exports_through_the_cli_and_imports_back(tmp_path, capsys):
    save_with_tokenizer(TINY["bert"](), tmp_path / "run")
    model = load_model(tmp_path / "run").eval()
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "hf")]) == 0
    assert "Hugging Face directory of the BERT 2x32 model" in capsys.readouterr().out
    hf = BertForPreTraining.from_pretrained(tmp_path / "hf", attn_implementation="sdpa").eval()
    ids, mask = padded_ids()
    with torch.no_grad():
        ours, theirs = model(ids, attention_mask=mask), hf(input_ids=ids, attention_mask=mask)
    assert (ours.logits - theirs.prediction_logits).abs().max() <= 1e-4
    assert main(["import", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    back = unique_state_dict(load_model(tmp_path / "back"))
    assert back.keys() == unique_state_dict(model).keys()
    assert all(torch.equal(tensor, back[name]) for name, tensor in unique_state_dict(model).items())
    assert (tmp_path / "back" / "tokenizer.json").exists()
