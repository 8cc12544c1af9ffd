"""The one shape of every pipeline: texts in, plain Python answers out, a batch at a time.

A pipeline class says which models it takes (`check_model`, before anything is loaded), how it
loads one (`from_run`), which options a call accepts (`options`, checked by `_check`), how it
answers one batch of texts (`_run`) and how an answer reads on the command line (`format_answer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.datasets.weights import WeightsSpec
from lmlab.errors import LmlabError
from lmlab.runs import Run
from lmlab.tokenizers import Tokenizer
from lmlab.tune.encoding import pad_batch


class Pipeline:
    """Text in, answers out. A subclass names its `options` and writes `_run` for one batch of texts."""

    options: tuple[str, ...] = ()  # the keyword arguments a call accepts
    kinds: tuple[str, ...] = ()  # the kinds of model (lmlab.models.base.Kind) it takes
    needs_head = False  # it reads a head the backbone alone lacks (a masked-LM head, an LM head)

    def __init__(self, task: str, model: Any, tokenizer: Tokenizer | None, device: torch.device, batch_size: int,
                 source: Path):
        self.task, self.model, self.tokenizer, self.device, self.batch_size, self.source = (
            task, model, tokenizer, device, batch_size, source)

    @classmethod
    def check_model(cls, task: str, run: Run) -> None:
        """Refuse, before loading it, a model that cannot do `task`; by default any neural network can."""
        if not issubclass(run.family_class, nn.Module):
            raise run.refusal(f"{task} needs a neural network, and a {run.describe()} model is not one")

    @classmethod
    def takes_weights(cls, spec: WeightsSpec) -> bool:
        """Whether the named pretrained weights `spec` can do this task (so `--help` offers them)."""
        return spec.kind in cls.kinds and not (cls.needs_head and spec.backbone_only)

    @classmethod
    def from_run(cls, task: str, run: Run, device: torch.device, batch_size: int) -> Pipeline:
        """The pipeline on the model of `run`, loaded onto `device`."""
        cls.check_model(task, run)
        return cls(task, run.model(device), run.tokenizer(), device, batch_size, run.path)

    def __call__(self, inputs: str | Sequence[str], **options: Any) -> Any:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            takes = ", ".join(self.options) or "no options"
            raise LmlabError(f"{self.task}: unknown option {unknown[0]!r} (it takes {takes})")
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise LmlabError(f"{self.task}: input {index} is a {type(text).__name__}, not a text")
        self._check(options)
        answers: list[Any] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                answers += self._run(texts[start : start + self.batch_size], start, **options)
        return answers[0] if single else answers

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        """One text's answer as a line or two a person reads (`lmlab pipeline` without --json)."""
        raise NotImplementedError

    def _check(self, options: dict[str, Any]) -> None:
        """Validate a call's options once, before any text is computed."""

    def _run(self, texts: list[str], first_index: int, **options: Any) -> list[Any]:
        raise NotImplementedError

    def _padded(self, rows: list[list[int]]) -> tuple[Tensor, Tensor]:
        pad_id = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        ids, mask = pad_batch(rows, pad_id)
        return ids.to(self.device), mask.to(self.device)


def check_top_k(top_k: Any, task: str) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise LmlabError(f"{task}: top_k must be a whole number >= 1 (or None), got {top_k!r}")
