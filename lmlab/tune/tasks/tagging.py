"""Token tagging (named entities, parts of speech): one tag per word.

    {tokens, tags}   hidden (B, T, C) ──linear──> tag logits (B, T, K)

Words are split into subwords; only a word's first subword carries its tag (the others get
IGNORE, skipped by the loss), as Hugging Face does, and a word's predicted tag is read there too.
Figures: tag accuracy and entity-level precision, recall and F1 (lmlab.metrics.entities, chunks as
seqeval cuts them), and on the test split also macro-F1 over single tags beside the commonest tag
(O, usually) as the baseline.
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
from lmlab.metrics.entities import entity_scores
from lmlab.models.base import LMOutput
from lmlab.modes import evaluating
from lmlab.tokenizers import Tokenizer
from lmlab.train.objectives import Batch
from lmlab.tune.encoding import cls_sep_frame, pad_batch
from lmlab.tune.pooling import Pooling
from lmlab.tune.tasks.base import IGNORE, HeadConfig, TaskHead, TaskObjective, TaskSettings, label_figures
from lmlab.tune.tasks.jsonl import JsonlTask


class TaggingHead(TaskHead):
    """One label per token: a linear layer over every hidden state."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None, labels: Tensor | None, rows: int) -> LMOutput:
        logits = self.classifier(self.dropout(hidden))  # (B, T, K)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        return LMOutput(logits=logits, loss=loss)


@dataclass
class TaggedExamples:
    ids: list[list[int]]
    labels: list[list[int]]  # per token: the word's tag index on its first subword, else IGNORE
    first_tokens: list[list[int]]  # per kept word: the position of its first subword
    tags: list[list[str]]  # the gold tags of every word


def align_words(tokenizer: Tokenizer, words: Sequence[str], block_size: int) -> tuple[list[int], list[int | None]]:
    """Ids of the pre-split `words` (framed as the model reads text) and each token's word index (None: special)."""
    framed = cls_sep_frame(tokenizer) is not None
    encoding = tokenizer.backend.encode(list(words), is_pretokenized=True, add_special_tokens=framed)
    ids, word_ids = list(encoding.ids), list(encoding.word_ids)
    if not framed and tokenizer.eos_id is not None:
        ids, word_ids = ids + [tokenizer.eos_id], word_ids + [None]
    if len(ids) > block_size:  # the closing marker stays last, as in every text the model saw
        ids, word_ids = ids[: block_size - 1] + ids[-1:], word_ids[: block_size - 1] + word_ids[-1:]
    return ids, word_ids


def first_subwords(word_ids: Sequence[int | None]) -> list[int]:
    """The position of each word's first subword, in word order (words cut off by the block are absent)."""
    firsts, previous = [], None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            firsts.append(position)
        previous = word
    return firsts


def encode_tagged(records: Sequence[dict[str, Any]], tag_names: Sequence[str], tokenizer: Tokenizer,
                  block_size: int) -> TaggedExamples:
    index = {name: i for i, name in enumerate(tag_names)}
    out = TaggedExamples([], [], [], [])
    for number, record in enumerate(records):
        words, tags = [str(w) for w in record["tokens"]], [str(t) for t in record["tags"]]
        unknown = [tag for tag in tags if tag not in index]
        if unknown:
            raise LmlabError(f"record {number}: tag {unknown[0]!r} is not among the model's tags {list(tag_names)}")
        ids, word_ids = align_words(tokenizer, words, block_size)
        firsts = first_subwords(word_ids)
        labels = [IGNORE] * len(ids)
        for position in firsts:
            labels[position] = index[tags[word_ids[position]]]
        out.ids.append(ids)
        out.labels.append(labels)
        out.first_tokens.append(firsts)
        out.tags.append(tags)
    return out


def tag_names_of(records: Sequence[dict[str, Any]]) -> list[str]:
    """Every tag of the training records, "O" first, then by entity type with B before I."""
    tags = {str(tag) for record in records for tag in record["tags"]}
    return sorted(tags, key=lambda tag: (tag != "O", tag[2:], tag[:2]))


