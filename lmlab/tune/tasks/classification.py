"""Sequence classification: one label per text.

    {text, label}   text ──frame_text──> ids ──backbone──> hidden (B, T, C) ──pool──> (B, C) ──head──> logits (B, K)

The data is a labelled set (lmlab.datasets.labelled): a named one such as sentiment-en, a .jsonl or
.csv file of `text_field` and `label_field` (split for you), or a directory of the three splits.
The head reads one vector per text (lmlab.tune.pooling) through one linear layer or a small MLP.
Figures: loss, accuracy and macro-F1 (the figure a majority-class guess cannot fake), beside that
guess's own; with `attack_epsilon`, also the test accuracy under an FGM attack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.datasets.labelled import Example, LabelledDataset, load_labelled, read_labelled
from lmlab.errors import LmlabError
from lmlab.metrics.classification import accuracy, majority_baseline, precision_recall_f1
from lmlab.models.base import LMOutput
from lmlab.tokenizers import Tokenizer
from lmlab.train.objectives import Batch
from lmlab.tune.adversarial import attacked_logits
from lmlab.tune.encoding import frame_text, pad_batch
from lmlab.tune.pooling import Pooling, pool
from lmlab.tune.tasks.base import (
    FineTuningTask,
    HeadConfig,
    TaskData,
    TaskHead,
    TaskObjective,
    TaskSettings,
    limited,
    predict_scores,
)


@dataclass
class EncodedExamples:
    ids: list[list[int]]
    labels: np.ndarray  # (N,) label indices


def encode_examples(texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str], tokenizer: Tokenizer,
                    block_size: int) -> EncodedExamples:
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        raise LmlabError(f"labels {unknown[:3]} are not among the model's labels {list(label_names)}")
    ids = [frame_text(text, tokenizer, block_size) for text in texts]
    return EncodedExamples(ids, np.array([index[label] for label in labels], dtype=np.int64))


class ClassificationHead(TaskHead):
    """Pooled vector -> label logits: one linear layer, or a small MLP (the usual head on frozen features)."""

    def __init__(self, in_features: int, num_labels: int, cfg: HeadConfig, pooling: Pooling):
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(cfg.dropout)
        if cfg.hidden is None:
            self.layers = nn.Sequential(nn.Linear(in_features, num_labels))
        else:
            self.layers = nn.Sequential(nn.Linear(in_features, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                        nn.Linear(cfg.hidden, num_labels))

    def forward(self, hidden: Tensor, attention_mask: Tensor | None, labels: Tensor | None, rows: int) -> LMOutput:
        logits = self.layers(self.dropout(pool(hidden, attention_mask, self.pooling)))  # (B, K)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return LMOutput(logits=logits, loss=loss)


class SequenceClassification(TaskObjective):
    """The objective of a text classifier: cross-entropy of the right label."""

    def _batch(self, examples: EncodedExamples, indices: np.ndarray) -> Batch:
        ids, mask = pad_batch([examples.ids[i] for i in indices], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.from_numpy(examples.labels[indices])}

    def figures(self, model: nn.Module, examples: EncodedExamples, device: torch.device,
                prefix: str) -> dict[str, float]:
        return classification_figures(predict_scores(model, self.batches(examples), device), examples.labels, prefix)


def classification_figures(logits: np.ndarray, labels: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Loss, accuracy and macro-F1 of label logits (N, K) against label indices (N,)."""
    log_probs = torch.log_softmax(torch.from_numpy(logits).double(), dim=-1)
    loss = float(-log_probs[torch.arange(len(labels)), torch.from_numpy(labels)].mean())
    predictions = logits.argmax(axis=1)
    macro = precision_recall_f1(labels, predictions, average="macro", labels=list(range(logits.shape[1])),
                                zero_division=0)
    return {f"{prefix}loss": loss, f"{prefix}accuracy": accuracy(labels, predictions),
            f"{prefix}macro_f1": float(macro.f)}


def load_data(settings: TaskSettings) -> LabelledDataset:
    """A file or directory at `data`, else the named labelled set."""
    path = Path(settings.data)
    if path.exists():
        return read_labelled(path, settings.text_field, settings.label_field)
    return load_labelled(settings.data)


class ClassificationTask(FineTuningTask):
    name = "classification"
    best_metric = "val_macro_f1"
    min_labels = 2

    def read(self, settings: TaskSettings) -> TaskData:
        dataset = load_data(settings)
        for split, rows in dataset.splits.items():
            if not rows:
                raise LmlabError(f"{dataset.name}: the {split} split is empty")
        return TaskData(limited(dataset.splits, settings), [str(label) for label in dataset.labels])

    def encode(self, records: Sequence[Example], labels: Sequence[str], tokenizer: Tokenizer, block_size: int,
               settings: TaskSettings) -> EncodedExamples:
        return encode_examples([row.text for row in records], [str(row.label) for row in records], labels, tokenizer,
                               block_size)

    def head(self, hidden_size: int, labels: Sequence[str], settings: HeadConfig, pooling: Pooling) -> TaskHead:
        return ClassificationHead(hidden_size, len(labels), settings, pooling)

    def objective(self, train: EncodedExamples, validation: EncodedExamples, labels: Sequence[str],
                  settings: TaskSettings, pad_id: int) -> SequenceClassification:
        loop = settings.train
        return SequenceClassification(train, validation, loop.batch_size, loop.grad_accum, loop.seed, pad_id)

    def test_figures(self, model: nn.Module, objective: TaskObjective, test: EncodedExamples, labels: Sequence[str],
                     settings: TaskSettings, device: torch.device) -> dict[str, Any]:
        figures: dict[str, Any] = objective.figures(model, test, device, "test_")
        if settings.attack_epsilon is not None:
            attacked = attacked_logits(model, objective.batches(test), device, settings.attack_epsilon)
            figures["test_accuracy_attacked"] = classification_figures(attacked, test.labels)["accuracy"]
        figures["majority_baseline"] = majority_baseline(objective.train.labels, test.labels, len(labels))
        return figures
