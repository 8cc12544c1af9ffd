"""Run directories of every generation: reading their config, model and evaluation back.

A neural run (`lmlab.train.train`) and an n-gram run (`lmlab.train.counting.train_ngram_run`) share
one layout; ``model.family`` in config.yaml says which trainer and which loader a run needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmlab.config import build_config, read_config_data, read_yaml
from lmlab.data.packing import TokenShards, split_documents
from lmlab.errors import LmlabError
from lmlab.evaluate import score_texts, unigram_baseline
from lmlab.files import read_json, write_json
from lmlab.models import load_model
from lmlab.models.language_model import CausalLanguageModel, LanguageModel
from lmlab.models.ngram import NgramLanguageModel, NgramModel
from lmlab.tokenizers import Tokenizer
from lmlab.train import TrainConfig, TrainResult, train
from lmlab.train.counting import NgramTrainConfig, splitter_for, train_ngram_run

RunConfig = TrainConfig | NgramTrainConfig


def _config_class(data: dict[str, Any]) -> type[TrainConfig] | type[NgramTrainConfig]:
    model = data.get("model")
    family = model.get("family", "gpt") if isinstance(model, dict) else "gpt"
    return NgramTrainConfig if family == "ngram" else TrainConfig


def read_train_config(path: str | Path | None, overrides: list[str]) -> RunConfig:
    """A train config from YAML and dotted overrides, validated as the trainer of its ``model.family`` needs."""
    data = read_config_data(path, overrides)
    return build_config(_config_class(data), data, source=str(path) if path else "config")


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config a run saved, for resuming or inspecting it."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise LmlabError(f"{path}: missing; is {run_dir} a run directory?")
    data = read_yaml(path)
    return build_config(_config_class(data), data, source=str(path))


def train_run(cfg: RunConfig, resume: bool = False) -> TrainResult:
    """Train a run of any family: gradient steps through the one loop, or counting for an n-gram."""
    if isinstance(cfg, NgramTrainConfig):
        if resume:
            raise LmlabError("--resume: an n-gram run is built in one pass and has nothing to resume")
        return train_ngram_run(cfg)
    return train(cfg, resume=resume)


def load_run(run_dir: str | Path, device: str | None = None) -> tuple[nn.Module, Tokenizer]:
    """The trained neural model and the tokenizer of `run_dir`."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.json").exists():
        raise LmlabError(f"{run_dir}: no model.json; is it a finished run (or a model directory)?")
    if read_json(run_dir / "model.json").get("family") == "ngram":
        raise LmlabError(f"{run_dir}: an n-gram run has no neural network; use it through load_language_model")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(run_dir, device=device)
    return model, Tokenizer.load(run_dir / "tokenizer.json")


def load_language_model(run_dir: str | Path, predict_end: bool = False) -> LanguageModel:
    """The run's model behind the `LanguageModel` interface, whatever its generation.

    ``predict_end``: neural models also score end-of-text after each text, as n-gram models always
    score ``</s>``, so that models of different generations predict the same units.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "model.json").exists():
        raise LmlabError(f"{run_dir}: no model.json; is it a finished run (or a model directory)?")
    spec = read_json(run_dir / "model.json")
    tokenizer = Tokenizer.load(run_dir / "tokenizer.json")
    if spec.get("family") == "ngram":
        unit = spec["config"].get("unit", "token")
        return NgramLanguageModel(NgramModel.load(run_dir), splitter_for(unit, tokenizer))
    model = load_model(run_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    config = load_run_config(run_dir) if (run_dir / "config.yaml").exists() else None
    block_size = config.train.block_size if isinstance(config, TrainConfig) else None
    return CausalLanguageModel(model, tokenizer, max_length=block_size, predict_end=predict_end)


def predicted_units(lm: LanguageModel, text: str) -> int:
    """How many predictions `loglikelihood_rolling` makes on `text`: its units (and the end, if scored)."""
    if isinstance(lm, NgramLanguageModel):
        return len(lm.splitter.split(text)) + 1
    if isinstance(lm, CausalLanguageModel):
        return len(lm.tokenizer.encode(text)) + int(lm.predict_end)
    raise TypeError(f"cannot count the units of {type(lm).__name__}")


def evaluate_run(run_dir: str | Path, split: str = "val") -> dict[str, Any]:
    """Perplexity and bits per byte of the run's model on its data split, beside the unigram baseline.

    The result is also written to ``eval.json`` in the run directory, where `lmlab report` finds it.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    lm = load_language_model(run_dir)
    shards = TokenShards(config.data)
    texts = split_documents(shards, Tokenizer.load(run_dir / "tokenizer.json"), split)
    score = score_texts(lm, texts, lambda text: predicted_units(lm, text), split)
    baseline = unigram_baseline(shards, split)
    result = {
        "split": split,
        "documents": len(texts),
        "tokens": score.tokens,
        "bytes": score.bytes,
        "perplexity": score.perplexity,
        "bits_per_byte": score.bits_per_byte,
        "unigram_perplexity": baseline.perplexity,
        "unigram_bits_per_byte": baseline.bits_per_byte,
    }
    write_json(run_dir / "eval.json", result)
    return result
