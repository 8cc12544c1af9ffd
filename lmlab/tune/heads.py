"""Task heads beyond one label per text: tagging words, answering from a passage, choosing an answer.

Each head reads the backbone's hidden states (B, T, C), as the classification head does, and each
task brings its objective (batches for the one training loop, validation figures) and the
post-processing that turns logits back into words:

    tagging          {tokens, tags}       hidden (B, T, C) ──linear──> tag logits (B, T, K)
                                          words -> subwords: only a word's first subword carries its tag
                                          (the others get -100, ignored by the loss), as Hugging Face does
    qa               {question, context,  [CLS] question [SEP] context-window [SEP]
                      answers}            hidden ──linear──> start and end logits (B, T, 2); a context
                                          longer than the block is read in windows that overlap by
                                          doc_stride tokens; a window without the answer points at [CLS]
    multiple_choice  {question, choices,  every (question, choice) pair is one row: (B, N, T) ──> (B*N, T)
                      answer}             ──pool──> (B*N, C) ──linear──> one score per pair ──> (B, N),
                                          softmax over the N choices

Figures: tagging gives token accuracy and entity-level precision, recall and F1 (chunks as seqeval
cuts them); qa gives SQuAD exact match and F1 of the post-processed answer text
(lmlab.metrics.qa); multiple choice gives accuracy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.metrics.classification import precision_recall_f1
from lmlab.metrics.qa import squad_scores
from lmlab.models import read_model_json
from lmlab.models.base import LMOutput
from lmlab.pipelines import Pipeline, _load
from lmlab.tokenizers import Tokenizer
from lmlab.tune.tasks import Batch, SequenceClassification, majority_baseline, pad_batch

Task = Literal["classification", "tagging", "qa", "multiple_choice"]
TASKS: tuple[str, ...] = ("classification", "tagging", "qa", "multiple_choice")
BEST_METRIC = {"tagging": "val_f1", "qa": "val_f1", "multiple_choice": "val_accuracy"}
IGNORE = -100  # cross-entropy skips these positions: padding, special tokens, a word's later subwords
NEG = -1e4  # a logit no softmax picks, yet finite in half precision


# ---- the heads ------------------------------------------------------------------------------------

class TaggingHead(nn.Module):
    """One label per token: a linear layer over every hidden state."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None, labels: Tensor | None, rows: int) -> LMOutput:
        logits = self.classifier(self.dropout(hidden))  # (B, T, K)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        return LMOutput(logits=logits, loss=loss)


class SpanHead(nn.Module):
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


class ChoiceHead(nn.Module):
    """Multiple choice: one score per (question, choice) row from its pooled vector; softmax across a question's."""

    def __init__(self, hidden_size: int, dropout: float, pooling: str):
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.scorer = nn.Linear(hidden_size, 1)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None, labels: Tensor | None, rows: int) -> LMOutput:
        from lmlab.tune.model import pool

        scores = self.scorer(self.dropout(pool(hidden, attention_mask, self.pooling)))  # (B*N, 1)
        logits = scores.view(rows, -1)  # (B, N)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return LMOutput(logits=logits, loss=loss)


def task_head(task: str, hidden_size: int, num_labels: int, dropout: float, pooling: str) -> nn.Module:
    if task == "tagging":
        return TaggingHead(hidden_size, num_labels, dropout)
    if task == "qa":
        return SpanHead(hidden_size)
    if task == "multiple_choice":
        return ChoiceHead(hidden_size, dropout, pooling)
    raise LmlabError(f"task {task!r}: known tasks are {', '.join(TASKS)}")


# ---- reading the task's records -------------------------------------------------------------------

REQUIRED = {"tagging": ("tokens", "tags"), "qa": ("question", "context", "answers"),
            "multiple_choice": ("question", "choices", "answer")}


