"""Preference alignment: make the chosen answer more likely than the rejected one (lmlab.tune.preference).

    {prompt, chosen, rejected}  ──template──> prompt + chosen, prompt + rejected: two rows, one answer mask each
                                 ──policy (and reference)──> log π(answer) ──loss──> DPO, IPO, SimPO or ORPO

A batch lays out its pairs as TRL's does, every chosen row then every rejected one, right-padded, so
one forward reads both sides; for a model that packs texts (a LLaMA), each pair is one row instead,
the prompt then both answers, each answer seeing the prompt and itself only, so the prompt, most of
a pair's tokens, is computed once (`shared_prompt_rows`). The reference's log-probabilities are
computed once, when the objective is built, before the first step: they never change, and a resumed
run computes the very same ones.

The pairs are given (a preference set or file), or with ``rejected=sampled`` each training pair's
rejected answer is the starting model's own wrong reply (`own_wrong_answers`), sampled once before
training; ``sft_weight`` adds the chosen answers' NLL, so the margin does not grow by making the
right answers less likely too.

Figures: the loss, the mean implied rewards of each side, their margin and the preference accuracy
(the share of pairs whose chosen answer the policy now prefers, relative to the reference), and,
for pairs built from verifiable tasks, the exact match of the policy's greedy replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from lmlab.config import Config
from lmlab.datasets.chat import check_reply, preference_splits
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams
from lmlab.modes import evaluating
from lmlab.train.objectives import Batch, on_device
from lmlab.tune.encoding import pad_batch
from lmlab.tune.preference import (
    REFERENCE_FREE,
    AnswerLogprobs,
    PreferenceLoss,
    PreferenceOutput,
    answer_logprobs,
    branch_logprobs,
    preference_loss,
)
from lmlab.tune.tasks.base import TaskObjective, TaskSettings, limited
from lmlab.tune.tasks.chat import ChatContext, ChatTask, GatheredFigures, LengthCheck, exact_match, generate_replies


class PreferenceConfig(Config):
    """The preference loss of `lmlab tune task=dpo` (see lmlab.tune.preference)."""

    loss: PreferenceLoss = Field("sigmoid", description="sigmoid (DPO), ipo, or without a reference simpo, orpo")
    beta: float = Field(0.1, gt=0, description="how far from the reference the policy may go (DPO, IPO); the "
                        "reward scale for simpo (about 2) and the odds-ratio weight for orpo (about 0.1)")
    simpo_gamma: float = Field(0.5, ge=0, description="simpo: the margin the chosen answer must win by")
    rejected: Literal["given", "sampled"] = Field("given", description="sampled: each training pair's rejected "
                                                  "answer is the starting model's own wrong reply, if it makes one")
    samples: int = Field(4, ge=1, description="sampled: replies drawn per prompt to find a wrong one among")
    sft_weight: float = Field(0.0, ge=0, description="adds this times the chosen answers' NLL per token (TRL's "
                              'loss_type [..., "sft"]): the right answers stay likely while the margin grows')


@dataclass
class Pairs:
    """Encoded pairs: each side's ids and answer mask, and the records they came from."""

    chosen: list[list[int]]
    rejected: list[list[int]]
    chosen_masks: list[list[int]]
    rejected_masks: list[list[int]]
    records: list[dict[str, Any]]

    @property
    def ids(self) -> list[list[int]]:  # what TaskObjective counts and draws from
        return self.chosen


def encode_answer(record: dict[str, Any], answer: str, context: ChatContext) -> tuple[list[int], list[int]]:
    """The prompt and `answer` as one conversation, and a mask on the answer's own tokens (its end of turn too)."""
    prompt = context.template.encode(context.tokenizer, record["prompt"], add_generation_prompt=True).ids
    whole = context.template.encode(context.tokenizer, [*record["prompt"], {"role": "assistant", "content": answer}])
    if whole.ids[: len(prompt)] != prompt:
        raise LmlabError("chat template: a prompt's ids are not a prefix of the prompt with its answer")
    mask = [int(written and at >= len(prompt)) for at, written in enumerate(whole.assistant_mask)]
    return whole.ids, mask


