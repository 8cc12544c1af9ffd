"""Training word2vec: the corpus read once, then each epoch's chunks handed to the compiled kernel.

The input vectors start small and random, the output vectors at zero; the learning rate falls
linearly from ``alpha`` to ``min_alpha`` over the whole run, by the position of each word in it.
With ``workers`` above 1 the chunks of an epoch train at once in threads ("Hogwild", see `kernels`);
with one, in order in this thread, so a seed reproduces a run exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from lmlab.models.word2vec.config import Word2VecConfig
from lmlab.models.word2vec.corpus import read_corpus
from lmlab.models.word2vec.kernels import train_chunk
from lmlab.models.word2vec.sampling import keep_probabilities, noise_table
from lmlab.models.word2vec.vectors import WordVectors


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