def _check_record(task: str, record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise LmlabError(f"{where}: a record must be a JSON object")
    missing = [name for name in REQUIRED[task] if name not in record]
    if missing:
        raise LmlabError(f"{where}: a {task} record needs the field {missing[0]!r} "
                         f"(fields: {', '.join(REQUIRED[task])})")
    if task == "tagging":
        tokens, tags = record["tokens"], record["tags"]
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags) or not tokens:
            raise LmlabError(f"{where}: tokens and tags must be non-empty lists of the same length")
    elif task == "qa":
        answers = record["answers"]
        if (not isinstance(answers, dict) or not answers.get("text")
                or len(answers.get("text", [])) != len(answers.get("answer_start", []))):
            raise LmlabError(f"{where}: answers must be {{text: [...], answer_start: [...]}} of equal, non-zero "
                             "length")
        for text, start in zip(answers["text"], answers["answer_start"], strict=True):
            if record["context"][start : start + len(text)] != text:
                raise LmlabError(f"{where}: the context at answer_start {start} does not read {text!r}")
    else:
        choices, answer = record["choices"], record["answer"]
        if not isinstance(choices, list) or len(choices) < 2:
            raise LmlabError(f"{where}: choices must be a list of at least two texts")
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise LmlabError(f"{where}: answer must be the index of the right choice (0..{len(choices) - 1})")
    return record


def read_task_file(path: Path, task: str) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LmlabError(f"{path}:{number}: not JSON ({exc.msg})") from None
                records.append(_check_record(task, record, f"{path}:{number}"))
    if not records:
        raise LmlabError(f"{path}: no records")
    return records


def read_task_data(path: str | Path, task: str, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """train/validation/test records: a directory of the three .jsonl files, or one .jsonl cut 80/10/10 (seeded)."""
    path = Path(path)
    if path.is_dir():
        missing = [split for split in ("train", "validation", "test") if not (path / f"{split}.jsonl").exists()]
        if missing:
            raise LmlabError(f"{path}: no {missing[0]}.jsonl (a {task} directory holds train, validation and test)")
        return {split: read_task_file(path / f"{split}.jsonl", task) for split in ("train", "validation", "test")}
    if path.suffix != ".jsonl":
        raise LmlabError(f"{path}: {task} data is JSONL (DESIGN's labelled formats)")
    records = read_task_file(path, task)
    if len(records) < 10:
        raise LmlabError(f"{path}: {len(records)} records are too few to split 80/10/10")
    order = np.random.default_rng(seed).permutation(len(records))
    cut1, cut2 = int(0.8 * len(records)), int(0.9 * len(records))
    return {"train": [records[i] for i in order[:cut1]], "validation": [records[i] for i in order[cut1:cut2]],
            "test": [records[i] for i in order[cut2:]]}


def _frame(tokenizer: Tokenizer) -> tuple[int, int] | None:
    """([CLS], [SEP]) ids for a BERT-style tokenizer, None for a decoder's."""
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    return None if cls is None or sep is None else (cls, sep)


# ---- tagging --------------------------------------------------------------------------------------

@dataclass
class TaggedExamples:
    ids: list[list[int]]
    labels: list[list[int]]  # per token: the word's tag index on its first subword, else IGNORE
    first_tokens: list[list[int]]  # per kept word: the position of its first subword
    tags: list[list[str]]  # the gold tags of every word


def align_words(tokenizer: Tokenizer, words: Sequence[str], block_size: int) -> tuple[list[int], list[int | None]]:
    """Ids of the pre-split `words` (framed as the model reads text) and each token's word index (None: special)."""
    framed = _frame(tokenizer) is not None
    encoding = tokenizer.backend.encode(list(words), is_pretokenized=True, add_special_tokens=framed)
    ids, word_ids = list(encoding.ids), list(encoding.word_ids)
    if not framed and tokenizer.eos_id is not None:
        ids, word_ids = ids + [tokenizer.eos_id], word_ids + [None]
    if len(ids) > block_size:  # the closing marker stays last, as in every text the model saw
        ids, word_ids = ids[: block_size - 1] + ids[-1:], word_ids[: block_size - 1] + word_ids[-1:]
    return ids, word_ids


def first_subwords(word_ids: Sequence[int | None]) -> list[int]:
    """The position of each word's first subword, in word order (words cut off by the block are absent)."""
    firsts, previous = [], None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            firsts.append(position)
        previous = word
    return firsts


def encode_tagged(records: Sequence[dict[str, Any]], tag_names: Sequence[str], tokenizer: Tokenizer,
                  block_size: int) -> TaggedExamples:
    index = {name: i for i, name in enumerate(tag_names)}
    out = TaggedExamples([], [], [], [])
    for number, record in enumerate(records):
        words, tags = [str(w) for w in record["tokens"]], [str(t) for t in record["tags"]]
        unknown = [tag for tag in tags if tag not in index]
        if unknown:
            raise LmlabError(f"record {number}: tag {unknown[0]!r} is not among the model's tags {list(tag_names)}")
        ids, word_ids = align_words(tokenizer, words, block_size)
        firsts = first_subwords(word_ids)
        labels = [IGNORE] * len(ids)
        for position in firsts:
            labels[position] = index[tags[word_ids[position]]]
        out.ids.append(ids)
        out.labels.append(labels)
        out.first_tokens.append(firsts)
        out.tags.append(tags)
    return out


def tag_names_of(records: Sequence[dict[str, Any]]) -> list[str]:
    """Every tag of the training records, "O" first, then by entity type with B before I."""
    tags = {str(tag) for record in records for tag in record["tags"]}
    return sorted(tags, key=lambda tag: (tag != "O", tag[2:], tag[:2]))


def bio_chunks(tags: Sequence[str], mode: Literal["conlleval", "strict"] = "strict") -> list[tuple[str, int, int]]:
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
                  mode: Literal["conlleval", "strict"] = "strict") -> EntityScores:
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


