"""A named conversation set built once from a package's files and cached with its card.

    registry package ──> <cache>/downloads/ARCHIVE ──> the members the set needs ──> make(files)
        ──> <cache>/NAME/{train,validation,test}.jsonl + card.json + CARD.md

A later call finds the card naming the same source and recipe and reads the splits back, with no
network; as for corpora, the folder is built under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from lmlab.datasets.corpora import DOWNLOADS_DIR, card_header, default_cache_dir, read_card, write_card
from lmlab.datasets.sources import PackageSource
from lmlab.files import atomic_path, read_jsonl

Record = dict[str, Any]
Splits = dict[str, list[Record]]
SPLITS = ("train", "validation", "test")


class SetSpec(Protocol):
    """What the card says of a set (the fields `card_header` reads)."""

    name: str
    language: str
    description: str
    licence: str
    source: PackageSource
    derivation: str

    @property
    def members(self) -> tuple[str, ...]: ...


# files read -> the splits, the card's counts of what was kept and dropped, and its notes
Maker = Callable[[dict[str, bytes]], tuple[Splits, dict[str, int], list[str]]]


def cached_splits(spec: SetSpec, recipe: dict[str, Any], make: Maker,
                  cache_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> Splits:
    """The set's splits from the cache, made from the package's files first if the cache lacks them."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = root / spec.name
    card = read_card(directory, spec)
    complete = all((directory / f"{split}.jsonl").is_file() for split in SPLITS)
    if card is None or card.get("recipe") != recipe or not complete:
        files = spec.source.read_files(spec.members, root / DOWNLOADS_DIR, progress=progress)
        splits, counts, notes = make(files)
        card = {**card_header(spec, sorted(files), notes), "recipe": recipe, "deduplication": counts,
                "counts": {split: len(rows) for split, rows in splits.items()}}
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            for split, rows in splits.items():
                with (tmp / f"{split}.jsonl").open("w", encoding="utf-8") as out:
                    out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            write_card(tmp, card, chat_card_markdown(card))
    return {split: [record for _, record in read_jsonl(directory / f"{split}.jsonl")] for split in SPLITS}


def chat_card_markdown(card: dict[str, Any]) -> str:
    """A conversation set's card as a short Markdown page."""
    source = card["source"]
    lines = [f"# {card['name']}", "", card["description"], "", "| | |", "|---|---|",
             f"| language | {card['language']} |", f"| licence | {card['licence']} |",
             f"| source | {source['package']} {source['version']} ({source['registry']}): {source['url']} |",
             f"| sha256 | `{source['sha256']}` |"]
    lines += [f"| {field.replace('_', ' ')} | {value:,} |" for field, value in card["deduplication"].items()]
    lines += [f"| {split} | {count:,} records |" for split, count in card["counts"].items()]
    lines += ["", "## How the records were derived", "", card["derivation"], ""]
    lines += [f"- {note}" for note in card["notes"]]
    lines += ["", f"## Files read ({len(card['members'])})", ""] + [f"- `{member}`" for member in card["members"]]
    return "\n".join(lines) + "\n"
