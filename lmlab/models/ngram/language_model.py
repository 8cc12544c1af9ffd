"""Text in, text out: an n-gram model behind lmlab's `LanguageModel` interface.

A `Splitter` cuts text into the units the model counts (words, characters or a tokenizer's tokens);
`NgramLanguageModel` scores and generates text with an `NgramModel` over those units.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import torch

from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, pick_next_tokens
from lmlab.models.ngram.counts import BOS, BOS_ID, EOS, EOS_ID, UNK, UNK_ID, Vocabulary
from lmlab.models.ngram.estimators import NgramConfig, count_and_estimate
from lmlab.models.ngram.kenlm_scoring import Log10Scores
from lmlab.models.ngram.model import NgramModel
from lmlab.tokenizers import Tokenizer


class Splitter:
    """Cuts text into the units an n-gram model counts: words, characters, or a tokenizer's tokens.

    ARPA separates words by whitespace, so whitespace inside a unit is written as a visible mark:
    a space as ``▁`` (SentencePiece's convention), other whitespace as ``<U+000A>`` and the like.
    """

    def __init__(self, unit: Literal["word", "character", "token"], tokenizer: Tokenizer | None = None) -> None:
        if (unit == "token") != (tokenizer is not None):
            raise LmlabError(f"ngram: unit {unit!r} {'needs' if unit == 'token' else 'takes no'} tokenizer")
        self.unit, self.tokenizer = unit, tokenizer
        self.token_ids: dict[str, int] = {}
        if tokenizer is not None:
            for token_id in range(tokenizer.vocab_size):
                name = _visible(tokenizer.id_to_token(token_id) or f"<id:{token_id}>")
                if name in (UNK, BOS, EOS):
                    name = f"<tokenizer:{name}>"  # keep the n-gram model's own boundary marks apart
                self.token_ids[name] = token_id
        self.token_names = list(self.token_ids)

    def split(self, text: str) -> list[str]:
        if self.unit == "word":
            return text.split()
        if self.unit == "character":
            return [_visible(char) for char in text]
        return [self.token_names[i] for i in self.tokenizer.encode(text)]  # type: ignore[union-attr]

    def join(self, units: Sequence[str]) -> str:
        if self.unit == "word":
            return " ".join(units)
        if self.unit == "character":
            return "".join(_VISIBLE_SPACE.sub(lambda m: _unmark(m.group()), unit) for unit in units)
        ids = [self.token_ids[unit] for unit in units if unit in self.token_ids]
        return self.tokenizer.decode(ids)  # type: ignore[union-attr]


_VISIBLE_SPACE = re.compile(r"▁|<U\+[0-9A-F]{4,6}>")


def _visible(text: str) -> str:
    return "".join("▁" if c == " " else f"<U+{ord(c):04X}>" if c.isspace() else c for c in text)


def _unmark(mark: str) -> str:
    return " " if mark == "▁" else chr(int(mark[3:-1], 16))


class NgramLanguageModel:
    """An `NgramModel` behind lmlab's `LanguageModel` interface (natural-log scores, like every model).

    Each text is one sentence: ``<s> units </s>``, and ``</s>`` is predicted, as KenLM scores a line.
    """

    def __init__(self, model: NgramModel, splitter: Splitter) -> None:
        self.model, self.splitter = model, splitter
        self.pads = model.pads

    @classmethod
    def train(
        cls, texts: Iterable[str], config: NgramConfig, splitter: Splitter, held_out: Iterable[str] = ()
    ) -> NgramLanguageModel:
        """Count and smooth a model of `texts`; with a tokenizer, its whole vocabulary is the model's.

        `held_out` texts, if any, fit the weights of linear interpolation. Words (``unit="word"``) are
        split and numbered in compiled code (`Vocabulary.add_texts`), not as a Python string each.
        """
        vocab = Vocabulary(splitter.token_names)
        if splitter.unit == "word":
            words, lengths = vocab.add_texts(list(texts))
        else:
            words, lengths = vocab.add_all([splitter.split(text) for text in texts])
        model = count_and_estimate(words, lengths, vocab, config, [splitter.split(text) for text in held_out])
        return cls(model, splitter)

    def _encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The unit ids of every text back to back and each text's count (words split in compiled code)."""
        if self.splitter.unit == "word":
            return self.model.vocab.encode_texts(texts)
        return self.model.vocab.encode_all([self.splitter.split(text) for text in texts])

    def _ids(self, units: Sequence[str]) -> list[int]:
        return self.model.vocab.encode(units)

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        results = []
        for context, continuation in requests:
            # Split the whole text and cut at the context, as lm-evaluation-harness does with tokens.
            context_units, whole = self.splitter.split(context), self.splitter.split(context + continuation)
            if whole[: len(context_units)] == context_units:
                continuation_units = whole[len(context_units):]
            else:
                continuation_units = self.splitter.split(continuation)
            if not continuation_units:
                raise LmlabError(f"loglikelihood: the continuation {continuation!r} holds no units to score")
            prefix = [BOS_ID] * self.pads + self._ids(context_units)
            targets = self._ids(continuation_units)
            with np.errstate(divide="ignore"):
                total = float(self.model.score_ids([prefix + targets], first=len(prefix))[0].sum())
            sequence = prefix + targets
            greedy = all(
                int(np.argmax(self.model.next_distribution(sequence[:i]))) == sequence[i]
                for i in range(len(prefix), len(sequence))
            )
            results.append((total, greedy))
        return results

    def log10_scores(self, texts: Sequence[str]) -> Log10Scores:
        """Each text as one sentence, scored as KenLM scores a line (see `NgramModel.log10_scores`)."""
        return self.model._log10_scores(*self._encode(texts))

    def unit_logprobs(self, texts: Sequence[str]) -> np.ndarray:
        """ln p of every unit of each text and of its closing pads, back to back, each text one sentence
        padded as the model was trained: `NgramModel.score_sentences` of the split texts. (Under NLTK's
        padding a text closes with n-1 ``</s>``, all scored, where `loglikelihood_rolling` scores one.)"""
        return self.model._score_words(*self._encode(texts))

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        sequences = [[BOS_ID] * self.pads + self._ids(self.splitter.split(text)) + [EOS_ID] for text in texts]
        with np.errstate(divide="ignore"):
            return [float(scores.sum()) for scores in self.model.score_ids(sequences, first=self.pads)]

    @property
    def unit(self) -> str:
        return self.splitter.unit

    def predicted_units(self, text: str) -> int:
        return len(self.splitter.split(text)) + 1  # its units and the </s> after them

    def context_note(self) -> str:
        return f"each {self.unit} seeing the {self.model.order - 1} before it"

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        """Sample each continuation word by word from p(w | last n-1 words), until ``</s>`` or the limit.

        The words are picked as a neural model's tokens are (`lmlab.generate.pick_next_tokens`), from the
        log-probabilities as logits, so temperature, top-k, top-p and the repetition penalty mean the same.
        """
        generator = None if params.seed is None else torch.Generator().manual_seed(params.seed)
        outputs = []
        for prompt in prompts:
            prompt_units = self.splitter.split(prompt)
            sequence = [BOS_ID] * self.pads + self._ids(prompt_units)
            seen = None  # (1, V): the words already in the sequence, which the repetition penalty makes rarer
            if params.repetition_penalty != 1.0:
                seen = torch.zeros(1, len(self.model.vocab), dtype=torch.bool)
                seen[0, sequence] = True
            new_units: list[str] = []
            for _ in range(params.max_new_tokens):
                next_id = int(pick_next_tokens(self._next_logits(sequence), params, seen, generator)[0])
                if next_id == EOS_ID:
                    break
                sequence.append(next_id)
                if seen is not None:
                    seen[0, next_id] = True
                new_units.append(self.model.vocab.words[next_id])
            prompt_text = self.splitter.join(prompt_units)
            text = self.splitter.join(prompt_units + new_units)[len(prompt_text):]
            if self.splitter.unit == "word" and prompt_units and new_units:
                text = text if text.startswith(" ") else " " + text
            for stop in params.stop:
                text = text.split(stop, 1)[0]
            outputs.append(text)
        return outputs

    def _next_logits(self, sequence: Sequence[int]) -> torch.Tensor:
        """ln p(w | sequence) of every word w as float32 logits, shape (1, V)."""
        with np.errstate(divide="ignore"):
            logits = np.log(self.model.next_distribution(sequence)).astype(np.float32)
        logits[[UNK_ID, BOS_ID]] = -np.inf  # <unk> says nothing and <s> is never predicted
        return torch.from_numpy(logits)[None]
