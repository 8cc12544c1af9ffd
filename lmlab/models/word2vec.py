"""word2vec: word vectors learned by predicting words from their neighbours (Mikolov et al., 2013).

A word is known by the company it keeps: words that occur in similar contexts get similar vectors.
word2vec learns two vectors per word, an input vector v_w (the word vector kept at the end) and an
output vector v'_w, by making the input vectors good at predicting nearby words:

    skip-gram   each word predicts each word of its window:     p(context | word)
    CBOW        the window's mean vector predicts the word:      p(word | mean of context)

        the  quick  [brown]  fox  jumps          window 2 around "brown"
        skip-gram:  brown -> the, brown -> quick, brown -> fox, brown -> jumps   (4 examples)
        CBOW:       mean(the, quick, fox, jumps) -> brown                         (1 example)

A softmax over the whole vocabulary per example would be far too dear, so word2vec uses negative
sampling: tell the true word apart from ``negative`` noise words by logistic regression (the
formulas are in ``word2vec_kernels.py``, the compiled inner loop). Four more tricks of the paper
and of word2vec.c matter as much as the model; all follow word2vec.c and gensim:

- noise words are drawn from the unigram distribution raised to 3/4 (``ns_exponent``), which
  flattens it: rare words are drawn more than their share, "the" less;
- frequent words are subsampled: each occurrence of a word with count c out of N words is kept with
  probability (sqrt(c / (s N)) + 1) * s N / c (capped at 1; s is ``sample``), so "the" is mostly
  dropped, rare words always kept, and windows reach further;
- the window is shrunk at random to 1..``window`` for each centre word, so near words count more;
- the learning rate falls linearly from ``alpha`` to ``min_alpha`` over the whole run.

The trained vectors are a `WordVectors`: cosine neighbours (`most_similar`), analogies by vector
arithmetic (king - man + woman ~ queen), the word2vec text and binary formats that word2vec.c and
gensim read, lmlab's own safetensors + JSON directory, a PCA map of chosen words as PNG, and the
two standard evaluations: analogy accuracy on a ``questions-words.txt`` file and Spearman
correlation with human similarity judgements (WordSim-353, SimLex-999).

    >>> vectors = train_word2vec([text.split() for text in lines], Word2VecConfig(epochs=5))
    >>> vectors.most_similar("king", topn=3)
    >>> vectors.analogy("king", "man", "woman")        # king - man + woman
    >>> vectors.save_word2vec_format("vectors.bin", binary=True)
"""

from __future__ import annotations

import math
import os
import re
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from lmlab.config import Config, build_config
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_arrays, read_json, read_text, write_arrays, write_json
from lmlab.models.word2vec_kernels import train_chunk

__all__ = [
    "AnalogyResult", "EpochStats", "PairResult", "Word2VecConfig", "WordVectors", "evaluate_analogies",
    "evaluate_word_pairs", "keep_probabilities", "noise_table", "spearman", "text_sentences", "train_word2vec",
]

# 1. configuration --------------------------------------------------------------------------------


class Word2VecConfig(Config):
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


