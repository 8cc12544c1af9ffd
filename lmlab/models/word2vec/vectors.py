"""`WordVectors`: words and their trained vectors, what can be asked of them, and their files.

    similarity, most_similar, analogy    cosine queries on the unit-length vectors
    save, load                           lmlab's directory: model.safetensors + model.json (a run's too)
    save_/load_word2vec_format           word2vec.c's text and binary files (see `formats`)
    plot_words                           a PCA map of chosen words, as PNG
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmlab.config import build_config
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_arrays, read_json, write_arrays, write_json
from lmlab.models.word2vec.config import Word2VecConfig
from lmlab.models.word2vec.formats import read_word2vec_format, write_word2vec_format


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
        """Write word2vec.c's text or binary format (see `formats`), which gensim and word2vec.c read."""
        write_word2vec_format(self.words, self.vectors, path, binary)

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike[str], binary: bool | None = None) -> WordVectors:
        """Read word2vec text or binary vectors (`binary` None: decided from the bytes after the first word)."""
        return cls(*read_word2vec_format(path, binary))

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
        """Read what `save` wrote (a vectors directory, or a run directory of `lmlab.train.vectors`, which holds
        the same two files) or a word2vec text or binary file."""
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
        # matplotlib is heavy and only drawing needs it, so it is imported here rather than with the module.
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
