"""Perplexity and bits per byte of a model on held-out documents, and the unigram baseline to beat.

Perplexity is exp(mean negative log-likelihood per token); it depends on the tokenizer, so two
models with different vocabularies cannot be compared on it. Bits per byte divides the total
negative log-likelihood (in bits) by the UTF-8 bytes of the text instead, which is
tokenizer-independent: it is the figure to compare across tokenizers and model generations.

Scoring goes through `LanguageModel.loglikelihood_rolling`, so the same code scores an n-gram, an
RNN or a Transformer: each document is scored whole, every token once, with as much context as the
model can hold, and then the document's end (end-of-text, an n-gram's ``</s>``), so `lmlab eval`
and `eval compare` count the same predictions. Training's validation figure counts other ones: it
reads the packed split as one stream in windows that run across documents (see the train log's note).
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
from lmlab.metrics import likelihood
from lmlab.models.language_model import LanguageModel
from lmlab.runs import Run, open_run
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
        return likelihood.perplexity(self.nll, self.tokens)

    @property
    def bits_per_byte(self) -> float:
        return likelihood.bits_per_byte(self.nll, self.bytes)

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
    # What `evaluate_run` predicts: every token of every document and each document's end-of-text.
    scored = shards.tokens(split)
    nll = 0.0
    for start in range(0, len(scored), chunk):
        nll -= float(logprob[np.asarray(scored[start : start + chunk])].sum())
    return SplitScore(split, len(scored), shards.meta.splits[split].bytes, nll)


def describe_count(lm: LanguageModel, units: int, documents: int, split: str) -> str:
    """What a held-out perplexity counts, in one clause: its unit, how many, which split, what context.

    `lmlab eval`, `eval compare` and the quickstart print it beside the figure, so two figures that
    differ show why (another unit, split or context) and two that say the same words are equal.
    """
    ends, docs = ("document end", "document") if documents == 1 else ("document ends", "documents")
    return (f"per {lm.unit}: {units:,} {lm.unit}s incl. {documents:,} {ends}, {documents:,} {split} {docs} "
            f"each scored from its start, {lm.context_note()}")


def held_out_score(run: Run, texts: Sequence[str], split: str = "val",
                   quantization: str = "none") -> tuple[SplitScore, str]:
    """The run's model on `texts`, predicting each text and then its end, and what the figure counts."""
    lm = run.language_model(predict_end=True, quantization=quantization)
    score = score_texts(lm, texts, lm.predicted_units, split)
    return score, describe_count(lm, score.tokens, len(texts), split)


def perplexity(run: str | Path | Run, texts: Sequence[str] | None = None, split: str = "val",
               quantization: str = "none") -> float:
    """Perplexity of a run (a directory, a name, or an open `Run`) on `texts`, default its data's `split`.

    Per unit of the model (a token, or an n-gram's word or character), each text's end included, as
    `lmlab eval` prints it; ``quantization="int8"`` scores the int8 model that ``--quantize int8`` serves.
    """
    run = run if isinstance(run, Run) else open_run(run)
    texts = split_texts(run, split) if texts is None else texts
    return held_out_score(run, texts, split, quantization)[0].perplexity


def split_texts(run: Run, split: str) -> list[str]:
    """The documents of the run's own data split (``split`` of its config's ``data``)."""
    if "data" not in run.config:
        raise LmlabError(f"{run.path}: no config.yaml naming its data, so no validation split of its own; score it "
                         f"on prepared data with lmlab eval compare {run.path} --data DIR")
    return split_documents(TokenShards(run.input_path("data")), Tokenizer.load(run.path / "tokenizer.json"), split)


def evaluate_run(run_dir: str | Path, split: str = "val") -> dict[str, Any]:
    """Perplexity and bits per byte of the run's model on its data split, beside the unigram baseline.

    Every document is predicted and then its end, as `eval compare` scores it, so the two print the
    same figure for the same run and split. The result is also written to ``eval.json`` in the run
    directory, where `lmlab report` finds it.
    """
    run = open_run(run_dir)
    run.check_scores_text()
    texts = split_texts(run, split)
    score, counts = held_out_score(run, texts, split)
    baseline = unigram_baseline(TokenShards(run.input_path("data")), split)
    result = {
        "split": split,
        "documents": len(texts),
        "units": score.tokens,
        "counts": counts,
        "bytes": score.bytes,
        "perplexity": score.perplexity,
        "bits_per_byte": score.bits_per_byte,
        "unigram_perplexity": baseline.perplexity,
        "unigram_bits_per_byte": baseline.bits_per_byte,
    }
    write_json(run.path / "eval.json", result)
    return result
