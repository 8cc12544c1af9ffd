"""The word2vec family as the rest of lmlab sees it: word vectors learned from a corpus into a run.

`Word2Vec` is the class the registry names (``"word2vec"``): the `WordVectors` of a run, plus what
a run needs besides them. Its kind, ``word-vectors``, tells `lmlab train` to hand it a corpus
(`lmlab.train.vectors`) rather than packed shards and gradient steps, and tells every evaluation
that it gives no probabilities of text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import Field

from lmlab.models.base import ModelFamily
from lmlab.models.word2vec.config import Word2VecConfig
from lmlab.models.word2vec.corpus import text_sentences
from lmlab.models.word2vec.evaluation import (
    AnalogyResult,
    PairResult,
    bundled_languages,
    evaluate_analogies,
    evaluate_word_pairs,
    evaluation_set,
    set_label,
)
from lmlab.models.word2vec.training import EpochStats, train_word2vec
from lmlab.models.word2vec.vectors import WordVectors


class Word2VecRunConfig(Word2VecConfig):
    """A run's model section: the model's settings and how the corpus becomes sentences."""

    family: Literal["word2vec"] = "word2vec"
    unit: Literal["word", "character"] = Field(
        "word", description="word: letters and digits (each Chinese character a word); character: every character")
    keep_case: bool = Field(False, description="keep capitals; by default every line is lowercased")


class Word2Vec(WordVectors, ModelFamily):
    family = "word2vec"
    config_class = Word2VecRunConfig
    kind = "word-vectors"

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return f"word2vec {config.get('architecture', 'skipgram')}, {config.get('dim')} dimensions"

    @classmethod
    def learn(cls, documents: Iterable[str], config: Word2VecRunConfig,
              on_epoch: Callable[[EpochStats], None] | None = None) -> Word2Vec:
        """Vectors of the words of `documents`, trained as `config` says."""
        settings = Word2VecConfig(**config.model_dump(exclude={"family", "unit", "keep_case"}))
        trained = train_word2vec(text_sentences(documents, config.unit, not config.keep_case), settings,
                                 on_epoch=on_epoch)
        return cls(trained.words, trained.vectors, trained.counts, trained.config)

    def parameter_count(self) -> int:
        # Both matrices are learned, the input vectors kept and the output vectors dropped at the end.
        return 2 * len(self) * self.dim

    def analogies(self, set_or_path: str | os.PathLike[str]) -> AnalogyResult:
        """Accuracy on a bundled analogy set (``en``, ``zh``) or a questions-words.txt style file."""
        return evaluate_analogies(self, evaluation_set("analogies", set_or_path))

    def word_pairs(self, set_or_path: str | os.PathLike[str]) -> PairResult:
        """Spearman and Pearson against human similarity scores: a bundled set (``en``, ``zh``) or a TSV file."""
        return evaluate_word_pairs(self, evaluation_set("pairs", set_or_path), label=set_label("pairs", set_or_path))

    def bundled_sets(self) -> list[str]:
        """The bundled evaluation sets (``en``, ``zh``) of the languages among this vocabulary's words."""
        return bundled_languages(self)
