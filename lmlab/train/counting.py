"""Training by counting: an n-gram run on the same packed data and run directory as a neural one.

An n-gram model has no gradient steps: training is one pass that counts and smooths. It still
follows the run-directory layout (config.yaml, tokenizer.json, model.safetensors + model.json,
summary.json), so `lmlab eval`, `lmlab generate` and `lmlab eval compare` take it like any run:

    model:
      family: ngram
      unit: token          # token (the data's tokenizer), character, or word
      order: 5
      estimator: modified-kneser-ney

Each training document is one n-gram "sentence" (``<s> ... </s>``): the end of a document is
predicted as ``</s>``, the way a neural model trained on packed data predicts end-of-text.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from lmlab.config import Config, save_config
from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError
from lmlab.evaluate.perplexity import split_documents
from lmlab.files import atomic_path, write_json
from lmlab.models.ngram import NgramConfig, NgramModel, Splitter, estimate
from lmlab.models.ngram.counts import Vocabulary, count_words
from lmlab.tokenizers import Tokenizer
from lmlab.train.loop import TrainResult

HELD_OUT_EVERY = 20  # interpolation fits its weights on every 20th training document, kept out of the counts


class NgramRunModel(NgramConfig):
    family: Literal["ngram"] = "ngram"
    unit: Literal["token", "character", "word"] = Field(
        "token", description="what the model counts: the data's tokenizer tokens, characters, or words"
    )


class NgramTrainConfig(Config):
    run_dir: str = "runs/ngram"
    data: str = Field(description="a packed directory (train.bin, val.bin, meta.json, tokenizer.json)")
    model: NgramRunModel = NgramRunModel()


def splitter_for(unit: str, tokenizer: Tokenizer) -> Splitter:
    return Splitter("token", tokenizer) if unit == "token" else Splitter(unit)  # type: ignore[arg-type]


def _token_ids(shards: TokenShards, eos_id: int, vocab_of_token: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The train split's documents as n-gram word ids back to back, and each document's length, read
    straight from the packed tokens (tokens after the last end-of-text belong to no whole document)."""
    packed = np.asarray(shards.tokens("train"))
    ends = np.flatnonzero(packed == eos_id)
    if not len(ends):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    inside = packed[: ends[-1]]
    return vocab_of_token[inside[inside != eos_id]], np.diff(ends, prepend=-1) - 1


def train_ngram_run(cfg: NgramTrainConfig) -> TrainResult:
    """Count and smooth the configured n-gram model on the train split; write a run directory."""
    started = time.perf_counter()
    shards = TokenShards(cfg.data)
    if shards.meta.eos_id is None:
        raise LmlabError(f"{cfg.data}: packed without an end-of-text token, so documents cannot be told apart")
    tokenizer = Tokenizer.load(Path(cfg.data) / "tokenizer.json")
    spec = cfg.model
    splitter = splitter_for(spec.unit, tokenizer)
    ngram_config = NgramConfig(**spec.model_dump(exclude={"family", "unit"}))
    vocab = Vocabulary(splitter.token_names)  # a tokenizer's whole vocabulary, or empty for words/characters
    if spec.unit == "token":
        vocab_of_token = np.array([vocab.ids[name] for name in splitter.token_names], dtype=np.int64)
        words, lengths = _token_ids(shards, shards.meta.eos_id, vocab_of_token)
    elif spec.unit == "word":
        words, lengths = vocab.add_texts(split_documents(shards, tokenizer, "train"))  # split as str.split()
    else:
        documents = [[vocab.add(unit) for unit in splitter.split(text)]
                     for text in split_documents(shards, tokenizer, "train")]
        lengths = np.array([len(doc) for doc in documents], dtype=np.int64)
        words = np.array([unit for doc in documents for unit in doc], dtype=np.int64)
    if not len(lengths):
        raise LmlabError(f"{cfg.data}: the train split holds no documents")
    held_out: list[np.ndarray] = []
    if spec.estimator == "interpolation" and spec.lambdas is None and len(lengths) >= HELD_OUT_EVERY:
        documents = np.split(words, np.cumsum(lengths)[:-1])
        held_out = documents[::HELD_OUT_EVERY]
        kept = [doc for i, doc in enumerate(documents) if i % HELD_OUT_EVERY]
        lengths = np.array([len(doc) for doc in kept], dtype=np.int64)
        words = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    counts = count_words(words, lengths, ngram_config.order, len(vocab), ngram_config.padding)
    model = estimate(counts, vocab, ngram_config, held_out)
    seconds = time.perf_counter() - started

    run_dir = Path(cfg.run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise LmlabError(f"run_dir: {run_dir} already holds files; choose another run_dir or delete it")
    tokens = len(words) + len(lengths)  # every unit and each document's </s>
    with atomic_path(run_dir) as staging:
        model.save(staging, spec.model_dump())
        shutil.copyfile(Path(cfg.data) / "tokenizer.json", staging / "tokenizer.json")
        save_config(cfg, staging / "config.yaml")
        write_json(staging / "summary.json", {
            "family": "ngram", "steps": 1, "tokens_seen": tokens, "train_seconds": seconds,
            "parameters": parameter_count(model),
        })
    return TrainResult(run_dir, 1, tokens, seconds, float("nan"), None)


def parameter_count(model: NgramModel) -> int:
    """Stored numbers: a probability per n-gram and a back-off weight per n-gram below the top order."""
    return int(sum(len(p) for p in model.prob) + sum(len(b) for b in model.backoff[:-1]))


__all__ = ["NgramRunModel", "NgramTrainConfig", "parameter_count", "splitter_for", "train_ngram_run"]
