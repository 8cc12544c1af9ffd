"""chatterbot-corpus conversations: small talk and trivia in English and Chinese, fetched on first use.

    PyPI chatterbot-corpus 1.3.3 ──> <cache>/downloads/WHEEL ──> data/{english,chinese}/*.yml
        ──> conversations (turns alternate user, assistant) ──> exact duplicates dropped, at most
        REPLIES_PER_PROMPT replies kept per prompt ──> split by prompt 80/10/10
        ──> <cache>/chatterbot-LANG/{train,validation,test}.jsonl + card.json + CARD.md (lmlab.datasets.chat.cached)

The corpus repeats itself: 2,026 English conversations hold 899 distinct ones, and a few prompts
("Tell me a joke", 玩笑) carry dozens of replies each. Held-out conversations are only held out
if no split shares a prompt with another, so the split is made over prompts, not conversations,
and the replies a prompt keeps are capped so that no single prompt fills a test split.
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmlab.datasets.chat.cached import SPLITS, cached_splits
from lmlab.datasets.sources import PackageSource
from lmlab.errors import LmlabError

Record = dict[str, Any]

REPLIES_PER_PROMPT = 5
SPLIT_SEED = 0
RECIPE = {"replies_per_prompt": REPLIES_PER_PROMPT, "seed": SPLIT_SEED, "fractions": [0.8, 0.1, 0.1]}

CHATTERBOT = PackageSource(
    registry="pypi",
    package="chatterbot-corpus",
    version="1.3.3",
    filename="chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
    sha256="86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
)
FOLDERS = {"en": "english", "zh": "chinese"}


@dataclass(frozen=True)
class ChatterbotSpec:
    """What the card says of one language's set (the fields `card_header` reads)."""

    name: str
    language: str
    description: str
    licence: str = "BSD-3-Clause (chatterbot-corpus)"
    source: PackageSource = CHATTERBOT
    derivation: str = (
        "Each conversation of a YAML file's `conversations` list becomes one record of messages whose turns "
        "alternate user and assistant, starting with the user; a final user turn with no reply is dropped. "
        "Conversations repeated exactly are kept once, a prompt (lower-cased, single-spaced, without final "
        f"punctuation) keeps at most {REPLIES_PER_PROMPT} conversations, and whole prompts are dealt to "
        f"train/validation/test (80/10/10 of the conversations, seed {SPLIT_SEED}) so that no split shares a "
        "prompt with another. Each record carries its file's category."
    )

    @property
    def members(self) -> tuple[str, ...]:
        return (f"chatterbot_corpus/data/{FOLDERS[self.language]}/*.yml",)


SPECS = {
    language: ChatterbotSpec(f"chatterbot-{language}", language,
                             f"chatterbot-corpus's {FOLDERS[language].title()} conversations: greetings, small talk, "
                             "trivia, jokes, questions about the bot")
    for language in FOLDERS
}


def prompt_key(text: str) -> str:
    """What makes two prompts the same question: case, spacing and final punctuation aside."""
    return re.sub(r"\s+", " ", text).strip().lower().rstrip("?？.。!！")


def conversations_of(member: str, data: bytes, language: str) -> list[Record]:
    """The records of one YAML file of the corpus."""
    try:
        document = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LmlabError(f"{member}: not a readable YAML file ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("conversations"), list):
        raise LmlabError(f"{member}: no conversations list")
    category = Path(member).stem
    records = []
    for turns in document["conversations"]:
        turns = [str(turn).strip() for turn in turns] if isinstance(turns, list) else []
        turns = turns[: len(turns) // 2 * 2]
        if not turns or not all(turns):
            continue
        messages = [{"role": ("user", "assistant")[i % 2], "content": turn} for i, turn in enumerate(turns)]
        records.append({"messages": messages, "category": category, "language": language})
    return records


def split_by_prompt(records: list[Record]) -> tuple[dict[str, list[Record]], dict[str, int]]:
    """Drop repeats, cap each prompt's replies, and deal whole prompts to the splits (see the module)."""
    by_prompt: dict[str, list[Record]] = defaultdict(list)
    seen, repeats, capped = set(), 0, 0
    for record in records:
        turns = tuple(message["content"] for message in record["messages"])
        if turns in seen:
            repeats += 1
            continue
        seen.add(turns)
        group = by_prompt[prompt_key(turns[0])]
        if len(group) < REPLIES_PER_PROMPT:
            group.append(record)
        else:
            capped += 1
    prompts = sorted(by_prompt)
    random.Random(SPLIT_SEED).shuffle(prompts)
    total = sum(len(group) for group in by_prompt.values())
    splits: dict[str, list[Record]] = {split: [] for split in SPLITS}
    dealt = 0
    for prompt in prompts:
        split = "train" if dealt < 0.8 * total else "validation" if dealt < 0.9 * total else "test"
        splits[split] += by_prompt[prompt]
        dealt += len(by_prompt[prompt])
    counts = {"conversations_read": len(records), "exact_repeats_removed": repeats,
              f"beyond_{REPLIES_PER_PROMPT}_per_prompt_removed": capped, "conversations_kept": total,
              "prompts": len(prompts)}
    return splits, counts


def chatterbot_splits(language: str, cache_dir: str | os.PathLike[str] | None = None,
                      progress: bool = True) -> dict[str, list[Record]]:
    """The cached train/validation/test conversations of chatterbot-`language`, built on first use."""
    spec = SPECS[language]

    def make(files: dict[str, bytes]) -> tuple[dict[str, list[Record]], dict[str, int], list[str]]:
        records = [record for member in sorted(files) for record in conversations_of(member, files[member], language)]
        if not records:
            raise LmlabError(f"{spec.name}: the files read from {spec.source.filename} hold no conversations")
        splits, counts = split_by_prompt(records)
        return splits, counts, [f"categories: {', '.join(sorted({record['category'] for record in records}))}"]

    return cached_splits(spec, RECIPE, make, cache_dir, progress)