class TokenClassification(SequenceClassification):
    """Cross-entropy of each word's tag at its first subword; batches drawn epoch by epoch as for classification."""

    def __init__(self, train: TaggedExamples, validation: TaggedExamples, tag_names: Sequence[str], batch_size: int,
                 grad_accum: int, seed: int, pad_id: int):
        super().__init__(train, validation, batch_size, grad_accum, seed, pad_id)  # type: ignore[arg-type]
        self.tag_names = list(tag_names)

    def _batch(self, examples: Any, indices: np.ndarray) -> Batch:
        ids, mask = pad_batch([examples.ids[i] for i in indices], self.pad_id)
        labels = torch.full(ids.shape, IGNORE, dtype=torch.long)
        for row, i in enumerate(indices):
            labels[row, : len(examples.labels[i])] = torch.tensor(examples.labels[i])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return tagging_figures(model, self.validation, self.tag_names, self.batch_size, self.pad_id, device, "val_")


def predict_tags(model: nn.Module, examples: TaggedExamples, tag_names: Sequence[str], batch_size: int, pad_id: int,
                 device: torch.device) -> tuple[list[list[str]], float]:
    """Each word's tag (words the block cut off get "O") and the mean loss over first subwords."""
    was_training = model.training
    model.eval()
    predicted, loss, count = [], 0.0, 0
    for start in range(0, len(examples.ids), batch_size):
        rows = list(range(start, min(start + batch_size, len(examples.ids))))
        ids, mask = pad_batch([examples.ids[i] for i in rows], pad_id)
        logits = model(ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()  # (B, T, K)
        for row, i in enumerate(rows):
            firsts = examples.first_tokens[i]
            words = logits[row, firsts]  # (W, K)
            gold = torch.tensor([examples.labels[i][p] for p in firsts])
            loss += float(F.cross_entropy(words, gold, reduction="sum").detach())
            count += len(firsts)
            tags = [tag_names[k] for k in words.argmax(dim=-1).tolist()]
            predicted.append(tags + ["O"] * (len(examples.tags[i]) - len(tags)))
    model.train(was_training)
    return predicted, loss / max(count, 1)


def tagging_figures(model: nn.Module, examples: TaggedExamples, tag_names: Sequence[str], batch_size: int,
                    pad_id: int, device: torch.device, prefix: str) -> dict[str, float]:
    predicted, loss = predict_tags(model, examples, tag_names, batch_size, pad_id, device)
    scores = entity_scores(examples.tags, predicted)
    return {f"{prefix}loss": loss, f"{prefix}accuracy": scores.accuracy, f"{prefix}precision": scores.precision,
            f"{prefix}recall": scores.recall, f"{prefix}f1": scores.f1}


# ---- extractive question answering ----------------------------------------------------------------

@dataclass
class QAFeatures:
    """One row per window of a context: what the model reads and how to map its tokens back to the context."""

    ids: list[list[int]] = field(default_factory=list)
    token_types: list[list[int]] = field(default_factory=list)
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)  # context characters, None elsewhere
    example: list[int] = field(default_factory=list)  # which record each window came from
    spans: list[tuple[int, int]] = field(default_factory=list)  # the answer's first and last token; (0, 0): [CLS]


