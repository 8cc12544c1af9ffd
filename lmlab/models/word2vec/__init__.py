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
formulas are in `kernels`, the compiled inner loop). Four more tricks of the paper
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
correlation with human similarity judgements (WordSim-353, SimLex-999), with small English and
Chinese sets of both bundled in ``sets/`` (`evaluation_set("analogies", "en")`; ``lmlab vectors
evaluate RUN`` uses them when given no file).

    >>> vectors = train_word2vec([text.split() for text in lines], Word2VecConfig(epochs=5))
    >>> vectors.most_similar("king", topn=3)
    >>> vectors.analogy("king", "man", "woman")        # king - man + woman
    >>> vectors.save_word2vec_format("vectors.bin", binary=True)
    >>> evaluate_analogies(vectors, evaluation_set("analogies", "en")).accuracy

One module per concern, in the order the data flows:

    config       Word2VecConfig
    corpus       text to sentences of words, sentences to word ids (read once, into memory)
    sampling     subsampling's keep probabilities and the noise table
    kernels      the compiled inner loop: SGD over one chunk of the corpus
    training     train_word2vec: epochs of chunks, in one thread or several
    vectors      WordVectors: queries, lmlab's files, the PCA map
    formats      word2vec.c's text and binary files
    evaluation   analogy accuracy, Spearman and Pearson on word pairs

`lmlab.train.vectors` trains into a run directory, as every other lmlab model does.
"""

from lmlab.models.word2vec.config import Word2VecConfig
from lmlab.models.word2vec.corpus import Corpus, read_corpus, text_sentences
from lmlab.models.word2vec.evaluation import (
    AnalogyResult,
    PairResult,
    evaluate_analogies,
    evaluate_word_pairs,
    evaluation_set,
    spearman,
)
from lmlab.models.word2vec.sampling import keep_probabilities, noise_table
from lmlab.models.word2vec.training import EpochStats, train_word2vec
from lmlab.models.word2vec.vectors import WordVectors

__all__ = [
    "AnalogyResult", "Corpus", "EpochStats", "PairResult", "Word2VecConfig", "WordVectors", "evaluate_analogies",
    "evaluate_word_pairs", "evaluation_set", "keep_probabilities", "noise_table", "read_corpus", "spearman",
    "text_sentences", "train_word2vec",
]
