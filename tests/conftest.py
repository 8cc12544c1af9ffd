"""Shared fixtures: a tiny bilingual corpus, packed, and a tiny GPT training config for it."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from lmlab.data.packing import pack_corpus
from lmlab.tokenizers import TokenizerConfig, train_tokenizer

ENGLISH = (
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
    "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles."
)
CHINESE = "中国人民在新的一年里继续努力工作，建设美好的家园。春天来了，花开了，鸟儿在歌唱。"


def tiny_documents(count: int = 60) -> list[str]:
    """Varied documents in both languages, so both splits get text and models have something to learn."""
    words = ENGLISH.split()
    docs = []
    for i in range(count):
        rotated = " ".join(words[i % len(words):] + words[: i % len(words)])
        docs.append(f"{rotated}\n{CHINESE[i % 7:]}{CHINESE[: i % 7]} {i}")
    return docs


@pytest.fixture(scope="session")
def packed_dir(tmp_path_factory) -> Path:
    """A packed corpus (char tokenizer) with tokenizer.json beside the shards, as `data prepare` writes."""
    root = tmp_path_factory.mktemp("packed")
    docs = tiny_documents()
    tokenizer = train_tokenizer(docs, TokenizerConfig(kind="char", vocab_size=200))
    out = root / "data"
    pack_corpus(docs, tokenizer, out, val_fraction=0.2, seed=0)
    tokenizer.save(out / "tokenizer.json")
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8"
    )
    return out


def tiny_train_overrides(data: Path, run_dir: Path, steps: int = 12) -> list[str]:
    return [
        f"data={data}",
        f"run_dir={run_dir}",
        "model={family: gpt, n_layer: 2, n_head: 2, n_embd: 32, block_size: 32, dropout: 0.1}",
        f"train.max_steps={steps}",
        "train.batch_size=4",
        "train.grad_accum=2",
        "train.eval_every=4",
        "train.eval_tokens=256",
        "train.log_every=1",
        "train.checkpoint_every=1",
        "train.device=cpu",
        "optimizer.lr=0.01",
        "schedule.warmup_steps=3",
    ]


def kill_after_logged_steps(command: list[str], run_dir: Path, steps: int, env: dict[str, str]) -> None:
    """Start `command`, a run writing run_dir/metrics.jsonl, and SIGKILL it once it has logged `steps` losses."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and sum('"loss"' in line for line in metrics.read_text().splitlines()) >= steps:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def tiny_decoder_base(root: Path, family: str = "gpt") -> Path:
    """A tiny decoder run (no chat tokens yet) on a byte-level BPE trained on the verifiable tasks' texts."""
    import torch

    from lmlab.datasets.chat import conversation_splits
    from lmlab.models import model_from_config, save_model

    texts = [m["content"] for r in conversation_splits("tasks")["train"][:2000] for m in r["messages"]]
    tokenizer = train_tokenizer(texts, TokenizerConfig(kind="bpe", vocab_size=400, min_frequency=2))
    torch.manual_seed(0)
    shape = {"gpt": {}, "llama": {"n_kv_head": 1, "intermediate_size": 64}}[family]
    config = {"vocab_size": tokenizer.vocab_size, "block_size": 96, "n_layer": 1, "n_head": 2, "n_embd": 32, **shape}
    save_model(model_from_config(family, config), root / family)
    tokenizer.save(root / family / "tokenizer.json")
    return root / family


def chat_tune_words(base: Path, task: str, data: str, run_dir: Path, steps: int, *extra: str) -> list[str]:
    """`lmlab tune` words for a few quick steps of a chat task, evaluated every 3 and checkpointed every step."""
    return [f"base={base}", f"task={task}", f"data={data}", f"run_dir={run_dir}", f"train.max_steps={steps}",
            "train.eval_every=3", "train.batch_size=8", "train.device=cpu", "train.log_every=1",
            "train.checkpoint_every=1", "block_size=96", "limit_train=64", "limit_eval=12", "optimizer.lr=3e-3",
            *extra]


def same_splits(folder: Path, records: list[dict]) -> Path:
    """`folder` with `records` as its train, validation and test splits alike: a set a tiny model can learn."""
    folder.mkdir()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory):
    """A tiny LLaMA taught 16 task conversations by SFT: it answers them, and it stops at the end of its turn."""
    from lmlab.cli import main
    from lmlab.datasets.chat import conversation_splits

    root = tmp_path_factory.mktemp("chat")
    base = tiny_decoder_base(root, "llama")
    records = conversation_splits("tasks-en")["train"][:16]
    data = same_splits(root / "same", records)
    words = chat_tune_words(base, "sft", str(data), root / "sft", 60, "train.batch_size=16", "optimizer.lr=1e-2",
                            "train.eval_every=30")
    assert main(["tune", *words]) == 0
    return root / "sft", records


TEXTS = [
    "the film was lovely and the actors were great",
    "an awful story , badly told",
    "good",
    "the plot was sad but the music was happy and the ending was really quite good in the end " * 3,  # cut
    "poor",
]
LABELS = ["neg", "neu", "pos"]
BLOCK = 16  # the tuned runs' block size: the long text above is cut to it


def jitter(model: Any, scale: float) -> None:
    """Weights far from their tiny initialisation, so predictions are peaked and a wrong one shows."""
    import torch

    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * scale)


def tiny_pipeline_runs(root: Path) -> Path:
    """A tiny BERT run, a tiny GPT run, and a tuned classifier on each, saved as lmlab writes them."""
    import torch

    from lmlab.models import load_model, save_model
    from lmlab.models.bert import BERT, BertConfig
    from lmlab.models.gpt import GPT, GPTConfig
    from lmlab.tune.methods import MethodConfig
    from lmlab.tune.model import TunedModel, tuned_config_from
    from lmlab.tune.tasks.base import HeadConfig

    corpus = TEXTS * 4 + ["the story was good", "the music was bad", "a lovely happy film", "an awful sad plot"]
    wordpiece = train_tokenizer(corpus, TokenizerConfig(kind="wordpiece", vocab_size=120, min_frequency=1))
    char = train_tokenizer(corpus, TokenizerConfig(kind="char", vocab_size=100))
    torch.manual_seed(0)
    bert = BERT(BertConfig(vocab_size=wordpiece.vocab_size, hidden_size=32, n_layer=2, n_head=4, intermediate_size=48,
                           block_size=64))
    jitter(bert, 0.3)
    gpt = GPT(GPTConfig(vocab_size=char.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32))
    jitter(gpt, 0.1)
    for name, model, tokenizer in (("bert", bert, wordpiece), ("gpt", gpt, char)):
        save_model(model, root / name)
        tokenizer.save(root / name / "tokenizer.json")
        torch.manual_seed(2)
        classifier = TunedModel(tuned_config_from(model, LABELS, HeadConfig(), MethodConfig(method="full"), BLOCK),
                                backbone=load_model(root / name))
        jitter(classifier.head, 1.0)
        save_model(classifier, root / f"{name}-tuned")
        tokenizer.save(root / f"{name}-tuned" / "tokenizer.json")
        (root / f"{name}-tuned" / "summary.json").write_text(json.dumps({"labels": LABELS}))
    return root
