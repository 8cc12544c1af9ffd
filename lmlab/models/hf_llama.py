"""Hugging Face LLaMA and Qwen2 interop: an lmlab LLaMA as a `transformers` directory, and back.

The networks are the same with the same parameter names (both use ``nn.Linear``), so the weights pass
through unchanged; only the settings are renamed in ``config.json``. Which class a run exports as is
decided by its layout: biases on q, k and v are Qwen2's (``Qwen2ForCausalLM``), none are LLaMA's
(``LlamaForCausalLM``). Settings lmlab's LLaMA does not compute (rope scaling, sliding windows, an
output-projection or MLP bias, another activation) are refused on import rather than silently
giving other logits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from lmlab.errors import LmlabError
from lmlab.files import read_json
from lmlab.models import load_weights, unique_state_dict
from lmlab.models.hf import read_hf_weights, tokenizer_settings, write_hf_directory
from lmlab.models.llama import Llama, LlamaConfig
from lmlab.tokenizers import Tokenizer

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def export_llama(model: nn.Module, out_dir: str | os.PathLike[str],
                 tokenizer_json: str | os.PathLike[str] | None = None) -> None:
    """Write `model` as a directory ``AutoModelForCausalLM.from_pretrained`` loads (LLaMA or Qwen2),
    with the tokenizer and a chat run's template beside it when `tokenizer_json` is given."""
    if not isinstance(model, Llama):
        family = getattr(model, "family", type(model).__name__)
        raise LmlabError(f"export to LLaMA needs a llama model, not {family}")
    eos_id, tokenizer_config = tokenizer_settings(tokenizer_json, model.config.vocab_size, model.config.block_size)
    tensors = {name: tensor.float().cpu().contiguous() for name, tensor in unique_state_dict(model).items()}
    write_hf_directory(out_dir, _hf_config(model.config, eos_id), tensors, tokenizer_json, tokenizer_config)


def _hf_config(config: LlamaConfig, eos_id: int | None) -> dict[str, Any]:
    model_type = "qwen2" if config.qkv_bias else "llama"
    hf: dict[str, Any] = {
        "architectures": [ARCHITECTURES[model_type]],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_kv_head,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.block_size,
        "rope_parameters": {"rope_theta": config.rope_theta, "rope_type": "default"},
        "rms_norm_eps": config.rms_norm_eps,
        "hidden_act": "silu",
        "tie_word_embeddings": config.tie_embeddings,
        "attention_dropout": config.dropout,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "dtype": "float32",
    }
    if model_type == "llama":
        hf.update(attention_bias=False, mlp_bias=False)
    else:
        hf.update(use_sliding_window=False, sliding_window=None, layer_types=["full_attention"] * config.n_layer)
    return hf


def import_llama(hf_dir: str | os.PathLike[str]) -> Llama:
    """Read a LLaMA or Qwen2 directory written by transformers (``save_pretrained``) into an lmlab LLaMA."""
    folder = Path(hf_dir)
    config = _llama_config(folder / "config.json")
    tensors = read_hf_weights(folder)
    if config.tie_embeddings:
        tensors.pop("lm_head.weight", None)  # some writers keep the tied copy; it is embed_tokens itself
    model = Llama(config)
    load_weights(model, tensors, str(folder))
    return model.eval()


def load_llama_directory(hf_dir: str | os.PathLike[str]) -> tuple[Llama, Tokenizer]:
    """The model and the tokenizer of a Hugging Face LLaMA or Qwen2 directory, read in place."""
    folder = Path(hf_dir)
    if not (folder / "tokenizer.json").exists():
        raise LmlabError(f"{folder}: no tokenizer.json beside the model (save a fast tokenizer with it)")
    model = import_llama(folder)
    tokenizer = Tokenizer.load(folder / "tokenizer.json")
    if tokenizer.vocab_size > model.config.vocab_size:
        raise LmlabError(f"{folder / 'tokenizer.json'}: {tokenizer.vocab_size} tokens, more than the model's "
                         f"vocab_size {model.config.vocab_size}")
    return model, tokenizer


def _llama_config(path: Path) -> LlamaConfig:
    hf = read_json(path, "file; is this a Hugging Face model directory?")
    model_type = hf.get("model_type")
    if model_type not in ARCHITECTURES:
        raise LmlabError(f"{path}: model_type is {model_type!r}; only llama and qwen2 import as a LLaMA")
    n_embd, n_head = hf.get("hidden_size", 4096), hf.get("num_attention_heads", 32)
    rope = hf.get("rope_parameters") or {"rope_theta": hf.get("rope_theta", 10000.0), "rope_type": "default"}
    # Variants lmlab's LLaMA does not compute: refused rather than giving silently wrong logits.
    unsupported = {
        "hidden_act": ("silu",),
        "attention_bias": (False,),
        "mlp_bias": (False,),
        "use_sliding_window": (False,),
        "head_dim": (None, n_embd // n_head),
        "rope_scaling": (None,),
    }
    for key, allowed in unsupported.items():
        if key in hf and hf[key] not in allowed:
            raise LmlabError(f"{path}: {key}={hf[key]!r} is not supported (lmlab's LLaMA has {allowed[-1]!r})")
    if rope.get("rope_type", "default") != "default":
        raise LmlabError(f"{path}: rope_parameters.rope_type={rope['rope_type']!r} is not supported (only 'default')")
    return LlamaConfig(
        vocab_size=hf.get("vocab_size", 32000),
        block_size=hf.get("max_position_embeddings", 2048),
        n_layer=hf.get("num_hidden_layers", 32),
        n_head=n_head,
        n_kv_head=hf.get("num_key_value_heads") or n_head,
        n_embd=n_embd,
        intermediate_size=hf.get("intermediate_size", 11008),
        rope_theta=float(rope.get("rope_theta", 10000.0)),
        rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=hf.get("tie_word_embeddings", False),
        qkv_bias=model_type == "qwen2",
        dropout=hf.get("attention_dropout", 0.0),
    )
