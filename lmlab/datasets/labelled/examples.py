"""The types a labelled set is made of: an `Example`, the three splits, and the `LabelledDataset` holding them.

Each split file holds one ``{"text": ..., "label": ...}`` object per line, DESIGN's classification
format, so what `read_labelled` takes from a user is what lmlab itself writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from lmlab.errors import LmlabError

Label = int | str
SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)  # train, validation, test


class Example(NamedTuple):
    """One labelled text."""

    text: str
    label: Label


@dataclass(frozen=True)
class LabelledDataset:
    """Train, validation and test examples, with the card saying where they came from and what was done.

    `directory` is the cache folder holding ``SPLIT.jsonl`` for a named set, None for a user's file
    split in memory.
    """

    name: str
    splits: dict[str, list[Example]]
    labels: list[Label]
    card: dict[str, Any]
    directory: Path | None = None

    def path(self, split: str) -> Path:
        """The JSONL file of `split` in the cache (named sets only)."""
        if self.directory is None:
            raise LmlabError(f"{self.name}: split in memory, not written to files")
        if split not in SPLITS:
            raise LmlabError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        return self.directory / f"{split}.jsonl"
