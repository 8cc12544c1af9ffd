"""The n-gram model itself: back-off tables over word ids, the queries on them, and its directory format.

For a word w never seen after c, u(w | c) is 0 and p(w | c) = gamma(c) * p(w | c'). So the model can
be stored as it is in an ARPA file: a probability for every seen n-gram and a back-off weight
gamma for every seen context; a query finds the longest stored n-gram ending in w and multiplies
in the back-off weights of the longer contexts it skipped. Stupid back-off (a score, not a
distribution) is that query with raw relative frequencies and a fixed weight alpha.

The tables are the sorted key arrays of `counts`, walked as a trie by the compiled queries, or, for
KenLM's query, probed through hash tables, as KenLM does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, write_json
from lmlab.models.ngram import arpa, kernels
from lmlab.models.ngram.counts import (
    BOS_ID,
    NgramCounts,
    OrderIndex,
    Vocabulary,
    concatenate,
    lookup,
    pad_words,
    predictable_size,
)
from lmlab.models.ngram.kenlm_scoring import Log10Scores, log10f


class NgramModel:
    """A back-off n-gram model over word ids: what an ARPA file holds, queried as KenLM queries it.

    ``prob[k-1][i]`` is p(word | context) of stored k-gram i; ``backoff[k-1][i]`` is the weight applied
    when a (k+1)-gram starting with k-gram i is absent (1 where it is no context). A context that is
    not stored at all weighs `missing_backoff`: 1 in every ARPA model, alpha under stupid back-off.
    `log10` holds the same numbers as an ARPA file does, float32 log10 (see `log10_tables`).
    """

    def __init__(
        self,
        vocab: Vocabulary,
        padding: str,
        keys: list[np.ndarray],
        prob: list[np.ndarray],
        backoff: list[np.ndarray],
        missing_backoff: float = 1.0,
        log10: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
    ) -> None:
        self.vocab, self.padding = vocab, padding
        self.keys, self.prob, self.backoff = keys, prob, backoff
        self.missing_backoff = missing_backoff
        self._log10 = log10
        self._index: OrderIndex | None = None
        self._flat: dict[str, tuple[np.ndarray, ...]] = {}

    @property
    def order(self) -> int:
        return len(self.keys)

    @property
    def pads(self) -> int:
        """How many ``<s>`` open (and ``</s>`` close) a sentence: 1 for KenLM, n-1 for NLTK."""
        return 1 if self.padding == "kenlm" else max(self.order - 1, 1)

    @classmethod
    def from_estimates(
        cls, vocab: Vocabulary, counts: NgramCounts, estimates: list[tuple[np.ndarray, np.ndarray]], padding: str
    ) -> NgramModel:
        """Run the recursion p(w|c) = u(w|c) + gamma(c) p(w|c') bottom up, storing p and gamma (the back-off)."""
        u, gamma = estimates[0]
        predictable = predictable_size(len(vocab), padding)
        uniform = np.asarray(1.0 / predictable).astype(u.dtype)  # divided in float64 and rounded once, as lmplz
        prob = [(u + gamma[0] * uniform).astype(u.dtype)]
        if padding == "kenlm":
            prob[0][BOS_ID] = 1.0  # KenLM's convention: <s> is given, log10 p = 0
        backoff = []
        for k in range(2, counts.order + 1):
            u, gamma = estimates[k - 1]
            backoff.append(gamma)
            prob.append((u + gamma[counts.prefix(k)] * prob[-1][counts.suffix[k - 1]]).astype(u.dtype))
        backoff.append(np.ones(len(counts.keys[-1]), dtype=prob[-1].dtype))
        return cls(vocab, padding, counts.keys, [p.astype(np.float64) for p in prob],
                   [b.astype(np.float64) for b in backoff])

    # queries --------------------------------------------------------------------------------------

    def score_ids(self, sentences: Sequence[Sequence[int]], first: int | None = None) -> list[np.ndarray]:
        """Natural-log probability of every predicted position of each padded id sequence.

        A position is predicted if it follows the leading pads (`first`: 1 for KenLM, n-1 for NLTK);
        its context is everything before it in the sequence, up to n-1 words.
        """
        skip = self.pads if first is None else first
        stream, starts = concatenate(sentences)
        logp = self._score_stream(stream, starts)
        bounds = np.cumsum([0, *(len(s) for s in sentences)])
        return [logp[a + skip:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def score_sentences(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """ln p of every word of each sentence and of its closing pads, all back to back (log 0 is -inf).

        Each sentence is padded as the model was trained; a word it never saw is ``<unk>``. The same
        scores as `score_ids` of the padded sentences, without a Python list per sentence.
        """
        return self._score_words(*self.vocab.encode_all(sentences))

    def _score_words(self, words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """`score_sentences` of the sentences whose word ids are `words`, back to back, `lengths` long."""
        stream, starts = pad_words(words, lengths, self.order, self.padding)
        return self._score_stream(stream, starts)[np.arange(len(stream)) - starts >= self.pads]

    def _score_stream(self, stream: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """ln p of the word at every position of `stream` (sentences back to back, each from `starts`):
        the longest stored n-gram ending there, times the back-off of each longer context it dropped."""
        return kernels.backoff_logprobs(stream, starts, self.order, len(self.vocab), *self._flat_tables("trie"),
                                        *self._flat_tables("prob"), self.missing_backoff)

    def logprob(self, context: Sequence[str], word: str) -> float:
        """ln p(word | context); context words beyond the last n-1 are ignored, unknown ones are <unk>."""
        ids = self.vocab.encode([*context[max(0, len(context) - self.order + 1):], word])
        with np.errstate(divide="ignore"):
            return float(self.score_ids([ids], first=len(ids) - 1)[0][0])

    def next_distribution(self, context_ids: Sequence[int]) -> np.ndarray:
        """p(w | context) for every word id w at once (``<s>`` gets 0 under KenLM padding)."""
        context = list(context_ids)[max(0, len(context_ids) - self.order + 1):]
        dist = self.prob[0].copy()
        if self.padding == "kenlm":
            dist[BOS_ID] = 0.0
        size = len(self.vocab)
        for k in range(2, len(context) + 2):
            index = self._context_index(context[len(context) - (k - 1):])  # the last k-1 context words
            if index < 0:
                dist *= self.missing_backoff ** (len(context) + 2 - k)  # this and every longer context
                break
            dist *= self.backoff[k - 2][index]
            lo, hi = np.searchsorted(self.keys[k - 1], [index * size, (index + 1) * size])
            dist[self.keys[k - 1][lo:hi] % size] = self.prob[k - 1][lo:hi]
        return dist

    def _context_index(self, words: Sequence[int]) -> int:
        index = int(words[0])
        for k, word in enumerate(words[1:], start=2):
            index = int(lookup(self.keys[k - 1], np.array([index * len(self.vocab) + word]))[0])
            if index < 0:
                return -1
        return index

    # KenLM's arithmetic: float32 log10 ----------------------------------------------------------

    def log10_tables(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """log10 p and log10 back-off of every stored n-gram, float32: what an ARPA file holds.

        Computed once, as lmplz writes them: ``min(0, log10f(p))`` and ``log10f(backoff)``; a model read
        from an ARPA file keeps the file's own numbers.
        """
        if self._log10 is None:
            prob = [np.minimum(log10f(p), np.float32(0.0)) for p in self.prob]
            self._log10 = prob, [log10f(b) for b in self.backoff]
        return self._log10

    def log10_scores(self, sentences: Sequence[Sequence[int]]) -> Log10Scores:
        """Score word-id sentences (no pads) as KenLM does: each is ``<s> w1 .. wm </s>``, </s> predicted.

        A word scores the log10 p of the longest stored n-gram ending in it, plus the log10 back-off of
        each longer context it skipped, added shortest first; a sentence's total adds its scores in
        order. Every addition is rounded to float32, as in KenLM, so the totals equal
        ``kenlm.Model.score`` bit for bit. KenLM's own loop, compiled (`kernels.kenlm_scores`).
        """
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
        return self._log10_scores(np.fromiter(chain.from_iterable(sentences), np.int64, int(lengths.sum())), lengths)

    def _log10_scores(self, words: np.ndarray, lengths: np.ndarray) -> Log10Scores:
        """`log10_scores` of the sentences whose word ids are `words`, back to back, `lengths` long."""
        if self.padding != "kenlm" or self.missing_backoff != 1.0:
            raise LmlabError("log10_scores: KenLM's scoring needs a model with KenLM padding and ARPA back-offs")
        stream, starts = pad_words(words, lengths, self.order, self.padding)
        index = self._order_index()
        log_backoff, backoff_offset = self._flat_tables("log10 backoff")
        scores, oov, totals = kernels.kenlm_scores(stream, starts, self.order, len(self.vocab), index.slots,
                                                   index.first_row, index.bits, self.log10_tables()[0][0],
                                                   log_backoff, backoff_offset)
        return Log10Scores(scores, oov, totals)

    def _order_index(self) -> OrderIndex:
        """Hash tables over the keys of orders 2 and up for KenLM's query, built on first use."""
        if self._index is None:
            self._index = OrderIndex.build(self.keys, self.log10_tables()[0])
        return self._index

    def _flat_tables(self, kind: Literal["trie", "prob", "log10 backoff"]) -> tuple[np.ndarray, ...]:
        """Per-order arrays for the compiled queries, each joined order after order into one array, with
        where order k begins (index k); made on first use. "trie": the keys, and for each (k-1)-gram where
        its children (the k-grams it begins) start among the k-grams' keys; "prob": probabilities and
        back-off weights; "log10 backoff": the back-offs as float32 log10 (`log10_tables`)."""
        if kind not in self._flat:
            if kind == "trie":
                size = len(self.vocab)
                children = [np.zeros(0, dtype=np.int64)] + [
                    np.concatenate([[0], np.cumsum(np.bincount(keys // size, minlength=len(contexts)))])
                    for contexts, keys in zip(self.keys[:-1], self.keys[1:], strict=True)]
                tables, dtype = (self.keys, children), np.int64
            elif kind == "prob":
                tables, dtype = (self.prob, self.backoff), np.float64
            else:
                tables, dtype = self.log10_tables()[1:], np.float32
            flat = []
            for per_order in tables:
                flat += [np.concatenate(per_order).astype(dtype), np.cumsum([0, 0, *map(len, per_order)])[:-1]]
            self._flat[kind] = tuple(flat)
        return self._flat[kind]

    # ARPA -----------------------------------------------------------------------------------------

    def write_arpa(self, path: str | os.PathLike[str]) -> None:
        """Write the model as an ARPA file with KenLM's conventions (see `arpa.write_arpa`)."""
        if self.missing_backoff != 1.0:
            raise LmlabError(f"{path}: stupid back-off penalises unseen contexts, which ARPA cannot express")
        arpa.write_arpa(path, self.vocab.words, self.keys, *self.log10_tables())

    @classmethod
    def read_arpa(cls, path: str | os.PathLike[str], padding: str = "kenlm") -> NgramModel:
        """Read an ARPA file (KenLM's or SRILM's); every defect names the file and line."""
        tables = arpa.read_arpa(path)
        return cls(tables.vocab, padding, tables.keys, tables.prob, tables.backoff, log10=tables.log10)

    # lmlab's own format ---------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str], config: dict[str, Any]) -> None:
        """Write ``model.safetensors`` (keys, probabilities, back-offs per order) and ``model.json``.

        Binary arrays load in a blink where an ARPA file of millions of lines takes seconds to parse;
        `write_arpa` is the exchange format, this is the run directory's. `config` is stored as given.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for k in range(1, self.order + 1):
            tensors[f"keys.{k}"] = self.keys[k - 1]
            tensors[f"prob.{k}"] = self.prob[k - 1]
            tensors[f"backoff.{k}"] = self.backoff[k - 1]
        with atomic_path(out / "model.safetensors") as tmp:
            save_numpy(tensors, str(tmp))
        write_json(out / "model.json", {
            "family": "ngram", "config": config, "padding": self.padding,
            "missing_backoff": self.missing_backoff, "words": self.vocab.words,
        })

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> NgramModel:
        """Read what `save` wrote; a missing, truncated or inconsistent file is a LmlabError naming it."""
        folder = Path(directory)
        spec = read_json(folder / "model.json", "file; is this an n-gram model directory?")
        weights = folder / "model.safetensors"
        try:
            tensors = load_numpy(str(weights))
        except FileNotFoundError:
            raise LmlabError(f"{weights}: no such file") from None
        except (SafetensorError, OSError) as exc:
            raise LmlabError(f"{weights}: not a readable safetensors file, truncated or corrupt ({exc})") from None
        try:
            vocab = Vocabulary(spec["words"][3:])
            order = int(spec["config"]["order"])
            arrays = [[tensors[f"{name}.{k}"] for k in range(1, order + 1)] for name in ("keys", "prob", "backoff")]
            model = cls(vocab, spec["padding"], *arrays, missing_backoff=float(spec["missing_backoff"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LmlabError(f"{folder / 'model.json'}: not an n-gram model ({exc!r} is missing or wrong)") from None
        if len(model.prob[0]) != len(vocab) or any(
            len(p) != len(k) for p, k in zip(model.prob, model.keys, strict=True)
        ):
            raise LmlabError(f"{weights}: the arrays do not match the {len(vocab)} words of model.json")
        return model
