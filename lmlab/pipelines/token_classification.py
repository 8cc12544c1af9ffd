"""token-classification: a run of `lmlab tune task=tagging` finds the entities of a text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lmlab.pipelines.base import Pipeline
from lmlab.pipelines.checks import check_tuned_task
from lmlab.runs import Run
from lmlab.tune.encoding import cls_sep_frame
from lmlab.tune.tasks.tagging import first_subwords


class TokenClassificationPipeline(Pipeline):
    """Entities in a text, grouped as transformers' ``aggregation_strategy="simple"`` groups them.

    The text is cut into words by the tokenizer's own pre-tokenizer (spaces and punctuation; each
    Chinese character for a BERT-style one), each word is tagged at its first subword, as in
    training, and neighbouring words form one entity while their tags continue it (I-X after B-X or
    I-X); a B- tag or another type starts a new one, an O ends it. Each entity reports its type,
    the mean of its words' tag probabilities, its text and its character span.
    """

    kinds = ("task",)

    @classmethod
    def check_model(cls, task: str, run: Run) -> None:
        check_tuned_task(task, run, "tagging")

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        return f"{text}\t" + ", ".join(f"{e['entity_group']} {e['word']!r} {e['score']:.3f}" for e in answer)

    def _run(self, texts: list[str], first_index: int) -> list[Any]:
        framed = cls_sep_frame(self.tokenizer) is not None
        encodings = [self.tokenizer.backend.encode(text, add_special_tokens=framed) for text in texts]
        block = self.model.config.block_size
        rows = [list(e.ids)[: block - 1] + list(e.ids)[-1:] if len(e.ids) > block else list(e.ids)
                for e in encodings]
        ids, mask = self._padded(rows)
        probs = self.model(ids, attention_mask=mask).logits.float().softmax(dim=-1).cpu()  # (B, T, K)
        labels = self.model.config.labels
        answers = []
        for r, (text, encoding) in enumerate(zip(texts, encodings, strict=True)):
            word_ids = list(encoding.word_ids)[: len(rows[r])]
            words = []  # (tag, probability, start, end) per word
            for position in first_subwords(word_ids):
                last = max(p for p, w in enumerate(word_ids) if w == word_ids[position])
                k = int(probs[r, position].argmax())
                words.append((labels[k], float(probs[r, position, k]), encoding.offsets[position][0],
                              encoding.offsets[last][1]))
            answers.append(group_entities(text, words))
        return answers


def group_entities(text: str, words: Sequence[tuple[str, float, int, int]]) -> list[dict[str, Any]]:
    """Consecutive (tag, score, start, end) words into {entity_group, score, word, start, end}; O words end groups."""
    groups: list[list[tuple[str, float, int, int]]] = []
    previous = "O"
    for word in words:
        prefix, _, kind = word[0].partition("-")
        if word[0] != "O" and (prefix == "B" or kind != previous or not groups):
            groups.append([word])
        elif word[0] != "O":
            groups[-1].append(word)
        previous = kind if word[0] != "O" else "O"
    return [{"entity_group": group[0][0].partition("-")[2] or group[0][0],
             "score": float(np.mean([w[1] for w in group])), "word": text[group[0][2] : group[-1][3]],
             "start": group[0][2], "end": group[-1][3]} for group in groups]