def qa_windows(tokenizer: Tokenizer, question: str, context: str, block_size: int,
               doc_stride: int) -> tuple[list[list[int]], list[list[int]], list[list[tuple[int, int] | None]]]:
    """``[CLS] question [SEP] window [SEP]`` for each window of the context; neighbours share doc_stride tokens.

    Token offsets come from the tokenizer (characters of the original context, whatever the
    normalizer lowercased or stripped), so a token span maps back to the exact text.
    """
    frame = _frame(tokenizer)
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


class ExtractiveQA(SequenceClassification):
    """Cross-entropy of the answer's first and last token, window by window."""

    def __init__(self, train: QAFeatures, validation: QAFeatures, validation_records: Sequence[dict[str, Any]],
                 batch_size: int, grad_accum: int, seed: int, pad_id: int):
        super().__init__(train, validation, batch_size, grad_accum, seed, pad_id)  # type: ignore[arg-type]
        self.validation_records = list(validation_records)

    def _batch(self, examples: Any, indices: np.ndarray) -> Batch:
        return qa_batch(examples, indices.tolist(), self.pad_id)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return qa_figures(model, self.validation, self.validation_records, self.batch_size, self.pad_id, device,
                          "val_")


def qa_batch(features: QAFeatures, indices: Sequence[int], pad_id: int) -> Batch:
    ids, mask = pad_batch([features.ids[i] for i in indices], pad_id)
    types, _ = pad_batch([features.token_types[i] for i in indices], 0)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
            "labels": torch.tensor([features.spans[i] for i in indices], dtype=torch.long)}


@torch.no_grad()
def qa_logits(model: nn.Module, features: QAFeatures, batch_size: int, pad_id: int,
              device: torch.device) -> tuple[list[np.ndarray], float]:
    """Each window's (T, 2) logits, unpadded, and the mean span loss."""
    was_training = model.training
    model.eval()
    logits, loss = [], 0.0
    for start in range(0, len(features.ids), batch_size):
        rows = list(range(start, min(start + batch_size, len(features.ids))))
        batch = {key: value.to(device) for key, value in qa_batch(features, rows, pad_id).items()}
        out = model(**batch)
        loss += float(out.loss) * len(rows)
        logits += [out.logits[r, : len(features.ids[i])].float().cpu().numpy() for r, i in enumerate(rows)]
    model.train(was_training)
    return logits, loss / max(len(features.ids), 1)


def qa_figures(model: nn.Module, features: QAFeatures, records: Sequence[dict[str, Any]], batch_size: int,
               pad_id: int, device: torch.device, prefix: str) -> dict[str, float]:
    logits, loss = qa_logits(model, features, batch_size, pad_id, device)
    answers = postprocess_qa([r["context"] for r in records], features, logits)
    score = squad_scores([a.text for a in answers], [r["answers"]["text"] for r in records])
    return {f"{prefix}loss": loss, f"{prefix}exact_match": score.exact_match, f"{prefix}f1": score.f1}


# ---- multiple choice ------------------------------------------------------------------------------

@dataclass
class ChoiceExamples:
    ids: list[list[list[int]]]  # per question, per choice: the pair's ids
    token_types: list[list[list[int]]]
    labels: np.ndarray  # (N,) the right choice


