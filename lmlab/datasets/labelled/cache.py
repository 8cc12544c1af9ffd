"""The cached copy of a named labelled set: read back when complete, built once otherwise.

    registry package ──> <cache>/downloads/ARCHIVE ──> the members the set needs
        ──> convert (decode, parse, check labels) ──> clean ──> deduplicate ──> stratified split
        ──> <cache>/NAME/{train,validation,test}.jsonl + card.json + CARD.md

Every later call finds ``<cache>/NAME/card.json`` naming the same source and recipe and reads the
splits back, with no network. As for corpora, the folder is built under a temporary name and renamed
when complete, so an interrupted build leaves nothing a later call could mistake for a cached set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmlab.datasets.corpora import DOWNLOADS_DIR, card_header, default_cache_dir, read_card, write_card
from lmlab.datasets.labelled.card import labelled_card_markdown
from lmlab.datasets.labelled.examples import DEFAULT_FRACTIONS, SPLITS, Example, LabelledDataset
from lmlab.datasets.labelled.registry import LABELLED, LabelledSpec
from lmlab.datasets.labelled.splitting import NEAR_DUPLICATE_THRESHOLD, deduplicate_and_split, describe_splits
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_jsonl


def load_labelled(
    name: str, *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> LabelledDataset:
    """Return the named labelled set from the cache, fetching, deduplicating and splitting it first if needed."""
    if name not in LABELLED:
        raise LmlabError(f"unknown labelled dataset {name!r}; known: {', '.join(sorted(LABELLED))}")
    spec = LABELLED[name]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = root / spec.name
    card = _cached_card(directory, spec)
    if card is None:
        card = _build(spec, root / DOWNLOADS_DIR, directory, progress=progress)
    splits = {split: _read_split(directory / f"{split}.jsonl") for split in SPLITS}
    return LabelledDataset(spec.name, splits, list(card["labels"]), card, directory)


def _recipe() -> dict[str, Any]:
    """How a cached set was cut; a cache built with another recipe is rebuilt."""
    return {
        "seed": 0,
        "fractions": dict(zip(SPLITS, DEFAULT_FRACTIONS, strict=True)),
        "exact_key": "lower-cased, single-spaced text",
        "near_duplicates": {"method": "MinHash LSH, character 5-grams", "threshold": NEAR_DUPLICATE_THRESHOLD},
    }


def _cached_card(directory: Path, spec: LabelledSpec) -> dict[str, Any] | None:
    """The card of a complete cached set built from this very source and recipe, or None."""
    card = read_card(directory, spec)
    complete = all((directory / f"{split}.jsonl").is_file() for split in SPLITS)
    return card if card is not None and card.get("recipe") == _recipe() and complete else None


def _read_split(path: Path) -> list[Example]:
    return [Example(record["text"], record["label"]) for _, record in read_jsonl(path)]


def _build(spec: LabelledSpec, downloads_dir: Path, directory: Path, *, progress: bool) -> dict[str, Any]:
    files = spec.source.read_files(spec.members, downloads_dir, progress=progress)
    conversion = spec.convert(files)
    examples = [example for example in conversion.examples if example.label in spec.labels]
    recipe = _recipe()
    splits, dedup = deduplicate_and_split(examples, seed=recipe["seed"])
    card = {
        **card_header(spec, list(files), conversion.notes),
        "recipe": recipe,
        **describe_splits(splits, list(spec.labels), dedup),
    }
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        for split, rows in splits.items():
            _write_split(tmp / f"{split}.jsonl", rows)
        write_card(tmp, card, labelled_card_markdown(card))
    return card


def _write_split(path: Path, examples: Iterable[Example]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps({"text": example.text, "label": example.label}, ensure_ascii=False) + "\n")
