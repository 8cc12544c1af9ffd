"""N-gram language models: counting, smoothing, back-off, and the ARPA format.

An n-gram model predicts a word from the n-1 words before it, with probabilities read off counts:

    p(w | c) = count(c w) / count(c •)          maximum likelihood (MLE); c is the context

MLE gives 0 to every n-gram the training text lacks, so every practical model *smooths*: it takes
some probability from seen n-grams and hands it to unseen ones through a shorter context. Every
estimator here is written as one recursion over orders, the interpolated form,

    p(w | c) = u(w | c) + gamma(c) * p(w | c')          c' is c without its oldest word
    p(w)     = u(w)     + gamma()  * 1 / |V|            the recursion ends at the uniform distribution

and differs only in `u` (what an n-gram keeps of its own count) and `gamma` (the mass a context
hands down):

    estimator             u(w | c)                                gamma(c)
    MLE                   a / A                                   0
    Lidstone (add-k)      a / (A + k|V|)   (full contexts only)   k|V| / (A + k|V|)
    linear interpolation  mu_n * a / A                            1 - mu_n
    Witten-Bell           a / (A + N1+(c•))                       N1+(c•) / (A + N1+(c•))
    absolute discounting  max(a - D, 0) / A                       D N1+(c•) / A
    Kneser-Ney            (a - D(a)) / A                          (D1 N1(c•) + D2 N2(c•) + D3 N3+(c•)) / A
    Katz back-off         d(a) a / A   (p = u alone if a > 0)     bow(c), which makes p(• | c) sum to 1

where a is count(c w), A = sum over w of a, N1+(c•) the number of distinct words seen after c
(Witten-Bell and absolute discounting end at the MLE unigram, as in NLTK). Kneser-Ney replaces a
below the highest order by the number of distinct words seen *before* the n-gram ("continuation
count": "Francisco" is frequent but follows only "San", so it is a poor guess after a new
context); plain Kneser-Ney uses one
discount D per order, modified Kneser-Ney (Chen & Goodman 1998) three, D1, D2 and D3+, from the
counts of counts n1..n4, exactly as KenLM's ``lmplz`` does (``precision="float32"`` rounds every step
as lmplz does). ``nltk-kneser-ney`` reproduces ``nltk.lm.KneserNeyInterpolated``, flaws included, to
check against it.

For a word w never seen after c, u(w | c) is 0 and p(w | c) = gamma(c) * p(w | c'). So the model can
be stored as it is in an ARPA file: a probability for every seen n-gram and a back-off weight
gamma for every seen context; a query finds the longest stored n-gram ending in w and multiplies
in the back-off weights of the longer contexts it skipped. Stupid back-off (a score, not a
distribution) is that query with raw relative frequencies and a fixed weight alpha.

Sentence boundaries follow KenLM (``padding="kenlm"``): a sentence is ``<s> w1 ... wm </s>``, ``<s>``
is only ever context (probability 1, log10 0), ``</s>`` is predicted once, and a word unseen in
training is ``<unk>``, which gets the uniform share gamma()/|V|. ``padding="nltk"`` pads with n-1
``<s>`` and n-1 ``</s>`` and counts the pads as words, as ``nltk.lm`` does, so its scores can be
checked against NLTK's.

KenLM works in log10 and float32: lmplz rounds every step of the estimate to float32 and writes
log10f of each probability, and KenLM's query adds those float32 logs. `precision="float32"` and
`NgramModel.log10_scores` repeat that arithmetic operation for operation, so lmlab's ARPA file holds
lmplz's very numbers and its perplexities are KenLM's to the last bit (tests/test_kenlm.py runs
both programs to check).

The chapter is in four files, read in this order: ``ngram_counts.py`` counts n-grams into sorted
NumPy arrays (not dicts: a million lookups are one ``np.searchsorted``), ``ngram_estimators.py``
computes u and gamma for each estimator, this file holds the configuration, the model that runs the
recursion and answers queries (walking the sorted arrays as a trie, or for KenLM's query probing
hash tables, as KenLM does), the ARPA format, and the `LanguageModel` interface over text, and
``ngram_kernels.py`` holds the loops that run compiled.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

from lmlab.config import Config
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, read_text, write_json
from lmlab.generate import GenerationParams
from lmlab.models import ngram_kernels as kernels
from lmlab.models.ngram_counts import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    UNK,
    UNK_ID,
    NgramCounts,
    OrderIndex,
    Vocabulary,
    concatenate,
    count_words,
    lookup,
    pad_words,
    predictable_size,
)
from lmlab.models.ngram_estimators import (
    absolute_discounting,
    adjusted_counts,
    fit_lambdas,
    interpolation,
    katz,
    kneser_ney,
    lidstone,
    lmplz_discount_counts,
    mle,
    modified_discounts,
    nltk_kneser_ney,
    single_discount,
    witten_bell,
)
from lmlab.tokenizers import Tokenizer

__all__ = [
    "Log10Scores", "NgramConfig", "NgramLanguageModel", "NgramModel", "Splitter", "Vocabulary", "estimate", "log10f",
    "stupid_backoff", "train_ngram",
]

# 1. configuration --------------------------------------------------------------------------------


class NgramConfig(Config):
    order: int = Field(3, ge=1, le=6, description="n: the model sees n-1 words of context")
    estimator: Literal[
        "mle", "lidstone", "interpolation", "witten-bell", "absolute-discounting", "kneser-ney",
        "modified-kneser-ney", "nltk-kneser-ney", "katz", "stupid-backoff",
    ] = "modified-kneser-ney"
    k: float = Field(1.0, gt=0.0, description="lidstone: added to every count; 1 is Laplace (add-one)")
    lambdas: list[float] | None = Field(
        None,
        description="interpolation: weights of the uniform, unigram, ..., n-gram estimates, summing to 1; "
        "None fits them on held-out text when some is given, else weighs all equally",
    )
    discount: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="kneser-ney: one fixed discount, None estimates n1/(n1+2 n2) per order; "
        "absolute-discounting: 0.75 if None; nltk-kneser-ney: 0.1 if None"
    )
    alpha: float = Field(0.4, gt=0.0, description="stupid-backoff: the factor for each shorter context")
    katz_k: int = Field(
        5, ge=2, description="katz: counts up to k are Good-Turing discounted, larger ones trusted (Katz's k)"
    )
    discount_fallback: bool = Field(
        False, description="modified-kneser-ney: use 0.5, 1, 1.5 where counts of counts give no valid discounts"
    )
    padding: Literal["kenlm", "nltk"] = "kenlm"
    precision: Literal["float64", "float32"] = Field(
        "float64", description="kneser-ney arithmetic; float32 is what lmplz computes, to reproduce it bit for bit "
        "(with modified-kneser-ney, its counts of counts too)"
    )

    @model_validator(mode="after")
    def _check_lambdas(self) -> NgramConfig:
        if self.lambdas is not None:
            if len(self.lambdas) != self.order + 1:
                raise ValueError(f"lambdas needs order + 1 = {self.order + 1} weights, got {len(self.lambdas)}")
            if any(weight < 0 for weight in self.lambdas) or not math.isclose(sum(self.lambdas), 1.0):
                raise ValueError("lambdas must be non-negative and sum to 1")
        return self


# 2. the model ------------------------------------------------------------------------------------


class NgramModel:
    family = "ngram"
    kind = "count-based"
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
        ``kenlm.Model.score`` bit for bit. KenLM's own loop, compiled (`ngram_kernels.kenlm_scores`).
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
        """Write the model as an ARPA file with KenLM's conventions (float32 log10, p(<s>) = 1, 0 not -99).

        A 5-gram model of a million words has millions of lines, so they are assembled column by
        column with Arrow's string kernels instead of one by one in Python.
        """
        if self.missing_backoff != 1.0:
            raise LmlabError(f"{path}: stupid back-off penalises unseen contexts, which ARPA cannot express")
        for word in self.vocab.words:
            if not word or re.search(r"\s", word):
                raise LmlabError(f"{path}: the word {word!r} contains whitespace, which ARPA cannot hold")
        log_prob, log_backoff = self.log10_tables()
        text = pa.large_string()
        tab, space, newline = (pa.scalar(mark, text) for mark in ("\t", " ", "\n"))
        words = pa.array(self.vocab.words, text)
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            out.write(("\n\\data\\\n" + "".join(f"ngram {k}={len(keys)}\n" for k, keys in enumerate(self.keys, 1))
                       ).encode())
            ngrams = words
            for k in range(1, self.order + 1):
                keys = self.keys[k - 1]
                if k > 1:  # an n-gram's text is its prefix's text and its last word
                    ngrams = pc.binary_join_element_wise(ngrams.take(keys // len(words)), words.take(keys % len(words)),
                                                         space)
                columns = [_arpa_floats(log_prob[k - 1]), ngrams]
                if k < self.order:
                    columns.append(_arpa_floats(log_backoff[k - 1], few_distinct=True))
                lines = pc.binary_join_element_wise(*columns, tab)
                every_line = pa.LargeListArray.from_arrays(pa.array([0, len(lines)], pa.int64()), lines)
                out.write(f"\n\\{k}-grams:\n".encode())
                out.write(_string_bytes(pc.binary_join(every_line, newline)))
                out.write(b"\n")
            out.write(b"\n\\end\\\n")

    @classmethod
    def read_arpa(cls, path: str | os.PathLike[str], padding: str = "kenlm") -> NgramModel:
        """Read an ARPA file (KenLM's or SRILM's); every defect names the file and line."""
        lines = read_text(path, "ARPA file").split("\n")
        marks = [(i, line.strip()) for i, line in enumerate(lines) if line.startswith(("\\", "ngram "))]
        sizes = [int(m.group(1)) for _, line in marks if (m := re.fullmatch(r"ngram \d+\s*=\s*(\d+)", line))]
        headers = [i for i, line in marks if re.fullmatch(r"\\\d+-grams:", line)]
        ends = [i for i, line in marks if line == "\\end\\"]
        if not headers or len(headers) != len(sizes) or not ends:
            raise LmlabError(f"{path}: not an ARPA file (needs \\data\\, one \\k-grams: per ngram count, \\end\\)")
        vocab = Vocabulary()
        keys: list[np.ndarray] = []
        prob: list[np.ndarray] = []
        backoff: list[np.ndarray] = []
        log_prob: list[np.ndarray] = []
        log_backoff: list[np.ndarray] = []
        for k, (first, last) in enumerate(zip(headers, [*headers[1:], ends[-1]], strict=True), start=1):
            numbers, rows = _arpa_rows(path, lines, first, last, k)
            if len(rows) != sizes[k - 1]:
                raise LmlabError(f"{path}:{first + 1}: \\data\\ promises {sizes[k - 1]} {k}-grams, found {len(rows)}")
            if k == 1:
                listed = [row[1] for row in rows]
                if len(set(listed)) != len(listed) or not {BOS, EOS} <= set(listed):
                    raise LmlabError(f"{path}:{first + 1}: the 1-grams must list each word once, <s> and </s> too")
                for word in listed:
                    vocab.add(word)
            flat = [vocab.ids.get(word, -1) for row in rows for word in row[1:k + 1]]
            words = np.array(flat, dtype=np.int64).reshape(len(rows), k)
            if (words < 0).any():
                row = int(np.argmax((words < 0).any(axis=1)))
                ngram = " ".join(rows[row][1:k + 1])
                raise LmlabError(f"{path}:{numbers[row]}: {ngram!r} has a word not in the 1-grams")
            index = words[:, 0]
            for j in range(1, k - 1):  # walk down the stored prefixes (w1), (w1 w2), ... to the context
                index = lookup(keys[j], index * len(vocab) + words[:, j])
            if (index < 0).any():
                number = numbers[int(np.argmax(index < 0))]
                raise LmlabError(f"{path}:{number}: this {k}-gram's context is not itself in the file")
            logp, logb = (_arpa_column(path, numbers, rows, column) for column in (0, k + 1))
            values = np.where(logp <= -99, 0.0, 10.0**logp), np.where(logb <= -99, 0.0, 10.0**logb)
            if k == 1:  # unigrams are dense; an <unk> the file lacks (SRILM may omit it) gets probability 0
                keys.append(np.arange(len(vocab), dtype=np.int64))
                prob.append(np.zeros(len(vocab)))
                backoff.append(np.ones(len(vocab)))
                log_prob.append(np.full(len(vocab), -99.0, dtype=np.float32))
                log_backoff.append(np.zeros(len(vocab), dtype=np.float32))
                prob[0][index], backoff[0][index] = values
                log_prob[0][index], log_backoff[0][index] = logp, logb
                continue
            index = index * len(vocab) + words[:, -1]
            ranked = np.argsort(index)
            keys.append(index[ranked])
            prob.append(values[0][ranked])
            backoff.append(values[1][ranked])
            log_prob.append(logp[ranked].astype(np.float32))
            log_backoff.append(logb[ranked].astype(np.float32))
        return cls(vocab, padding, keys, prob, backoff, log10=(log_prob, log_backoff))


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


def _arpa_rows(
    path: str | os.PathLike[str], lines: list[str], first: int, last: int, k: int
) -> tuple[list[int], list[list[str]]]:
    """The (line numbers, fields) of the k-gram lines between two section headers."""
    numbers, rows = [], []
    for number, line in enumerate(lines[first + 1:last], start=first + 2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (k + 1, k + 2):
            raise LmlabError(f"{path}:{number}: a {k}-gram line needs log10 p, {k} words, optional back-off")
        numbers.append(number)
        rows.append(fields)
    return numbers, rows


def _arpa_column(path: str | os.PathLike[str], numbers: list[int], rows: list[list[str]], column: int) -> np.ndarray:
    """Column `column` of every row as numbers (0 where a row lacks it: no back-off means log10 1)."""
    try:
        return np.array([row[column] if column < len(row) else "0" for row in rows], dtype=np.float64)
    except ValueError:
        for number, row in zip(numbers, rows, strict=True):
            try:
                float(row[column] if column < len(row) else 0)
            except ValueError:
                raise LmlabError(f"{path}:{number}: {row[column]!r} is not a number") from None
        raise


def _arpa_floats(values: np.ndarray, few_distinct: bool = False) -> pa.Array:
    """The shortest text of each float32 that reads back as the same value (as KenLM prints); -99 for log 0.

    With `few_distinct` (back-off weights), each distinct value is formatted once.
    """
    finite = np.where(np.isfinite(values), values, np.float32(-99.0)).astype(np.float32)
    if not few_distinct:
        return pc.cast(pa.array(finite), pa.large_string())
    distinct, inverse = _few_distinct(finite)
    return pc.cast(pa.array(distinct), pa.large_string()).take(inverse)


def _string_bytes(strings: pa.Array) -> memoryview:
    """The UTF-8 bytes of an Arrow string array, all strings back to back: one buffer, no copy."""
    _, offsets, data = strings.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[strings.offset:strings.offset + len(strings) + 1]
    return memoryview(data)[ends[0]:ends[-1]]


@dataclass
class Log10Scores:
    """Sentences scored as KenLM scores them (`NgramModel.log10_scores`): log10, float32.

    `tokens` holds the score of every predicted token, each sentence's words and its ``</s>`` in
    order; `oov` marks the words not in the vocabulary (scored as ``<unk>``); `totals` holds one
    float32 sum per sentence, what ``kenlm.Model.score`` returns.
    """

    tokens: np.ndarray
    oov: np.ndarray
    totals: np.ndarray

    def perplexity(self, include_oovs: bool = True) -> float:
        """10^(-mean log10 p) per token, ``</s>`` counted, as KenLM's ``query`` prints it.

        As there, sentence totals are float32 and the corpus sums them in float64, in order; without
        OOVs, their scores and their count are taken out of the sums.
        """
        total, count = _running_sum(self.totals), len(self.tokens)
        if not include_oovs:
            total, count = total - _running_sum(self.tokens[self.oov]), count - int(self.oov.sum())
        if count == 0:
            raise LmlabError("perplexity: no tokens to score")
        return 10.0 ** -(total / count)


def _running_sum(values: np.ndarray) -> float:
    """The float64 sum of `values` added one after another (np.sum adds pairwise, rounding differently)."""
    return float(np.cumsum(values, dtype=np.float64)[-1]) if len(values) else 0.0


def log10f(values: np.ndarray) -> np.ndarray:
    """log10 of each value rounded to float32 by the C library's log10f, as lmplz and KenLM round it.

    On CPUs with AVX-512, NumPy's float32 log10 is a vectorised routine of its own that differs from
    the C library's in the last bit for about half of all inputs, so a compiled loop calls the C function
    value by value (`ngram_kernels.log10f`). Where numba has Intel's SVML, it could vectorise that loop
    with SVML's own log10f, so there each value is passed to the C function on its own.
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    if numba.config.USING_SVML:
        return np.fromiter(map(kernels.log10f_one, values), dtype=np.float32, count=len(values))
    return kernels.log10f(values)


