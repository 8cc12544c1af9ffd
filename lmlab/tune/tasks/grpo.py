"""Policy optimisation against a reward: GRPO (Shao et al., 2024, DeepSeekMath), in the one training loop.

    a prompt ──policy samples G replies──> o_1 .. o_G ──reward──> r_1 .. r_G
    advantage A_i = (r_i - mean(r)) / (std(r) + 1e-4)      each reply against its own group: no value model
    loss = -mean_i 1/|o_i| Σ_t [ min(ρ_t A_i, clip(ρ_t, 1 - ε, 1 + ε) A_i) - β KL_t ]   (loss_type grpo)
           ρ_t = π(o_t) / π_old(o_t)                       the policy now over the one that sampled
           KL_t = π_ref/π - log(π_ref/π) - 1               an unbiased, always positive estimate of KL(π || π_ref)

``loss_type`` bnpo averages over all reply tokens instead, and dr_grpo (Liu et al., 2025, Dr. GRPO) sums
them over replies x max_new_tokens: under grpo a long wrong reply loses less per token than a short one,
so replies may grow. ``scale_rewards`` none drops the division by the group's std, as Dr. GRPO does.

A reply better than its group's mean becomes more likely, a worse one less; the clip stops one
sample from moving the policy far (PPO's trust region), and β keeps it near the reference, the model
it started from, so it cannot drift into text the reward happens to like but nobody would write.

The reward comes from the verifiable tasks' exact checker (1 for a right answer, 0 else; with
``partial_credit`` a wrong answer earns that weight times the share of its digits or list items in
place, so a group whose replies are all wrong still says which were nearer) or from a reward-model
run (`lmlab tune task=reward`), which scores any conversation.

Each step samples afresh, unless ``updates_per_sample`` > 1 reuses a sample for that many steps (ρ
then moves away from 1 and the clip acts). Sampling is seeded by (seed, sample, micro-batch), and a
sample still in use is kept in the checkpoint, so a resumed run samples and updates exactly as an
uninterrupted one.

Figures per step: the mean reward, its spread within groups, the KL to the reference, the share of
clipped tokens and the reply length; on validation, greedy replies' exact match and reward, and their
KL to the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from lmlab.config import Config
from lmlab.datasets.chat import check_reply, conversation_splits, partial_credit
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, generate_ids
from lmlab.modes import evaluating
from lmlab.train.objectives import Batch
from lmlab.tune.encoding import pad_batch
from lmlab.tune.preference import token_logprobs
from lmlab.tune.tasks.base import TaskObjective, TaskSettings, limited
from lmlab.tune.tasks.chat import (
    ChatContext,
    ChatTask,
    GatheredFigures,
    LengthCheck,
    checked,
    generate_replies,
    prompt_messages,
)

CHECKER = "checker"
Reward = Callable[[Sequence[dict[str, Any]], Sequence[str]], Tensor]  # records and reply texts -> (N,) rewards


class GRPOConfig(Config):
    """The settings of `lmlab tune task=grpo` (see lmlab.tune.tasks.grpo)."""

    reward: str = Field(CHECKER, description="checker (the verifiable tasks' exact answers) or a reward-model run")
    partial_credit: float = Field(0.0, ge=0, lt=1, description="with the checker, a wrong reply's reward: this "
                                  "times the share of digits or list items it has in place (0: right or wrong)")
    group_size: int = Field(4, ge=2, description="replies sampled per prompt, compared with each other")
    beta: float = Field(0.04, ge=0, description="the weight of the KL to the reference (0: no reference)")
    clip: float = Field(0.2, gt=0, lt=1, description="how far one update may move a token's probability ratio")
    updates_per_sample: int = Field(1, ge=1, description="optimizer steps on each sample (above 1 the clip acts)")
    max_new_tokens: int = Field(24, ge=1, description="the longest reply sampled")
    temperature: float = Field(1.0, gt=0, description="sampling temperature: enough spread for groups to differ")
    loss_type: Literal["grpo", "bnpo", "dr_grpo"] = Field(
        "grpo", description="how token terms are averaged (TRL's names): grpo, over each reply then over replies; "
        "bnpo, over all reply tokens of the micro-batch; dr_grpo, summed and divided by replies x max_new_tokens, "
        "so a long wrong reply is not penalised less per token than a short one")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide each advantage by its group's reward std, the micro-batch's, or not at all "
        "(Dr. GRPO: a group that nearly agrees then weighs less)")


def checker_reward(records: Sequence[dict[str, Any]], replies: Sequence[str], partial: float = 0.0) -> Tensor:
    """1 for a right reply; a wrong one gets `partial` times its `partial_credit` (the share of it in place)."""
    return torch.tensor([1.0 if check_reply(record, reply) else partial * partial_credit(record, reply)
                         for record, reply in zip(records, replies, strict=True)])


def reward_function(settings: GRPOConfig) -> Reward:
    """The exact checker (with partial credit if asked), or a reward-model run scoring each prompt with its reply."""
    if settings.reward == CHECKER:
        return lambda records, replies: checker_reward(records, replies, settings.partial_credit)
    from lmlab.tune.tasks.reward import RewardScorer  # a reward run is read only when asked for

    scorer = RewardScorer(settings.reward)
    return lambda records, replies: scorer([prompt_messages(r) for r in records], list(replies))


@dataclass
class Prompts:
    ids: list[list[int]]  # each prompt rendered up to the assistant's turn
    records: list[dict[str, Any]]


def encode_prompts(records: Sequence[dict[str, Any]], context: ChatContext, reply_room: int) -> Prompts:
    """Each record's prompt up to the assistant's turn; one that leaves no room for a reply is refused
    or left out (`LengthCheck`)."""
    prompts = Prompts([], [])
    lengths = LengthCheck(context.block_size, reply_room)
    for index, record in enumerate(records):
        ids = context.template.encode(context.tokenizer, prompt_messages(record), add_generation_prompt=True).ids
        if lengths.fits(record, index, len(ids)):
            prompts.ids.append(ids)
            prompts.records.append(record)
    lengths.report(len(records))
    return prompts


@dataclass
class Sample:
    """One micro-batch's sampled groups, everything the update reads, fixed while the sample is in use."""

    input_ids: Tensor  # (R, T) prompt + reply, right-padded; R = prompts x group_size
    attention_mask: Tensor
    reply_mask: Tensor  # (R, T-1) 1 where position t + 1 is a reply token (the positions a log-prob is read at)
    advantages: Tensor  # (R,)
    old_logprobs: Tensor  # (R, T-1) the sampling policy's
    reference_logprobs: Tensor  # (R, T-1) the reference's (zeros when beta is 0)
    rewards: Tensor  # (R,)

    def tensors(self, prefix: str) -> dict[str, Tensor]:
        return {f"{prefix}{name}": value for name, value in vars(self).items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], prefix: str) -> Sample:
        return cls(**{name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)})


