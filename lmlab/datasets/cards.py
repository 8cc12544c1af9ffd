"""Dataset cards: what a corpus is, where it came from, and what was done to it.

Every cached corpus carries two cards with the same facts: ``card.json`` for programs and
``CARD.md`` for people. A learner who finds a corpus folder months later can tell from the card
which package it came from, which licence binds it, how big it is and how its text was derived.
"""

from __future__ import annotations

from typing import Any


def corpus_card_markdown(card: dict[str, Any]) -> str:
    """Render a card (as stored in card.json) as a short Markdown page."""
    source, size = card["source"], card["size"]
    rows = [
        ("language", card["language"]),
        ("licence", card["licence"]),
        ("source", f"{source['package']} {source['version']} ({source['registry']}): {source['url']}"),
        ("file", source["file"]),
        ("sha256", f"`{source['sha256']}`"),
        ("documents", f"{size['documents']:,}"),
        ("characters", f"{size['characters']:,}"),
        ("bytes (UTF-8)", f"{size['bytes']:,}"),
        (
            "corpus file",
            f"`{card['corpus_file']}` (JSONL, one document per line in field `text`, with its `id`)",
        ),
    ]
    lines = [f"# {card['name']}", "", card["description"], "", "| | |", "|---|---|"]
    lines += [f"| {field} | {value} |" for field, value in rows]
    lines += ["", "## How the text was derived", "", card["derivation"], ""]
    lines += [f"- {note}" for note in card["notes"]]
    members = card["members"]
    lines += ["", f"## Files read from {source['file']} ({len(members)})", ""]
    lines += [f"- `{member}`" for member in members]
    return "\n".join(lines) + "\n"