def _few_distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_inverse=True)` for values that take few distinct values, faster: a sort
    finds them, then binary search in that small table, which stays in cache, places each value."""
    distinct = np.unique(values)
    return distinct, np.searchsorted(distinct, values)


def stupid_backoff(vocab: Vocabulary, counts: NgramCounts, alpha: float, padding: str) -> NgramModel:
    """Stupid back-off (Brants et al. 2007): count(c w) / count(c •) if c w was seen, else alpha S(w | c').

    A score, not a distribution: nothing is discounted, so the scores after a context sum to more
    than 1. It is cheap and, on web-scale text, about as good as Kneser-Ney for translation.
    """
    relative_frequency = [u for u, _ in mle(counts)]
    backoff = [np.full(len(keys), alpha) for keys in counts.keys]
    return NgramModel(vocab, padding, counts.keys, relative_frequency, backoff, missing_backoff=alpha)


def estimate(
    counts: NgramCounts, vocab: Vocabulary, config: NgramConfig, held_out: Sequence[Sequence[int]] = ()
) -> NgramModel:
    """Smooth `counts` with the estimator `config` names (`held_out` id sequences fit interpolation weights)."""
    if config.estimator == "stupid-backoff":
        return stupid_backoff(vocab, counts, config.alpha, config.padding)
    if config.estimator == "katz":  # backs off rather than interpolates: katz computes what the model stores
        prob, backoff = katz(counts, config.katz_k, config.padding)
        return NgramModel(vocab, config.padding, counts.keys, prob, backoff)
    predictable = predictable_size(len(vocab), config.padding)
    if config.estimator == "mle":
        estimates = mle(counts)
    elif config.estimator == "lidstone":
        estimates = lidstone(counts, predictable, config.k, config.padding)
    elif config.estimator == "witten-bell":
        estimates = witten_bell(counts)
    elif config.estimator == "absolute-discounting":
        estimates = absolute_discounting(counts, config.discount or 0.75)
    elif config.estimator == "nltk-kneser-ney":
        if config.order < 2:
            raise LmlabError("nltk-kneser-ney: order must be at least 2 (its unigrams come from bigram counts)")
        estimates = nltk_kneser_ney(counts, config.discount or 0.1)
    elif config.estimator == "interpolation":
        if config.lambdas:
            lambdas = config.lambdas
        elif held_out:
            lambdas = fit_lambdas(counts, held_out, config.padding)
        else:
            lambdas = [1.0 / (counts.order + 1)] * (counts.order + 1)
        estimates = interpolation(counts, lambdas)
    else:  # kneser-ney, modified-kneser-ney
        adjusted = adjusted_counts(counts)
        dtype = np.float32 if config.precision == "float32" else np.float64
        if config.estimator == "modified-kneser-ney":
            if config.precision == "float32":  # lmplz's numbers, to the bit
                adjusted = lmplz_discount_counts(counts, adjusted)
            discounts = [modified_discounts(a, k, config.discount_fallback, dtype) for k, a in enumerate(adjusted, 1)]
        else:
            singles = [config.discount or single_discount(a, k) for k, a in enumerate(adjusted, 1)]
            discounts = [(d, d, d) for d in singles]
        estimates = kneser_ney(counts, discounts, dtype)
    return NgramModel.from_estimates(vocab, counts, estimates, config.padding)


def train_ngram(
    sentences: Iterable[Sequence[str]],
    config: NgramConfig,
    vocab: Vocabulary | None = None,
    held_out: Iterable[Sequence[str]] = (),
) -> NgramModel:
    """Count and smooth an n-gram model of word sequences (each one sentence or document)."""
    vocab = vocab or Vocabulary()
    return _count_and_estimate(*vocab.add_all(list(sentences)), vocab, config, held_out)


def _count_and_estimate(
    words: np.ndarray, lengths: np.ndarray, vocab: Vocabulary, config: NgramConfig, held_out: Iterable[Sequence[str]]
) -> NgramModel:
    """`train_ngram` of sentences already in `vocab`, as their word ids back to back and their lengths."""
    counts = count_words(words, lengths, config.order, len(vocab), config.padding)
    return estimate(counts, vocab, config, [vocab.encode(sentence) for sentence in held_out])


# 3. text in, text out: the LanguageModel interface ----------------------------------------------


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
        model = _count_and_estimate(words, lengths, vocab, config, [splitter.split(text) for text in held_out])
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

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        """Sample each continuation word by word from p(w | last n-1 words), until ``</s>`` or the limit."""
        rng = np.random.default_rng(params.seed)
        outputs = []
        for prompt in prompts:
            prompt_units = self.splitter.split(prompt)
            sequence = [BOS_ID] * self.pads + self._ids(prompt_units)
            new_units: list[str] = []
            for _ in range(params.max_new_tokens):
                next_id = _pick(self.model.next_distribution(sequence), params, rng)
                if next_id == EOS_ID:
                    break
                sequence.append(next_id)
                new_units.append(self.model.vocab.words[next_id])
            prompt_text = self.splitter.join(prompt_units)
            text = self.splitter.join(prompt_units + new_units)[len(prompt_text):]
            if self.splitter.unit == "word" and prompt_units and new_units:
                text = text if text.startswith(" ") else " " + text
            for stop in params.stop:
                text = text.split(stop, 1)[0]
            outputs.append(text)
        return outputs


def _pick(dist: np.ndarray, params: GenerationParams, rng: np.random.Generator) -> int:
    """One word id from `dist`, by the same temperature / top-k / top-p rules as neural generation."""
    dist = dist.copy()
    dist[[UNK_ID, BOS_ID]] = 0.0  # <unk> says nothing and <s> is never predicted
    if params.temperature == 0:
        return int(np.argmax(dist))
    dist = dist ** (1.0 / params.temperature)
    if params.top_k is not None and params.top_k < len(dist):
        dist[dist < np.partition(dist, -params.top_k)[-params.top_k]] = 0.0
    if params.top_p is not None:
        ranked = np.argsort(-dist)
        cumulative = np.cumsum(dist[ranked]) / dist.sum()
        dist[ranked[1:][cumulative[:-1] >= params.top_p]] = 0.0  # keep the smallest set reaching top_p
    return int(rng.choice(len(dist), p=dist / dist.sum()))