# 2. vocabulary, subsampling and the noise distribution --------------------------------------------


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """The chance each occurrence of a word survives subsampling: (sqrt(c / sN) + 1) * sN / c, at most 1.

    N is the number of words in the vocabulary's text, c each word's count; ``sample`` 0 keeps all.
    That is sqrt(sN / c) + sN / c, word2vec.c's and gensim's formula; the paper's sqrt(sN / c) keeps
    a little less of the frequent words.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum((np.sqrt(counts / threshold) + 1.0) * threshold / counts, 1.0)


NOISE_DOMAIN = 2**31 - 1


def noise_table(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """The cumulative noise distribution c**exponent / sum(c**exponent), scaled to integers up to 2**31 - 1.

    Word i is drawn for a uniform integer r in [table[i-1], table[i]), found by binary search: exact
    proportions in a table as long as the vocabulary (word2vec.c fills 10**8 slots instead).
    """
    weights = np.asarray(counts, dtype=np.float64) ** exponent
    return np.round(np.cumsum(weights) / weights.sum() * NOISE_DOMAIN).astype(np.int64)


@dataclass
class Corpus:
    """A corpus as word ids: sentence s is ``ids[bounds[s]:bounds[s+1]]``, words by descending count."""

    words: list[str]
    counts: np.ndarray  # (V,) int64
    ids: np.ndarray  # (N,) int32, words below min_count removed
    bounds: np.ndarray  # (S+1,) int64


def read_corpus(sentences: Iterable[Sequence[str]], min_count: int, max_sentence: int) -> Corpus:
    """Read `sentences` once: count, keep words seen `min_count` times, number them by descending count.

    A sentence longer than `max_sentence` kept words is cut into pieces, as no window crosses a cut.
    """
    index: dict[str, int] = {}
    flat = array("i")
    lengths = array("q")
    for number, sentence in enumerate(sentences):
        if isinstance(sentence, str):
            raise LmlabError(f"sentence {number}: is a string; word2vec needs lists of words, e.g. line.split()")
        flat.extend([index.setdefault(word, len(index)) for word in sentence])
        lengths.append(len(sentence))
    first_seen = np.frombuffer(flat, dtype=np.int32) if flat else np.zeros(0, np.int32)
    counts = np.bincount(first_seen, minlength=len(index))
    # Ties in count keep the order of first appearance, so the numbering is a function of the text.
    by_count = [i for i in np.lexsort((np.arange(len(counts)), -counts)) if counts[i] >= min_count]
    if not by_count:
        raise LmlabError(f"word2vec: no word occurs min_count={min_count} times in {len(first_seen)} words of text")
    renumber = np.full(len(counts), -1, dtype=np.int64)
    renumber[by_count] = np.arange(len(by_count))
    ids = renumber[first_seen]
    sentence_of = np.repeat(np.arange(len(lengths)), np.frombuffer(lengths, dtype=np.int64))
    known = ids >= 0
    ids, sentence_of = ids[known], sentence_of[known]
    position = np.arange(len(ids)) - np.searchsorted(sentence_of, sentence_of)  # place within its sentence
    piece = sentence_of * (len(ids) // max_sentence + 1) + position // max_sentence
    starts = np.flatnonzero(np.diff(piece, prepend=-1))
    words = list(index)
    return Corpus(
        words=[words[i] for i in by_count],
        counts=counts[by_count].astype(np.int64),
        ids=ids.astype(np.int32),
        bounds=np.append(starts, len(ids)).astype(np.int64),
    )


_WORD = re.compile(r"\w+(?:['’]\w+)*")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def text_sentences(texts: Iterable[str], unit: Literal["word", "character"] = "word",
                   lowercase: bool = True) -> Iterator[list[str]]:
    """Each non-empty line of `texts` as a sentence of units: words (letters, digits, inner apostrophes;
    Chinese characters count as words, having no spaces between them) or every non-space character."""
    for text in texts:
        for line in text.splitlines():
            line = line.lower() if lowercase else line
            if unit == "character":
                units = [char for char in line if not char.isspace()]
            else:
                units = [piece for word in _WORD.findall(line) for piece in
                         (_CJK.findall(word) if _CJK.search(word) else [word])]
            if units:
                yield units


# 3. training ---------------------------------------------------------------------------------------


@dataclass
class EpochStats:
    epoch: int
    loss: float  # mean negative-sampling loss per example
    examples: int  # (word, context) pairs for skip-gram, centre words for CBOW, after subsampling
    words: int  # corpus words read, those below min_count left out
    seconds: float


def _chunks(bounds: np.ndarray, batch_words: int) -> np.ndarray:
    """Sentence indices where each chunk of about `batch_words` words starts, plus the end."""
    sentence_starts = bounds[:-1]
    block = sentence_starts // batch_words
    firsts = np.flatnonzero(np.diff(block, prepend=-1))
    return np.append(firsts, len(sentence_starts))


def train_word2vec(
    sentences: Iterable[Sequence[str]],
    config: Word2VecConfig | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> WordVectors:
    """Learn word vectors from `sentences` (each a list of words); `on_epoch` hears of each finished epoch.

    The corpus is read once, into memory, as int32 word ids.
    """
    config = config or Word2VecConfig()
    corpus = read_corpus(sentences, config.min_count, config.batch_words)
    vocab, dim = len(corpus.words), config.dim
    rng = np.random.default_rng(config.seed)
    # Input vectors small and random (uniform in +-1/dim, gensim's range) so every word starts distinct;
    # output vectors zero, so no noise word is favoured before training. Both are row-major float32.
    syn0 = ((rng.random((vocab, dim), dtype=np.float32) * 2 - 1) / dim).astype(np.float32)
    syn1neg = np.zeros((vocab, dim), dtype=np.float32)
    keep = keep_probabilities(corpus.counts, config.sample) * 2.0**32
    table = noise_table(corpus.counts, config.ns_exponent)
    chunk_firsts = _chunks(corpus.bounds, config.batch_words)
    n_words = len(corpus.ids)
    total = config.epochs * n_words
    seeds = rng.integers(0, 2**48, size=(config.epochs, len(chunk_firsts) - 1), dtype=np.uint64)
    want_loss = on_epoch is not None

    def run(epoch: int, chunk: int) -> tuple[float, int]:
        first, last = chunk_firsts[chunk], chunk_firsts[chunk + 1]
        position = epoch * n_words + corpus.bounds[first]
        return train_chunk(corpus.ids, corpus.bounds, first, last, syn0, syn1neg, keep, table, config.window,
                           config.negative, config.architecture == "skipgram", config.alpha, config.min_alpha,
                           position, total, seeds[epoch, chunk], want_loss)

    with ThreadPoolExecutor(config.workers) as pool:
        for epoch in range(config.epochs):
            start = time.perf_counter()
            chunks = range(len(chunk_firsts) - 1)
            if config.workers == 1:  # in this thread, in order: what makes a seeded run reproducible
                results = [run(epoch, chunk) for chunk in chunks]
            else:
                results = list(pool.map(lambda chunk, e=epoch: run(e, chunk), chunks))
            if on_epoch is not None:
                loss = sum(r[0] for r in results)
                examples = sum(r[1] for r in results)
                on_epoch(EpochStats(epoch + 1, loss / max(examples, 1), examples, n_words, time.perf_counter() - start))
    return WordVectors(corpus.words, syn0, corpus.counts, config)


# 4. the vectors -------------------------------------------------------------------------------------


@dataclass
class WordVectors:
    """Words and their vectors, most frequent first (row i is ``words[i]``), with what can be asked of them."""

    words: list[str]
    vectors: np.ndarray  # (V, dim) float32
    counts: np.ndarray | None = None  # (V,) int64 training counts, when known
    config: Word2VecConfig | None = None
    index: dict[str, int] = field(init=False, repr=False)
    _unit: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.words):
            raise LmlabError(f"word vectors: {len(self.words)} words but vectors of shape {self.vectors.shape}")
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise LmlabError("word vectors: a word appears twice in the vocabulary")

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._id(word)]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def unit(self) -> np.ndarray:
        """Every vector scaled to length 1, so a dot product is a cosine (a zero vector stays zero)."""
        if self._unit is None:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._unit = self.vectors / np.where(norms == 0, 1, norms)
        return self._unit

    def _id(self, word: str) -> int:
        if word not in self.index:
            raise LmlabError(f"word {word!r} is not in the vocabulary ({len(self.words)} words)")
        return self.index[word]

    def similarity(self, a: str, b: str) -> float:
        """Cosine of the angle between the vectors of `a` and `b`: 1 same direction, 0 unrelated."""
        return float(self.unit[self._id(a)] @ self.unit[self._id(b)])

    def most_similar(
        self, positive: str | Sequence[str] = (), negative: Sequence[str] = (), topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """The `topn` words nearest (cosine) to the sum of `positive` minus the sum of `negative` unit vectors.

        The query words themselves are left out; `restrict_vocab` searches only the most frequent words.
        """
        positive = [positive] if isinstance(positive, str) else list(positive)
        ids = [self._id(word) for word in [*positive, *negative]]
        if not ids:
            raise LmlabError("most_similar needs at least one word")
        query = self.unit[ids[: len(positive)]].sum(0) - self.unit[ids[len(positive):]].sum(0)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        scores = self.unit[:restrict_vocab] @ query
        scores[[i for i in ids if i < len(scores)]] = -np.inf
        best = np.argsort(-scores, kind="stable")[:topn]
        return [(self.words[i], float(scores[i])) for i in best if scores[i] > -np.inf]

    def analogy(self, a: str, b: str, c: str, topn: int = 1) -> list[tuple[str, float]]:
        """a - b + c: ``analogy("king", "man", "woman")`` answers "queen" when the vectors learned it."""
        return self.most_similar(positive=[a, c], negative=[b], topn=topn)

    # -- files ------------------------------------------------------------------------------------

    def save_word2vec_format(self, path: str | os.PathLike[str], binary: bool = False) -> None:
        """word2vec.c's format: a "V dim" line, then per word its text and its vector (text or float32 bytes).

        Text writes 9 significant digits, enough to read back every float32 exactly.
        """
        for word in self.words:
            if not word or any(ch.isspace() for ch in word):
                raise LmlabError(f"word {word!r}: the word2vec format cannot hold empty words or ones with spaces")
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            out.write(f"{len(self)} {self.dim}\n".encode())
            row_format = " ".join(["%.9g"] * self.dim)
            for word, vector in zip(self.words, self.vectors, strict=True):
                if binary:  # word2vec.c ends each vector with a newline; readers skip it
                    out.write(word.encode() + b" " + vector.astype("<f4").tobytes() + b"\n")
                else:
                    out.write(f"{word} {row_format % tuple(vector.tolist())}\n".encode())

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike[str], binary: bool | None = None) -> WordVectors:
        """Read word2vec text or binary vectors (`binary` None: decided from the bytes after the first word)."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise LmlabError(f"{path}: no such file") from None
        header, _, body = data.partition(b"\n")
        try:
            vocab, dim = (int(part) for part in header.split())
        except ValueError:
            raise LmlabError(f"{path}:1: the header must be two numbers, words and dimension, as '3000 100'") from None
        if binary is None:
            binary = _looks_binary(body, dim)
        words: list[str] = []
        vectors = np.empty((vocab, dim), dtype=np.float32)
        offset = 0
        for row in range(vocab):
            if binary:
                while body[offset:offset + 1] in (b"\n", b" "):
                    offset += 1
                space = body.find(b" ", offset)
                end = space + 1 + 4 * dim
                if space < 0 or end > len(body):
                    raise LmlabError(f"{path}: ends after {row} of the {vocab} vectors its header announces")
                words.append(_decode(body[offset:space], path, row))
                vectors[row] = np.frombuffer(body, dtype="<f4", count=dim, offset=space + 1)
                offset = end
            else:
                newline = body.find(b"\n", offset)
                line = body[offset:] if newline < 0 else body[offset:newline]
                offset = len(body) if newline < 0 else newline + 1
                parts = _decode(line, path, row).rstrip().split(" ")
                if len(parts) != dim + 1:
                    raise LmlabError(f"{path}:{row + 2}: expected a word and {dim} numbers, found {len(parts)} fields")
                words.append(parts[0])
                try:
                    vectors[row] = np.array(parts[1:], dtype=np.float64)
                except ValueError:
                    raise LmlabError(f"{path}:{row + 2}: a vector holds something that is not a number") from None
        return cls(words, vectors)

    def save(self, out_dir: str | os.PathLike[str]) -> None:
        """lmlab's format: ``model.safetensors`` (vectors, counts) and ``model.json`` (config and words)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {"vectors": self.vectors}
        if self.counts is not None:
            tensors["counts"] = np.asarray(self.counts, dtype=np.int64)
        write_arrays(out / "model.safetensors", tensors)
        config = self.config.model_dump(mode="json") if self.config else None
        write_json(out / "model.json", {"family": "word2vec", "config": config, "words": self.words})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WordVectors:
        """Read what `save` wrote (a directory) or a word2vec text or binary file."""
        folder = Path(path)
        if not folder.is_dir():
            return cls.load_word2vec_format(folder)
        spec = read_json(folder / "model.json", "file; is this a word2vec directory?")
        weights = folder / "model.safetensors"
        tensors = read_arrays(weights)
        if not isinstance(spec, dict) or spec.get("family") != "word2vec" or not isinstance(spec.get("words"), list):
            raise LmlabError(f'{folder / "model.json"}: not word2vec vectors (needs "family": "word2vec" and "words")')
        if "vectors" not in tensors:
            raise LmlabError(f"{weights}: has no 'vectors' tensor")
        config = build_config(Word2VecConfig, spec["config"], str(folder / "model.json")) if spec["config"] else None
        return cls(spec["words"], tensors["vectors"], tensors.get("counts"), config)

    def plot_words(self, words: Sequence[str], path: str | os.PathLike[str], title: str | None = None) -> None:
        """Draw `words` on the plane of their two principal components (PCA of their vectors) as a PNG."""
        from matplotlib.figure import Figure

        if len(words) < 2:
            raise LmlabError("plot_words needs at least two words")
        points = self.vectors[[self._id(word) for word in words]].astype(np.float64)
        points -= points.mean(0)
        # The right singular vectors are the principal axes; projecting on the first two keeps the most variance.
        _, _, axes = np.linalg.svd(points, full_matrices=False)
        xy = points @ axes[:2].T
        if xy.shape[1] == 1:  # one dimension, or two words: nothing to spread along a second axis
            xy = np.column_stack([xy[:, 0], np.zeros(len(xy))])
        figure = Figure(figsize=(7, 6))
        plot = figure.subplots()
        plot.scatter(xy[:, 0], xy[:, 1], s=12)
        for word, (x, y) in zip(words, xy, strict=True):
            plot.annotate(word, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=9)
        plot.set(xlabel="first principal component", ylabel="second principal component",
                 title=title or f"{len(words)} words, PCA of {self.dim}-d vectors")
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def _decode(raw: bytes, path: str | os.PathLike[str], row: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LmlabError(f"{path}: word {row + 1} is not valid UTF-8") from None


def _looks_binary(body: bytes, dim: int) -> bool:
    """Text has the word then `dim` numbers on its first line; binary has 4 * dim raw bytes after the word."""
    fields = body.split(b"\n", 1)[0].rstrip().split(b" ")
    if len(fields) != dim + 1:
        return True
    try:
        [float(number) for number in fields[1:]]
    except ValueError:
        return True
    return False


# 5. evaluation ---------------------------------------------------------------------------------------


def _folded_vocabulary(vectors: WordVectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Each word of the `restrict_vocab` most frequent, folded to upper case, to its most frequent spelling."""
    vocabulary: dict[str, int] = {}
    for i, word in enumerate(vectors.words[:restrict_vocab]):
        vocabulary.setdefault(word.upper() if case_insensitive else word, i)
    return vocabulary


