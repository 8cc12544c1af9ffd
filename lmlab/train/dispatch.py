"""Which trainer a run needs, read from the kind its model family declares.

    a neural model (decoder, encoder, ...)   gradient steps through the one loop     TrainConfig
    a count-based model (n-gram)             one pass that counts and smooths        CountingTrainConfig
    word vectors (word2vec)                  epochs over the corpus text itself     VectorsTrainConfig

so ``lmlab train`` takes any family through one command, and a new family needs no edit here
unless it learns in a new way (then: its trainer, its config class, one line in `TRAINERS`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from lmlab.config import Config, ConfigClass, build_config, read_config_data
from lmlab.errors import LmlabError
from lmlab.models.registry import DEFAULT_FAMILY, family_class
from lmlab.runs import open_run
from lmlab.train.counting import CountingTrainConfig, train_counting_run
from lmlab.train.loop import TrainConfig, TrainResult, train
from lmlab.train.vectors import VectorsTrainConfig, train_vectors_run

# kind -> (its run config, its trainer); every other kind trains through the loop.
TRAINERS: dict[str, tuple[type[Config], Callable[[Any, Console | None], TrainResult]]] = {
    "count-based": (CountingTrainConfig, train_counting_run),
    "word-vectors": (VectorsTrainConfig, train_vectors_run),
}


def _config_class(data: dict[str, Any], source: str) -> type[Config]:
    model = data.get("model")
    family = model.get("family", DEFAULT_FAMILY) if isinstance(model, dict) else DEFAULT_FAMILY
    kind = family_class(str(family), f"{source}: model.family").kind
    if kind == "task":
        raise LmlabError(f"{source}: model.family: a {family} model is a trained base with a task head, made by "
                         f"lmlab tune base=RUN data=..., not trained from scratch")
    return TRAINERS[kind][0] if kind in TRAINERS else TrainConfig


def read_train_config(path: str | Path | None, overrides: list[str]) -> Config:
    """A train config from YAML and dotted overrides, validated as the trainer of its ``model.family`` needs."""
    source = str(path) if path else "config"
    data = read_config_data(path, overrides, lambda data: _config_class(data, source))
    return build_config(_config_class(data, source), data, source=source)


# What a resumed run may change: how long it goes on and how it reports and saves, never what it
# already trained with (the data, the model, the objective, the optimizer's settings).
RESUMABLE = ("train.max_steps", "train.eval_every", "train.log_every", "train.checkpoint_every",
             "train.keep_checkpoints", "train.device", "train.compile")


def resumed_config_data(run_dir: str | Path, overrides: list[str] | None,
                        config_class: ConfigClass) -> tuple[dict[str, Any], Path]:
    """The config a run saved (and its path), with `overrides` of `RESUMABLE` keys, before validation as
    `config_class` (the class, or a function choosing it from the data).

    Its run_dir is the run's own folder where it is now, wherever it was trained.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise LmlabError(f"{path}: missing; is {run_dir} a run directory?")
    for override in overrides or []:
        key = override.split("=", 1)[0].strip()
        if key not in RESUMABLE:
            raise LmlabError(f"--resume {override}: {key} would change what the run already trained with; a "
                             f"resumed run may change only {', '.join(RESUMABLE)}")
    return {**read_config_data(path, overrides, config_class), "run_dir": str(run_dir)}, path


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The resolved config a run saved, for resuming or inspecting it, with `overrides` of `RESUMABLE` keys."""
    if (Path(run_dir) / "model.json").exists():
        run = open_run(run_dir)
        if run.family_class.kind == "task":
            raise run.refusal(f"`lmlab tune` trained it, and resumes it: lmlab tune {run_dir} --resume")
    source = str(Path(run_dir) / "config.yaml")
    data, path = resumed_config_data(run_dir, overrides, lambda data: _config_class(data, source))
    return build_config(_config_class(data, str(path)), data, source=str(path))


def train_run(cfg: Config, resume: bool = False, console: Console | None = None) -> TrainResult:
    """Train a run of any family: gradient steps through the one loop, or its kind's own trainer."""
    if isinstance(cfg, TrainConfig):
        return train(cfg, resume=resume, console=console)
    trainer = next((trainer for config_class, trainer in TRAINERS.values() if isinstance(cfg, config_class)), None)
    if trainer is None:
        raise LmlabError(f"a {type(cfg).__name__} is no train config: read one with read_train_config")
    if resume:
        raise LmlabError(f"{cfg.run_dir}: --resume: this run is built in one pass and has nothing to resume")
    return trainer(cfg, console)
