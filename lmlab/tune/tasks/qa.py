"""Extractive question answering: the answer is a span of the passage.

    {question, context, answers}   [CLS] question [SEP] context-window [SEP]
                                   hidden ──linear──> start and end logits (B, T, 2)

A context longer than the block is read in windows that overlap by doc_stride tokens; a window
without the whole answer points at [CLS]. A record's answer is the best legal span over all its
windows (post-processed as Hugging Face's ``postprocess_qa_predictions`` does). Figures: SQuAD
exact match and F1 of the answer text (lmlab.metrics.qa).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.metrics.qa import squad_scores
from lmlab.models.base import LMOutput
from lmlab.modes import evaluating
from lmlab.tokenizers import Tokenizer
from lmlab.train.objectives import Batch
from lmlab.tune.encoding import cls_sep_frame, pad_batch
from lmlab.tune.pooling import Pooling
from lmlab.tune.tasks.base import HeadConfig, TaskHead, TaskObjective, TaskSettings
from lmlab.tune.tasks.jsonl import JsonlTask

NEG = -1e4  # a logit no softmax picks, yet finite in half precision


class SpanHead(TaskHead):
    """Extractive QA: a start and an end logit per token; padding can be neither."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None, labels: Tensor | None, rows: int) -> LMOutput:
        logits = self.qa_outputs(hidden)  # (B, T, 2): [..., 0] start, [..., 1] end
        if attention_mask is not None:
            logits = logits.masked_fill(attention_mask[..., None] == 0, NEG)
        loss = None
        if labels is not None:  # (B, 2) the answer's first and last token (0, 0: [CLS], no answer in this window)
            loss = (F.cross_entropy(logits[..., 0].float(), labels[:, 0])
                    + F.cross_entropy(logits[..., 1].float(), labels[:, 1])) / 2
        return LMOutput(logits=logits, loss=loss)


@dataclass
class QAFeatures:
    """One row per window of a context: what the model reads and how to map its tokens back to the context."""

    ids: list[list[int]] = field(default_factory=list)
    token_types: list[list[int]] = field(default_factory=list)
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)  # context characters, None elsewhere
    example: list[int] = field(default_factory=list)  # which record each window came from
    spans: list[tuple[int, int]] = field(default_factory=list)  # the answer's first and last token; (0, 0): [CLS]
    contexts: list[str] = field(default_factory=list)  # per record: its context
    answers: list[list[str]] = field(default_factory=list)  # per record: its gold answer texts


def qa_windows(tokenizer: Tokenizer, question: str, context: str, block_size: int,
               doc_stride: int) -> tuple[list[list[int]], list[list[int]], list[list[tuple[int, int] | None]]]:
    """``[CLS] question [SEP] window [SEP]`` for each window of the context; neighbours share doc_stride tokens.

    Token offsets come from the tokenizer (characters of the original context, whatever the
    normalizer lowercased or stripped), so a token span maps back to the exact text.
    """
    frame = cls_sep_frame(tokenizer)
    if frame is None:
        raise LmlabError("extractive QA reads [CLS] question [SEP] context [SEP]: it needs a BERT-style tokenizer")
    cls, sep = frame
    asked = tokenizer.backend.encode(question, add_special_tokens=False).ids
    passage = tokenizer.backend.encode(context, add_special_tokens=False)
    room = block_size - len(asked) - 3  # context tokens per window
    if room <= doc_stride:
        raise LmlabError(f"a question of {len(asked)} tokens leaves {max(room, 0)} of the block's {block_size} "
                         f"tokens for the context, not more than doc_stride={doc_stride}; raise block_size or "
                         "lower doc_stride")
    ids, types, offsets = [], [], []
    start = 0
    while True:
        window = slice(start, start + room)
        ids.append([cls, *asked, sep, *passage.ids[window], sep])
        types.append([0] * (len(asked) + 2) + [1] * (len(passage.ids[window]) + 1))
        offsets.append([None] * (len(asked) + 2) + list(passage.offsets[window]) + [None])
        if start + room >= len(passage.ids):
            return ids, types, offsets
        start += room - doc_stride


def char_span_to_tokens(offsets: Sequence[tuple[int, int] | None], start_char: int,
                        end_char: int) -> tuple[int, int]:
    """The first and last token of characters [start_char, end_char) if the window holds them all, else (0, 0)."""
    inside = [i for i, offset in enumerate(offsets) if offset is not None]
    if not inside or offsets[inside[0]][0] > start_char or offsets[inside[-1]][1] < end_char:  # type: ignore[index]
        return 0, 0
    first = max(i for i in inside if offsets[i][0] <= start_char)  # type: ignore[index]
    last = min(i for i in inside if offsets[i][1] >= end_char)  # type: ignore[index]
    return first, last


def encode_qa(records: Sequence[dict[str, Any]], tokenizer: Tokenizer, block_size: int,
              doc_stride: int) -> QAFeatures:
    features = QAFeatures()
    for number, record in enumerate(records):
        answer_start = record["answers"]["answer_start"][0]  # the first gold answer is the one trained on
        answer_end = answer_start + len(record["answers"]["text"][0])
        for ids, types, offsets in zip(*qa_windows(tokenizer, record["question"], record["context"], block_size,
                                                    doc_stride), strict=True):
            features.ids.append(ids)
            features.token_types.append(types)
            features.offsets.append(offsets)
            features.example.append(number)
            features.spans.append(char_span_to_tokens(offsets, answer_start, answer_end))
        features.contexts.append(record["context"])
        features.answers.append(record["answers"]["text"])
    return features