def encode_pairs(records: Sequence[dict[str, Any]], context: ChatContext) -> Pairs:
    """Both answers of each pair encoded with its prompt; a pair longer than the block is refused
    or left out (`LengthCheck`)."""
    pairs = Pairs([], [], [], [], [])
    lengths = LengthCheck(context.block_size)
    for index, record in enumerate(records):
        (chosen, chosen_mask), (rejected, rejected_mask) = (encode_answer(record, record[side], context)
                                                            for side in ("chosen", "rejected"))
        if not lengths.fits(record, index, max(len(chosen), len(rejected))):
            continue
        pairs.chosen.append(chosen)
        pairs.rejected.append(rejected)
        pairs.chosen_masks.append(chosen_mask)
        pairs.rejected_masks.append(rejected_mask)
        pairs.records.append(record)
    lengths.report(len(records))
    return pairs


def own_wrong_answers(records: Sequence[dict[str, Any]], model: nn.Module, context: ChatContext, samples: int,
                      seed: int) -> list[dict[str, Any]]:
    """Each checkable pair with its rejected answer replaced by `model`'s own wrong reply: `samples` replies at
    temperature 1, seeded, the first that is not empty and that the checker rejects. A pair the model always
    answers right keeps the rejected answer it had, and one without an ``answer`` to check is left as it is.

    A plausible wrong answer is a mistake someone else would make; the model's own is the one it would make,
    so DPO pushes down what it actually writes (on-policy pairs, as in iterative DPO and RPO)."""
    checkable = [at for at, record in enumerate(records) if record.get("answer") is not None]
    params = GenerationParams(max_new_tokens=24, temperature=1.0, seed=seed)
    replies = generate_replies(model, [records[at] for at in checkable for _ in range(samples)], context, params)
    texts = [context.tokenizer.decode(reply, skip_special_tokens=True).strip() for reply in replies]
    replaced = list(records)
    for n, at in enumerate(checkable):
        own = texts[n * samples:(n + 1) * samples]
        mistakes = [text for text in own if text and not check_reply(records[at], text)]
        if mistakes:
            replaced[at] = {**records[at], "rejected": mistakes[0], "rejected_by": "own sample"}
    return replaced


def pair_rows(pairs: Pairs, indices: Sequence[int], pad_id: int) -> Batch:
    """The pairs at `indices` as [chosen rows; rejected rows], right-padded, with their answer masks."""
    rows = [pairs.chosen[i] for i in indices] + [pairs.rejected[i] for i in indices]
    masks = [pairs.chosen_masks[i] for i in indices] + [pairs.rejected_masks[i] for i in indices]
    ids, attention = pad_batch(rows, pad_id)
    answer = torch.zeros_like(ids)
    for row, mask in enumerate(masks):
        answer[row, : len(mask)] = torch.tensor(mask)
    return {"input_ids": ids, "attention_mask": attention, "answer_mask": answer}


def shared_prompt_rows(pairs: Pairs, indices: Sequence[int], pad_id: int) -> Batch:
    """The pairs at `indices` as one row each, prompt + chosen answer + rejected answer, right-padded, with branch
    ids (0 prompt, 1 chosen, 2 rejected, -1 padding) and the answer masks laid out the same way."""
    rows, branches, masks = [], [], []
    for i in indices:
        start = pairs.chosen_masks[i].index(1)  # both sides begin with the same prompt, up to the first answer token
        chosen, rejected = pairs.chosen[i][start:], pairs.rejected[i][start:]
        rows.append(pairs.chosen[i][:start] + chosen + rejected)
        branches.append([0] * start + [1] * len(chosen) + [2] * len(rejected))
        masks.append(pairs.chosen_masks[i] + pairs.rejected_masks[i][start:])
    ids, _ = pad_batch(rows, pad_id)
    branch_ids = torch.full_like(ids, -1)
    answer = torch.zeros_like(ids)
    for row, (branch, mask) in enumerate(zip(branches, masks, strict=True)):
        branch_ids[row, : len(branch)] = torch.tensor(branch)
        answer[row, : len(mask)] = torch.tensor(mask)
    return {"input_ids": ids, "branch_ids": branch_ids, "answer_mask": answer}


def pair_logprobs(model: nn.Module, batch: Batch) -> tuple[AnswerLogprobs, AnswerLogprobs]:
    """The chosen and the rejected answers' log π from a batch of either layout."""
    if "branch_ids" in batch:
        return branch_logprobs(model, batch["input_ids"], batch["branch_ids"], batch["answer_mask"])
    return sides(answer_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["answer_mask"]))


def sides(logprobs: AnswerLogprobs) -> tuple[AnswerLogprobs, AnswerLogprobs]:
    half = len(logprobs.total) // 2
    return (AnswerLogprobs(logprobs.total[:half], logprobs.tokens[:half]),
            AnswerLogprobs(logprobs.total[half:], logprobs.tokens[half:]))


