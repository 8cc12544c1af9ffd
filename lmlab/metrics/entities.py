"""Entity-level figures for BIO tags: the chunks of a tag sequence, and precision, recall and F1 over them.

A tagger is judged on whole entities, as seqeval and the CoNLL script judge it: a predicted entity
counts only when its type and both its ends match a gold one exactly, so getting "new" right and
"york" wrong earns nothing for "new york". Tag accuracy, the share of single tags right, comes along
as the figure that a tagger answering "O" everywhere already does well on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lmlab.errors import LmlabError

ChunkMode = Literal["conlleval", "strict"]


def bio_chunks(tags: Sequence[str], mode: ChunkMode = "strict") -> list[tuple[str, int, int]]:
    """Entities (type, first, last) in a BIO sequence, as seqeval finds them.

    strict (seqeval's mode="strict", scheme IOB2): an entity is B-X followed by any I-X; an I-X
    that does not continue an X entity belongs to none. conlleval (seqeval's default, the CoNLL
    script's rule): an I-X after O or after another type also starts an entity.
    """
    chunks: list[tuple[str, int, int]] = []
    kind: str | None = None
    start = 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        continues = prefix == "I" and label == kind
        if kind is not None and not continues:
            chunks.append((kind, start, position - 1))
            kind = None
        if prefix == "B" or (prefix == "I" and not continues and mode == "conlleval"):
            kind, start = label, position
    return chunks


@dataclass
class EntityScores:
    precision: float
    recall: float
    f1: float
    accuracy: float  # of single tags


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]],
                  mode: ChunkMode = "strict") -> EntityScores:
    """Micro precision, recall and F1 over exactly matching entities (type and both ends), and tag accuracy."""
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted, strict=True)):
        raise LmlabError("entity_scores: gold and predicted tag sequences must match in number and length")
    wanted = {(row, *chunk) for row, tags in enumerate(gold) for chunk in bio_chunks(tags, mode)}
    found = {(row, *chunk) for row, tags in enumerate(predicted) for chunk in bio_chunks(tags, mode)}
    hits = len(wanted & found)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(wanted) if wanted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    tags = sum(len(g) for g in gold)
    correct = sum(a == b for g, p in zip(gold, predicted, strict=True) for a, b in zip(g, p, strict=True))
    return EntityScores(precision, recall, f1, correct / tags if tags else 0.0)
