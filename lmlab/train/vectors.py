"""Training word vectors into a run directory, laid out like every other lmlab run.

    RUN_DIR/
      config.yaml          the resolved Word2VecTrainConfig: corpus, unit, case and model settings
      metrics.jsonl        one line per epoch: epoch (also as step), loss, examples, words, words_per_s, seconds
      summary.json         family, epochs, words seen, train_seconds, parameters, vocabulary, final train_loss
      model.safetensors    the vectors and their training counts
      model.json           {"family": "word2vec", "config": {...}, "words": [...]}

The last two are what `WordVectors.save` writes, so ``WordVectors.load(RUN_DIR)`` and every
``lmlab word2vec`` command take a run directory as they take a vectors directory. word2vec has no
optimizer steps worth logging one by one, so an epoch is its logged step. As for an n-gram run, the
directory is staged under a temporary name and renamed when complete, and a run directory that
already holds files is refused rather than overwritten.

    model:
      family: word2vec
      architecture: skipgram     # or cbow
      dim: 100
      epochs: 5
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from rich.console import Console

from lmlab.config import Config, save_config
from lmlab.data import read_documents
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, write_json
from lmlab.models.word2vec import EpochStats, Word2VecConfig, WordVectors, text_sentences, train_word2vec
from lmlab.train.loop import TrainResult


class Word2VecRunModel(Word2VecConfig):
    family: Literal["word2vec"] = "word2vec"


class Word2VecTrainConfig(Config):
    run_dir: str = "runs/word2vec"
    paths: list[str] = Field(min_length=1, description="corpus files, directories or globs (.txt .jsonl .csv .parquet)")
    text_field: str = Field("text", description="JSONL field / CSV or Parquet column")
    unit: Literal["word", "character"] = Field(
        "word", description="word: letters and digits (each Chinese character a word); character: every character"
    )
    keep_case: bool = Field(False, description="keep capitals; by default every line is lowercased")
    model: Word2VecRunModel = Word2VecRunModel()


@dataclass
class Word2VecResult(TrainResult):
    """A `TrainResult` (steps are epochs, tokens are corpus words) with the trained vectors."""

    vectors: WordVectors


def train_word2vec_run(cfg: Word2VecTrainConfig, console: Console | None = None) -> Word2VecResult:
    """Train the configured word vectors on the corpus; write a run directory; print a line per epoch."""
    run_dir = Path(cfg.run_dir)
    # Checked before training, not after: a corpus can take minutes, and the refusal needs none of it.
    if run_dir.exists() and any(run_dir.iterdir()):
        raise LmlabError(f"run_dir: {run_dir} already holds files; choose another run_dir or delete it")
    console = console or Console(stderr=True)
    model = Word2VecConfig(**cfg.model.model_dump(exclude={"family"}))
    epochs: list[EpochStats] = []

    def log(stats: EpochStats) -> None:
        epochs.append(stats)
        console.print(f"epoch {stats.epoch}/{model.epochs}: loss {stats.loss:.4f}, "
                      f"{stats.words / stats.seconds:,.0f} words/s")

    started = time.perf_counter()
    documents = read_documents(cfg.paths, text_field=cfg.text_field)
    vectors = train_word2vec(text_sentences(documents, cfg.unit, not cfg.keep_case), model, on_epoch=log)
    seconds = time.perf_counter() - started

    words_seen = sum(stats.words for stats in epochs)
    loss = epochs[-1].loss
    with atomic_path(run_dir) as staging:
        vectors.save(staging)
        save_config(cfg, staging / "config.yaml")
        with (staging / "metrics.jsonl").open("w", encoding="utf-8") as metrics:
            for stats in epochs:
                metrics.write(json.dumps({
                    "step": stats.epoch, "epoch": stats.epoch, "loss": stats.loss, "examples": stats.examples,
                    "words": stats.words, "words_per_s": stats.words / stats.seconds, "seconds": stats.seconds,
                }) + "\n")
        write_json(staging / "summary.json", {
            "family": "word2vec", "epochs": len(epochs), "words_seen": words_seen, "train_seconds": seconds,
            # Both matrices are learned, the input vectors kept and the output vectors dropped at the end.
            "parameters": 2 * len(vectors) * vectors.dim,
            "vocabulary": len(vectors), "train_loss": loss,
        })
    return Word2VecResult(run_dir, len(epochs), words_seen, seconds, loss, None, vectors)


__all__ = ["Word2VecResult", "Word2VecRunModel", "Word2VecTrainConfig", "train_word2vec_run"]
