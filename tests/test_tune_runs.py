"""`lmlab tune` runs end to end: every task on every kind of backbone, the command line's word order, and a
run killed with SIGKILL resumed to exactly the run never interrupted."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import kill_after_logged_steps
from test_heads import choice_records, qa_records, tagged_records, write_jsonl
from test_tune import keyword_examples

from lmlab.cli import main
from lmlab.models import load_model, save_model
from lmlab.models.bert import BERT, BertConfig
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.mlp import BengioMLP, MLPConfig
from lmlab.models.rnn import RNNConfig, RNNLanguageModel
from lmlab.tokenizers import TokenizerConfig, train_tokenizer
from lmlab.train.checkpoint import list_checkpoints
from lmlab.tune.runner import read_tune_config
from lmlab.tune.tasks import TASKS
from lmlab.tune.tasks.chat import ChatTask

# Each task's data file, and the test figures its summary must hold.
TASK_DATA = {"classification": "reviews.jsonl", "tagging": "tags.jsonl", "qa": "qa.jsonl",
             "multiple_choice": "choices.jsonl"}
FIGURES = {"classification": {"test_accuracy", "test_macro_f1", "majority_baseline"},
           "tagging": {"test_accuracy", "test_precision", "test_recall", "test_f1"},
           "qa": {"test_exact_match", "test_f1"},
           "multiple_choice": {"test_accuracy", "test_macro_f1", "majority_baseline"}}
# Tiny backbones of every kind that `lmlab train` makes: a decoder and an encoder that have features() for a
# head, and decoders without (their refusal is tested).
BACKBONES = {
    "gpt": lambda vocab: GPT(GPTConfig(vocab_size=vocab, block_size=64, n_layer=1, n_head=2, n_embd=16)),
    "bert": lambda vocab: BERT(BertConfig(vocab_size=vocab, block_size=64, n_layer=1, n_head=2, hidden_size=16,
                                          intermediate_size=32)),
    "rnn": lambda vocab: RNNLanguageModel(RNNConfig(vocab_size=vocab, block_size=64, n_embd=16, hidden=16, n_layer=1)),
    "mlp": lambda vocab: BengioMLP(MLPConfig(vocab_size=vocab, block_size=64, n_embd=8, hidden=16)),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """One tiny base of each family on a WordPiece tokenizer, a GPT on a character one, and each task's data."""
    root = tmp_path_factory.mktemp("tune-runs")
    reviews, tags = keyword_examples(200), tagged_records(120, 1)
    qa, choices = qa_records(120, 2), choice_records(120, 3)
    texts = [r["text"] for r in reviews] + [" ".join(r["tokens"]) for r in tags] + [r["context"] for r in qa]
    texts += [" ".join([r["question"], *r["choices"]]) for r in choices] + ["which colour ?"] * 5
    wordpiece = train_tokenizer(texts, TokenizerConfig(kind="wordpiece", vocab_size=200, min_frequency=1))
    char = train_tokenizer(texts, TokenizerConfig(kind="char", vocab_size=200))
    torch.manual_seed(0)
    for name, build in BACKBONES.items():
        save_model(build(wordpiece.vocab_size), root / name)
        wordpiece.save(root / name / "tokenizer.json")
    save_model(BACKBONES["gpt"](char.vocab_size), root / "gpt-char")
    char.save(root / "gpt-char" / "tokenizer.json")
    for name, records in (("reviews", reviews), ("tags", tags), ("qa", qa), ("choices", choices)):
        write_jsonl(root / f"{name}.jsonl", records)
    return root


def run_overrides(workspace: Path, base: str, task: str, run_dir: Path, steps: int = 4) -> list[str]:
    return [f"base={workspace / base}", f"task={task}", f"data={workspace / TASK_DATA[task]}", f"run_dir={run_dir}",
            f"train.max_steps={steps}", "train.eval_every=2", "train.batch_size=8", "train.device=cpu",
            "train.log_every=1", "block_size=32", "doc_stride=8", "limit_train=48", "limit_eval=16",
            "optimizer.lr=3e-3"]


