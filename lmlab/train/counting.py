"""Training by counting: a count-based model (an n-gram) on the same packed data and run directory
as a neural one.

Such a model has no gradient steps: training is one pass that counts and smooths, which its family
does (``count(shards, tokenizer, config)``). It still follows the run-directory layout
(config.yaml, tokenizer.json, model.safetensors + model.json, summary.json), so `lmlab eval`,
`lmlab generate` and `lmlab eval compare` take it like any run:

    model:
      family: ngram
      unit: token          # token (the data's tokenizer), character, or word
      order: 5
      estimator: modified-kneser-ney
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pydantic import Field
from rich.console import Console

from lmlab.config import InputPath, save_config
from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, write_json
from lmlab.tokenizers import Tokenizer
from lmlab.train.family_config import FamilyRunConfig
from lmlab.train.loop import TrainResult


class CountingTrainConfig(FamilyRunConfig):
    run_dir: str = "runs/counted"
    data: InputPath = Field(description="a packed directory (train.bin, val.bin, meta.json, tokenizer.json)")


def train_counting_run(cfg: CountingTrainConfig, console: Console | None = None) -> TrainResult:
    """Count the configured model on the train split; write its run directory, complete or not at all."""
    started = time.perf_counter()
    run_dir = Path(cfg.run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise LmlabError(f"run_dir: {run_dir} already holds files; choose another run_dir or delete it")
    shards = TokenShards(cfg.data)
    model = cfg.model_class().count(shards, Tokenizer.load(Path(cfg.data) / "tokenizer.json"), cfg.model_settings())
    seconds = time.perf_counter() - started
    with atomic_path(run_dir) as staging:
        model.save(staging)
        shutil.copyfile(Path(cfg.data) / "tokenizer.json", staging / "tokenizer.json")
        save_config(cfg, staging / "config.yaml")
        write_json(staging / "summary.json", {
            "family": model.family, "steps": 1, "tokens_seen": model.units_counted, "train_seconds": seconds,
            "parameters": model.parameter_count(),
        })
    return TrainResult(run_dir, 1, model.units_counted, seconds, float("nan"), None)
