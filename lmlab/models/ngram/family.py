"""The n-gram family as the rest of lmlab sees it: counted from packed data into a run directory.

This is the class the registry names (``"ngram"``). It joins the tables (`NgramModel`) to what a
run needs besides them: the unit counted (the data's tokens, characters or words), counting from
packed shards, the run directory's files, the figures for tables, and the `LanguageModel` it
scores and generates through. Each training document is one n-gram "sentence" (``<s> ... </s>``):
the end of a document is predicted as ``</s>``, the way a neural model trained on packed data
predicts end-of-text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from lmlab.config import build_config
from lmlab.data.packing import TokenShards, split_documents
from lmlab.errors import LmlabError
from lmlab.files import read_json
from lmlab.models.base import ModelFamily
from lmlab.models.language_model import LanguageModel
from lmlab.models.ngram.counts import Vocabulary, count_words
from lmlab.models.ngram.estimators import NgramConfig, estimate
from lmlab.models.ngram.language_model import NgramLanguageModel, Splitter
from lmlab.models.ngram.model import NgramModel
from lmlab.tokenizers import Tokenizer

HELD_OUT_EVERY = 20  # interpolation fits its weights on every 20th training document, kept out of the counts
ESTIMATOR_NAMES = {
    "modified-kneser-ney": "mod-KN", "kneser-ney": "KN", "nltk-kneser-ney": "NLTK KN",
    "witten-bell": "Witten-Bell", "absolute-discounting": "absolute disc.", "stupid-backoff": "stupid back-off",
}


class NgramRunConfig(NgramConfig):
    family: Literal["ngram"] = "ngram"
    unit: Literal["token", "character", "word"] = Field(
        "token", description="what the model counts: the data's tokenizer tokens, characters, or words"
    )


def splitter_for(unit: str, tokenizer: Tokenizer) -> Splitter:
    return Splitter("token", tokenizer) if unit == "token" else Splitter(unit)  # type: ignore[arg-type]


def _token_ids(shards: TokenShards, eos_id: int, vocab_of_token: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The train split's documents as n-gram word ids back to back, and each document's length, read
    straight from the packed tokens (tokens after the last end-of-text belong to no whole document)."""
    packed = np.asarray(shards.tokens("train"))
    ends = np.flatnonzero(packed == eos_id)
    if not len(ends):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    inside = packed[: ends[-1]]
    return vocab_of_token[inside[inside != eos_id]], np.diff(ends, prepend=-1) - 1


class CountedNgram(ModelFamily):
    """An n-gram model of a run: its tables, and the unit and settings it was counted with."""

    family = "ngram"
    config_class = NgramRunConfig
    kind = "count-based"
    unbounded_context = True  # it reads the last n-1 units, however long the text

    def __init__(self, tables: NgramModel, config: NgramRunConfig, units_counted: int = 0):
        self.tables, self.config, self.units_counted = tables, config, units_counted

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        estimator = ESTIMATOR_NAMES.get(config.get("estimator"), config.get("estimator"))
        unit = config.get("unit", "token")
        return f"{config.get('order')}-gram {estimator}" + ("" if unit == "token" else f", {unit}s")

    @classmethod
    def count(cls, shards: TokenShards, tokenizer: Tokenizer, config: NgramRunConfig) -> CountedNgram:
        """Count and smooth the model of `config` on the train split of the packed `shards`."""
        if shards.meta.eos_id is None:
            raise LmlabError(f"{shards.directory}: packed without an end-of-text token, so documents cannot be "
                             "told apart")
        splitter = splitter_for(config.unit, tokenizer)
        ngram_config = NgramConfig(**config.model_dump(exclude={"family", "unit"}))
        vocab = Vocabulary(splitter.token_names)  # a tokenizer's whole vocabulary, or empty for words/characters
        if config.unit == "token":
            vocab_of_token = np.array([vocab.ids[name] for name in splitter.token_names], dtype=np.int64)
            words, lengths = _token_ids(shards, shards.meta.eos_id, vocab_of_token)
        elif config.unit == "word":
            words, lengths = vocab.add_texts(split_documents(shards, tokenizer, "train"))  # split as str.split()
        else:
            documents = [[vocab.add(unit) for unit in splitter.split(text)]
                         for text in split_documents(shards, tokenizer, "train")]
            lengths = np.array([len(doc) for doc in documents], dtype=np.int64)
            words = np.array([unit for doc in documents for unit in doc], dtype=np.int64)
        if not len(lengths):
            raise LmlabError(f"{shards.directory}: the train split holds no documents")
        held_out: list[np.ndarray] = []
        if config.estimator == "interpolation" and config.lambdas is None and len(lengths) >= HELD_OUT_EVERY:
            documents = np.split(words, np.cumsum(lengths)[:-1])
            held_out = documents[::HELD_OUT_EVERY]
            kept = [doc for i, doc in enumerate(documents) if i % HELD_OUT_EVERY]
            lengths = np.array([len(doc) for doc in kept], dtype=np.int64)
            words = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
        counts = count_words(words, lengths, ngram_config.order, len(vocab), ngram_config.padding)
        tables = estimate(counts, vocab, ngram_config, held_out)
        return cls(tables, config, units_counted=len(words) + len(lengths))  # every unit and each document's </s>

    def save(self, directory: str | os.PathLike[str]) -> None:
        self.tables.save(directory, self.config.model_dump())

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CountedNgram:
        folder = Path(directory)
        spec = read_json(folder / "model.json", "file; is this an n-gram model directory?")
        config = build_config(NgramRunConfig, spec.get("config", {}), source=str(folder / "model.json"))
        return cls(NgramModel.load(folder), config)

    def parameter_count(self) -> int:
        """Stored numbers: a probability per n-gram and a back-off weight per n-gram below the top order."""
        return int(sum(len(p) for p in self.tables.prob) + sum(len(b) for b in self.tables.backoff[:-1]))

    @classmethod
    def check_scores_text(cls) -> None:
        """Counted probabilities of text: every n-gram model has a `LanguageModel`."""

    def language_model(self, tokenizer: Tokenizer, max_length: int | None = None,
                       predict_end: bool = False) -> LanguageModel:
        return NgramLanguageModel(self.tables, splitter_for(self.config.unit, tokenizer))