def test_the_registry_names_every_task_tested_here():
    """Every task that puts a head on any backbone; the chat tasks (no head: test_sft.py, ...) and the reward model
    (a head on a decoder, over conversations: test_reward.py) have their own tests."""
    assert {name for name, task in TASKS.items() if not isinstance(task, ChatTask) and not task.reads_conversations
            } == set(TASK_DATA) == set(FIGURES)


@pytest.mark.parametrize("task", list(TASK_DATA))
@pytest.mark.parametrize("base", ["gpt", "bert"])
def test_every_task_trains_on_every_backbone_with_features(workspace, tmp_path, base, task):
    run = tmp_path / "run"
    assert main(["tune", *run_overrides(workspace, base, task, run)]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)
    assert [r["step"] for r in records if "val_loss" in r] == [2, 4]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == task and summary["steps"] == 4
    assert FIGURES[task] <= set(summary), FIGURES[task] - set(summary)
    assert all(math.isfinite(summary[name]) and summary[name] >= 0 for name in FIGURES[task] - {"majority_baseline"})
    model = load_model(run)
    assert model.config.task == task and model.config.base_family == base


@pytest.mark.parametrize("base", ["rnn", "mlp"])
def test_a_backbone_without_features_is_refused_in_one_line(workspace, tmp_path, capsys, base):
    run = tmp_path / "run"
    assert main(["tune", *run_overrides(workspace, base, "classification", run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: base ") and "has no features() to put a task head on" in err
    assert err.count("\n") == 1 and not run.exists()


@pytest.mark.parametrize("mistake", ["base", "data"])
def test_tune_compare_refuses_a_base_without_features_or_missing_data_before_any_run(workspace, tmp_path, capsys,
                                                                                    mistake):
    overrides = run_overrides(workspace, "rnn" if mistake == "base" else "bert", "classification", tmp_path / "r")
    if mistake == "data":
        overrides = [o for o in overrides if not o.startswith("data=")] + [f"data={tmp_path / 'absent.jsonl'}"]
    out = tmp_path / "compare"
    assert main(["tune", "compare", *overrides, "--methods", "lora,features", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # the refusal, not a failed child's output
    assert not out.exists()


def test_qa_refuses_a_tokenizer_without_cls_and_sep_before_writing_anything(workspace, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["tune", *run_overrides(workspace, "gpt-char", "qa", run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: extractive QA reads [CLS] question [SEP] context [SEP]") and err.count("\n") == 1
    assert not run.exists()


# ---- the command line ---------------------------------------------------------------------------

def lmlab(*words: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmlab.cli", *words], capture_output=True, text=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"}, **kwargs)


def test_overrides_may_follow_options_for_tune_and_tune_compare(workspace, tmp_path, capsys):
    first, *rest = run_overrides(workspace, "gpt", "classification", tmp_path / "one", steps=2)
    done = lmlab("tune", first, "--json", str(tmp_path / "one.json"), *rest, "method.method=lora")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "one.json").read_text())["method"] == "lora"
    # compare: overrides after --methods and --out reach every run, and an explicit lr wins over the methods'
    compared = [o for o in run_overrides(workspace, "gpt", "classification", tmp_path / "unused", steps=2)
                if not o.startswith(("run_dir", "optimizer.lr"))]
    out = tmp_path / "compare"
    done = lmlab("tune", "compare", *compared[:2], "--methods", "prompt", *compared[2:], "--out", str(out),
                 "optimizer.lr=0.007", "method.prompt={num_virtual_tokens: 4}")
    assert done.returncode == 0, done.stderr
    assert [row["name"] for row in json.loads((out / "compare.json").read_text())] == ["prompt"]
    saved = yaml.safe_load((out / "prompt" / "config.yaml").read_text())
    assert saved["optimizer"]["lr"] == 0.007 and saved["train"]["max_steps"] == 2
    assert saved["method"]["prompt"] == {"num_virtual_tokens": 4}
    with pytest.raises(SystemExit):  # an unknown option is still one
        main(["tune", "compare", *compared, "--methods", "features", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


# ---- resuming -----------------------------------------------------------------------------------

def test_sigkill_at_a_random_step_then_resume_equals_uninterrupted(workspace, tmp_path, capsys):
    """With tune's early stopping and best weights in play: an evaluation every 3 steps, the kill anywhere
    before the run ends (early or not), so also between an evaluation that did not improve and the stop."""

    def words(run_dir: Path) -> list[str]:
        return [*run_overrides(workspace, "gpt", "classification", run_dir, steps=30), "train.eval_every=3",
                "train.checkpoint_every=1", "train.early_stopping=3", "method.method=lora", "head.dropout=0.3"]

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert lmlab("tune", *words(straight)).returncode == 0
    steps = json.loads((straight / "summary.json").read_text())["steps"]  # an early stop comes at 12 or later
    seed = random.randrange(2**32)  # a fresh step each run, replayable from the seed every message names
    kill_after = random.Random(seed).randint(2, steps - 3)
    where = f"killed after step {kill_after} of {steps} (kill step from random.Random({seed}))"
    kill_after_logged_steps([sys.executable, "-m", "lmlab.cli", "tune", *words(killed)], killed, kill_after,
                            {**os.environ, "PYTHONHASHSEED": "0"})
    assert not (killed / "model.safetensors").exists(), f"the run finished before it could be killed; {where}"
    assert list_checkpoints(killed), f"no checkpoint before the kill; {where}"

    resumed = lmlab("tune", str(killed), "--resume")
    assert resumed.returncode == 0, f"{where}: {resumed.stderr}"
    final, reference = load_model(killed).state_dict(), load_model(straight).state_dict()
    assert final.keys() == reference.keys(), where
    for name in reference:
        assert torch.equal(final[name], reference[name]), f"{name}; {where}"
    assert _records(killed / "metrics.jsonl") == _records(straight / "metrics.jsonl"), where
    assert (killed / "best.json").read_text() == (straight / "best.json").read_text(), where
    timing = {"wall_seconds", "train_seconds", "peak_memory_mb"}
    summary, expected = (json.loads((run / "summary.json").read_text()) for run in (killed, straight))
    assert {k: v for k, v in summary.items() if k not in timing} == {k: v for k, v in expected.items()
                                                                   if k not in timing}, where

    # done: resuming it again changes nothing and says so in one line
    before = {path: path.read_bytes() for path in sorted(killed.rglob("*")) if path.is_file()}
    capsys.readouterr()
    assert main(["tune", str(killed), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert {path: path.read_bytes() for path in sorted(killed.rglob("*")) if path.is_file()} == before
    assert main(["tune", str(killed), "--resume", "optimizer.lr=1"]) == 2
    assert "optimizer.lr would change what the run already trained with" in capsys.readouterr().err


def _records(path: Path) -> list[dict]:
    """metrics.jsonl's steps and figures, without the throughput (the clock's, not the run's)."""
    lines = path.read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"} for line in lines]


def test_a_run_that_finished_or_stopped_early_is_not_resumed_but_can_be_extended(workspace, tmp_path, capsys):
    run = tmp_path / "run"
    words = run_overrides(workspace, "gpt", "classification", run, steps=2)
    assert read_tune_config(None, words).train.early_stopping == 3  # tune's default, kept beside the overrides
    assert main(["tune", *words]) == 0
    capsys.readouterr()
    assert main(["tune", str(run), "--resume"]) == 2
    assert "finished at step 2 of train.max_steps=2; to train it longer" in capsys.readouterr().err
    assert main(["tune", str(run), "--resume", "train.max_steps=4"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and "test_accuracy" in summary
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["max_steps"] == 4
    # stopped early: an evaluation a step, patience 1, a validation figure that cannot improve on the first
    stopped = tmp_path / "stopped"
    assert main(["tune", *run_overrides(workspace, "gpt", "classification", stopped, steps=20), "train.eval_every=1",
                 "train.early_stopping=1", "optimizer.lr=1e-12", "train.best_metric=val_accuracy"]) == 0
    steps = json.loads((stopped / "summary.json").read_text())["steps"]
    assert steps < 20
    capsys.readouterr()
    assert main(["tune", str(stopped), "--resume", "train.max_steps=30"]) == 2
    assert f"stopped early at step {steps} of 20" in capsys.readouterr().err
    assert main(["tune", "compare", str(stopped), "--resume"]) == 2
    assert "resume one run at a time" in capsys.readouterr().err
