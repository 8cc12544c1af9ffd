"""The fine-tuning task interface: what one task brings to the one runner and to the tuned model.

A task (one module of this package, one entry of `lmlab.tune.tasks.TASKS`) says how to

    read          its train/validation/test records from the run's data, and its label set
    encode        a split's records as examples, for a tokenizer and a block size
    head          build the module that turns the backbone's hidden states (B, T, C) into its logits and loss
    objective     give the one training loop its batches and validation figures
    test_figures  score the test split for summary.json
    best_metric   name the validation figure the loop keeps the best weights by

`lmlab.tune.runner.tune` runs those steps for any task, and `lmlab.tune.model.TunedModel` builds
its head through the registry, so a new task needs no change to either.

Every objective draws its examples the same way: a training batch is a function of (seed, step,
micro-step), examples come in a fresh order each epoch, so a resumed run sees exactly the batches
an uninterrupted one would have.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from lmlab.config import Config
from lmlab.metrics.classification import majority_baseline, precision_recall_f1
from lmlab.models.base import LMOutput
from lmlab.modes import evaluating
from lmlab.tokenizers import Tokenizer
from lmlab.train.loop import LoopConfig
from lmlab.train.objectives import Batch, Objective
from lmlab.tune.pooling import Pooling

IGNORE = -100  # cross-entropy skips these positions: padding, special tokens, a word's later subwords


class TaskSettings(Protocol):
    """The run settings a task reads; `lmlab.tune.runner.TuneConfig` has them all."""

    base: str  # the run (or Hugging Face directory, or named weights) the task tunes
    data: str  # a named labelled set, a file, or a directory of train/validation/test files
    text_field: str
    label_field: str
    limit_train: int | None
    limit_eval: int | None
    doc_stride: int
    attack_epsilon: float | None
    train: LoopConfig  # batch size, gradient accumulation and seed


class HeadConfig(Config):
    hidden: int | None = Field(None, ge=1)  # None: one linear layer; a size: linear -> ReLU -> dropout -> linear
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    pooling: Pooling | None = None  # default: first for encoders, last for decoders


class TaskHead(nn.Module, ABC):
    """Hidden states (B, T, C) in, the task's logits out, and their loss when `labels` come too."""

    # True: an example is N sequences scored together (multiple choice), so a batch is (B, N, T) and the
    # backbone reads it as B*N rows; `rows` then tells the head B.
    grouped: ClassVar[bool] = False

    @abstractmethod
    def forward(self, hidden: Tensor, attention_mask: Tensor | None, labels: Tensor | None, rows: int) -> LMOutput:
        ...


@dataclass
class TaskData:
    splits: dict[str, list[Any]]  # the train, validation and test records, with the run's limits applied
    labels: list[str]  # what the head predicts among; empty for a task without a label set (qa, multiple choice)


def limited(splits: dict[str, list[Any]], settings: TaskSettings) -> dict[str, list[Any]]:
    """The first limit_train training records and the first limit_eval validation and test ones."""
    return {"train": splits["train"][: settings.limit_train],
            "validation": splits["validation"][: settings.limit_eval],
            "test": splits["test"][: settings.limit_eval]}


class Examples(Protocol):
    ids: Sequence[Any]  # one entry per example: the token ids the model reads


class TaskObjective(Objective, ABC):
    """A task's objective for the one training loop: its examples in batches, drawn epoch by epoch, and its figures."""

    def __init__(self, train: Any, validation: Any, batch_size: int, grad_accum: int, seed: int, pad_id: int):
        self.train, self.validation = train, validation
        self.batch_size, self.grad_accum, self.seed, self.pad_id = batch_size, grad_accum, seed, pad_id

    @abstractmethod
    def _batch(self, examples: Any, indices: np.ndarray) -> Batch:
        """The examples at `indices` as one batch, labels included."""

    @abstractmethod
    def figures(self, model: nn.Module, examples: Any, device: torch.device, prefix: str) -> dict[str, float]:
        """The task's figures of `model` on `examples`, each name starting with `prefix` (val_, test_)."""

    def training_batch(self, step: int, micro_step: int) -> Batch:
        n = len(self.train.ids)
        start = (step * self.grad_accum + micro_step) * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        epochs, offsets = np.divmod(positions, n)
        indices = np.empty(len(positions), dtype=np.int64)
        for epoch in np.unique(epochs):
            order = np.random.default_rng((self.seed, int(epoch))).permutation(n)  # each epoch its own shuffle
            indices[epochs == epoch] = order[offsets[epochs == epoch]]
        return self._batch(self.train, indices)

    def batches(self, examples: Examples) -> Iterator[Batch]:
        """`examples` in order, batch_size at a time."""
        for start in range(0, len(examples.ids), self.batch_size):
            yield self._batch(examples, np.arange(start, min(start + self.batch_size, len(examples.ids))))

    def eval_batches(self, max_tokens: int | None = None) -> Iterator[Batch]:
        return self.batches(self.validation)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return self.figures(model, self.validation, device, "val_")


def predict_scores(model: nn.Module, batches: Iterator[Batch], device: torch.device) -> np.ndarray:
    """The model's logits for every example of `batches`, in order (their labels unused)."""
    logits = []
    with evaluating(model):
        for batch in batches:
            batch = {key: value.to(device) for key, value in batch.items() if key != "labels"}
            logits.append(model(**batch).logits.float().cpu())
    return torch.cat(logits).numpy()


def label_figures(gold: np.ndarray, predicted: np.ndarray, train: np.ndarray, num_labels: int) -> dict[str, Any]:
    """Test macro-F1 over label indices 0..num_labels-1, and the majority-class baseline it must beat."""
    macro = precision_recall_f1(gold, predicted, average="macro", labels=list(range(num_labels)), zero_division=0)
    return {"test_macro_f1": float(macro.f), "majority_baseline": majority_baseline(train, gold, num_labels)}


class FineTuningTask(ABC):
    """One fine-tuning task: its data, encoding, head, objective and figures (see the module)."""

    name: ClassVar[str]  # the `task=` of `lmlab tune`, and of a tuned model's model.json
    best_metric: ClassVar[str]  # the validation figure to keep the best weights by
    min_labels: ClassVar[int] = 0  # the fewest labels a model of this task can have
    reads_conversations: ClassVar[bool] = False  # its texts are chats: the base gets the chat tokens and template

    @abstractmethod
    def read(self, settings: TaskSettings) -> TaskData:
        """The records of each split, limits applied, and the label set."""

    @abstractmethod
    def encode(self, records: Sequence[Any], labels: Sequence[str], tokenizer: Tokenizer, block_size: int,
               settings: TaskSettings) -> Any:
        """One split's records as the examples this task's objective batches."""

    @abstractmethod
    def head(self, hidden_size: int, labels: Sequence[str], settings: HeadConfig, pooling: Pooling) -> TaskHead:
        """A fresh head on a backbone of width `hidden_size`."""

    @abstractmethod
    def objective(self, train: Any, validation: Any, labels: Sequence[str], settings: TaskSettings,
                  pad_id: int) -> TaskObjective:
        """The objective on encoded training and validation examples."""

    def test_figures(self, model: nn.Module, objective: TaskObjective, test: Any, labels: Sequence[str],
                     settings: TaskSettings, device: torch.device) -> dict[str, Any]:
        """The figures of the trained model on the encoded test split; by default the validation ones."""
        return objective.figures(model, test, device, "test_")
