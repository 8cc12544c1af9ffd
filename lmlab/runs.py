"""Reading a finished run directory back: its model, tokenizer and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError
from lmlab.evaluate import CausalLanguageModel, score_texts, split_documents, unigram_baseline
from lmlab.files import write_json
from lmlab.models import load_model
from lmlab.tokenizers import Tokenizer
from lmlab.train import load_run_config


def load_run(run_dir: str | Path, device: str | None = None) -> tuple[nn.Module, Tokenizer]:
    """The trained model and the tokenizer of `run_dir`."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.json").exists():
        raise LmlabError(f"{run_dir}: no model.json; is it a finished run (or a model directory)?")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(run_dir, device=device)
    return model, Tokenizer.load(run_dir / "tokenizer.json")


def evaluate_run(run_dir: str | Path, split: str = "val") -> dict[str, Any]:
    """Perplexity and bits per byte of the run's model on its data split, beside the unigram baseline.

    The result is also written to ``eval.json`` in the run directory, where `lmlab report` finds it.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    model, tokenizer = load_run(run_dir)
    shards = TokenShards(config.data)
    texts = split_documents(shards, tokenizer, split)
    lm = CausalLanguageModel(model, tokenizer, max_length=config.train.block_size)
    score = score_texts(lm, texts, lambda text: len(tokenizer.encode(text)), split)
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