@dataclass
class AnalogyResult:
    accuracy: float  # correct / answered, over all sections
    sections: dict[str, tuple[int, int]]  # section -> (correct, answered)
    skipped: int  # questions with a word outside the vocabulary


def evaluate_analogies(
    vectors: WordVectors, path: str | os.PathLike[str], restrict_vocab: int = 300_000, case_insensitive: bool = True,
) -> AnalogyResult:
    """Accuracy on "a b c d" questions (a is to b as c is to d) in sections opened by ": name" lines.

    The answer is the word nearest b - a + c (3CosAdd) among the `restrict_vocab` most frequent words,
    leaving out a, b, c in any spelling; a question with a word outside them is skipped, as word2vec's
    compute-accuracy and gensim's evaluate_word_analogies do.
    """
    vocabulary = _folded_vocabulary(vectors, restrict_vocab, case_insensitive)
    questions: dict[str, list[list[int]]] = {}
    section, skipped = None, 0
    for number, line in enumerate(read_text(path, "analogy file").splitlines(), 1):
        if line.startswith(": "):
            section = line[2:].strip()
            questions.setdefault(section, [])
            continue
        fields = (line.upper() if case_insensitive else line).split()
        if len(fields) != 4:
            continue
        if section is None:
            raise LmlabError(f"{path}:{number}: a question before the first ': section' line")
        if not all(word in vocabulary for word in fields):
            skipped += 1
            continue
        questions[section].append([vocabulary[word] for word in fields])
    unit = vectors.unit[:restrict_vocab]
    # Words that are another spelling of a more frequent word ("Paris" after "paris") are few: their
    # columns and the spelling they stand for, to leave out every spelling of a question's words.
    spelling = np.array([vocabulary[w.upper() if case_insensitive else w] for w in vectors.words[:restrict_vocab]])
    variants = np.flatnonzero(spelling != np.arange(len(spelling)))
    rows = max(1, 2**24 // len(unit))  # a block of scores stays near 64 MB whatever the vocabulary
    sections = {}
    for name, listed in questions.items():
        ids = np.array(listed, dtype=np.int64).reshape(-1, 4)
        correct = 0
        for block in range(0, len(ids), rows):
            a, b, c, expected = ids[block:block + rows].T
            query = unit[b] - unit[a] + unit[c]
            scores = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ unit.T
            at = np.arange(len(a))
            for given in (a, b, c):
                scores[at, given] = -np.inf
                hit, column = np.nonzero(spelling[variants][None, :] == given[:, None])
                scores[hit, variants[column]] = -np.inf
            correct += int((spelling[scores.argmax(1)] == expected).sum())  # any spelling of the answer counts
        sections[name] = (correct, len(ids))
    answered = sum(n for _, n in sections.values())
    accuracy = sum(c for c, _ in sections.values()) / answered if answered else 0.0
    return AnalogyResult(accuracy, sections, skipped)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks, tied values sharing their mean rank."""
    return _pearson(_ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64)))


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.diff(ordered, prepend=np.nan) != 0)  # where each run of equal values starts
    ends = np.append(starts[1:], len(values))
    mean_rank = (starts + ends + 1) / 2.0  # ranks counted from 1
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float((x @ y) / math.sqrt((x @ x) * (y @ y)))


@dataclass
class PairResult:
    spearman: float
    pearson: float
    pairs: int  # pairs with both words in the vocabulary
    skipped: int


def evaluate_word_pairs(
    vectors: WordVectors, path: str | os.PathLike[str], restrict_vocab: int = 300_000, case_insensitive: bool = True,
    delimiter: str = "\t",
) -> PairResult:
    """How well cosine similarity ranks word pairs as people did: "word1<tab>word2<tab>score" lines, # comments."""
    vocabulary = _folded_vocabulary(vectors, restrict_vocab, case_insensitive)
    human, model, skipped = [], [], 0
    for line in read_text(path, "word-pair file").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = (line.upper() if case_insensitive else line).split(delimiter)
        try:
            a, b, score = fields[0], fields[1], float(fields[2])
        except (IndexError, ValueError):
            continue  # not a pair line: a header or a note
        if len(fields) != 3:
            continue
        if a not in vocabulary or b not in vocabulary:
            skipped += 1
            continue
        human.append(score)
        model.append(float(vectors.unit[vocabulary[a]] @ vectors.unit[vocabulary[b]]))
    if len(human) < 2:
        raise LmlabError(f"{path}: fewer than two pairs have both words in the vocabulary")
    return PairResult(spearman(human, model), _pearson(np.array(human), np.array(model)), len(human), skipped)
