"""Multiple choice: pick the right answer among a question's N choices.

    {question, choices, answer}   every (question, choice) pair is one row: (B, N, T) ──> (B*N, T)
                                  ──pool──> (B*N, C) ──linear──> one score per pair ──> (B, N),
                                  softmax over the N choices

Figures: loss and accuracy, and on the test split macro-F1 with the right choice's position as the
class, beside always answering the commonest right position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.models.base import LMOutput
from lmlab.tokenizers import Tokenizer
from lmlab.train.objectives import Batch
from lmlab.tune.encoding import cls_sep_frame, pad_batch
from lmlab.tune.pooling import Pooling, pool
from lmlab.tune.tasks.base import HeadConfig, TaskHead, TaskObjective, TaskSettings, label_figures, predict_scores
from lmlab.tune.tasks.jsonl import JsonlTask


class ChoiceHead(TaskHead):
    """One score per (question, choice) row from its pooled vector; softmax across a question's."""

    grouped = True

    def __init__(self, hidden_size: int, dropout: float, pooling: Pooling):
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.scorer = nn.Linear(hidden_size, 1)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None, labels: Tensor | None, rows: int) -> LMOutput:
        scores = self.scorer(self.dropout(pool(hidden, attention_mask, self.pooling)))  # (B*N, 1)
        logits = scores.view(rows, -1)  # (B, N)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return LMOutput(logits=logits, loss=loss)


@dataclass
class ChoiceExamples:
    ids: list[list[list[int]]]  # per question, per choice: the pair's ids
    token_types: list[list[list[int]]]
    labels: np.ndarray  # (N,) the right choice


def encode_pair(tokenizer: Tokenizer, question: str, choice: str, block_size: int) -> tuple[list[int], list[int]]:
    """``[CLS] question [SEP] choice [SEP]`` (segments 0 and 1) for BERT; ``question choice <eos>`` for a decoder.

    A pair too long for the block loses tokens from the end of its longer part first (longest first).
    """
    asked, answer = tokenizer.encode(question), tokenizer.encode(choice)
    frame = cls_sep_frame(tokenizer)
    extra = 3 if frame else (1 if tokenizer.eos_id is not None else 0)
    while len(asked) + len(answer) + extra > block_size:
        if len(asked) >= len(answer):
            asked = asked[:-1]
        else:
            answer = answer[:-1]
    if frame:
        cls, sep = frame
        return [cls, *asked, sep, *answer, sep], [0] * (len(asked) + 2) + [1] * (len(answer) + 1)
    ids = asked + answer + ([tokenizer.eos_id] if tokenizer.eos_id is not None else [])
    return ids, [0] * len(ids)


def encode_choices(records: Sequence[dict[str, Any]], tokenizer: Tokenizer, block_size: int) -> ChoiceExamples:
    counts = {len(record["choices"]) for record in records}
    if len(counts) > 1:
        raise LmlabError(f"multiple choice: every question needs the same number of choices, found {sorted(counts)}")
    out = ChoiceExamples([], [], np.array([int(r["answer"]) for r in records], dtype=np.int64))
    for record in records:
        pairs = [encode_pair(tokenizer, str(record["question"]), str(c), block_size) for c in record["choices"]]
        out.ids.append([ids for ids, _ in pairs])
        out.token_types.append([types for _, types in pairs])
    return out


class MultipleChoice(TaskObjective):
    """Cross-entropy of the right choice among a question's scored pairs."""

    def _batch(self, examples: ChoiceExamples, indices: np.ndarray) -> Batch:
        """(B, N, T) ids, attention mask and segments: every pair padded to the batch's longest."""
        ids, mask = pad_batch([pair for i in indices for pair in examples.ids[i]], self.pad_id)
        types, _ = pad_batch([pair for i in indices for pair in examples.token_types[i]], 0)
        shape = (len(indices), -1, ids.shape[1])
        return {"input_ids": ids.view(shape), "attention_mask": mask.view(shape), "token_type_ids": types.view(shape),
                "labels": torch.from_numpy(examples.labels[np.asarray(indices)])}

    def figures(self, model: nn.Module, examples: ChoiceExamples, device: torch.device,
                prefix: str) -> dict[str, float]:
        return choice_figures(self.scores(model, examples, device), examples.labels, prefix)

    def scores(self, model: nn.Module, examples: ChoiceExamples, device: torch.device) -> np.ndarray:
        """(N, choices) scores of every question's choices."""
        return predict_scores(model, self.batches(examples), device)


def choice_figures(scores: np.ndarray, labels: np.ndarray, prefix: str) -> dict[str, float]:
    logits, truth = torch.from_numpy(scores), torch.from_numpy(labels)
    return {f"{prefix}loss": float(F.cross_entropy(logits, truth)),
            f"{prefix}accuracy": float((logits.argmax(dim=-1) == truth).float().mean())}


class MultipleChoiceTask(JsonlTask):
    name = "multiple_choice"
    best_metric = "val_accuracy"
    fields = ("question", "choices", "answer")

    def check(self, record: dict[str, Any], where: str) -> None:
        choices, answer = record["choices"], record["answer"]
        if not isinstance(choices, list) or len(choices) < 2:
            raise LmlabError(f"{where}: choices must be a list of at least two texts")
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise LmlabError(f"{where}: answer must be the index of the right choice (0..{len(choices) - 1})")

    def encode(self, records: Sequence[dict[str, Any]], labels: Sequence[str], tokenizer: Tokenizer, block_size: int,
               settings: TaskSettings) -> ChoiceExamples:
        return encode_choices(records, tokenizer, block_size)

    def head(self, hidden_size: int, labels: Sequence[str], settings: HeadConfig, pooling: Pooling) -> TaskHead:
        return ChoiceHead(hidden_size, settings.dropout, pooling)

    def objective(self, train: ChoiceExamples, validation: ChoiceExamples, labels: Sequence[str],
                  settings: TaskSettings, pad_id: int) -> MultipleChoice:
        loop = settings.train
        return MultipleChoice(train, validation, loop.batch_size, loop.grad_accum, loop.seed, pad_id)

    def test_figures(self, model: nn.Module, objective: MultipleChoice, test: ChoiceExamples, labels: Sequence[str],
                     settings: TaskSettings, device: torch.device) -> dict[str, Any]:
        scores = objective.scores(model, test, device)
        # The right choice's position as a class: macro-F1 over positions, and always the commonest right position.
        return {**choice_figures(scores, test.labels, "test_"),
                **label_figures(test.labels, scores.argmax(axis=-1), objective.train.labels, scores.shape[1])}
