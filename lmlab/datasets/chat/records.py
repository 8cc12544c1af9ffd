"""Reading a user's instruction and preference files (DESIGN's JSONL formats), every defect named by line.

    instruction  {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
    preference   {"prompt": "..." or [messages], "chosen": "...", "rejected": "..."}

Other fields ride along untouched (a verifiable task's ``answer``, say). A preference's prompt is
always returned as messages: a string becomes one user turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmlab.errors import LmlabError
from lmlab.tokenizers.chat import check_messages

Record = dict[str, Any]


class Located(dict):  # type: ignore[type-arg]
    """A record that remembers where it was read (``where``: "file:line"), so that a defect found only
    later, such as a conversation longer than the model's context, is named where it can be fixed."""

    where: str = ""


def where_of(record: Record, fallback: str) -> str:
    """The file and line `record` was read from, or `fallback` for a record lmlab made (a named set)."""
    return getattr(record, "where", "") or fallback


def read_jsonl_records(path: str | Path, check: Callable[[Any, str], Record]) -> list[Record]:
    """Each line of a JSONL file as a record, checked by `check(record, "file:line")`; blank lines skipped."""
    path = Path(path)
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise LmlabError(f"{path}: cannot be read ({exc.strerror})") from None
    records = []
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LmlabError(f"{where}: not UTF-8 (byte {exc.start})") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LmlabError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise LmlabError(f"{where}: a record must be a JSON object")
        located = Located(check(record, where))
        located.where = where
        records.append(located)
    if not records:
        raise LmlabError(f"{path}: no records")
    return records


def check_conversation(record: Record, where: str) -> Record:
    if "messages" not in record:
        raise LmlabError(f'{where}: an instruction record needs "messages" (a list of {{role, content}})')
    messages = check_messages(record["messages"], where)
    if not any(message["role"] == "assistant" for message in messages):
        raise LmlabError(f"{where}: messages hold no assistant turn, so there is nothing to learn to write")
    return record


def check_preference(record: Record, where: str) -> Record:
    for field in ("prompt", "chosen", "rejected"):
        if field not in record:
            raise LmlabError(f'{where}: a preference record needs "{field}" (fields: prompt, chosen, rejected)')
    for field in ("chosen", "rejected"):
        if not isinstance(record[field], str) or not record[field].strip():
            raise LmlabError(f"{where}: {field} must be a non-empty string")
    prompt = record["prompt"]
    if isinstance(prompt, str):
        if not prompt.strip():
            raise LmlabError(f"{where}: prompt is empty")
        prompt = [{"role": "user", "content": prompt}]
    prompt = check_messages(prompt, f"{where}: prompt")
    if prompt[-1]["role"] == "assistant":
        raise LmlabError(f"{where}: prompt ends with an assistant turn; chosen and rejected are that turn")
    return {**record, "prompt": prompt}


def read_conversations(path: str | Path) -> list[Record]:
    """The conversations of a JSONL instruction file."""
    return read_jsonl_records(path, check_conversation)


def read_preferences(path: str | Path) -> list[Record]:
    """The pairs of a JSONL preference file, each prompt as messages."""
    return read_jsonl_records(path, check_preference)
