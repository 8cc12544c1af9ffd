"""Hugging Face GPT-2 interop: export an lmlab GPT as a `transformers` directory, and import one.

The two models are the same network with the same parameter names; three things differ:

- GPT-2's linear layers are ``Conv1D`` modules that store their weight as (in, out), where
  ``nn.Linear`` stores (out, in): the four projection weights of each block are transposed.
- GPT-2 always has biases; an lmlab GPT built with ``bias=False`` is exported with zero biases,
  which computes exactly the same function.
- The settings live in ``config.json`` under GPT-2's names (n_positions is lmlab's block_size).

Only ``model.safetensors`` is read or written. A ``pytorch_model.bin`` is a pickle, and unpickling
can run arbitrary code hidden in the file, so `import_gpt2` refuses it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, write_json
from lmlab.models import load_weights, read_safetensors, unique_state_dict
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.tokenizers import Tokenizer
from lmlab.tokenizers.chat import END, ChatTemplate

# Parameters that are Conv1D in transformers' GPT-2, i.e. stored transposed there.
CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Old GPT-2 checkpoints carry the causal mask as buffers; it is not a weight.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def _is_conv1d(name: str) -> bool:
    return name.endswith(CONV1D_SUFFIXES)


def export_gpt2(model: nn.Module, out_dir: str | os.PathLike[str],
                tokenizer_json: str | os.PathLike[str] | None = None) -> None:
    """Write `model` as a directory `transformers.GPT2LMHeadModel.from_pretrained` loads.

    With `tokenizer_json`, the tokenizer is written beside it (``tokenizer.json`` and
    ``tokenizer_config.json``) so ``AutoTokenizer.from_pretrained(out_dir)`` works too.
    The directory appears complete or not at all.
    """
    if not isinstance(model, GPT):
        family = getattr(model, "family", type(model).__name__)
        raise LmlabError(f"export to GPT-2 needs a gpt model, not {family}")
    eos_id, tokenizer_config = tokenizer_settings(tokenizer_json, model.config.vocab_size, model.config.block_size)
    write_hf_directory(out_dir, _hf_config(model.config, eos_id), _hf_tensors(model), tokenizer_json,
                       tokenizer_config)


def tokenizer_settings(tokenizer_json: str | os.PathLike[str] | None, vocab_size: int,
                       block_size: int) -> tuple[int | None, dict[str, Any]]:
    """The end-of-text id (None without a tokenizer) and the tokenizer_config.json entries of an export."""
    settings: dict[str, Any] = {"model_max_length": block_size, "clean_up_tokenization_spaces": False}
    if tokenizer_json is None:
        return None, settings
    tokenizer = tokenizer_for_export(tokenizer_json, vocab_size)
    pad_token = None if tokenizer.pad_id is None else tokenizer.id_to_token(tokenizer.pad_id)
    special = {"eos_token": tokenizer.eos_token, "bos_token": tokenizer.eos_token, "pad_token": pad_token}
    return tokenizer.eos_id, {**settings, **{key: value for key, value in special.items() if value is not None}}


def tokenizer_for_export(tokenizer_json: str | os.PathLike[str], vocab_size: int) -> Tokenizer:
    """The tokenizer to write beside an exported model, which must have a row for each of its tokens."""
    tokenizer = Tokenizer.load(tokenizer_json)
    if tokenizer.vocab_size > vocab_size:
        raise LmlabError(f"{tokenizer_json}: {tokenizer.vocab_size} tokens, more than the model's "
                         f"vocab_size {vocab_size}")
    return tokenizer


def write_hf_directory(out_dir: str | os.PathLike[str], config: dict[str, Any], tensors: dict[str, Tensor],
                       tokenizer_json: str | os.PathLike[str] | None, tokenizer_config: dict[str, Any]) -> None:
    """A transformers directory: config.json, model.safetensors and, with a tokenizer, tokenizer.json and
    tokenizer_config.json (so AutoTokenizer reads it too), with the chat template of a run that has one
    beside its tokenizer. It appears complete or not at all."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_json(tmp / "config.json", config)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if tokenizer_json is not None:
            shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
            chat = ChatTemplate.load(Path(tokenizer_json).parent)
            if chat is not None:  # a chat run: apply_chat_template renders its turns, and a reply ends its turn
                tokenizer_config = {**tokenizer_config, "chat_template": chat.source, "eos_token": END}
                chat.save(tmp)
            write_json(tmp / "tokenizer_config.json", {
                "tokenizer_class": "PreTrainedTokenizerFast",  # reads tokenizer.json as it is
                **tokenizer_config,
            })


