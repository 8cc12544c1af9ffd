"""Cleaning text: one document in, a tidier document (or a reason to drop it) out.

Raw text carries noise a model should not spend capacity on: the same letter written as different
code points, invisible control characters, runs of spaces, boilerplate. Each step below is a switch
in `CleanConfig`, applied in this order:

    emoji_to_text        "😀" -> ":grinning_face:"  (first: an emoji can span several code points,
                         joined by U+200D, which strip_control would otherwise cut apart)
    normalize            Unicode NFKC: full-width "ＡＢＣ１２３，" -> "ABC123,", "ﬁ" -> "fi";
                         Chinese characters are unchanged (but for the few compatibility
                         ideographs, U+F900-FAFF, which become their unified twins)
    strip_control        drop control and format characters (U+0000-001F, U+200B ...) except \\n and \\t
    collapse_whitespace  runs of spaces/tabs -> one space, 3+ newlines -> a blank line, strip the ends
    filters              drop the document if empty, too short, too long, mostly non-letters, or
                         containing a blocklisted word

`clean_text_with_reason` says why a document was dropped, so the pipeline can count the reasons.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from typing import Literal

import emoji
from pydantic import Field, field_validator, model_validator

from lmlab.config import Config, FieldError

DropReason = Literal["empty", "too_short", "too_long", "low_alpha", "blocklist"]

REGEX_PREFIX = "re:"


class CleanConfig(Config):
    """How documents are cleaned and which are dropped."""

    normalize: Literal["NFKC", "NFC", "none"] = "NFKC"
    strip_control: bool = True
    collapse_whitespace: bool = True
    emoji_to_text: bool = True
    min_chars: int = Field(1, ge=0)
    max_chars: int | None = Field(None, ge=1)
    # Each entry is a word or phrase (matched case-insensitively; an entry of Latin letters and digits
    # only matches as a whole word, so "ass" does not drop "class"), or "re:PATTERN" for a regex.
    blocklist: list[str] = []
    # Drop documents whose share of letters (any script) among non-space characters is below this,
    # e.g. tables of numbers or markup. None keeps everything.
    min_alpha_share: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _length_range(self) -> CleanConfig:
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise FieldError("max_chars", f"must be at least min_chars ({self.min_chars})", self.max_chars)
        return self

    @field_validator("blocklist")
    @classmethod
    def _entries_compile(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if not entry or entry == REGEX_PREFIX:
                raise ValueError("an entry is empty")
            _entry_pattern(entry)
        return entries


def clean_text(text: str, cfg: CleanConfig) -> str | None:
    """Return the cleaned document, or None when a filter drops it."""
    cleaned, _ = clean_text_with_reason(text, cfg)
    return cleaned


def clean_text_with_reason(text: str, cfg: CleanConfig) -> tuple[str | None, DropReason | None]:
    """Return (cleaned document, None), or (None, the reason it was dropped)."""
    if cfg.emoji_to_text and _maybe_emoji().search(text):
        text = emoji.demojize(text)
    if cfg.normalize != "none":
        text = unicodedata.normalize(cfg.normalize, text)
    if cfg.strip_control:
        text = strip_control_chars(text)
    if cfg.collapse_whitespace:
        text = collapse_whitespace(text)
    reason = _drop_reason(text, cfg)
    return (None, reason) if reason else (text, None)


def _drop_reason(text: str, cfg: CleanConfig) -> DropReason | None:
    if not text.strip():
        return "empty"
    if len(text) < cfg.min_chars:
        return "too_short"
    if cfg.max_chars is not None and len(text) > cfg.max_chars:
        return "too_long"
    if cfg.min_alpha_share is not None and alpha_share(text) < cfg.min_alpha_share:
        return "low_alpha"
    blocklist = _blocklist_pattern(tuple(cfg.blocklist))
    if blocklist is not None and blocklist.search(text):
        return "blocklist"
    return None


_CRLF = re.compile(r"\r\n?")
_SPACES = re.compile(r"[^\S\n]+")  # any whitespace but the newline: tabs, U+3000, no-break space ...
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_WHITESPACE = re.compile(r"\s+")


def _char_class(codes: list[int]) -> re.Pattern[str]:
    """A regex character class of the given code points, merged into ranges.

    re tests a class range by range, so a few ranges match many times faster than many single characters.
    """
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and ranges[-1][1] >= code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return re.compile("[" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges) + "]")


@functools.cache
def _maybe_emoji() -> re.Pattern[str]:
    """A quick test for text that may hold an emoji: demojize walks the text in Python, so most text skips it.

    It matches the characters that can begin an emoji in the Basic Multilingual Plane, U+20E3 (every
    keycap emoji such as "1️⃣" holds it), and any character beyond U+FFFF: one range is far faster to
    test than the hundreds of emoji ranges there, and such characters are rare outside emoji.
    """
    firsts = [ord(sequence[0]) for sequence in emoji.EMOJI_DATA if "\u0080" <= sequence[0] <= "\uffff"]
    return _char_class([*firsts, 0x20E3, *range(0x10000, sys.maxunicode + 1)])


@functools.cache
def _control_chars() -> re.Pattern[str]:
    """Every control (Cc) and format (Cf) character except newline and tab."""
    return _char_class(
        [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in "\n\t"]
    )


def strip_control_chars(text: str) -> str:
    """Drop control and format characters (zero-width spaces, BOMs, bidi marks), keeping \\n and \\t."""
    # Old Mac and Windows line endings become \n first: dropping the control \r would join lines.
    return _control_chars().sub("", _CRLF.sub("\n", text))


def collapse_whitespace(text: str) -> str:
    """Runs of spaces/tabs -> one space, no space at line ends, at most one blank line, no outer space."""
    text = _SPACES.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def alpha_share(text: str) -> float:
    """Share of letters (Latin, Han, any script) among the non-space characters; 0.0 for blank text."""
    visible = _WHITESPACE.sub("", text)
    if not visible:
        return 0.0
    return sum(ch.isalpha() for ch in visible) / len(visible)


def _entry_pattern(entry: str) -> str:
    if entry.startswith(REGEX_PREFIX):
        pattern = entry[len(REGEX_PREFIX) :]
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{entry!r} is not a valid regular expression ({exc})") from None
        return f"(?:{pattern})"
    if entry.isascii() and entry.replace(" ", "").isalnum():
        return rf"\b{re.escape(entry)}\b"
    # Chinese has no spaces between words, so a word boundary would never match inside a sentence.
    return re.escape(entry)


@functools.lru_cache(maxsize=16)
def _blocklist_pattern(entries: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled alternation for the whole blocklist (cached: it is used for every document)."""
    if not entries:
        return None
    return re.compile("|".join(_entry_pattern(e) for e in entries), re.IGNORECASE)
