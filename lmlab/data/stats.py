"""Corpus statistics: what is in the data before any model sees it.

One streaming pass counts documents, characters and UTF-8 bytes, the share of documents that are
exact copies of an earlier one, and the mix of scripts. The bytes-per-character ratio already tells
the story of a tokenizer to come: about 1 for English, about 3 for Chinese.

Script shares are taken over the non-space characters:
    CJK    Han ideographs: CJK Unified Ideographs (U+4E00-9FFF), Extension A (U+3400-4DBF), the
           Compatibility Ideographs (U+F900-FAFF) and the supplementary-plane extensions
           (U+20000-323AF). Kana, Hangul and CJK punctuation ("，。") are not counted: the share is
           meant to say how Chinese the corpus is.
    Latin  A-Z and a-z, their accented forms (Latin-1 Supplement, Extended-A/B, Extended Additional)
           and the full-width forms Ａ-Ｚ ａ-ｚ.
Digits, punctuation, emoji and other scripts make up the rest.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from lmlab.data.dedup import ExactDeduplicator
from lmlab.data.readers import PathsLike, TxtMode, read_documents

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323af]")
_LATIN = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\uff21-\uff3a\uff41-\uff5a]")
_WHITESPACE = re.compile(r"\s+")


def _count(pattern: re.Pattern[str], text: str) -> int:
    # Deleting the matches runs in C; counting them one by one in Python would be many times slower.
    return len(text) - len(pattern.sub("", text))


@dataclass
class CorpusStats:
    """Counts over a corpus; rates and shares are fractions in [0, 1] (0.0 for an empty corpus)."""

    documents: int = 0
    characters: int = 0
    bytes: int = 0
    exact_duplicates: int = 0
    non_space_characters: int = 0
    cjk_characters: int = 0
    latin_characters: int = 0
    shortest_document: int = 0
    longest_document: int = 0

    @property
    def exact_duplicate_rate(self) -> float:
        return self.exact_duplicates / self.documents if self.documents else 0.0

    @property
    def cjk_share(self) -> float:
        return self.cjk_characters / self.non_space_characters if self.non_space_characters else 0.0

    @property
    def latin_share(self) -> float:
        return self.latin_characters / self.non_space_characters if self.non_space_characters else 0.0

    @property
    def mean_document_chars(self) -> float:
        return self.characters / self.documents if self.documents else 0.0

    @property
    def bytes_per_char(self) -> float:
        return self.bytes / self.characters if self.characters else 0.0

    def to_dict(self) -> dict[str, int | float]:
        """The counts and the derived rates, ready for JSON."""
        derived = ("exact_duplicate_rate", "cjk_share", "latin_share", "mean_document_chars", "bytes_per_char")
        return {**asdict(self), **{name: getattr(self, name) for name in derived}}

    def add(self, text: str, duplicate: bool) -> None:
        """Count one more document."""
        length = len(text)
        self.shortest_document = length if self.documents == 0 else min(self.shortest_document, length)
        self.longest_document = max(self.longest_document, length)
        self.documents += 1
        self.characters += length
        self.bytes += len(text.encode("utf-8"))
        self.exact_duplicates += duplicate
        self.non_space_characters += length - _count(_WHITESPACE, text)
        self.cjk_characters += _count(_CJK, text)
        self.latin_characters += _count(_LATIN, text)


def corpus_stats(paths: PathsLike, *, text_field: str = "text", txt_mode: TxtMode = "file") -> CorpusStats:
    """Read the corpus once (streaming) and count what is in it, as read (before cleaning)."""
    stats = CorpusStats()
    seen = ExactDeduplicator()
    for text in read_documents(paths, text_field=text_field, txt_mode=txt_mode):
        stats.add(text, seen.is_duplicate(text))
    return stats


def format_table(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns: labels left, values right."""
    label_width = max((len(label) for label, _ in rows), default=0)
    value_width = max((len(value) for _, value in rows), default=0)
    return "\n".join(f"{label:<{label_width}}  {value:>{value_width}}" for label, value in rows)


def format_stats(stats: CorpusStats) -> str:
    """The table `lmlab data stats` prints."""
    return format_table(
        [
            ("documents", f"{stats.documents:,}"),
            ("characters", f"{stats.characters:,}"),
            ("UTF-8 bytes", f"{stats.bytes:,}"),
            ("bytes per character", f"{stats.bytes_per_char:.2f}"),
            ("mean document length (chars)", f"{stats.mean_document_chars:,.1f}"),
            ("shortest / longest document", f"{stats.shortest_document:,} / {stats.longest_document:,}"),
            ("exact duplicates", f"{stats.exact_duplicates:,} ({stats.exact_duplicate_rate:.1%})"),
            ("CJK share of non-space chars", f"{stats.cjk_share:.1%}"),
            ("Latin share of non-space chars", f"{stats.latin_share:.1%}"),
        ]
    )