class TokenClassification(TaskObjective):
    """Cross-entropy of each word's tag at its first subword."""

    def __init__(self, train: TaggedExamples, validation: TaggedExamples, tag_names: Sequence[str], batch_size: int,
                 grad_accum: int, seed: int, pad_id: int):
        super().__init__(train, validation, batch_size, grad_accum, seed, pad_id)
        self.tag_names = list(tag_names)

    def _batch(self, examples: TaggedExamples, indices: np.ndarray) -> Batch:
        ids, mask = pad_batch([examples.ids[i] for i in indices], self.pad_id)
        labels = torch.full(ids.shape, IGNORE, dtype=torch.long)
        for row, i in enumerate(indices):
            labels[row, : len(examples.labels[i])] = torch.tensor(examples.labels[i])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def figures(self, model: nn.Module, examples: TaggedExamples, device: torch.device,
                prefix: str) -> dict[str, float]:
        predicted, loss = self.predict(model, examples, device)
        return tag_figures(examples.tags, predicted, loss, prefix)

    def predict(self, model: nn.Module, examples: TaggedExamples,
                device: torch.device) -> tuple[list[list[str]], float]:
        """Each word's tag (words the block cut off get "O") and the mean loss over first subwords."""
        predicted, loss, count = [], 0.0, 0
        with evaluating(model):
            for start in range(0, len(examples.ids), self.batch_size):
                rows = list(range(start, min(start + self.batch_size, len(examples.ids))))
                ids, mask = pad_batch([examples.ids[i] for i in rows], self.pad_id)
                logits = model(ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()  # (B, T, K)
                for row, i in enumerate(rows):
                    firsts = examples.first_tokens[i]
                    words = logits[row, firsts]  # (W, K)
                    gold = torch.tensor([examples.labels[i][p] for p in firsts])
                    loss += float(F.cross_entropy(words, gold, reduction="sum").detach())
                    count += len(firsts)
                    tags = [self.tag_names[k] for k in words.argmax(dim=-1).tolist()]
                    predicted.append(tags + ["O"] * (len(examples.tags[i]) - len(tags)))
        return predicted, loss / max(count, 1)


def tag_figures(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], loss: float,
                prefix: str) -> dict[str, float]:
    scores = entity_scores(gold, predicted)
    return {f"{prefix}loss": loss, f"{prefix}accuracy": scores.accuracy, f"{prefix}precision": scores.precision,
            f"{prefix}recall": scores.recall, f"{prefix}f1": scores.f1}


class TaggingTask(JsonlTask):
    name = "tagging"
    best_metric = "val_f1"
    min_labels = 2
    fields = ("tokens", "tags")

    def check(self, record: dict[str, Any], where: str) -> None:
        tokens, tags = record["tokens"], record["tags"]
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags) or not tokens:
            raise LmlabError(f"{where}: tokens and tags must be non-empty lists of the same length")

    def labels_of(self, train: list[dict[str, Any]]) -> list[str]:
        return tag_names_of(train)

    def encode(self, records: Sequence[dict[str, Any]], labels: Sequence[str], tokenizer: Tokenizer, block_size: int,
               settings: TaskSettings) -> TaggedExamples:
        return encode_tagged(records, labels, tokenizer, block_size)

    def head(self, hidden_size: int, labels: Sequence[str], settings: HeadConfig, pooling: Pooling) -> TaskHead:
        return TaggingHead(hidden_size, len(labels), settings.dropout)

    def objective(self, train: TaggedExamples, validation: TaggedExamples, labels: Sequence[str],
                  settings: TaskSettings, pad_id: int) -> TokenClassification:
        loop = settings.train
        return TokenClassification(train, validation, labels, loop.batch_size, loop.grad_accum, loop.seed, pad_id)

    def test_figures(self, model: nn.Module, objective: TokenClassification, test: TaggedExamples,
                     labels: Sequence[str], settings: TaskSettings, device: torch.device) -> dict[str, Any]:
        predicted, loss = objective.predict(model, test, device)
        # Per-word tag figures beside the entity ones: every word's tag as a class.
        return {**tag_figures(test.tags, predicted, loss, "test_"),
                **label_figures(tag_indices(test.tags, labels), tag_indices(predicted, labels),
                                tag_indices(objective.train.tags, labels), len(labels))}


def tag_indices(rows: Sequence[Sequence[str]], tag_names: Sequence[str]) -> np.ndarray:
    """Every word's tag, all rows end to end, as its index among `tag_names`."""
    return np.array([tag_names.index(tag) for tags in rows for tag in tags])
