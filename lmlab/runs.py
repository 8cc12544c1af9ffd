"""Run directories: the one way in, and the one way to start one.

Everything that uses a trained model (evaluation, generation, pipelines, tuning, the lm-eval
adapter, and the HTTP server to come) opens it with `open_run`, whatever it is:

    runs/NAME/               an lmlab run or model directory: model.json + weights, tokenizer.json,
                             and for a run config.yaml, summary.json, metrics.jsonl
    a Hugging Face directory config.json (+ model.safetensors + tokenizer.json), read in place by the
                             reader its model_type registers (lmlab.models.registry.HF_DIRECTORIES)
    all-MiniLM-L6-v2         the name of pretrained weights (lmlab.datasets.weights), fetched once

and gets a `Run`: the family and its declared capabilities, the config the run was trained with,
its summary, and the model, tokenizer or `LanguageModel` on demand. This module only reads and
writes run directories; training lives in `lmlab.train`, evaluation in `lmlab.evaluate`.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmlab.config import Config, read_yaml, save_config
from lmlab.datasets.weights import WEIGHTS, pretrained_directory
from lmlab.errors import LmlabError, warn
from lmlab.files import read_json
from lmlab.models import LanguageModel, load_model, read_model_json
from lmlab.models.base import KINDS
from lmlab.models.quantize import quantize
from lmlab.models.registry import family_class, hf_directory_reader
from lmlab.modes import pick_device
from lmlab.tokenizers import Tokenizer
from lmlab.tokenizers.chat import ChatTemplate


@dataclass
class Run:
    """An opened run, model directory or Hugging Face directory; the model is read when first asked for."""

    path: Path
    family: str
    model_config: dict[str, Any]
    _loaded: tuple[Any, Tokenizer] | None = field(default=None, repr=False)  # a Hugging Face directory, read whole

    @property
    def family_class(self) -> Any:
        """The family's model class: what it is and can do (`lmlab.models.base.ModelFamily`)."""
        return family_class(self.family, str(self.path / "model.json"))

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved config the run was trained with (config.yaml), or {} for a bare model directory."""
        path = self.path / "config.yaml"
        return read_yaml(path) if path.exists() else {}

    def input_path(self, key: str) -> str | None:
        """An input path the run was trained from (its ``data``), found from where the run is now: the run's
        config.yaml writes input paths relative to the run's folder, so a run moved with its data works."""
        value = self.config.get(key)
        if not isinstance(value, str):
            return value
        beside = os.path.normpath(self.path / value)
        if Path(value).is_absolute() or os.path.exists(beside):
            return beside
        if Path(value).exists():  # where runs trained before paths were written relative to the run kept them
            warn(f"{self.path}: its {key} {value} is not beside the run; using the one in the working directory "
                 f"(a run trained before lmlab wrote paths relative to the run folder)")
            return value
        raise LmlabError(f"{self.path}: its {key} {value} (from config.yaml, relative to the run) is not at "
                         f"{os.path.normpath(self.path / value)}; move it with the run, or give --data DIR")

    @cached_property
    def summary(self) -> dict[str, Any]:
        path = self.path / "summary.json"
        return read_json(path) if path.exists() else {}

    @property
    def block_size(self) -> int | None:
        """The window the run was trained on, when its config chose one shorter than the model's context."""
        train = self.config.get("train")
        return train.get("block_size") if isinstance(train, dict) else None

    def describe(self) -> str:
        """The model in a few words: "GPT 4x128", "5-gram mod-KN"."""
        return self.family_class.describe(self.model_config)

    def tokenizer(self) -> Tokenizer:
        if self._loaded is not None:
            return self._loaded[1]
        path = self.path / "tokenizer.json"
        if not path.exists():
            raise LmlabError(f"{self.path}: no tokenizer.json beside the model")
        return Tokenizer.load(path)

    def chat_template(self) -> ChatTemplate | None:
        """The chat template the run was tuned with (chat_template.jinja), or None for a run that has none."""
        return ChatTemplate.load(self.path)

    def model(self, device: str | torch.device | None = None, quantization: str = "none") -> Any:
        """The model, in eval mode (a neural one on `device`, default CUDA when there is one); with
        ``quantization="int8"`` its linear layers hold int8 weights (`lmlab.models.quantize`), for inference."""
        device = pick_device(device or "auto")
        model = self._loaded[0].to(device).eval() if self._loaded is not None else load_model(self.path, device=device)
        if quantization == "none":
            return model
        if not isinstance(model, nn.Module):
            raise self.refusal(f"--quantize {quantization} applies to neural models' weights")
        # quantize() works in place: a Hugging Face directory's model, read once and kept, stays as it was
        return quantize(copy.deepcopy(model) if self._loaded is not None else model, quantization)

    def language_model(self, predict_end: bool = False, device: str | torch.device | None = None,
                       quantization: str = "none") -> LanguageModel:
        """The model behind the `LanguageModel` interface, whatever its generation.

        ``predict_end``: neural models also score end-of-text after each text, as n-gram models
        always score ``</s>``, so that models of different generations predict the same units.
        """
        self.check_scores_text()
        return self.model(device, quantization).language_model(self.tokenizer(), max_length=self.block_size,
                                                               predict_end=predict_end)

    def refusal(self, cannot: str) -> LmlabError:
        """The error for a command this run cannot serve: why, then what the run is and a command it can serve.

        "runs/bert: <cannot>; it is an encoder (BERT 2x128) that fills masks and gives features: try ..."
        """
        does, command = self.family_class.uses(self.model_config)
        return LmlabError(f"{self.path}: {cannot}; it is {KINDS[self.family_class.kind][0]} ({self.describe()}) "
                          f"that {does}: try {command.format(run=self.path)}")

    def check_scores_text(self) -> None:
        """Refuse, saying what the run is for, a model that gives no probabilities of text."""
        try:
            self.family_class.check_scores_text()
        except LmlabError as exc:
            raise self.refusal(str(exc)) from None

    def parameters(self) -> int:
        """Trained numbers: weights (tied ones once), or what a count-based model stores."""
        if "parameters" in self.summary:
            return int(self.summary["parameters"])
        # The model as it is, wherever it is: moving a Hugging Face directory's one module would move it
        # out from under a LanguageModel already made of it.
        model = self._loaded[0] if self._loaded is not None else load_model(self.path)
        return sum(p.numel() for p in model.parameters()) if isinstance(model, nn.Module) else model.parameter_count()


