"""The reward model of RLHF: a decoder with a scalar head, trained to score the chosen answer above the rejected one.

    {prompt, chosen, rejected}  ──template──> prompt + chosen, prompt + rejected: two conversations
                                 ──decoder──> the last token's hidden state ──linear──> r_chosen, r_rejected
    loss = -log sigmoid(r_chosen - r_rejected)        (Bradley & Terry, 1952; Ouyang et al., 2022)

That loss is the cross-entropy of a two-way choice whose right answer is the chosen side, so the
task is multiple choice with two choices and the answer always first: each conversation is scored
alone by one shared head, so the order cannot be learned, only which answer is better.

The base is a decoder run, best the SFT run the policy starts from (it already reads the chat format);
the conversations are rendered with its chat template, and a base without one gets ChatML and the chat
tokens, as the chat tasks do. The run is a tuned run (family "tuned"), with the template kept beside it,
and `RewardScorer` puts it to use: GRPO's reward.

Figures: the loss and the pairwise accuracy (the share of pairs whose chosen answer scores higher),
and on the test split the mean reward of each side and their margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lmlab.datasets.chat import preference_splits
from lmlab.errors import LmlabError
from lmlab.modes import evaluating
from lmlab.runs import open_run
from lmlab.tokenizers import Tokenizer
from lmlab.tokenizers.chat import ChatTemplate
from lmlab.tune.encoding import pad_batch
from lmlab.tune.tasks.base import TaskData, TaskSettings, limited
from lmlab.tune.tasks.chat import LengthCheck, base_template
from lmlab.tune.tasks.multiple_choice import ChoiceExamples, MultipleChoice, MultipleChoiceTask, choice_figures

Messages = list[dict[str, str]]


def scored_conversation(template: ChatTemplate, tokenizer: Tokenizer, prompt: Messages, answer: str,
                        block_size: int) -> list[int]:
    """The ids of `prompt` answered by `answer`, the conversation a reward is given for; a long one keeps its end,
    where the answer is (a sampled reply may run long; a training pair that does is refused in `encode`)."""
    ids = template.encode(tokenizer, [*prompt, {"role": "assistant", "content": answer}]).ids
    return ids[-block_size:]


class RewardTask(MultipleChoiceTask):
    name = "reward"
    best_metric = "val_accuracy"
    reads_conversations = True

    def read(self, settings: TaskSettings) -> TaskData:
        return TaskData(limited(preference_splits(settings.data, seed=settings.train.seed), settings), [])

    def encode(self, records: Sequence[dict[str, Any]], labels: Sequence[str], tokenizer: Tokenizer, block_size: int,
               settings: TaskSettings) -> ChoiceExamples:
        template = base_template(settings.base)
        ids = []
        lengths = LengthCheck(block_size)
        for index, record in enumerate(records):
            pair = [template.encode(tokenizer, [*record["prompt"], {"role": "assistant", "content": record[side]}]).ids
                    for side in ("chosen", "rejected")]
            if lengths.fits(record, index, max(map(len, pair))):
                ids.append(pair)
        lengths.report(len(records))
        types = [[[0] * len(side) for side in pair] for pair in ids]
        return ChoiceExamples(ids, types, np.zeros(len(ids), dtype=np.int64))  # the chosen side is choice 0

    def test_figures(self, model: nn.Module, objective: MultipleChoice, test: ChoiceExamples, labels: Sequence[str],
                     settings: TaskSettings, device: torch.device) -> dict[str, Any]:
        scores = objective.scores(model, test, device)  # (pairs, 2): chosen, rejected
        return {**choice_figures(scores, test.labels, "test_"),
                "test_reward_chosen": float(scores[:, 0].mean()), "test_reward_rejected": float(scores[:, 1].mean()),
                "test_reward_margin": float((scores[:, 0] - scores[:, 1]).mean())}


class RewardScorer:
    """A reward-model run as a function: conversations (a prompt and an answer) in, one score each out."""

    def __init__(self, run_dir: str, device: torch.device | str = "cpu"):
        run = open_run(run_dir)
        if run.family != "tuned" or run.model_config.get("task") != "reward":
            raise run.refusal("a reward needs a reward-model run (lmlab tune task=reward)")
        self.model: nn.Module = run.model(device)
        self.tokenizer, self.template = run.tokenizer(), base_template(run_dir)
        self.block_size: int = run.model_config["block_size"]
        self.pad_id = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0

    @torch.no_grad()
    def __call__(self, prompts: Sequence[Messages], answers: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        if len(prompts) != len(answers):
            raise LmlabError(f"reward: {len(prompts)} prompts but {len(answers)} answers")
        scores = []
        device = next(self.model.parameters()).device
        with evaluating(self.model):
            for start in range(0, len(prompts), batch_size):
                rows = [scored_conversation(self.template, self.tokenizer, prompt, answer, self.block_size)
                        for prompt, answer in zip(prompts[start:start + batch_size], answers[start:start + batch_size],
                                                  strict=True)]
                ids, mask = pad_batch(rows, self.pad_id)
                grouped = (ids[:, None].to(device), mask[:, None].to(device))  # one "choice" per conversation
                scores.append(self.model(input_ids=grouped[0], attention_mask=grouped[1]).logits[:, 0].float().cpu())
        return torch.cat(scores)