@dataclass
class Answer:
    text: str
    score: float  # start logit + end logit
    start: int  # characters of the context
    end: int


def best_spans(start_logits: np.ndarray, end_logits: np.ndarray, offsets: Sequence[tuple[int, int] | None],
               n_best: int = 20, max_answer_length: int = 30) -> list[tuple[float, int, int]]:
    """Legal (score, first token, last token) spans of one window, best first.

    As Hugging Face's ``postprocess_qa_predictions``: the n_best highest start and end logits are
    paired; a pair is legal when both tokens lie in the context, the end is not before the start,
    and the span is at most max_answer_length tokens.
    """
    starts = np.argsort(start_logits)[::-1][:n_best]
    ends = np.argsort(end_logits)[::-1][:n_best]
    spans = []
    for s in starts.tolist():
        for e in ends.tolist():
            if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                continue
            if e < s or e - s + 1 > max_answer_length:
                continue
            spans.append((float(start_logits[s] + end_logits[e]), s, e))
    return sorted(spans, reverse=True)


def postprocess_qa(contexts: Sequence[str], features: QAFeatures, logits: Sequence[np.ndarray], n_best: int = 20,
                   max_answer_length: int = 30) -> list[Answer]:
    """Each record's best answer over all its windows; `logits[i]` is window i's (T, 2) start/end logits."""
    best: list[Answer] = [Answer("", float("-inf"), 0, 0) for _ in contexts]
    for window, (example, offsets) in enumerate(zip(features.example, features.offsets, strict=True)):
        spans = best_spans(logits[window][:, 0], logits[window][:, 1], offsets, n_best, max_answer_length)
        if spans and spans[0][0] > best[example].score:
            score, s, e = spans[0]
            first, last = offsets[s][0], offsets[e][1]  # type: ignore[index]
            best[example] = Answer(contexts[example][first:last], score, first, last)
    return best


class ExtractiveQA(TaskObjective):
    """Cross-entropy of the answer's first and last token, window by window."""

    def _batch(self, features: QAFeatures, indices: np.ndarray) -> Batch:
        ids, mask = pad_batch([features.ids[i] for i in indices], self.pad_id)
        types, _ = pad_batch([features.token_types[i] for i in indices], 0)
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
                "labels": torch.tensor([features.spans[i] for i in indices], dtype=torch.long)}

    def figures(self, model: nn.Module, features: QAFeatures, device: torch.device, prefix: str) -> dict[str, float]:
        logits, loss = self.logits(model, features, device)
        answers = postprocess_qa(features.contexts, features, logits)
        score = squad_scores([a.text for a in answers], features.answers)
        return {f"{prefix}loss": loss, f"{prefix}exact_match": score.exact_match, f"{prefix}f1": score.f1}

    def logits(self, model: nn.Module, features: QAFeatures, device: torch.device) -> tuple[list[np.ndarray], float]:
        """Each window's (T, 2) logits, unpadded, and the mean span loss."""
        logits, loss, window = [], 0.0, 0
        with evaluating(model):
            for batch in self.batches(features):
                out = model(**{key: value.to(device) for key, value in batch.items()})
                rows = len(batch["input_ids"])
                loss += float(out.loss) * rows
                logits += [out.logits[r, : len(features.ids[window + r])].float().cpu().numpy() for r in range(rows)]
                window += rows
        return logits, loss / max(len(features.ids), 1)


class QATask(JsonlTask):
    name = "qa"
    best_metric = "val_f1"
    fields = ("question", "context", "answers")

    def check(self, record: dict[str, Any], where: str) -> None:
        answers = record["answers"]
        if (not isinstance(answers, dict) or not answers.get("text")
                or len(answers.get("text", [])) != len(answers.get("answer_start", []))):
            raise LmlabError(f"{where}: answers must be {{text: [...], answer_start: [...]}} of equal, non-zero "
                             "length")
        for text, start in zip(answers["text"], answers["answer_start"], strict=True):
            if record["context"][start : start + len(text)] != text:
                raise LmlabError(f"{where}: the context at answer_start {start} does not read {text!r}")

    def encode(self, records: Sequence[dict[str, Any]], labels: Sequence[str], tokenizer: Tokenizer, block_size: int,
               settings: TaskSettings) -> QAFeatures:
        return encode_qa(records, tokenizer, block_size, settings.doc_stride)

    def head(self, hidden_size: int, labels: Sequence[str], settings: HeadConfig, pooling: Pooling) -> TaskHead:
        return SpanHead(hidden_size)

    def objective(self, train: QAFeatures, validation: QAFeatures, labels: Sequence[str], settings: TaskSettings,
                  pad_id: int) -> ExtractiveQA:
        loop = settings.train
        return ExtractiveQA(train, validation, loop.batch_size, loop.grad_accum, loop.seed, pad_id)