def group_advantages(rewards: Tensor, group_size: int, scale: str = "group") -> Tensor:
    """Each reward against its group's mean, divided by (std + 1e-4) of its group, of all `rewards`, or by
    nothing (`scale` group, batch or none); the std unbiased as TRL's."""
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (groups.std(dim=1, keepdim=True) + 1e-4)
    elif scale == "batch":
        centred = centred / (rewards.std() + 1e-4)
    return centred.flatten()


def k3_kl(logprobs: Tensor, reference_logprobs: Tensor) -> Tensor:
    """Per token, π_ref/π - log(π_ref/π) - 1 (Schulman's k3 estimator of KL(π || π_ref)): ≥ 0, unbiased."""
    log_ratio = reference_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1


def grpo_loss(logprobs: Tensor, old_logprobs: Tensor, sample: Sample, settings: GRPOConfig,
              ) -> tuple[Tensor, dict[str, float]]:
    """The GRPO loss of the policy's (R, T-1) token log-probabilities on `sample`, and the step's figures."""
    mask = sample.reply_mask.to(logprobs.dtype)
    ratio = torch.exp(logprobs - old_logprobs)
    advantages = sample.advantages[:, None]
    clip = settings.clip
    surrogate = torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    kl = k3_kl(logprobs, sample.reference_logprobs)
    per_token = surrogate - settings.beta * kl if settings.beta else surrogate
    lengths = mask.sum(dim=1).clamp(min=1)
    if settings.loss_type == "grpo":
        loss = -((per_token * mask).sum(dim=1) / lengths).mean()
    elif settings.loss_type == "bnpo":
        loss = -(per_token * mask).sum() / mask.sum().clamp(min=1)
    else:
        loss = -(per_token * mask).sum() / (mask.size(0) * settings.max_new_tokens)
    clipped = ((ratio.detach() - 1).abs() > clip).to(mask.dtype)
    figures = {
        "reward": float(sample.rewards.mean()),
        "reward_std": float(sample.rewards.view(-1, settings.group_size).std(dim=1).mean()),
        "kl": float(((kl.detach() * mask).sum(dim=1) / lengths).mean()),
        "clip_ratio": float((clipped * mask).sum() / mask.sum().clamp(min=1)),
        "reply_length": float(lengths.mean()),
    }
    return loss, figures


