"""The reward model: a decoder with a scalar head, Bradley–Terry loss on preference pairs, pairwise accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import chat_tune_words, kill_after_logged_steps, tiny_decoder_base

from lmlab.cli import main
from lmlab.datasets.chat import preference_splits
from lmlab.models import load_model
from lmlab.runs import open_run
from lmlab.train.checkpoint import list_checkpoints
from lmlab.tune.tasks.multiple_choice import ChoiceHead
from lmlab.tune.tasks.reward import RewardScorer


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return tiny_decoder_base(tmp_path_factory.mktemp("reward"))


def reward_words(base, run_dir, steps, *extra, data="preferences-tasks"):
    return chat_tune_words(base, "reward", data, run_dir, steps, "optimizer.lr=3e-3", "method.method=full", *extra)


def test_the_loss_is_bradley_terry_on_the_two_scores():
    torch.manual_seed(0)
    head = ChoiceHead(16, 0.0, "last").eval()
    hidden, mask = torch.randn(2 * 5, 7, 16), torch.ones(2 * 5, 7, dtype=torch.long)
    out = head(hidden, mask, torch.zeros(5, dtype=torch.long), rows=5)
    chosen, rejected = out.logits[:, 0], out.logits[:, 1]
    assert torch.allclose(out.loss, -F.logsigmoid(chosen - rejected).mean(), atol=1e-6)


@pytest.fixture(scope="module")
def mismatched_pairs(tmp_path_factory):
    """Task pairs whose rejected answer is the answer to another task's prompt (the construction chatterbot's
    pairs use): a preference a small model learns in a few steps, on prompts it never saw."""
    folder = tmp_path_factory.mktemp("mismatched")
    for split, pairs in preference_splits("preferences-tasks").items():
        lines = [{**pair, "rejected": pairs[(i + 7) % len(pairs)]["chosen"]} for i, pair in enumerate(pairs)
                 if pairs[(i + 7) % len(pairs)]["chosen"] != pair["chosen"]]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in lines),
                                               encoding="utf-8")
    return folder


def test_a_reward_model_learns_to_score_chosen_answers_higher(base_run, mismatched_pairs, tmp_path):
    run_dir = tmp_path / "rm"
    words = reward_words(base_run, run_dir, 200, "limit_train=2000", "limit_eval=100", "train.eval_every=20",
                         "train.batch_size=16", "optimizer.lr=1e-2", "train.early_stopping=10",
                         data=str(mismatched_pairs))
    assert main(["tune", *words]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    # held-out pairs: the test split's prompts are never seen in training
    assert summary["test_accuracy"] >= 0.7, summary
    assert summary["test_reward_margin"] > 0 and summary["test_examples"] == 100
    assert open_run(run_dir).chat_template() is not None
    scorer = RewardScorer(str(run_dir))
    pair = preference_splits("preferences-tasks")["test"][0]
    scores = scorer([pair["prompt"], pair["prompt"]], [pair["chosen"], pair["rejected"]])
    assert scores.shape == (2,) and torch.isfinite(scores).all()


def test_the_reward_of_a_run_that_is_no_reward_model_is_refused(base_run):
    with pytest.raises(Exception, match="reward-model run"):
        RewardScorer(str(base_run))


def test_a_reward_model_resumes_bit_exactly_after_sigkill(base_run, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["tune", *reward_words(base_run, straight, 8)]) == 0
    kill_after_logged_steps([sys.executable, "-m", "lmlab.cli", "tune", *reward_words(base_run, killed, 8)],
                            killed, 4, {**os.environ, "PYTHONHASHSEED": "0"})
    assert list_checkpoints(killed) and not (killed / "summary.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "lmlab.cli", "tune", str(killed), "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    final, expected = load_model(killed).state_dict(), load_model(straight).state_dict()
    assert all(torch.equal(final[name], expected[name]) for name in expected)
