"""Training word vectors into a run directory, laid out like every other lmlab run.

    RUN_DIR/
      config.yaml          the resolved VectorsTrainConfig: corpus and model settings
      metrics.jsonl        one line per epoch: epoch (also as step), loss, examples, words, words_per_s, seconds
      summary.json         family, epochs, words seen, train_seconds, parameters, vocabulary, final train_loss
      model.safetensors    the vectors and their training counts
      model.json           {"family": ..., "config": {...}, "words": [...]}

A family of kind ``word-vectors`` learns from the text itself (``learn(documents, settings,
on_epoch)``), not from packed shards, and has no optimizer steps worth logging one by one, so an
epoch is its logged step. As for an n-gram run, the directory is staged under a temporary name and
renamed when complete, and a run directory that already holds files is refused.

    lmlab train model.family=word2vec paths=corpus.txt run_dir=runs/vectors model.dim=100
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from rich.console import Console

from lmlab.config import InputPath, save_config
from lmlab.data import read_documents
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, write_json
from lmlab.train.family_config import FamilyRunConfig
from lmlab.train.loop import TrainResult


class VectorsTrainConfig(FamilyRunConfig):
    run_dir: str = "runs/vectors"
    paths: list[InputPath] = Field(min_length=1,
                                   description="corpus files, directories or globs (.txt .jsonl .csv .parquet)")
    text_field: str = Field("text", description="JSONL field / CSV or Parquet column")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, paths: Any) -> Any:
        return [paths] if isinstance(paths, str) else paths  # paths=corpus.txt on the command line


@dataclass
class VectorsResult(TrainResult):
    """A `TrainResult` (steps are epochs, tokens are corpus words) with the trained vectors."""

    vectors: Any


def train_vectors_run(cfg: VectorsTrainConfig, console: Console | None = None) -> VectorsResult:
    """Learn the configured word vectors from the corpus; write a run directory; print a line per epoch."""
    run_dir = Path(cfg.run_dir)
    # Checked before training, not after: a corpus can take minutes, and the refusal needs none of it.
    if run_dir.exists() and any(run_dir.iterdir()):
        raise LmlabError(f"run_dir: {run_dir} already holds files; choose another run_dir or delete it")
    console = console or Console(stderr=True)
    settings = cfg.model_settings()
    epochs: list[Any] = []

    def log(stats: Any) -> None:
        epochs.append(stats)
        console.print(f"epoch {stats.epoch}/{settings.epochs}: loss {stats.loss:.4f}, "
                      f"{stats.words / stats.seconds:,.0f} words/s")

    started = time.perf_counter()
    vectors = cfg.model_class().learn(read_documents(cfg.paths, text_field=cfg.text_field), settings, on_epoch=log)
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
            "family": vectors.family, "epochs": len(epochs), "words_seen": words_seen, "train_seconds": seconds,
            "parameters": vectors.parameter_count(), "vocabulary": len(vectors), "train_loss": loss,
        })
    return VectorsResult(run_dir, len(epochs), words_seen, seconds, loss, None, vectors)