def open_run(source: str | os.PathLike[str]) -> Run:
    """Open a run or model directory, a Hugging Face directory, or named pretrained weights."""
    path = Path(source)
    if not path.is_dir():
        if str(source) in WEIGHTS:
            path = pretrained_directory(str(source))
        elif path.exists():
            raise LmlabError(f"{path}: a file, not a run directory")
        else:
            raise LmlabError(f"{source}: no such directory, and not named pretrained weights "
                             f"(known: {', '.join(sorted(WEIGHTS))})")
    if (path / "model.json").exists():
        family, config = read_model_json(path / "model.json")
        family_class(family, str(path / "model.json"))  # an unknown family is named now, not at first use
        return Run(path, family, config)
    if (path / "config.json").exists():
        model_type = read_json(path / "config.json", "file; is this a Hugging Face model directory?").get("model_type")
        model, tokenizer = hf_directory_reader(str(model_type), str(path / "config.json"))(path)
        return Run(path, model.family, model.config_dict(), (model, tokenizer))
    if (path / "checkpoints").exists():
        raise LmlabError(f"{path}: no model.json yet; the run has not finished (resume it with lmlab train "
                         f"{path} --resume)")
    raise LmlabError(f"{path}: neither an lmlab run or model directory (model.json) nor a Hugging Face "
                     "directory (config.json)")


def start_run_dir(run_dir: str | os.PathLike[str], config: Config,
                  tokenizer: Tokenizer | str | os.PathLike[str] | None) -> Path:
    """Create `run_dir` with its resolved config.yaml and the tokenizer the model reads text with."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    if isinstance(tokenizer, Tokenizer):
        tokenizer.save(run_dir / "tokenizer.json")
    elif tokenizer is not None and Path(tokenizer).exists():
        shutil.copyfile(tokenizer, run_dir / "tokenizer.json")
    return run_dir
