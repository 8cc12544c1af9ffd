"""Hugging Face BERT interop: import a `transformers` BERT directory into lmlab, and export one.

lmlab's BERT uses the checkpoints' own parameter names, so the weights map one to one. What varies
between directories is which parts they hold:

    BertForPreTraining   bert.embeddings...  bert.encoder.layer.N...  bert.pooler...  cls.predictions...
                         cls.seq_relationship...
    BertForMaskedLM      bert.* without the pooler, cls.predictions...
    BertModel            embeddings...  encoder...  pooler...   (no "bert." prefix, no heads:
                                                                 all-MiniLM-L6-v2 ships this)

A part the directory lacks (a head, the pooler) keeps lmlab's fresh initialisation, and the import
says which in `ImportedBert.missing`, so a caller can tell a pretrained head from a random one.
Export always writes every part, as ``BertForPreTraining``: BertModel and BertForMaskedLM load it
and drop what they do not use.

Only ``model.safetensors`` is read or written. A ``pytorch_model.bin`` is a pickle, and unpickling
can run arbitrary code hidden in the file, so the import refuses it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lmlab.errors import LmlabError
from lmlab.files import read_json
from lmlab.models import save_model, unique_state_dict
from lmlab.models.bert import BERT, BertConfig
from lmlab.models.hf import read_hf_weights, tokenizer_for_export, write_hf_directory
from lmlab.tokenizers import Tokenizer

# Buffers and tied copies some checkpoints carry beside the weights: nothing to load.
IGNORED_NAMES = (
    "bert.embeddings.position_ids",  # the constant 0 .. max_position - 1 of older transformers
    "cls.predictions.decoder.weight",  # the word embeddings again (tied)
    "cls.predictions.decoder.bias",  # cls.predictions.bias again (tied)
)


@dataclass
class ImportedBert:
    """A BERT read from a Hugging Face directory, and the parameters the directory did not have."""

    model: BERT
    missing: list[str]  # parameter names left at their fresh initialisation (heads of a bare BertModel)


def read_hf_bert(hf_dir: str | os.PathLike[str]) -> ImportedBert:
    """Build an lmlab BERT from a transformers BERT directory (config.json + model.safetensors)."""
    folder = Path(hf_dir)
    config = _bert_config(folder / "config.json")
    if not (folder / "model.safetensors").exists() and (folder / "pytorch_model.bin").exists():
        raise LmlabError(
            f"{folder}: has only pytorch_model.bin, a pickle that can run arbitrary code when loaded; "
            "lmlab reads safetensors only (convert it where you trust the file: "
            "BertModel.from_pretrained(dir).save_pretrained(new_dir))"
        )
    tensors = {}
    for name, tensor in read_hf_weights(folder).items():
        # A bare BertModel stores "embeddings.", "encoder.", "pooler." at the top level.
        name = name if name.startswith(("bert.", "cls.")) else f"bert.{name}"
        if name not in IGNORED_NAMES:
            tensors[name] = tensor
    model = BERT(config)
    expected = unique_state_dict(model)
    unexpected = sorted(tensors.keys() - expected.keys())
    if unexpected:
        raise LmlabError(f"{folder}: unexpected tensor {unexpected[0]!r}; is this a BERT lmlab can compute?")
    if not any(name.startswith("bert.encoder.") for name in tensors):
        raise LmlabError(f"{folder}: no bert.encoder weights in model.safetensors; is this a BERT directory?")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            wanted = tuple(expected[name].shape)
            raise LmlabError(f"{folder}: {name} has shape {tuple(tensor.shape)}, config.json says {wanted}")
    missing = sorted(expected.keys() - tensors.keys())
    encoder_missing = [name for name in missing if name.startswith(("bert.embeddings.", "bert.encoder."))]
    if encoder_missing:
        raise LmlabError(f"{folder}: missing tensor {encoder_missing[0]!r} ({len(encoder_missing)} in the encoder)")
    # strict=False: the heads a bare BertModel lacks keep their initialisation, and the tied decoder
    # weight is filled through the word embeddings it shares.
    model.load_state_dict(tensors, strict=False)
    return ImportedBert(model.eval(), missing)


def load_bert_directory(hf_dir: str | os.PathLike[str]) -> tuple[BERT, Tokenizer]:
    """The model and the tokenizer of a Hugging Face BERT directory, read in place (nothing copied)."""
    folder = Path(hf_dir)
    imported = read_hf_bert(folder)
    model = imported.model
    model.missing_weights = tuple(imported.missing)
    tokenizer_path = folder / "tokenizer.json"
    if not tokenizer_path.exists():
        raise LmlabError(f"{folder}: no tokenizer.json (a vocab.txt alone is not read; save the tokenizer "
                         "with transformers' fast BertTokenizer to get one)")
    tokenizer = Tokenizer.load(tokenizer_path)
    # Some directories save the tokenizer with padding or truncation switched on (all-MiniLM-L6-v2:
    # pad every text to 128); lmlab pads and truncates batches itself, so encode must return the text's ids.
    tokenizer.backend.no_padding()
    tokenizer.backend.no_truncation()
    if tokenizer.vocab_size > model.config.vocab_size:
        raise LmlabError(f"{tokenizer_path}: {tokenizer.vocab_size} tokens, more than the model's "
                         f"vocab_size {model.config.vocab_size}")
    return model, tokenizer


def import_bert(hf_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[str]:
    """Convert a Hugging Face BERT directory into an lmlab model directory (and its tokenizer.json).

    Returns the parameters the directory lacked, which kept their fresh initialisation.
    """
    folder = Path(hf_dir)
    imported = read_hf_bert(folder)
    out = Path(out_dir)
    save_model(imported.model, out)
    if (folder / "tokenizer.json").exists():
        _, tokenizer = load_bert_directory(folder)
        tokenizer.save(out / "tokenizer.json")
    return imported.missing


def _bert_config(path: Path) -> BertConfig:
    hf = read_json(path, "file; is this a Hugging Face model directory?")
    if not isinstance(hf, dict) or hf.get("model_type") != "bert":
        model_type = hf.get("model_type") if isinstance(hf, dict) else None
        raise LmlabError(f"{path}: model_type is {model_type!r}; only bert imports as a BERT")
    # Variants lmlab's BERT does not compute; refuse them rather than give silently wrong outputs.
    unsupported = {
        "hidden_act": ("gelu",),
        "position_embedding_type": ("absolute",),
        "is_decoder": (False,),
        "add_cross_attention": (False,),
        "tie_word_embeddings": (True,),
    }
    for key, allowed in unsupported.items():
        if key in hf and hf[key] not in allowed:
            raise LmlabError(f"{path}: {key}={hf[key]!r} is not supported (lmlab's BERT has {allowed[0]!r})")
    defaults = BertConfig()
    pad_id = hf.get("pad_token_id")
    return BertConfig(
        vocab_size=hf.get("vocab_size", defaults.vocab_size),
        hidden_size=hf.get("hidden_size", defaults.hidden_size),
        n_layer=hf.get("num_hidden_layers", defaults.n_layer),
        n_head=hf.get("num_attention_heads", defaults.n_head),
        intermediate_size=hf.get("intermediate_size", defaults.intermediate_size),
        block_size=hf.get("max_position_embeddings", defaults.block_size),
        type_vocab_size=hf.get("type_vocab_size", defaults.type_vocab_size),
        dropout=hf.get("hidden_dropout_prob", defaults.dropout),
        attention_dropout=hf.get("attention_probs_dropout_prob", defaults.attention_dropout),
        layer_norm_eps=hf.get("layer_norm_eps", defaults.layer_norm_eps),
        pad_id=defaults.pad_id if pad_id is None else pad_id,
    )


def export_bert(model: nn.Module, out_dir: str | os.PathLike[str],
                tokenizer_json: str | os.PathLike[str] | None = None) -> None:
    """Write `model` as a directory `transformers.BertForPreTraining.from_pretrained` loads.

    With `tokenizer_json`, the tokenizer is written beside it (``tokenizer.json`` and
    ``tokenizer_config.json``) so ``AutoTokenizer.from_pretrained(out_dir)`` works too.
    The directory appears complete or not at all.
    """
    if not isinstance(model, BERT):
        family = getattr(model, "family", type(model).__name__)
        raise LmlabError(f"export to Hugging Face BERT needs a bert model, not {family}")
    special_tokens: dict[str, str] = {}
    if tokenizer_json is not None:
        tokenizer = tokenizer_for_export(tokenizer_json, model.config.vocab_size)
        for key, token in (("pad_token", "[PAD]"), ("unk_token", "[UNK]"), ("cls_token", "[CLS]"),
                           ("sep_token", "[SEP]"), ("mask_token", "[MASK]")):
            if tokenizer.token_to_id(token) is not None:
                special_tokens[key] = token
    tensors = {name: tensor.float().cpu().contiguous() for name, tensor in unique_state_dict(model).items()}
    write_hf_directory(out_dir, _hf_config(model.config), tensors, tokenizer_json,
                       {"model_max_length": model.config.block_size, **special_tokens})


def _hf_config(config: BertConfig) -> dict[str, Any]:
    return {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "intermediate_size": config.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.block_size,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": config.pad_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
