"""What the tasks that make an assistant share: the decoder trained itself, conversations in a chat format.

    sft      {messages}                   learn to write the assistant's turns
    dpo      {prompt, chosen, rejected}   prefer the chosen answer to the rejected one, relative to a reference
    grpo     {messages} with a checker    sample groups of replies, reinforce the better ones of each group

These tasks put no head on the base: they train its next-token predictions, so the run they write is
a decoder run again (its LoRA merged), with the chat tokens in its tokenizer and the template in
``chat_template.jinja``, ready for `lmlab chat`, for another of these tasks, or for export. The base is
any decoder run; a base without the chat tokens gets them, and its embeddings a row for each.

A conversation is rendered by the run's `ChatTemplate` into ids and an assistant mask (1 on the
tokens the assistant writes: its content and its end-of-turn token); the loss and the log-probabilities
read those tokens only, since the model should learn to answer, not to ask.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from lmlab.datasets.chat import check_reply, where_of
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, generate_ids
from lmlab.modes import evaluating
from lmlab.tokenizers import Tokenizer
from lmlab.tokenizers.chat import CHATML, ChatTemplate
from lmlab.tune.tasks.base import TaskObjective, TaskSettings


@dataclass
class ChatContext:
    """What a chat task's encoding and objective read besides the records."""

    tokenizer: Tokenizer
    template: ChatTemplate
    block_size: int
    pad_id: int
    end_id: int  # the end-of-turn token: where a reply stops
    reference: nn.Module | None  # a frozen copy of the base, for the tasks that measure a distance from it
    settings: TaskSettings
    packs_documents: bool  # the model's forward takes document_ids: conversations may share a row


@dataclass
class Conversations:
    """Encoded conversations: ids, which of them the assistant writes, and the records they came from."""

    ids: list[list[int]]
    assistant_masks: list[list[int]]
    records: list[dict[str, Any]]


def base_template(base: str | Path) -> ChatTemplate:
    """The chat template a run keeps, or ChatML for a run (or named weights) that has none yet."""
    return (ChatTemplate.load(base) if Path(base).is_dir() else None) or ChatTemplate(CHATML)


def encode_conversations(records: Sequence[dict[str, Any]], context: ChatContext) -> Conversations:
    """Each record's messages rendered and encoded; one longer than the block is refused or left out (`LengthCheck`:
    cutting it would train on a reply without its end, or on none)."""
    encoded = Conversations([], [], [])
    lengths = LengthCheck(context.block_size)
    for index, record in enumerate(records):
        encoding = context.template.encode(context.tokenizer, record["messages"])
        if lengths.fits(record, index, len(encoding.ids)):
            encoded.ids.append(encoding.ids)
            encoded.assistant_masks.append(encoding.assistant_mask)
            encoded.records.append(record)
    lengths.report(len(records))
    return encoded


class LengthCheck:
    """Records longer than the block (plus `room` for a reply still to come). A user's record is refused, named
    where it was read, since the user can shorten it; a named set's record, which the user cannot shorten, is
    left out, and how many were is said once on stderr."""

    def __init__(self, block_size: int, room: int = 0) -> None:
        self.block_size, self.room, self.left_out = block_size, room, 0

    def fits(self, record: dict[str, Any], index: int, length: int) -> bool:
        if length + self.room <= self.block_size:
            return True
        where = where_of(record, "")
        if not where:
            self.left_out += 1
            return False
        what = f"{length} tokens" + (f" and a reply of up to {self.room}" if self.room else "")
        raise LmlabError(f"{where}: {what}, more than block_size={self.block_size}; "
                         "raise block_size (up to the model's context) or shorten it")

    def report(self, total: int) -> None:
        if self.left_out:
            room = f" with room for a {self.room}-token reply" if self.room else ""
            print(f"warning: {self.left_out} of {total} records do not fit block_size={self.block_size}{room} "
                  "and are left out", file=sys.stderr)


def prompt_messages(record: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation up to its last assistant turn: what a model answers to."""
    messages = record["messages"] if "messages" in record else record["prompt"]
    return messages[:-1] if messages and messages[-1]["role"] == "assistant" else list(messages)


def generate_replies(model: nn.Module, records: Sequence[dict[str, Any]], context: ChatContext,
                     params: GenerationParams, batch_size: int = 32) -> list[list[int]]:
    """The reply token ids `model` writes to each record's prompt, stopping at the end of turn."""
    prompts = [context.template.encode(context.tokenizer, prompt_messages(record), add_generation_prompt=True).ids
               for record in records]
    replies: list[list[int]] = []
    with evaluating(model):
        for start in range(0, len(prompts), batch_size):
            replies += generate_ids(model, prompts[start:start + batch_size], params, eos_id=context.end_id)
    return replies


def checked(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that come with an exact answer to check a reply against (the verifiable tasks)."""
    return [record for record in records if record.get("answer") is not None]


def exact_match(model: nn.Module, records: Sequence[dict[str, Any]], context: ChatContext,
                max_new_tokens: int = 24) -> float | None:
    """The share of checkable records whose greedy reply the task's checker accepts; None if none is checkable."""
    items = checked(records)
    if not items:
        return None
    greedy = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    replies = generate_replies(model, items, context, greedy)
    texts = [context.tokenizer.decode(ids, skip_special_tokens=True) for ids in replies]
    return sum(check_reply(record, text) for record, text in zip(items, texts, strict=True)) / len(items)


class GatheredFigures:
    """Each micro-batch's figures, kept until the loop asks for the step's means (`Objective.step_figures`)."""

    def gather(self, figures: dict[str, float]) -> None:
        self.__dict__.setdefault("_gathered", []).append(figures)

    def step_figures(self) -> dict[str, float]:
        gathered, self._gathered = self.__dict__.get("_gathered", []), []
        return {name: sum(g[name] for g in gathered) / len(gathered) for name in gathered[0]} if gathered else {}


class ChatTask(ABC):
    """A task that trains the decoder itself (see the module): the runner's `tune_decoder` runs it, where a
    `FineTuningTask` goes through a head."""

    name: ClassVar[str]  # the `task=` of `lmlab tune`
    best_metric: ClassVar[str]  # the validation figure to keep the best weights by

    def needs_reference(self, settings: TaskSettings) -> bool:
        """Whether the objective reads a frozen copy of the base (the distance it keeps from it)."""
        return False

    @abstractmethod
    def read(self, settings: TaskSettings) -> dict[str, list[dict[str, Any]]]:
        """The records of each split (train, validation, test), limits applied."""

    @abstractmethod
    def encode_records(self, records: Sequence[dict[str, Any]], context: ChatContext) -> Any:
        """One split's records as the examples this task's objective batches."""

    def encode_splits(self, splits: dict[str, list[dict[str, Any]]], context: ChatContext) -> tuple[Any, Any, Any]:
        """The train, validation and test splits encoded (`encode_records`), in that order."""
        return tuple(self.encode_records(splits[split], context) for split in ("train", "validation", "test"))

    @abstractmethod
    def chat_objective(self, train: Any, validation: Any, context: ChatContext) -> TaskObjective:
        """The objective on encoded training and validation examples."""

    def chat_figures(self, model: nn.Module, objective: TaskObjective, examples: Any, context: ChatContext,
                     device: torch.device, prefix: str) -> dict[str, Any]:
        """Figures of `model` on encoded `examples` (the test split, or the base before training)."""
        return objective.figures(model, examples, device, prefix)