class PreferenceObjective(GatheredFigures, TaskObjective):
    """A preference loss over pairs, the reference's log-probabilities read from a table made before training."""

    def __init__(self, train: Pairs, validation: Pairs, context: ChatContext, settings: PreferenceConfig):
        loop = context.settings.train
        super().__init__(train, validation, loop.batch_size, loop.grad_accum, loop.seed, context.pad_id)
        self.context, self.settings = context, settings
        self.rows = shared_prompt_rows if context.packs_documents else pair_rows
        self.reference = {id(pairs): self._reference_logprobs(pairs) for pairs in (train, validation)}

    @torch.no_grad()
    def _reference_logprobs(self, pairs: Pairs) -> Tensor:
        """(N, 2): each pair's summed answer log-probabilities under the reference, chosen then rejected."""
        if self.settings.loss in REFERENCE_FREE:
            return torch.zeros(len(pairs.records), 2)
        reference = self.context.reference
        device = next(reference.parameters()).device
        table = []
        with evaluating(reference):
            for start in range(0, len(pairs.records), self.batch_size):
                indices = range(start, min(start + self.batch_size, len(pairs.records)))
                chosen, rejected = pair_logprobs(reference, on_device(self.rows(pairs, indices, self.pad_id), device))
                table.append(torch.stack([chosen.total, rejected.total], dim=1).cpu())
        return torch.cat(table)

    def _batch(self, examples: Pairs, indices: np.ndarray) -> Batch:
        if id(examples) not in self.reference:  # the test split, scored once training is over
            self.reference[id(examples)] = self._reference_logprobs(examples)
        reference = self.reference[id(examples)][torch.from_numpy(indices)]
        return {**self.rows(examples, indices.tolist(), self.pad_id), "reference_logprobs": reference}

    def _output(self, model: nn.Module, batch: Batch) -> PreferenceOutput:
        chosen, rejected = pair_logprobs(model, batch)
        reference = batch["reference_logprobs"]
        return preference_loss(self.settings.loss, chosen, rejected, reference[:, 0], reference[:, 1],
                               self.settings.beta, self.settings.simpo_gamma, self.settings.sft_weight)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        output = self._output(model, batch)
        self.gather(output.figures())
        return output.loss

    def figures(self, model: nn.Module, examples: Pairs, device: torch.device, prefix: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        with evaluating(model), torch.no_grad():
            for batch in self.batches(examples):
                output = self._output(model, on_device(batch, device))
                rows = len(batch["reference_logprobs"])
                for name, value in {"loss": float(output.loss), **output.figures()}.items():
                    totals[name] = totals.get(name, 0.0) + value * rows
        figures = {f"{prefix}{name}": total / len(examples.records) for name, total in totals.items()}
        matched = exact_match(model, examples.records, self.context)
        if matched is not None:
            figures[f"{prefix}exact_match"] = matched
        return figures


class PreferenceTask(ChatTask):
    name = "dpo"
    best_metric = "val_loss"

    def needs_reference(self, settings: TaskSettings) -> bool:
        return settings.preference.loss not in REFERENCE_FREE or settings.preference.rejected == "sampled"

    def read(self, settings: TaskSettings) -> dict[str, list[dict[str, Any]]]:
        return limited(preference_splits(settings.data, seed=settings.train.seed), settings)

    def encode_records(self, records: Sequence[dict[str, Any]], context: ChatContext) -> Pairs:
        return encode_pairs(records, context)

    def encode_splits(self, splits: dict[str, list[dict[str, Any]]], context: ChatContext) -> tuple[Pairs, ...]:
        """With ``rejected=sampled``, the training pairs' rejected answers are the starting model's (the reference,
        still equal to it) own wrong replies; the held-out pairs stay as given, so figures compare across runs."""
        settings = context.settings
        if settings.preference.rejected == "sampled":
            if context.reference is None:
                raise LmlabError("preference.rejected=sampled: needs the starting model to sample from")
            splits = {**splits, "train": own_wrong_answers(splits["train"], context.reference, context,
                                                           settings.preference.samples, settings.train.seed)}
        return super().encode_splits(splits, context)

    def chat_objective(self, train: Pairs, validation: Pairs, context: ChatContext) -> PreferenceObjective:
        return PreferenceObjective(train, validation, context, context.settings.preference)
