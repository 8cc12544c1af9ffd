"""Config values are checked for range and meaning, not only type, and a refused config leaves nothing on disk.

Every case goes through the CLI: one `error:` line naming the field (dotted from the config's top), exit
status 2, and the folder the command would have written does not exist afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_documents, tiny_train_overrides

from lmlab.cli import main
from lmlab.errors import LmlabError
from lmlab.models import family_class, model_from_config

# (override, the field the error line must name); each one alone is out of range or meaningless.
TRAIN_CASES = [
    ("optimizer.lr=-1", "optimizer.lr"),
    ("optimizer.weight_decay=-0.1", "optimizer.weight_decay"),
    ("optimizer.betas=[0.9, 1.0]", "optimizer.betas"),
    ("optimizer.betas=[-0.1, 0.95]", "optimizer.betas"),
    ("optimizer.eps=0", "optimizer.eps"),
    ("optimizer.grad_clip=0", "optimizer.grad_clip"),
    ("optimizer.l1=-0.001", "optimizer.l1"),
    ("optimizer.l2=-0.001", "optimizer.l2"),
    ("schedule.warmup_steps=-1", "schedule.warmup_steps"),
    ("schedule.min_lr_ratio=1.5", "schedule.min_lr_ratio"),
    ("schedule.min_lr_ratio=-0.1", "schedule.min_lr_ratio"),
    ("train.max_steps=0", "train.max_steps"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.grad_accum=0", "train.grad_accum"),
    ("train.eval_every=0", "train.eval_every"),
    ("train.block_size=0", "train.block_size"),
    ("train.early_stopping=0", "train.early_stopping"),
    ("train.early_stopping=2", "train.early_stopping"),  # without train.best_metric nothing could stop it
    ("model.dropout=1.0", "model.dropout"),
    ("model.dropout=-0.1", "model.dropout"),
    ("model.n_layer=0", "model.n_layer"),
    ("model.n_head=3", "model.n_embd"),  # 32 is not divisible by 3
    ("model.vocab_size=1", "model.vocab_size"),
    ("model.block_size=0", "model.block_size"),
    ("model.layer_norm_eps=0.0", "model.layer_norm_eps"),
    ("model.init=kaiming", "model.init"),
]


def run_cli(capsys, *argv: object) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def assert_refused(code: int, lines: list[str], field: str, written: Path, before: set[str]) -> None:
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert field in lines[0], (field, lines[0])
    assert not written.exists()
    assert {p.name for p in written.parent.iterdir()} == before


@pytest.mark.parametrize(("override", "field"), TRAIN_CASES)
def test_train_refuses_out_of_range(capsys, tmp_path, packed_dir, override, field):
    run = tmp_path / "run"
    code, lines = run_cli(capsys, "train", *tiny_train_overrides(packed_dir, run), override)
    assert_refused(code, lines, field, run, set())


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("{family: ngram, order: 0}", "model.order"),
        ("{family: ngram, estimator: kneser-ney, discount: 1.0}", "model.discount"),
        ("{family: word2vec, window: 0}", "model.window"),
        ("{family: word2vec, alpha: 0.01, min_alpha: 0.1}", "model.min_alpha"),
    ],
)
def test_train_of_other_trainers_refuses_out_of_range(capsys, tmp_path, packed_dir, model, field):
    run = tmp_path / "run"
    code, lines = run_cli(capsys, "train", f"data={packed_dir}", f"run_dir={run}", f"model={model}")
    assert_refused(code, lines, field, run, set())


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in tiny_documents(20)),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("tokenizer.vocab_size=100", "tokenizer.vocab_size"),  # byte-level BPE starts from 256 bytes
        ("tokenizer.min_frequency=0", "tokenizer.min_frequency"),
        ("val_fraction=0", "val_fraction"),
        ("data.near_threshold=0", "data.near_threshold"),
        ("data.clean.min_chars=10", "data.clean.max_chars"),  # with max_chars=5 below: an empty range
    ],
)
def test_data_prepare_refuses_out_of_range(capsys, tmp_path, corpus, override, field):
    out = tmp_path / "prepared"
    code, lines = run_cli(capsys, "data", "prepare", corpus, "--out", out, "data.clean.max_chars=5"
                          if "min_chars" in override else "seed=0", override)
    assert_refused(code, lines, field, out, {corpus.name})


@pytest.mark.parametrize(
    ("override", "field"),
    [("vocab_size=0", "vocab_size"), ("kind=wordpiece", "vocab_size"), ("min_frequency=0", "min_frequency")],
)
def test_tokenizer_train_refuses_out_of_range(capsys, tmp_path, corpus, override, field):
    out = tmp_path / "tokenizer"
    # wordpiece's five special tokens leave no room in a vocabulary of 5
    extra = "vocab_size=5" if override == "kind=wordpiece" else "lowercase=false"
    code, lines = run_cli(capsys, "tokenizer", "train", corpus, "--out", out / "tokenizer.json", extra, override)
    assert_refused(code, lines, field, out, {corpus.name})


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("optimizer.lr=-1", "optimizer.lr"),
        ("head.dropout=1", "head.dropout"),
        ("head.hidden=0", "head.hidden"),
        ("schedule.warmup_steps=-1", "schedule.warmup_steps"),
        ("method.method=nothing", "method.method"),
    ],
)
def test_tune_refuses_out_of_range_before_reading_anything(capsys, tmp_path, override, field):
    """The config is checked before the base or the data is read (neither exists here)."""
    run = tmp_path / "run"
    code, lines = run_cli(capsys, "tune", f"base={tmp_path / 'no-base'}", f"data={tmp_path / 'no-data'}",
                          f"run_dir={run}", override)
    assert_refused(code, lines, field, run, set())


def test_tune_compare_refuses_before_making_its_folder(capsys, tmp_path):
    out = tmp_path / "compare"
    code, lines = run_cli(capsys, "tune", "compare", f"base={tmp_path / 'no-base'}", f"data={tmp_path / 'no-data'}",
                          "head.dropout=2", "--methods", "full", "--out", out)
    assert_refused(code, lines, "head.dropout", out, set())


@pytest.mark.parametrize(
    ("family", "config", "message"),
    [
        ("gpt", {"n_layer": 0}, "GPT config: n_layer must be at least 1"),
        ("bert", {"attention_dropout": 1.0}, r"BERT config: attention_dropout must be in \[0, 1\)"),
        ("bert", {"layer_norm_eps": -1.0}, "BERT config: layer_norm_eps must be > 0"),
        ("mlp", {"context": 0}, "MLP config: context must be at least 1"),
        ("rnn", {"vocab_size": 1}, "RNN config: vocab_size must be at least 2"),
        ("rnn", {"init": "zeros"}, "RNN config: init must be one of gpt2, normal, xavier, uniform, torch"),
    ],
)
def test_model_config_built_directly_names_its_family(family, config, message):
    with pytest.raises(LmlabError, match=message):
        family_class(family).config_class(**config)
    with pytest.raises(LmlabError, match=f"model config: {message.split(' config: ')[1]}"):
        model_from_config(family, config)