def encode_pair(tokenizer: Tokenizer, question: str, choice: str, block_size: int) -> tuple[list[int], list[int]]:
    """``[CLS] question [SEP] choice [SEP]`` (segments 0 and 1) for BERT; ``question choice <eos>`` for a decoder.

    A pair too long for the block loses tokens from the end of its longer part first (longest first).
    """
    asked, answer = tokenizer.encode(question), tokenizer.encode(choice)
    frame = _frame(tokenizer)
    extra = 3 if frame else (1 if tokenizer.eos_id is not None else 0)
    while len(asked) + len(answer) + extra > block_size:
        if len(asked) >= len(answer):
            asked = asked[:-1]
        else:
            answer = answer[:-1]
    if frame:
        cls, sep = frame
        return [cls, *asked, sep, *answer, sep], [0] * (len(asked) + 2) + [1] * (len(answer) + 1)
    ids = asked + answer + ([tokenizer.eos_id] if tokenizer.eos_id is not None else [])
    return ids, [0] * len(ids)


def encode_choices(records: Sequence[dict[str, Any]], tokenizer: Tokenizer, block_size: int) -> ChoiceExamples:
    counts = {len(record["choices"]) for record in records}
    if len(counts) > 1:
        raise LmlabError(f"multiple choice: every question needs the same number of choices, found {sorted(counts)}")
    out = ChoiceExamples([], [], np.array([int(r["answer"]) for r in records], dtype=np.int64))
    for record in records:
        pairs = [encode_pair(tokenizer, str(record["question"]), str(c), block_size) for c in record["choices"]]
        out.ids.append([ids for ids, _ in pairs])
        out.token_types.append([types for _, types in pairs])
    return out


def choice_batch(examples: ChoiceExamples, indices: Sequence[int], pad_id: int) -> Batch:
    """(B, N, T) ids, attention mask and segments: every pair padded to the batch's longest."""
    rows = [pair for i in indices for pair in examples.ids[i]]
    ids, mask = pad_batch(rows, pad_id)
    types, _ = pad_batch([pair for i in indices for pair in examples.token_types[i]], 0)
    shape = (len(indices), -1, ids.shape[1])
    return {"input_ids": ids.view(shape), "attention_mask": mask.view(shape), "token_type_ids": types.view(shape),
            "labels": torch.from_numpy(examples.labels[np.asarray(indices)])}


class MultipleChoice(SequenceClassification):
    """Cross-entropy of the right choice among a question's scored pairs."""

    def _batch(self, examples: Any, indices: np.ndarray) -> Batch:
        return choice_batch(examples, indices.tolist(), self.pad_id)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return choice_figures(model, self.validation, self.batch_size, self.pad_id, device, "val_")  # type: ignore


def choice_figures(model: nn.Module, examples: ChoiceExamples, batch_size: int, pad_id: int, device: torch.device,
                   prefix: str) -> dict[str, float]:
    scores = choice_scores(model, examples, batch_size, pad_id, device)
    labels = torch.from_numpy(examples.labels)
    return {f"{prefix}loss": float(F.cross_entropy(scores, labels)),
            f"{prefix}accuracy": float((scores.argmax(dim=-1) == labels).float().mean())}


def choice_predictions(model: nn.Module, examples: ChoiceExamples, batch_size: int, pad_id: int,
                       device: torch.device) -> np.ndarray:
    return choice_scores(model, examples, batch_size, pad_id, device).argmax(dim=-1).numpy()


def choice_scores(model: nn.Module, examples: ChoiceExamples, batch_size: int, pad_id: int,
                  device: torch.device) -> Tensor:
    """(N, choices) scores of every question's choices."""
    was_training = model.training
    model.eval()
    logits = []
    with torch.no_grad():
        for start in range(0, len(examples.ids), batch_size):
            batch = choice_batch(examples, range(start, min(start + batch_size, len(examples.ids))), pad_id)
            batch = {key: value.to(device) for key, value in batch.items() if key != "labels"}
            logits.append(model(**batch).logits.float().cpu())
    model.train(was_training)
    return torch.cat(logits)


# ---- `lmlab tune task=...` ------------------------------------------------------------------------

