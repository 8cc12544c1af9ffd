"""A model family defined in this file alone goes through every stage by the registries.

`ToyDecoder` is a neural bigram model (each position sees its own token only), written against
`lmlab.models.base.ModelFamily`. Registered under the name "toy" and nothing else changed, it is
trained by `lmlab train`, evaluated (perplexity, eval compare, a harness task), generated from
(the language model and the text-generation pipeline) and LoRA-tuned by `lmlab tune`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.evaluate import evaluate_run
from lmlab.evaluate.compare import compare_runs
from lmlab.evaluate.harness import evaluate_task, load_task
from lmlab.generate import GenerationParams
from lmlab.models import load_model
from lmlab.models.base import LMOutput, ModelFamily
from lmlab.models.registry import FAMILIES, register_family
from lmlab.pipelines import pipeline
from lmlab.runs import open_run
from lmlab.train import read_train_config, train_run
from lmlab.tune.runner import read_tune_config, tune


@dataclass
class ToyConfig:
    vocab_size: int = 64
    block_size: int = 32
    n_embd: int = 16


class NoMemory:
    """The cache of a model that remembers nothing: generation and batched scoring still hand one around."""

    def select_rows(self, rows: Tensor) -> NoMemory:
        return self


class ToyDecoder(ModelFamily, nn.Module):
    family = "toy"
    config_class = ToyConfig
    kind = "decoder"
    default_pooling = "mean"  # a bigram's last position has only seen the end-of-text mark
    lora_targets = ("mix",)

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.mix = nn.Linear(config.n_embd, config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size)

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return f"toy bigram x{config.get('n_embd')}"

    @property
    def hidden_size(self) -> int:
        return self.config.n_embd

    def input_embeddings(self) -> nn.Embedding:
        return self.embed

    def new_cache(self, batch_size: int, max_len: int) -> NoMemory:
        return NoMemory()

    def features(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                 inputs_embeds: Tensor | None = None) -> Tensor:
        embedded = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        return torch.tanh(self.mix(embedded))  # (B, T, C)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                cache: NoMemory | None = None, last_token_only: bool = False) -> LMOutput:
        hidden = self.features(input_ids)
        logits = self.head(hidden[:, -1:] if last_token_only else hidden)
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return LMOutput(logits=logits, loss=loss, cache=cache)


@pytest.fixture
def toy():
    register_family("toy", ToyDecoder)  # the one registry line
    yield
    del FAMILIES["toy"]  # for this test only


def test_a_family_defined_here_trains_evaluates_generates_and_lora_tunes(toy, packed_dir, tmp_path):
    run_dir = tmp_path / "toy"
    result = train_run(read_train_config(None, [
        f"data={packed_dir}", f"run_dir={run_dir}", "model.family=toy", "model.n_embd=24", "model.block_size=16",
        "optimizer.lr=0.02", "train.max_steps=40", "train.batch_size=16", "train.eval_every=20",
        "train.checkpoint_every=40", "train.device=cpu"]))
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(losses) == 2 and losses[1] < losses[0] < math.log(200) + 1  # it learned from its first loss
    assert isinstance(load_model(run_dir), ToyDecoder) and open_run(run_dir).describe() == "toy bigram x24"

    figures = evaluate_run(run_dir)
    assert figures["bits_per_byte"] < figures["unigram_bits_per_byte"]  # a bigram knows more than unigrams
    (row,) = compare_runs([run_dir])
    assert row.model == "toy bigram x24" and row.parameters == sum(p.numel() for p in load_model(run_dir).parameters())
    assert row.bits_per_byte == pytest.approx(figures["bits_per_byte"], rel=0.2)  # + each document's end
    task = evaluate_task(open_run(run_dir).language_model(), load_task("arc_easy_mini"), limit=4)
    assert 0.0 <= task.metrics["acc"] <= 1.0

    greedy = GenerationParams(max_new_tokens=6, temperature=0)
    (text,) = open_run(run_dir).language_model().generate(["To be"], greedy)
    assert text and pipeline("text-generation", model=run_dir)("To be", max_new_tokens=6, temperature=0) == [
        {"generated_text": "To be" + text}]
    assert result.steps == 40

    rows = [{"text": f"{'to be or not' if i % 2 else '中国人民'} {i}", "label": "en" if i % 2 else "zh"}
            for i in range(80)]
    data = tmp_path / "labels.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    summary = tune(read_tune_config(None, [
        f"base={run_dir}", f"data={data}", f"run_dir={tmp_path / 'tuned'}", "method.method=lora",
        "block_size=16", "optimizer.lr=0.02", "train.max_steps=30", "train.eval_every=10", "train.batch_size=8",
        "train.device=cpu"]))
    tuned = load_model(tmp_path / "tuned")
    trained = {name for name, p in tuned.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith("head.") or ".lora_" in name for name in trained)
    assert any("mix.lora_A" in name for name in trained)  # LoRA went where the family said
    assert summary["test_accuracy"] > summary["majority_baseline"]["accuracy"]
