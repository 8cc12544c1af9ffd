"""The training loop: schedules, decay groups, learning, metrics, checkpoints, exact resume, NaN stop."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys

import pytest
import torch
from conftest import kill_after_logged_steps, tiny_train_overrides

from lmlab.config import load_config
from lmlab.errors import LmlabError
from lmlab.models import load_model
from lmlab.train import ScheduleConfig, TrainConfig, train
from lmlab.train.checkpoint import list_checkpoints
from lmlab.train.optim import lr_at, parameter_groups


def test_schedules():
    cosine = ScheduleConfig(kind="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, 100, 1.0, cosine) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, cosine) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, cosine) == pytest.approx(0.55)  # halfway down the cosine
    assert lr_at(100, 100, 1.0, cosine) == pytest.approx(0.1)
    linear = ScheduleConfig(kind="linear", warmup_steps=0, min_lr_ratio=0.0)
    assert lr_at(25, 100, 2.0, linear) == pytest.approx(1.5)
    assert lr_at(70, 100, 2.0, ScheduleConfig(kind="constant")) == 2.0


def test_decay_groups_leave_vectors_alone_and_count_tied_weights_once():
    from lmlab.models.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=16))
    decayed, undecayed = parameter_groups(model)
    assert all(p.dim() >= 2 for p in decayed) and all(p.dim() == 1 for p in undecayed)
    assert sum(p.numel() for p in decayed + undecayed) == sum(p.numel() for p in model.parameters())
    assert sum(p is model.lm_head.weight for p in decayed) == 1


def _config(packed_dir, run_dir, *extra: str, steps: int = 12) -> TrainConfig:
    return load_config(TrainConfig, None, [*tiny_train_overrides(packed_dir, run_dir, steps), *extra])


def test_training_learns_and_writes_the_run_directory(packed_dir, tmp_path):
    run = tmp_path / "run"
    result = train(_config(packed_dir, run, "train.keep_checkpoints=2", "model.dropout=0.0", steps=40))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert val[-1] < val[0] - 0.5 and val[-1] < math.log(200)
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 41))
    assert all(r["tokens_per_s"] > 0 for r in records if "loss" in r)
    assert [p.name for p in list_checkpoints(run)] == ["step-39", "step-40"]
    assert (run / "config.yaml").exists() and (run / "tokenizer.json").exists()
    model = load_model(run)
    assert result.steps == 40 and model.config.n_layer == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["tokens_seen"] == result.tokens_seen == 40 * 4 * 32 * 2
    assert summary["parameters"] == model.num_parameters(non_embedding=False)
    assert summary["train_loss"] == [r["loss"] for r in records if "loss" in r][-1]
    assert summary["val_loss"] == val[-1] and 0 < summary["train_seconds"] == result.seconds


def test_l2_penalty_shrinks_the_weights(packed_dir, tmp_path):
    norms = {}
    for l2 in (0.0, 0.05):
        run = tmp_path / f"l2-{l2}"
        train(_config(packed_dir, run, f"optimizer.l2={l2}", "optimizer.weight_decay=0.0"))
        decayed, _ = parameter_groups(load_model(run))
        norms[l2] = sum(float(p.detach().pow(2).sum()) for p in decayed)
    assert norms[0.05] < norms[0.0]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(packed_dir, tmp_path, monkeypatch):
    from lmlab.models.gpt import GPT

    real_forward = GPT.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] > 10:  # grad_accum 2: the 6th optimizer step goes bad
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(GPT, "forward", poisoned)
    run = tmp_path / "run"
    with pytest.raises(LmlabError, match=rf"^{re.escape(str(run))}: step 6: the training loss became nan.*step-5"):
        train(_config(packed_dir, run))
    assert list_checkpoints(run)[-1].name == "step-5"


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_model(run_dir).state_dict()


def test_sigkill_at_a_random_step_then_resume_equals_uninterrupted(packed_dir, tmp_path):
    steps = 30
    lmlab = [sys.executable, "-m", "lmlab.cli", "train"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    straight = tmp_path / "straight"
    subprocess.run([*lmlab, *tiny_train_overrides(packed_dir, straight, steps)], check=True,
                   capture_output=True, env=env)

    killed = tmp_path / "killed"
    kill_after = random.randint(3, steps - 5)
    kill_after_logged_steps([*lmlab, *tiny_train_overrides(packed_dir, killed, steps)], killed, kill_after, env)
    assert not (killed / "model.safetensors").exists(), "the run finished before it could be killed"
    assert list_checkpoints(killed), "no checkpoint before the kill"

    subprocess.run([*lmlab, str(killed), "--resume"], check=True, capture_output=True, env=env)
    resumed, reference = _weights(killed), _weights(straight)
    assert resumed.keys() == reference.keys()
    for name in reference:
        assert torch.equal(resumed[name], reference[name]), (name, f"killed after {kill_after} logged steps")
    logged = (killed / "metrics.jsonl").read_text().splitlines()
    steps_logged = [json.loads(line)["step"] for line in logged if '"loss"' in line]
    assert steps_logged == list(range(1, steps + 1))
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["steps"] == steps and summary["train_seconds"] > 0


def test_resuming_a_finished_run_changes_nothing_and_extending_it_goes_on(packed_dir, tmp_path, capsys):
    """A finished run resumed says so in one line and keeps every file as it was; --resume train.max_steps=N
    trains it on to N; an override that would change what it already trained with is refused."""
    from lmlab.cli import main

    run = tmp_path / "run"
    assert main(["train", *tiny_train_overrides(packed_dir, run, steps=4)]) == 0
    before = {path: path.read_bytes() for path in sorted(run.rglob("*")) if path.is_file()}
    capsys.readouterr()
    assert main(["train", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "finished at step 4 of train.max_steps=4" in err and err.count("\n") == 1
    assert {path: path.read_bytes() for path in sorted(run.rglob("*")) if path.is_file()} == before

    assert main(["train", str(run), "--resume", "optimizer.lr=1"]) == 2
    assert "optimizer.lr would change what the run already trained with" in capsys.readouterr().err
    assert main(["train", str(run), "--resume", "train.max_steps=6"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and math.isfinite(summary["train_loss"]) and math.isfinite(summary["val_loss"])
    assert "max_steps: 6" in (run / "config.yaml").read_text()