def tune_task(cfg: Any, console: Console | None = None) -> dict[str, Any]:
    """`lmlab tune` for tagging, qa and multiple_choice: the classification run's steps with this task's data,
    head and figures (`cfg` is a `lmlab.tune.runner.TuneConfig`)."""
    from lmlab.tune.runner import start_run

    splits = read_task_data(cfg.data, cfg.task, cfg.train.seed)
    if cfg.limit_train:
        splits["train"] = splits["train"][: cfg.limit_train]
    if cfg.limit_eval:
        splits["validation"], splits["test"] = splits["validation"][: cfg.limit_eval], splits["test"][: cfg.limit_eval]
    labels = tag_names_of(splits["train"]) if cfg.task == "tagging" else []
    run = start_run(cfg, labels, console)
    model, tokenizer, block_size, pad_id = run.model, run.tokenizer, run.block_size, run.pad_id
    loop = cfg.train
    if cfg.task == "tagging":
        def encoded(split: str) -> Any:
            return encode_tagged(splits[split], labels, tokenizer, block_size)

        objective: SequenceClassification = TokenClassification(encoded("train"), encoded("validation"), labels,
                                                                loop.batch_size, loop.grad_accum, loop.seed, pad_id)
    elif cfg.task == "qa":
        def encoded(split: str) -> Any:
            return encode_qa(splits[split], tokenizer, block_size, cfg.doc_stride)

        objective = ExtractiveQA(encoded("train"), encoded("validation"), splits["validation"], loop.batch_size,
                                 loop.grad_accum, loop.seed, pad_id)
    else:
        def encoded(split: str) -> Any:
            return encode_choices(splits[split], tokenizer, block_size)

        objective = MultipleChoice(encoded("train"), encoded("validation"), loop.batch_size, loop.grad_accum,
                                   loop.seed, pad_id)
    device = run.fit(objective)
    test = encoded("test")
    if cfg.task == "tagging":
        figures = tagging_figures(model, test, labels, loop.batch_size, pad_id, device, "test_")
        # Per-word tag figures beside the entity ones, and the commonest tag (O, usually) as the baseline.
        predicted, _ = predict_tags(model, test, labels, loop.batch_size, pad_id, device)
        gold_index = np.array([labels.index(t) for tags in test.tags for t in tags])
        predicted_index = np.array([labels.index(t) for tags in predicted for t in tags])
        figures["test_macro_f1"] = float(precision_recall_f1(gold_index, predicted_index, average="macro",
                                                             labels=list(range(len(labels))), zero_division=0).f)
        train_index = np.array([labels.index(str(t)) for r in splits["train"] for t in r["tags"]])
        figures["majority_baseline"] = majority_baseline(train_index, gold_index, len(labels))
    elif cfg.task == "qa":
        figures = qa_figures(model, test, splits["test"], loop.batch_size, pad_id, device, "test_")
    else:
        figures = choice_figures(model, test, loop.batch_size, pad_id, device, "test_")
        # The choice's position as a class: macro-F1 over positions, and always the commonest right position.
        choices = len(test.ids[0])
        predicted_index = choice_predictions(model, test, loop.batch_size, pad_id, device)
        figures["test_macro_f1"] = float(precision_recall_f1(test.labels, predicted_index, average="macro",
                                                             labels=list(range(choices)), zero_division=0).f)
        figures["majority_baseline"] = majority_baseline(objective.train.labels, test.labels, choices)
    return run.finish(figures, labels, len(splits["train"]), len(splits["test"]), device)


# ---- pipelines: token-classification and question-answering on a tuned run -----------------------

class TokenClassificationPipeline(Pipeline):
    """Entities in a text, grouped as transformers' ``aggregation_strategy="simple"`` groups them.

    The text is cut into words by the tokenizer's own pre-tokenizer (spaces and punctuation; each
    Chinese character for a BERT-style one), each word is tagged at its first subword, as in
    training, and neighbouring words form one entity while their tags continue it (I-X after B-X or
    I-X); a B- tag or another type starts a new one, an O ends it. Each entity reports its type,
    the mean of its words' tag probabilities, its text and its character span.
    """

    def _run(self, texts: list[str], first_index: int) -> list[Any]:
        framed = _frame(self.tokenizer) is not None
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


