"""The data stage: read, clean and deduplicate a corpus in one streaming pass.

    files ──read──> documents ──clean──> cleaned text ──exact dedup──> ──near dedup──> kept documents
                                 │                          │                 │
                                 └ dropped (reason)         └ exact copies    └ near copies

`prepare_documents` is a generator: the tokenizer trainer or the shard packer pulls documents one at
a time, so the corpus never has to fit in memory. Deduplication runs on the *cleaned* text, so two
copies that differ only in whitespace or full-width letters count as exact copies. A `PrepareReport`
passed in is filled as the documents flow, and is complete once the generator is exhausted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import Field

from lmlab.config import Config
from lmlab.data.clean import CleanConfig, DropReason, clean_text_with_reason
from lmlab.data.dedup import ExactDeduplicator, MinHashDeduplicator
from lmlab.data.readers import Document, PathsLike, TxtMode, iter_documents, path_entries
from lmlab.data.stats import format_table
from lmlab.errors import LmlabError


class DataConfig(Config):
    """Where the text is in each file, how it is cleaned, and how duplicates are removed."""

    text_field: str = "text"
    txt_mode: TxtMode = "file"
    clean: CleanConfig = Field(default_factory=CleanConfig)
    dedup: Literal["none", "exact", "near"] = "near"  # "near" removes exact copies first
    near_threshold: float = Field(0.8, gt=0.0, le=1.0)
    num_perm: int = Field(128, ge=1)
    shingle_size: int = Field(5, ge=1)


@dataclass
class PrepareReport:
    """What happened to the documents; chars_in counts all documents read, chars_out the kept ones."""

    documents_read: int = 0
    dropped_empty: int = 0
    dropped_too_short: int = 0
    dropped_too_long: int = 0
    dropped_low_alpha: int = 0
    dropped_blocklist: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    kept: int = 0
    chars_in: int = 0
    chars_out: int = 0

    def count_drop(self, reason: DropReason) -> None:
        field = f"dropped_{reason}"
        setattr(self, field, getattr(self, field) + 1)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def prepare_documents(
    paths: PathsLike, cfg: DataConfig | None = None, report: PrepareReport | None = None
) -> Iterator[str]:
    """Stream the cleaned, deduplicated documents of the corpus at `paths`.

    Paths are checked at the call; data errors, an empty corpus, and a corpus whose every document
    was dropped raise `LmlabError` while iterating.
    """
    cfg = cfg or DataConfig()
    documents = iter_documents(paths, text_field=cfg.text_field, txt_mode=cfg.txt_mode)
    return _prepare(documents, _describe(paths), cfg, report if report is not None else PrepareReport())


def _prepare(documents: Iterator[Document], where: str, cfg: DataConfig, report: PrepareReport) -> Iterator[str]:
    exact = ExactDeduplicator() if cfg.dedup != "none" else None
    near = MinHashDeduplicator(cfg.near_threshold, cfg.num_perm, cfg.shingle_size) if cfg.dedup == "near" else None
    for document in documents:
        report.documents_read += 1
        report.chars_in += len(document.text)
        text, reason = clean_text_with_reason(document.text, cfg.clean)
        if text is None:
            report.count_drop(reason)
        elif exact is not None and exact.is_duplicate(text):
            report.exact_duplicates += 1
        elif near is not None and near.is_duplicate(text):
            report.near_duplicates += 1
        else:
            report.kept += 1
            report.chars_out += len(text)
            yield text
    if report.documents_read == 0:
        raise LmlabError(f"{where}: the corpus is empty (no documents were read)")
    if report.kept == 0:  # deduplication always keeps the first copy, so cleaning dropped them all
        raise LmlabError(
            f"{where}: all {report.documents_read} documents were dropped by cleaning "
            f"({_drop_summary(report)}); loosen the clean settings (min_chars, max_chars, blocklist ...)"
        )


def _describe(paths: PathsLike) -> str:
    return ", ".join(str(entry) for entry in path_entries(paths))


def _drop_summary(report: PrepareReport) -> str:
    drops = {name: value for name, value in report.to_dict().items() if name.startswith("dropped_") and value}
    return ", ".join(f"{name.removeprefix('dropped_').replace('_', ' ')} {value}" for name, value in drops.items())


def format_report(report: PrepareReport) -> str:
    """The table `lmlab data` prints after preparing a corpus."""
    kept_share = report.kept / report.documents_read if report.documents_read else 0.0
    rows = [
        ("documents read", f"{report.documents_read:,}"),
        ("dropped: empty", f"{report.dropped_empty:,}"),
        ("dropped: too short", f"{report.dropped_too_short:,}"),
        ("dropped: too long", f"{report.dropped_too_long:,}"),
        ("dropped: few letters", f"{report.dropped_low_alpha:,}"),
        ("dropped: blocklist", f"{report.dropped_blocklist:,}"),
        ("exact duplicates", f"{report.exact_duplicates:,}"),
        ("near duplicates", f"{report.near_duplicates:,}"),
        ("kept", f"{report.kept:,} ({kept_share:.1%})"),
        ("characters in / out", f"{report.chars_in:,} / {report.chars_out:,}"),
    ]
    return format_table(rows)
