"""The one registry of model families, and of the Hugging Face directories lmlab can read.

A family is named by a lazy ``"module:Class"`` entry, imported the first time it is asked for, so
that a family may live in a higher layer (the tuned model is a backbone plus a task head, built in
`lmlab.tune`) and that reading one run does not import every family. The class itself declares
what it can do (`lmlab.models.base.ModelFamily`): callers ask it, never its name.

A new family is one file under ``lmlab/models`` plus one line in `FAMILIES`, or, for a family that
lives in code of your own, one call of `register_family` (as tests/test_toy_family.py does).
"""

from __future__ import annotations

import importlib
from typing import Any

from lmlab.errors import LmlabError

FAMILIES: dict[str, str | type] = {
    "gpt": "lmlab.models.gpt:GPT",
    "llama": "lmlab.models.llama:Llama",
    "bert": "lmlab.models.bert:BERT",
    "mlp": "lmlab.models.mlp:BengioMLP",
    "rnn": "lmlab.models.rnn:RNNLanguageModel",
    "ngram": "lmlab.models.ngram.family:CountedNgram",
    "word2vec": "lmlab.models.word2vec.family:Word2Vec",
    "tuned": "lmlab.tune.model:TunedModel",
}

DEFAULT_FAMILY = "gpt"  # what a train config builds when its model section names no family

# `model_type` in a Hugging Face config.json -> "module:function" reading such a directory as
# (lmlab model, tokenizer).
HF_DIRECTORIES: dict[str, str] = {
    "bert": "lmlab.models.hf_bert:load_bert_directory",
    "gpt2": "lmlab.models.hf:load_gpt2_directory",
    "llama": "lmlab.models.hf_llama:load_llama_directory",
    "qwen2": "lmlab.models.hf_llama:load_llama_directory",
}


def resolve(entry: str | Any) -> Any:
    """The object a ``"module:name"`` entry names (imported now), or the entry itself if it is one already."""
    if not isinstance(entry, str):
        return entry
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def register_family(name: str, entry: str | type) -> None:
    """Make `name` a family: `entry` is its model class or a lazy ``"module:Class"`` string."""
    FAMILIES[name] = entry


def family_class(name: str, source: str = "model config") -> Any:
    """The model class of family `name`; `source` names where the name was read, for the error."""
    if name not in FAMILIES:
        raise LmlabError(f"{source}: unknown model family {name!r} (known: {', '.join(sorted(FAMILIES))})")
    cls = FAMILIES[name] = resolve(FAMILIES[name])
    return cls


def family_of_kind(kind: str) -> Any:
    """The one registered family of `kind` (for commands that serve a kind, such as word vectors)."""
    found = [cls for cls in map(family_class, list(FAMILIES)) if cls.kind == kind]
    if len(found) != 1:
        raise LmlabError(f"{len(found)} registered model families are of kind {kind!r}; expected exactly one")
    return found[0]


def hf_directory_reader(model_type: str, source: str) -> Any:
    """The function reading a Hugging Face directory whose config.json says `model_type`."""
    if model_type not in HF_DIRECTORIES:
        raise LmlabError(f"{source}: model_type {model_type!r} is not one lmlab reads "
                         f"(it reads {', '.join(sorted(HF_DIRECTORIES))})")
    return resolve(HF_DIRECTORIES[model_type])
