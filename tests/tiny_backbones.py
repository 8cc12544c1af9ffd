"""Tiny lmlab backbones and their transformers twins, for the tuning tests that run PEFT beside lmlab."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import BertForPreTraining, GPT2LMHeadModel, LlamaForCausalLM

from lmlab.models.bert import BERT, BertConfig
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2
from lmlab.models.hf_bert import export_bert
from lmlab.models.hf_llama import export_llama
from lmlab.models.llama import Llama, LlamaConfig
from lmlab.tune.lora import lora_layers

VOCAB = 71


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=40, n_layer=2, n_head=2, n_embd=32)).eval()


def tiny_bert(seed: int = 0) -> BERT:
    torch.manual_seed(seed)
    return BERT(BertConfig(vocab_size=VOCAB, block_size=40, n_layer=2, n_head=2, hidden_size=32,
                           intermediate_size=48)).eval()


def tiny_llama(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(LlamaConfig(vocab_size=VOCAB, block_size=40, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                             intermediate_size=56)).eval()


TINY = {"gpt": tiny_gpt, "bert": tiny_bert, "llama": tiny_llama}


def exported_twin(model: nn.Module, folder: Path) -> nn.Module:
    """`model` written as a Hugging Face directory and read back by transformers (its own class for it)."""
    if isinstance(model, GPT):
        export_gpt2(model, folder)
        return GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    if isinstance(model, Llama):
        export_llama(model, folder)
        return LlamaForCausalLM.from_pretrained(folder, attn_implementation="sdpa").eval()
    export_bert(model, folder)
    return BertForPreTraining.from_pretrained(folder, attn_implementation="sdpa").eval()


def randomize_b(model: nn.Module) -> None:
    """B starts at zero, which would make every parity check trivially pass."""
    with torch.no_grad():
        for _, layer in lora_layers(model):
            layer.lora_B.normal_(std=0.5)


def padded_ids(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows, the last two right-padded."""
    torch.manual_seed(seed)
    ids = torch.randint(1, VOCAB, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 5:] = 0
    return ids, mask
