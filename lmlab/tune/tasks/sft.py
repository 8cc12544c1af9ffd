"""Supervised fine-tuning (instruction tuning): next-token prediction on the assistant's turns only.

    {messages: [{role, content}, ...]}  ──template──> ids, assistant mask
                                         labels[t] = ids[t + 1] where the assistant writes it, else -100

The user's turns and the role headers are read but never predicted: a model trained on them too
learns to write questions as well as answers, and spends capacity on text it will always be given.

A batch holds the same conversations either way, padded or packed:
- padded: one conversation per row, right-padded to the longest;
- packed (a family whose forward takes ``document_ids``, such as LLaMA): conversations share rows up
  to the block, each placed first-fit, its positions restarting at 0 and its attention kept to
  itself, so each conversation's losses are those it has alone (tests/test_sft.py checks this) and
  no forward is spent on padding.

Figures: the loss over assistant tokens and, where the records carry an exact answer (the
verifiable tasks of `lmlab.datasets.chat`), the share of greedy replies its checker accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lmlab.datasets.chat import conversation_splits
from lmlab.modes import evaluating
from lmlab.train.objectives import Batch, on_device
from lmlab.tune.encoding import pad_batch
from lmlab.tune.tasks.base import IGNORE, TaskObjective, TaskSettings, limited
from lmlab.tune.tasks.chat import ChatContext, ChatTask, Conversations, encode_conversations, exact_match


def next_token_labels(ids: Sequence[int], assistant_mask: Sequence[int]) -> list[int]:
    """At each position, the next token if the assistant writes it, else IGNORE (the last position predicts nothing)."""
    return [token if mask else IGNORE for token, mask in zip(ids[1:], assistant_mask[1:], strict=True)] + [IGNORE]


def padded_batch(rows: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int) -> Batch:
    ids, attention = pad_batch(rows, pad_id)
    labels = torch.full_like(ids, IGNORE)
    for row, (tokens, mask) in enumerate(zip(rows, masks, strict=True)):
        labels[row, : len(tokens)] = torch.tensor(next_token_labels(tokens, mask))
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def pack_first_fit(lengths: Sequence[int], block_size: int) -> list[list[int]]:
    """Conversation indices per row: each goes into the first row it still fits in (first-fit, in order)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index, length in enumerate(lengths):
        row = next((r for r, free in enumerate(room) if free >= length), None)
        if row is None:
            rows.append([])
            room.append(block_size)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= length
    return rows


def packed_batch(rows: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int,
                 block_size: int) -> Batch:
    """The conversations packed first-fit into rows of at most `block_size`, with ``document_ids`` telling them
    apart; each row's tail padding is a document of its own, which predicts nothing."""
    layout = pack_first_fit([len(tokens) for tokens in rows], block_size)
    width = max(sum(len(rows[i]) for i in members) for members in layout)
    ids = torch.full((len(layout), width), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, IGNORE)
    documents = torch.full_like(ids, -1)  # the padding's document: no conversation has a negative id
    for row, members in enumerate(layout):
        at = 0
        for index in members:
            tokens, end = rows[index], at + len(rows[index])
            ids[row, at:end] = torch.tensor(tokens)
            labels[row, at:end] = torch.tensor(next_token_labels(tokens, masks[index]))
            documents[row, at:end] = index
            at = end
    return {"input_ids": ids, "labels": labels, "document_ids": documents}


class SFTObjective(TaskObjective):
    """Cross-entropy on the assistant's tokens, over padded or packed batches (see the module)."""

    def __init__(self, train: Conversations, validation: Conversations, context: ChatContext, packs: bool):
        loop = context.settings.train
        super().__init__(train, validation, loop.batch_size, loop.grad_accum, loop.seed, context.pad_id)
        self.context, self.packs = context, packs

    def _batch(self, examples: Conversations, indices: np.ndarray) -> Batch:
        rows = [examples.ids[i] for i in indices]
        masks = [examples.assistant_masks[i] for i in indices]
        if self.packs:
            return packed_batch(rows, masks, self.pad_id, self.context.block_size)
        return padded_batch(rows, masks, self.pad_id)

    def figures(self, model: nn.Module, examples: Conversations, device: torch.device,
                prefix: str) -> dict[str, float]:
        total, count = 0.0, 0
        with evaluating(model), torch.no_grad():
            for batch in self.batches(examples):
                batch = on_device(batch, device)
                targets = int((batch["labels"] != IGNORE).sum())
                total += float(model(**batch).loss) * targets
                count += targets
        figures = {f"{prefix}loss": total / count}
        matched = exact_match(model, examples.records, self.context)
        if matched is not None:
            figures[f"{prefix}exact_match"] = matched
        return figures


class SFTTask(ChatTask):
    name = "sft"
    best_metric = "val_loss"

    def read(self, settings: TaskSettings) -> dict[str, list[dict[str, Any]]]:
        return limited(conversation_splits(settings.data, seed=settings.train.seed), settings)

    def encode_records(self, records: Sequence[dict[str, Any]], context: ChatContext) -> Conversations:
        return encode_conversations(records, context)

    def chat_objective(self, train: Conversations, validation: Conversations, context: ChatContext) -> SFTObjective:
        return SFTObjective(train, validation, context, packs=context.packs_documents)
