"""Preference losses: learn from pairs of answers, one preferred to the other, without a reward model.

A pair is a prompt x, a chosen answer y_w and a rejected one y_l. Each loss reads the policy's
log-probability of each answer, log π(y|x) = Σ_t log π(y_t | x, y_<t) over the answer's tokens only,
and, for the losses with a reference, the same from a frozen copy of the starting model, π_ref:

    sigmoid (DPO, Rafailov et al. 2023)   -log σ(β Δ)                      Δ = [log π(y_w) - log π_ref(y_w)]
                                                                             - [log π(y_l) - log π_ref(y_l)]
    ipo (Azar et al. 2023)                (Δ_w/n_w - Δ_l/n_l - 1/(2β))²    each log-ratio averaged per token
    simpo (Meng et al. 2024), no reference  -log σ(β (ā_w - ā_l) - γ)       ā: the answer's mean token log-prob
    orpo (Hong et al. 2024), no reference   NLL(y_w) - β log σ(log odds(ā_w) - log odds(ā_l))
                                                                             odds(p) = p / (1 - p), p = exp(ā)
    any of them + w NLL(y_w) (``sft_weight``)                               the chosen answers' NLL per token

DPO's insight: the policy that maximises reward - β KL(π || π_ref) has reward r(x, y) = β log π(y|x) /
π_ref(y|x) + (a term of x alone), so a Bradley–Terry model of the preferences can be fitted on the
policy's own log-ratios. Those are the "rewards" reported: β (log π(y) - log π_ref(y)) for the chosen
and the rejected answer, their difference the margin, and the share of pairs with a positive margin
the preference accuracy.

The arithmetic is TRL's (`DPOTrainer` for sigmoid and ipo, the CPO trainer for simpo), checked
against it in tests/test_dpo.py; the reference's log-probabilities are computed once, before
training, so a resumed run reads exactly the numbers an uninterrupted one did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PreferenceLoss = Literal["sigmoid", "ipo", "simpo", "orpo"]
REFERENCE_FREE: frozenset[str] = frozenset({"simpo", "orpo"})


@dataclass
class AnswerLogprobs:
    """Per answer: the summed log-probability of its tokens, their count, and (for ORPO) its mean NLL."""

    total: Tensor  # (B,) Σ_t log π(y_t | ...)
    tokens: Tensor  # (B,) how many answer tokens

    @property
    def mean(self) -> Tensor:
        return self.total / self.tokens


def answer_logprobs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, answer_mask: Tensor) -> AnswerLogprobs:
    """log π of each row's answer tokens (`answer_mask` 1 on them) for right-padded rows (B, T).

    Position t's logits predict token t + 1, so the mask is read from the second column on.
    """
    mask = answer_mask[:, 1:]
    logprobs = token_logprobs(model, input_ids, attention_mask, mask)
    return AnswerLogprobs(total=logprobs.sum(-1), tokens=mask.to(logprobs.dtype).sum(-1))


def branch_logprobs(model: nn.Module, input_ids: Tensor, branch_ids: Tensor,
                    answer_mask: Tensor) -> tuple[AnswerLogprobs, AnswerLogprobs]:
    """Both answers' log π from rows that pack a prompt (branch 0) with its chosen (1) and rejected (2) answers
    after it, each seeing the prompt and itself only (`lmlab.models.base.branch_mask`), right-padded (-1).

    An answer token is predicted by the token before it in its own branch, and a branch's first token by the
    prompt's last: the rejected answer does not follow the chosen one, however the row lays them out.
    """
    B, T = input_ids.shape
    index = torch.arange(T, device=input_ids.device).expand(B, T)
    prompt_end = (branch_ids == 0).sum(dim=1, keepdim=True) - 1  # (B, 1): the prompt's last token
    first = torch.ones_like(branch_ids, dtype=torch.bool)
    first[:, 1:] = branch_ids[:, 1:] != branch_ids[:, :-1]
    predictor = torch.where(first & (branch_ids > 0), prompt_end, index - 1)
    reads = answer_mask.bool()
    rows, cols = reads.nonzero(as_tuple=True)
    sources = predictor[rows, cols]
    needed = torch.zeros_like(reads)
    needed[rows, sources] = True  # the prompt's last token predicts both answers' first tokens: computed once
    slot = needed.flatten().cumsum(0).view(B, T) - 1  # where each needed position's logits land in (N, V)
    logits = model(input_ids, branch_ids=branch_ids, logits_at=needed).logits.float()
    picked = torch.log_softmax(logits, dim=-1)[slot[rows, sources], input_ids[rows, cols]]
    per_token = torch.zeros(B, T, dtype=picked.dtype, device=picked.device).index_put((rows, cols), picked)

    def side(branch: int) -> AnswerLogprobs:
        on = branch_ids == branch
        return AnswerLogprobs(total=(per_token * on).sum(-1), tokens=(reads & on).sum(-1).to(picked.dtype))

    return side(1), side(2)


def token_logprobs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, reads: Tensor) -> Tensor:
    """(B, T-1): log π of each token of `input_ids` from position 1 on, given the ones before it, where `reads`
    (B, T-1) is 1, and 0 elsewhere; in float32, as a sum over a hundred tokens would lose digits in bfloat16.

    Only the positions read get logits (`logits_at`): answers are a few tokens of each row, and the output
    layer is a large part of a small model's work.
    """
    where = reads.bool()
    targets = input_ids[:, 1:][where]
    logits = model(input_ids, attention_mask=attention_mask, logits_at=F.pad(where, (0, 1))).logits.float()  # (N, V)
    picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return torch.zeros(where.shape, dtype=picked.dtype, device=picked.device).masked_scatter(where, picked)


@dataclass
class PreferenceOutput:
    loss: Tensor  # the batch mean, to back-propagate
    chosen_rewards: Tensor  # (B,) β times the log-ratio (or, reference-free, the log-probability) of each answer
    rejected_rewards: Tensor

    @property
    def margins(self) -> Tensor:
        return self.chosen_rewards - self.rejected_rewards

    def figures(self) -> dict[str, float]:
        """Batch means, as TRL logs them: rewards of each side, their margin, and the share ordered right."""
        return {"reward_chosen": float(self.chosen_rewards.mean()),
                "reward_rejected": float(self.rejected_rewards.mean()),
                "margin": float(self.margins.mean()),
                "preference_accuracy": float((self.margins > 0).float().mean())}


def preference_loss(kind: PreferenceLoss, chosen: AnswerLogprobs, rejected: AnswerLogprobs,
                    reference_chosen: Tensor | None, reference_rejected: Tensor | None, beta: float,
                    simpo_gamma: float = 0.5, sft_weight: float = 0.0) -> PreferenceOutput:
    """The loss `kind` of a batch of pairs (see the module), and the rewards it implies.

    `reference_*` are the reference model's summed answer log-probabilities, (B,) each; the
    reference-free losses take None. `sft_weight` adds that times the chosen answers' NLL per token
    over the batch (TRL's ``loss_type=[kind, "sft"]``; RPO, Pang et al. 2024): DPO alone may widen the
    margin by making both answers less likely, this keeps the chosen one likely.
    """
    output = _pair_loss(kind, chosen, rejected, reference_chosen, reference_rejected, beta, simpo_gamma)
    if sft_weight:
        output.loss = output.loss + sft_weight * -chosen.total.sum() / chosen.tokens.sum()
    return output


def _pair_loss(kind: PreferenceLoss, chosen: AnswerLogprobs, rejected: AnswerLogprobs,
               reference_chosen: Tensor | None, reference_rejected: Tensor | None, beta: float,
               simpo_gamma: float) -> PreferenceOutput:
    if kind in REFERENCE_FREE:
        chosen_logratio, rejected_logratio = chosen.mean, rejected.mean  # the answer's own mean log-prob
        if kind == "simpo":
            losses = -F.logsigmoid(beta * (chosen.mean - rejected.mean) - simpo_gamma)
        else:
            # log(p / (1 - p)) from log p without leaving log space: log1p(-exp(a)) is log(1 - p), stable near 0.
            log_odds = (chosen.mean - rejected.mean) - (torch.log1p(-torch.exp(chosen.mean))
                                                        - torch.log1p(-torch.exp(rejected.mean)))
            losses = -chosen.mean - beta * F.logsigmoid(log_odds)
        return PreferenceOutput(losses.mean(), beta * chosen_logratio.detach(), beta * rejected_logratio.detach())
    if reference_chosen is None or reference_rejected is None:
        raise ValueError(f"the {kind} loss compares with a reference model; give its log-probabilities")
    chosen_logratio = chosen.total - reference_chosen
    rejected_logratio = rejected.total - reference_rejected
    if kind == "sigmoid":
        losses = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio))
    elif kind == "ipo":
        # IPO regresses the per-token log-ratio gap to 1/(2β) instead of pushing it ever higher.
        losses = (chosen_logratio / chosen.tokens - rejected_logratio / rejected.tokens - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown preference loss {kind!r}")
    return PreferenceOutput(losses.mean(), beta * chosen_logratio.detach(), beta * rejected_logratio.detach())
