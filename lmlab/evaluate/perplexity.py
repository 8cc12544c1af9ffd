"""Perplexity and bits per byte of a model on held-out documents, and the unigram baseline to beat.

Perplexity is exp(mean negative log-likelihood per token); it depends on the tokenizer, so two
models with different vocabularies cannot be compared on it. Bits per byte divides the total
negative log-likelihood (in bits) by the UTF-8 bytes of the text instead, which is
tokenizer-independent: it is the figure to compare across tokenizers and model generations.

Scoring goes through `LanguageModel.loglikelihood_rolling`, so the same code scores an n-gram, an
RNN or a Transformer: each document is scored whole, every token once, with as much context as the
model can hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmlab.data.packing import TokenShards, split_documents
from lmlab.errors import LmlabError
from lmlab.files import write_json
from lmlab.metrics.likelihood import bits_per_byte, perplexity
from lmlab.models.language_model import LanguageModel
from lmlab.runs import open_run
from lmlab.tokenizers import Tokenizer


@dataclass
class SplitScore:
    split: str
    tokens: int  # tokens predicted
    bytes: int  # UTF-8 bytes of the split's text
    nll: float  # total negative log-likelihood, nats

    @property
    def loss(self) -> float:
        return self.nll / self.tokens

    @property
    def perplexity(self) -> float:
        return perplexity(self.nll, self.tokens)

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.nll, self.bytes)

    def to_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "loss": self.loss, "perplexity": self.perplexity, "bits_per_byte": self.bits_per_byte}


def score_texts(lm: LanguageModel, texts: Sequence[str], count_tokens: Callable[[str], int],
                split: str = "val") -> SplitScore:
    """Total negative log-likelihood of `texts` under `lm`, with their token and byte counts."""
    loglikelihoods = lm.loglikelihood_rolling(texts)
    return SplitScore(
        split=split,
        tokens=sum(count_tokens(text) for text in texts),
        bytes=sum(len(text.encode("utf-8")) for text in texts),
        nll=-math.fsum(loglikelihoods),
    )


def unigram_baseline(shards: TokenShards, split: str = "val", chunk: int = 1 << 22) -> SplitScore:
    """A unigram model (add-one smoothed token frequencies of the train split) scored on `split`.

    The simplest model that knows the tokens' frequencies and nothing of their order: a trained
    model that does not beat it has learned nothing about context.
    """
    vocab = shards.meta.vocab_size
    counts = np.ones(vocab, dtype=np.float64)  # add-one: no token gets probability zero
    train = shards.tokens("train")
    for start in range(0, len(train), chunk):
        counts += np.bincount(np.asarray(train[start : start + chunk]), minlength=vocab)[:vocab]
    logprob = np.log(counts) - np.log(counts.sum())
    # The tokens a rolling scorer predicts: every token of every document, not the end-of-text marks.
    scored = shards.tokens(split)
    nll, count = 0.0, 0
    for start in range(0, len(scored), chunk):
        ids = np.asarray(scored[start : start + chunk])
        ids = ids[ids != shards.meta.eos_id]
        nll -= float(logprob[ids].sum())
        count += len(ids)
    return SplitScore(split, count, shards.meta.splits[split].bytes, nll)


def evaluate_run(run_dir: str | Path, split: str = "val") -> dict[str, Any]:
    """Perplexity and bits per byte of the run's model on its data split, beside the unigram baseline.

    The result is also written to ``eval.json`` in the run directory, where `lmlab report` finds it.
    """
    run = open_run(run_dir)
    run.check_scores_text()
    if "data" not in run.config:
        raise LmlabError(f"{run.path}: no config.yaml naming its data, so no validation split of its own; score it "
                         f"on prepared data with lmlab eval compare {run.path} --data DIR")
    lm = run.language_model()
    shards = TokenShards(run.input_path("data"))
    texts = split_documents(shards, Tokenizer.load(run.path / "tokenizer.json"), split)
    score = score_texts(lm, texts, lm.predicted_units, split)
    baseline = unigram_baseline(shards, split)
    result = {
        "split": split,
        "documents": len(texts),
        "tokens": score.tokens,
        "bytes": score.bytes,
        "perplexity": score.perplexity,
        "bits_per_byte": score.bits_per_byte,
        "unigram_perplexity": baseline.perplexity,
        "unigram_bits_per_byte": baseline.bits_per_byte,
    }
    write_json(run.path / "eval.json", result)
    return result