def reply_rows(prompts: Sequence[list[int]], replies: Sequence[list[int]], pad_id: int) -> tuple[Tensor, ...]:
    """Prompt + reply rows, right-padded: ids, attention mask, and (R, T-1) 1 where position t + 1 is the reply's."""
    ids, attention = pad_batch([prompt + reply for prompt, reply in zip(prompts, replies, strict=True)], pad_id)
    reply_mask = torch.zeros_like(ids)
    for row, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
        reply_mask[row, len(prompt):len(prompt) + len(reply)] = 1
    return ids, attention, reply_mask[:, 1:]


class GRPOObjective(GatheredFigures, TaskObjective):
    """Sample groups with the policy itself, score them, and take the clipped, KL-kept policy-gradient step."""

    def __init__(self, train: Prompts, validation: Prompts, context: ChatContext, settings: GRPOConfig):
        loop = context.settings.train
        super().__init__(train, validation, loop.batch_size, loop.grad_accum, loop.seed, context.pad_id)
        self.context, self.settings = context, settings
        self.reward = reward_function(settings)
        self.samples: dict[int, Sample] = {}  # micro-batch -> the sample in use
        self.sample_index = -1  # which sample `samples` holds

    def _batch(self, examples: Prompts, indices: np.ndarray) -> Batch:
        ids, mask = pad_batch([examples.ids[i] for i in indices], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask, "prompt_index": torch.from_numpy(indices)}

    def training_batch(self, step: int, micro_step: int) -> Batch:
        # The prompts of the step that sampled: a reused sample answers the prompts it was drawn for.
        sample_index = step // self.settings.updates_per_sample
        batch = super().training_batch(sample_index, micro_step)
        return {**batch, "draw": torch.tensor([sample_index, micro_step])}

    def _sample(self, model: nn.Module, batch: Batch, sample_index: int, micro: int) -> Sample:
        s = self.settings
        device = batch["input_ids"].device
        records = [self.train.records[i] for i in batch["prompt_index"].tolist() for _ in range(s.group_size)]
        prompts = [self.train.ids[i] for i in batch["prompt_index"].tolist() for _ in range(s.group_size)]
        params = GenerationParams(max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                                  seed=(self.seed * 1_000_003 + sample_index) * 1_009 + micro)
        replies = generate_ids(model, prompts, params, eos_id=self.context.end_id)
        # A reply that stopped by itself ends with the end-of-turn token: learning to stop is part of answering.
        replies = [reply + [self.context.end_id] if len(reply) < s.max_new_tokens else reply for reply in replies]
        texts = [self.context.tokenizer.decode(reply, skip_special_tokens=True) for reply in replies]
        rewards = self.reward(records, texts).float().to(device)
        ids, attention, reply_mask = (t.to(device) for t in reply_rows(prompts, replies, self.pad_id))
        with torch.no_grad(), evaluating(model):
            # One update per sample: the sampling policy is the one being updated, ρ = 1 (its gradient is
            # the policy gradient), and the log-probabilities are the update's own, detached.
            old = token_logprobs(model, ids, attention, reply_mask) if s.updates_per_sample > 1 else torch.zeros(0)
            reference = self.context.reference
            ref = (token_logprobs(reference.to(device), ids, attention, reply_mask) if reference is not None and s.beta
                   else torch.zeros(ids.size(0), ids.size(1) - 1, device=device))
        advantages = group_advantages(rewards, s.group_size, s.scale_rewards)
        return Sample(ids, attention, reply_mask, advantages, old, ref, rewards)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        sample_index, micro = batch["draw"].tolist()
        if sample_index != self.sample_index:
            self.samples, self.sample_index = {}, sample_index
        if micro not in self.samples:
            self.samples[micro] = self._sample(getattr(model, "module", model), batch, sample_index, micro)
        sample = self.samples[micro]
        logprobs = token_logprobs(model, sample.input_ids, sample.attention_mask, sample.reply_mask)
        old = logprobs.detach() if self.settings.updates_per_sample == 1 else sample.old_logprobs
        loss, figures = grpo_loss(logprobs, old, sample, self.settings)
        self.gather(figures)
        return loss

    def state(self) -> dict[str, Tensor]:
        """The sample in use, when later steps will update on it again."""
        if self.settings.updates_per_sample == 1 or not self.samples:
            return {}
        tensors = {"sample_index": torch.tensor(self.sample_index)}
        for micro, sample in self.samples.items():
            tensors.update(sample.tensors(f"{micro}."))
        return tensors

    def load_state(self, tensors: dict[str, Tensor], model: nn.Module, device: torch.device) -> None:
        if not tensors:
            return
        self.sample_index = int(tensors["sample_index"])
        micros = {int(name.split(".")[0]) for name in tensors if "." in name}
        self.samples = {m: Sample.from_tensors({k: v.to(device) for k, v in tensors.items()}, f"{m}.") for m in micros}

    def figures(self, model: nn.Module, examples: Prompts, device: torch.device, prefix: str) -> dict[str, float]:
        """Greedy replies to `examples`: their mean reward, exact match, and KL to the reference per token."""
        greedy = GenerationParams(max_new_tokens=self.settings.max_new_tokens, temperature=0.0)
        replies = generate_replies(model, examples.records, self.context, greedy)
        texts = [self.context.tokenizer.decode(reply, skip_special_tokens=True) for reply in replies]
        figures = {f"{prefix}reward": float(self.reward(examples.records, texts).float().mean())}
        judged = [(record, text) for record, text in zip(examples.records, texts, strict=True)
                  if record.get("answer") is not None]
        if judged:
            figures[f"{prefix}exact_match"] = sum(check_reply(record, text) for record, text in judged) / len(judged)
        if self.context.reference is not None:
            figures[f"{prefix}kl"] = self._kl(model, examples.ids, replies, device)
        return figures

    @torch.no_grad()
    def _kl(self, model: nn.Module, prompts: list[list[int]], replies: list[list[int]], device: torch.device) -> float:
        """The mean per-token KL estimate of `model` from the reference over the replies' tokens."""
        reference = self.context.reference.to(device)  # type: ignore[union-attr]
        total, count = 0.0, 0
        with evaluating(model):
            for start in range(0, len(prompts), self.batch_size):
                part = slice(start, start + self.batch_size)
                ids, attention, mask = (t.to(device) for t in reply_rows(prompts[part], replies[part], self.pad_id))
                kl = k3_kl(*(token_logprobs(one, ids, attention, mask) for one in (model, reference)))
                total += float((kl * mask).sum())
                count += int(mask.sum())
        return total / max(count, 1)


class GRPOTask(ChatTask):
    name = "grpo"
    best_metric = "val_reward"

    def needs_reference(self, settings: TaskSettings) -> bool:
        return settings.grpo.beta > 0

    def read(self, settings: TaskSettings) -> dict[str, list[dict[str, Any]]]:
        splits = conversation_splits(settings.data, seed=settings.train.seed)
        if settings.grpo.reward == CHECKER:  # only answers a checker can judge
            splits = {name: checked(records) for name, records in splits.items()}
            if not splits["train"]:
                raise LmlabError(f"data {settings.data}: no record has an exact answer for reward=checker (use "
                                 "the verifiable tasks, or a reward-model run as grpo.reward)")
        return limited(splits, settings)

    def encode_records(self, records: Sequence[dict[str, Any]], context: ChatContext) -> Prompts:
        return encode_prompts(records, context, context.settings.grpo.max_new_tokens)

    def chat_objective(self, train: Prompts, validation: Prompts, context: ChatContext) -> GRPOObjective:
        return GRPOObjective(train, validation, context, context.settings.grpo)
