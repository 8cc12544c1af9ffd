"""The Markdown page of a labelled set's card: source, labels, counts per split and how the examples were derived.

The same facts are in ``card.json`` for programs (see `lmlab.datasets.cards` for the corpora's page).
"""

from __future__ import annotations

from typing import Any


def labelled_card_markdown(card: dict[str, Any]) -> str:
    """Render a labelled set's card (as stored in card.json) as a short Markdown page."""
    source = card["source"]
    lines = [f"# {card['name']}", "", card["description"], "", "| | |", "|---|---|"]
    lines += [
        f"| language | {card['language']} |",
        f"| licence | {card['licence']} |",
        f"| source | {source['package']} {source['version']} ({source['registry']}): {source['url']} |",
        f"| file | {source['file']} |",
        f"| sha256 | `{source['sha256']}` |",
        f"| labels | {', '.join(map(str, card['labels']))} |",
        "| files | `train.jsonl`, `validation.jsonl`, `test.jsonl` (JSONL, one `{text, label}` per line) |",
    ]
    labels = [str(label) for label in card["labels"]]
    lines += ["", "## Splits", "", "| split | " + " | ".join(labels) + " | total | majority baseline |"]
    lines += ["|---" * (len(labels) + 3) + "|"]
    for split, counts in card["counts"].items():
        baseline = card["majority_baseline"][split]
        accuracy = "n/a" if baseline["accuracy"] is None else f"{baseline['accuracy']:.4f} ({baseline['label']})"
        row = [split, *(f"{counts[label]:,}" for label in labels), f"{counts['total']:,}", accuracy]
        lines.append("| " + " | ".join(row) + " |")
    recipe, dedup = card["recipe"], card["deduplication"]
    fractions = "/".join(f"{fraction:g}" for fraction in recipe["fractions"].values())
    lines += ["", "## How the examples were derived", "", card["derivation"], ""]
    lines += [f"- {note}" for note in card["notes"]]
    lines += [
        f"- deduplicated before the split: {dedup['examples_read']:,} examples read, {dedup['empty_dropped']:,} "
        f"empty, {dedup['exact_duplicates_removed']:,} exact duplicates ({recipe['exact_key']}), "
        f"{dedup['conflicting_label_texts_removed']:,} texts dropped for carrying two labels, "
        f"{dedup['near_duplicates_removed']:,} near duplicates (Jaccard >= "
        f"{recipe['near_duplicates']['threshold']}); {dedup['examples_kept']:,} kept",
        f"- split {fractions} (train/validation/test) within each label, seed {recipe['seed']}",
    ]
    lines += ["", f"## Files read from {source['file']}", ""] + [f"- `{member}`" for member in card["members"]]
    return "\n".join(lines) + "\n"
