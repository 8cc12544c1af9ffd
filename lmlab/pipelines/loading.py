"""Finding a pipeline's model and loading it: a run or model directory, a Hugging Face BERT directory,
or the name of pretrained weights (lmlab.datasets.weights)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from lmlab.datasets.weights import WEIGHTS, pretrained_directory
from lmlab.errors import LmlabError
from lmlab.models import load_model, read_model_json
from lmlab.models.hf_bert import load_bert_directory
from lmlab.tokenizers import Tokenizer


def locate(model: str | os.PathLike[str]) -> Path:
    """The directory `model` names: itself, or where the named pretrained weights are (fetched if need be)."""
    path = Path(model)
    if path.is_dir():
        return path
    if str(model) in WEIGHTS:
        return pretrained_directory(str(model))
    raise LmlabError(f"model {str(model)!r}: no such directory, and not named pretrained weights "
                     f"(known: {', '.join(sorted(WEIGHTS))})")


def family_of(folder: Path) -> str:
    """The family in model.json, or "hf-bert" for a Hugging Face directory."""
    if (folder / "model.json").exists():
        return read_model_json(folder / "model.json")[0]
    if (folder / "config.json").exists():
        return "hf-bert"
    raise LmlabError(f"{folder}: neither an lmlab run or model directory (model.json) nor a Hugging Face "
                     "directory (config.json)")


def load_network(folder: Path, family: str, device: torch.device) -> tuple[nn.Module, Tokenizer]:
    """The network in `folder`, on `device` in eval mode, and its tokenizer."""
    if family == "hf-bert":
        net, tokenizer = load_bert_directory(folder)
    else:
        if not (folder / "tokenizer.json").exists():
            raise LmlabError(f"{folder}: no tokenizer.json beside the model")
        net, tokenizer = load_model(folder), Tokenizer.load(folder / "tokenizer.json")
    return net.to(device).eval(), tokenizer


def check_tuned_task(task: str, folder: Path, family: str, wanted: str) -> None:
    """Refuse a model that is not a run of `lmlab tune task=wanted`."""
    trained = read_model_json(folder / "model.json")[1].get("task", "classification") if family == "tuned" else None
    if trained != wanted:
        what = f"a tuned {trained} model" if trained else f"a {family} model"
        raise LmlabError(f"{folder}: {task} needs a run of `lmlab tune task={wanted}`, not {what}")
