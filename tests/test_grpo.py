"""GRPO: group-relative advantages, the clipped ratio, the KL to the reference, and whole runs that raise the reward."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import chat_tune_words, kill_after_logged_steps, same_splits, tiny_decoder_base
from png_checks import drawn_png, saved_figures

from lmlab.cli import main
from lmlab.datasets.chat import conversation_splits
from lmlab.models import load_model
from lmlab.report import write_report
from lmlab.train.checkpoint import list_checkpoints
from lmlab.tune.tasks.grpo import GRPOConfig, Sample, group_advantages, grpo_loss, k3_kl, reward_function


def test_advantages_are_standardised_within_each_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    advantages = group_advantages(rewards, 4)
    first = rewards[:4]
    assert torch.allclose(advantages[:4], (first - first.mean()) / (first.std() + 1e-4))
    assert torch.equal(advantages[4:], torch.zeros(4))  # a group that agrees teaches nothing


def test_advantages_are_scaled_by_the_group_the_batch_or_not_at_all():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    centred = rewards - rewards.view(2, 4).mean(dim=1).repeat_interleave(4)
    assert torch.allclose(group_advantages(rewards, 4, "none"), centred)
    assert torch.allclose(group_advantages(rewards, 4, "batch"), centred / (rewards.std() + 1e-4))
    by_group = group_advantages(rewards, 4, "group")
    assert by_group[0] / centred[0] == pytest.approx(1 / (rewards[:4].std().item() + 1e-4))


@pytest.mark.parametrize(("loss_type", "expected"), [("grpo", 0.0), ("bnpo", 0.5), ("dr_grpo", 0.25)])
def test_the_loss_types_weigh_a_long_wrong_reply_as_trl_names_them(loss_type, expected):
    # one right reply of 1 token (A = +1) and one wrong of 3 (A = -1), at ratio 1 with no KL: grpo averages
    # within each reply first, so the long reply's 3 tokens weigh what the short one's 1 does (Dr. GRPO's
    # length bias); bnpo averages all 4 tokens; dr_grpo sums them over 2 replies x max_new_tokens 4
    settings = GRPOConfig(group_size=2, beta=0.0, max_new_tokens=4, loss_type=loss_type)
    sample = Sample(input_ids=torch.zeros(2, 4, dtype=torch.long), attention_mask=torch.ones(2, 4),
                    reply_mask=torch.tensor([[1.0, 0, 0], [1, 1, 1]]), advantages=torch.tensor([1.0, -1.0]),
                    old_logprobs=torch.zeros(2, 3), reference_logprobs=torch.zeros(2, 3),
                    rewards=torch.tensor([1.0, 0.0]))
    loss, _ = grpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), sample, settings)
    assert float(loss) == pytest.approx(expected)


def test_k3_is_zero_at_the_reference_and_positive_elsewhere():
    logprobs = torch.log(torch.tensor([0.5, 0.2, 0.9]))
    assert torch.equal(k3_kl(logprobs, logprobs), torch.zeros(3))
    assert (k3_kl(logprobs, torch.log(torch.tensor([0.4, 0.3, 0.8]))) > 0).all()


def test_the_clip_stops_the_gradient_of_a_ratio_that_moved_too_far():
    settings = GRPOConfig(group_size=2, beta=0.0, clip=0.2)
    sample = Sample(input_ids=torch.zeros(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 3),
                    reply_mask=torch.ones(2, 2), advantages=torch.tensor([1.0, -1.0]),
                    old_logprobs=torch.zeros(2, 2), reference_logprobs=torch.zeros(2, 2),
                    rewards=torch.tensor([1.0, 0.0]))
    # ratios e^0.5 (beyond 1 + clip, advantage +: clipped) and e^-0.05 (within: it still learns)
    logprobs = torch.tensor([[0.5, 0.5], [-0.05, -0.05]], requires_grad=True)
    loss, figures = grpo_loss(logprobs, sample.old_logprobs, sample, settings)
    loss.backward()
    assert torch.equal(logprobs.grad[0], torch.zeros(2)) and (logprobs.grad[1] != 0).all()
    assert figures["clip_ratio"] == 0.5 and figures["reward"] == 0.5


def test_the_checker_gives_wrong_replies_partial_credit_only_when_asked():
    records = [{"answer": "632"}, {"answer": "632"}, {"answer": "cat, dog"}]
    replies = ["632", "631", "dog, cat"]
    assert reward_function(GRPOConfig())(records, replies).tolist() == [1.0, 0.0, 0.0]
    partial = reward_function(GRPOConfig(partial_credit=0.5))(records, replies)
    assert partial.tolist() == pytest.approx([1.0, 1 / 3, 0.0])  # half of the 2 digits in 3 in place


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """A tiny decoder half-taught 16 task conversations (train = validation = test): right on some, wrong on
    others, so sampled groups differ and GRPO has something to reinforce."""
    root = tmp_path_factory.mktemp("grpo")
    base = tiny_decoder_base(root)
    data = same_splits(root / "same", conversation_splits("tasks-en")["train"][:16])
    words = chat_tune_words(base, "sft", str(data), root / "sft", 20, "train.batch_size=16", "optimizer.lr=1e-2",
                            "train.eval_every=10")
    assert main(["tune", *words]) == 0
    return root / "sft", data


def grpo_words(sft, data, run_dir, steps, *extra):
    return chat_tune_words(sft, "grpo", str(data), run_dir, steps, "optimizer.lr=2e-3", "grpo.temperature=0.7",
                           "grpo.group_size=8", "grpo.max_new_tokens=16", "train.early_stopping=100",
                           "train.eval_every=10", *extra)


def test_grpo_raises_the_sampled_reward_and_reports_the_kl(sft_run, tmp_path, monkeypatch):
    sft, data = sft_run
    run_dir = tmp_path / "grpo"
    assert main(["tune", *grpo_words(sft, data, run_dir, 30)]) == 0
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [s for s in steps if "reward" in s]
    assert len(trained) == 30 and all({"kl", "clip_ratio", "reward_std", "reply_length"} <= set(s) for s in trained)
    early, late = (sum(s["reward"] for s in part) / 10 for part in (trained[:10], trained[-10:]))
    assert late > early + 0.03, (early, late)
    assert trained[-1]["kl"] > 0  # the policy has moved from the reference, and says how far
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"test_reward", "test_exact_match", "test_kl", "base_test_reward", "base_test_kl"} <= set(summary)
    assert summary["base_test_kl"] == 0 and summary["test_reward"] >= summary["base_test_reward"]
    figures = saved_figures(monkeypatch)
    assert "alignment.png" in write_report(run_dir).read_text()
    drawn_png(run_dir / "alignment.png", min_width=600)
    panels = [[axis.get_title() for axis in figure.axes] for figure in figures]
    titles = next(titles for titles in panels if "mean reward" in titles)
    assert titles[:2] == ["mean reward", "KL to the reference (per token)"] and "exact match" in titles


def test_a_reused_sample_moves_the_ratio_and_the_clip_acts(sft_run, tmp_path):
    sft, data = sft_run
    run_dir = tmp_path / "grpo"
    assert main(["tune", *grpo_words(sft, data, run_dir, 6, "grpo.updates_per_sample=3", "optimizer.lr=2e-2")]) == 0
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"reward"' in line]
    # the first update of each sample has ratio 1; the later ones read a policy that has moved
    assert steps[0]["clip_ratio"] == 0 and max(s["clip_ratio"] for s in steps) > 0
    drawn = [(s["reward"], s["reward_std"], s["reply_length"]) for s in steps]  # what the sample holds
    assert drawn[0] == drawn[1] == drawn[2] != drawn[3]


def test_grpo_resumes_bit_exactly_after_sigkill_even_within_a_reused_sample(sft_run, tmp_path):
    sft, data = sft_run
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    extra = ("grpo.updates_per_sample=3", "grpo.group_size=4", "method.method=lora")
    assert main(["tune", *grpo_words(sft, data, straight, 8, *extra)]) == 0
    kill_after_logged_steps([sys.executable, "-m", "lmlab.cli", "tune", *grpo_words(sft, data, killed, 8, *extra)],
                            killed, 4, {**os.environ, "PYTHONHASHSEED": "0"})
    assert list_checkpoints(killed) and not (killed / "summary.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "lmlab.cli", "tune", str(killed), "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    final, expected = load_model(killed).state_dict(), load_model(straight).state_dict()
    assert all(torch.equal(final[name], expected[name]) for name in expected)
    rewards = [[json.loads(line).get("reward") for line in (run / "metrics.jsonl").read_text().splitlines()]
               for run in (killed, straight)]
    assert rewards[0] == rewards[1]


def test_a_checker_reward_needs_records_with_answers(sft_run, tmp_path, capsys):
    sft, _ = sft_run
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                     {"role": "assistant", "content": "hello"}]}) + "\n"
                            for i in range(20)), encoding="utf-8")
    assert main(["tune", *grpo_words(sft, data, tmp_path / "run", 2)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "exact answer" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