def _hf_config(config: GPTConfig, eos_id: int | None) -> dict[str, Any]:
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,  # older transformers read the context length from here
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,  # None means 4 * n_embd, as in lmlab
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": eos_id,  # GPT-2 starts and ends documents with the same <|endoftext|>
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
    }


def _hf_tensors(model: GPT) -> dict[str, Tensor]:
    """lmlab's state dict in GPT-2's layout: Conv1D weights transposed, absent biases as zeros."""
    tensors = {
        name: (tensor.t() if _is_conv1d(name) else tensor).float().cpu().contiguous()
        for name, tensor in unique_state_dict(model).items()
    }
    for name, module in model.named_modules():
        if name != "lm_head" and isinstance(module, nn.Linear | nn.LayerNorm) and module.bias is None:
            size = module.out_features if isinstance(module, nn.Linear) else module.normalized_shape[0]
            tensors[f"{name}.bias"] = torch.zeros(size)
    return tensors


def import_gpt2(hf_dir: str | os.PathLike[str]) -> GPT:
    """Read a GPT-2 directory written by transformers (``save_pretrained``) into an lmlab GPT."""
    folder = Path(hf_dir)
    config = _gpt_config(folder / "config.json")
    weights = read_hf_weights(folder)
    tensors: dict[str, Tensor] = {}
    for name, tensor in weights.items():
        name = name if name.startswith(("transformer.", "lm_head.")) else f"transformer.{name}"
        if name.endswith(IGNORED_SUFFIXES) or name == "lm_head.weight":  # lm_head is tied to wte
            continue
        tensors[name] = tensor.t() if _is_conv1d(name) else tensor
    model = GPT(config)
    load_weights(model, tensors, str(folder))
    return model.eval()


def load_gpt2_directory(hf_dir: str | os.PathLike[str]) -> tuple[GPT, Tokenizer]:
    """The model and the tokenizer of a Hugging Face GPT-2 directory, read in place (nothing copied)."""
    folder = Path(hf_dir)
    if not (folder / "tokenizer.json").exists():
        raise LmlabError(f"{folder}: no tokenizer.json beside the model (save the tokenizer with transformers' "
                         "fast GPT2TokenizerFast to get one)")
    return import_gpt2(folder), Tokenizer.load(folder / "tokenizer.json")


def _gpt_config(path: Path) -> GPTConfig:
    hf = read_json(path, "file; is this a Hugging Face model directory?")
    if hf.get("model_type") != "gpt2":
        raise LmlabError(f"{path}: model_type is {hf.get('model_type')!r}; only gpt2 imports as a GPT")
    # Variants lmlab's GPT does not compute; refuse them rather than give silently wrong logits.
    unsupported = {
        "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
        "n_inner": (None, 4 * hf.get("n_embd", 768)),
        "scale_attn_weights": (True,),
        "scale_attn_by_inverse_layer_idx": (False,),
        "add_cross_attention": (False,),
        "tie_word_embeddings": (True,),
    }
    for key, allowed in unsupported.items():
        if key in hf and hf[key] not in allowed:
            raise LmlabError(f"{path}: {key}={hf[key]!r} is not supported (lmlab's GPT has {allowed[0]!r})")
    defaults = GPTConfig()
    return GPTConfig(
        vocab_size=hf.get("vocab_size", defaults.vocab_size),
        block_size=hf.get("n_positions", defaults.block_size),
        n_layer=hf.get("n_layer", defaults.n_layer),
        n_head=hf.get("n_head", defaults.n_head),
        n_embd=hf.get("n_embd", defaults.n_embd),
        dropout=hf.get("resid_pdrop", 0.1),
        bias=True,
        layer_norm_eps=hf.get("layer_norm_epsilon", defaults.layer_norm_eps),
    )


def read_hf_weights(folder: Path) -> dict[str, Tensor]:
    """The weights of a transformers directory: one model.safetensors, or shards listed in an index."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.exists():
        return read_safetensors(single)
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise LmlabError(f"{index}: not a safetensors index (needs a \"weight_map\")") from None
        return {name: t for shard in shards for name, t in read_safetensors(folder / shard).items()}
    if (folder / "pytorch_model.bin").exists():
        raise LmlabError(
            f"{folder}: has only pytorch_model.bin, a pickle that can run arbitrary code when loaded; "
            "lmlab reads safetensors only (convert it where you trust the file: "
            "GPT2LMHeadModel.from_pretrained(dir).save_pretrained(new_dir))"
        )
    raise LmlabError(f"{folder}: no model.safetensors")
