"""The settings of a word2vec model, with the defaults of word2vec.c and gensim."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lmlab.config import Config, FieldError


class Word2VecConfig(Config):
    """One word2vec model: architecture, sizes, sampling and the learning-rate schedule (gensim's defaults)."""

    architecture: Literal["skipgram", "cbow"] = "skipgram"
    dim: int = Field(100, ge=1, description="length of each word vector")
    window: int = Field(5, ge=1, description="the most words taken on each side; each centre word draws 1..window")
    negative: int = Field(5, ge=1, description="noise words per example")
    ns_exponent: float = Field(0.75, description="noise distribution: unigram counts to this power")
    sample: float = Field(1e-3, ge=0.0, lt=1.0, description="subsampling threshold s; 0 keeps every word")
    min_count: int = Field(5, ge=1, description="words seen fewer times are dropped from the vocabulary")
    epochs: int = Field(5, ge=1)
    alpha: float = Field(0.025, gt=0.0, description="initial learning rate")
    min_alpha: float = Field(1e-4, ge=0.0, description="learning rate reached at the end, linearly")
    seed: int = 1
    workers: int = Field(1, ge=1, description="training threads; with 1 a seed reproduces a run exactly")
    batch_words: int = Field(10_000, ge=1, description="words per chunk handed to a thread; longer sentences split")

    @model_validator(mode="after")
    def _rate_falls(self) -> Word2VecConfig:
        if self.min_alpha > self.alpha:
            raise FieldError("min_alpha", f"must not exceed alpha ({self.alpha}): the rate falls from alpha to it",
                             self.min_alpha)
        return self