class QuestionAnsweringPipeline(Pipeline):
    """The best answer span of a context: ``qa(question=..., context=...)``, or a {question, context} dict or a
    list of them, as transformers takes them. Long contexts are read in windows (doc_stride), and
    the answer is the legal span (inside the context, at most max_answer_len tokens) of highest
    probability p(start) x p(end), each a softmax over its window's context tokens."""

    options = ("doc_stride", "max_answer_len")

    def __call__(self, inputs: Any = None, *, question: str | None = None, context: str | None = None,
                 **options: Any) -> Any:
        if inputs is None:
            if question is None or context is None:
                raise LmlabError("question-answering: give question= and context=, or {question, context} dicts")
            inputs = {"question": question, "context": context}
        single = isinstance(inputs, dict)
        pairs = [inputs] if single else list(inputs)
        for index, pair in enumerate(pairs):
            if not isinstance(pair, dict) or not isinstance(pair.get("question"), str) or not isinstance(
                    pair.get("context"), str):
                raise LmlabError(f"question-answering: input {index} is not a {{question, context}} pair of texts")
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise LmlabError(f"question-answering: unknown option {unknown[0]!r} (it takes "
                             f"{', '.join(self.options)})")
        # A quarter of the block by default, the share transformers' 128 of 384 is, near enough.
        doc_stride = options.get("doc_stride") or self.model.config.block_size // 4
        max_answer_len = options.get("max_answer_len", 30)
        answers = []
        with torch.inference_mode():
            for pair in pairs:
                answers.append(self._answer(pair["question"], pair["context"], doc_stride, max_answer_len))
        return answers[0] if single else answers

    def _answer(self, question: str, context: str, doc_stride: int, max_answer_len: int) -> dict[str, Any]:
        windows = qa_windows(self.tokenizer, question, context, self.model.config.block_size, doc_stride)
        best = {"score": 0.0, "start": 0, "end": 0, "answer": ""}
        for start in range(0, len(windows[0]), self.batch_size):
            rows = range(start, min(start + self.batch_size, len(windows[0])))
            ids, mask = self._padded([windows[0][i] for i in rows])
            types, _ = pad_batch([windows[1][i] for i in rows], 0)
            logits = self.model(ids, attention_mask=mask, token_type_ids=types.to(self.device)).logits.float().cpu()
            for r, i in enumerate(rows):
                offsets = windows[2][i]
                inside = torch.tensor([offset is not None for offset in offsets])
                window = logits[r, : len(offsets)].masked_fill(~inside[:, None], float("-inf"))
                log_probs = window.log_softmax(dim=0).numpy()  # (T, 2) over the context's tokens
                spans = best_spans(log_probs[:, 0], log_probs[:, 1], offsets, max_answer_length=max_answer_len)
                if spans and np.exp(spans[0][0]) > best["score"]:
                    first, last = offsets[spans[0][1]][0], offsets[spans[0][2]][1]  # type: ignore[index]
                    best = {"score": float(np.exp(spans[0][0])), "start": first, "end": last,
                            "answer": context[first:last]}
        return best


HEAD_PIPELINES = {"token-classification": ("tagging", TokenClassificationPipeline),
                  "question-answering": ("qa", QuestionAnsweringPipeline)}


def head_pipeline(task: str, folder: Path, family: str, device: torch.device, batch_size: int) -> Pipeline:
    """The pipeline for a run of `lmlab tune task=tagging|qa` (lmlab.pipelines dispatches here)."""
    wanted, cls = HEAD_PIPELINES[task]
    trained = read_model_json(folder / "model.json")[1].get("task", "classification") if family == "tuned" else None
    if trained != wanted:
        what = f"a tuned {trained} model" if trained else f"a {family} model"
        raise LmlabError(f"{folder}: {task} needs a run of `lmlab tune task={wanted}`, not {what}")
    net, tokenizer = _load(folder, family, device)
    return cls(task, net, tokenizer, device, batch_size, folder)
