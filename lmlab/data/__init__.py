"""The data stage: read a corpus in any of four formats, clean it, deduplicate it, and count it.

    from lmlab.data import DataConfig, prepare_documents
    for text in prepare_documents(["corpus/"], DataConfig()):
        ...

(`lmlab.data.packing` turns tokenized documents into training shards.)

What a user types first, for the whole stage (clean, deduplicate, train a tokenizer, pack):

    from lmlab.data.prepare import PrepareConfig, prepare_corpus
    prepared = prepare_corpus(["corpus/"], "data/mine", PrepareConfig())
    prepared.meta.splits["val"].tokens

A split of fewer than 2 documents or 2,000 tokens is written but warned of (`LmlabWarning`), since
its figures would be noise; `lmlab.data.prepare` says why those floors.
"""

from lmlab.data.clean import CleanConfig, DropReason, clean_text, clean_text_with_reason
from lmlab.data.dedup import ExactDeduplicator, MinHashDeduplicator, estimate_jaccard, jaccard, optimal_bands
from lmlab.data.pipeline import DataConfig, PrepareReport, format_report, prepare_documents
from lmlab.data.readers import KNOWN_EXTENSIONS, Document, iter_documents, read_documents, resolve_paths
from lmlab.data.stats import CorpusStats, corpus_stats, format_stats

__all__ = [
    "KNOWN_EXTENSIONS",
    "CleanConfig",
    "CorpusStats",
    "DataConfig",
    "Document",
    "DropReason",
    "ExactDeduplicator",
    "MinHashDeduplicator",
    "PrepareReport",
    "clean_text",
    "clean_text_with_reason",
    "corpus_stats",
    "estimate_jaccard",
    "format_report",
    "format_stats",
    "iter_documents",
    "jaccard",
    "optimal_bands",
    "prepare_documents",
    "read_documents",
    "resolve_paths",
]
