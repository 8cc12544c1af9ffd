"""Labelled examples as batches for the one training loop: sequence classification.

Texts are tokenized once, the way the backbone was trained to read them: ``[CLS] text [SEP]`` for
a BERT-style tokenizer, the text then end-of-text for a GPT one (so its last token, where a decoder
pools, is the same marker in every example). Longer texts are cut to ``block_size`` tokens.

A training batch is a function of (seed, step, micro-step), like every objective's: examples are
drawn in a fresh order each epoch, so a resumed run sees exactly the batches an uninterrupted one
would have. Batches are right-padded to their longest example and carry an attention mask.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.metrics.classification import accuracy, precision_recall_f1
from lmlab.tokenizers import Tokenizer

Batch = dict[str, Tensor]


@dataclass
class EncodedExamples:
    ids: list[list[int]]
    labels: np.ndarray  # (N,) label indices


def frame_text(text: str, tokenizer: Tokenizer, block_size: int) -> list[int]:
    """One text's ids as the backbone reads a whole text: framed by [CLS]/[SEP] or ended by end-of-text, cut to fit."""
    if tokenizer.token_to_id("[CLS]") is not None:
        tokens = tokenizer.encode(text, add_special_tokens=True)
        if len(tokens) > block_size:  # keep [SEP] at the end: it is part of what BERT was trained on
            tokens = tokens[: block_size - 1] + tokens[-1:]
    else:
        tokens = tokenizer.encode(text)[: block_size - 1]
        tokens += [tokenizer.eos_id] if tokenizer.eos_id is not None else []
    if not tokens:
        raise LmlabError(f"the text {text[:40]!r} encodes to no tokens")
    return tokens


def encode_examples(texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str], tokenizer: Tokenizer,
                    block_size: int) -> EncodedExamples:
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        raise LmlabError(f"labels {unknown[:3]} are not among the model's labels {list(label_names)}")
    ids = [frame_text(text, tokenizer, block_size) for text in texts]
    return EncodedExamples(ids, np.array([index[label] for label in labels], dtype=np.int64))


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-padded (B, T) ids and their (B, T) attention mask."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return ids, mask


class SequenceClassification:
    """The objective of a text classifier: cross-entropy of the right label, batches drawn epoch by epoch."""

    streaming = False

    def __init__(self, train: EncodedExamples, validation: EncodedExamples, batch_size: int, grad_accum: int,
                 seed: int, pad_id: int):
        self.train, self.validation = train, validation
        self.batch_size, self.grad_accum, self.seed, self.pad_id = batch_size, grad_accum, seed, pad_id

    def _batch(self, examples: EncodedExamples, indices: np.ndarray) -> Batch:
        ids, mask = pad_batch([examples.ids[i] for i in indices], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.from_numpy(examples.labels[indices])}

    def training_batch(self, step: int, micro_step: int) -> Batch:
        n = len(self.train.ids)
        start = (step * self.grad_accum + micro_step) * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        epochs, offsets = np.divmod(positions, n)
        indices = np.empty(len(positions), dtype=np.int64)
        for epoch in np.unique(epochs):
            order = np.random.default_rng((self.seed, int(epoch))).permutation(n)  # each epoch its own shuffle
            indices[epochs == epoch] = order[offsets[epochs == epoch]]
        return self._batch(self.train, indices)

    def starts_stream(self, step: int, micro_step: int) -> bool:
        return True

    def eval_batches(self, max_tokens: int | None = None) -> Iterator[Batch]:
        for start in range(0, len(self.validation.ids), self.batch_size):
            yield self._batch(self.validation, np.arange(start, min(start + self.batch_size,
                                                                     len(self.validation.ids))))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Validation loss, accuracy and macro-F1 (the figure that a majority-class guess cannot fake)."""
        scores = predict_scores(model, self.eval_batches(), device)
        return classification_figures(scores, self.validation.labels, prefix="val_")


@torch.no_grad()
def predict_scores(model: nn.Module, batches: Iterator[Batch], device: torch.device) -> np.ndarray:
    """Label logits (N, K) for every example of `batches`, in order."""
    was_training = model.training
    model.eval()
    logits = []
    for batch in batches:
        batch = {key: value.to(device) for key, value in batch.items() if key != "labels"}
        logits.append(model(**batch).logits.float().cpu())
    model.train(was_training)
    return torch.cat(logits).numpy()


def classification_figures(logits: np.ndarray, labels: np.ndarray, prefix: str = "") -> dict[str, float]:
    log_probs = torch.log_softmax(torch.from_numpy(logits).double(), dim=-1)
    loss = float(-log_probs[torch.arange(len(labels)), torch.from_numpy(labels)].mean())
    predictions = logits.argmax(axis=1)
    macro = precision_recall_f1(labels, predictions, average="macro", labels=list(range(logits.shape[1])),
                                zero_division=0)
    return {f"{prefix}loss": loss, f"{prefix}accuracy": accuracy(labels, predictions),
            f"{prefix}macro_f1": float(macro.f)}


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 of always answering the commonest training label: the score to beat."""
    majority = int(np.bincount(train_labels, minlength=num_labels).argmax())
    predictions = np.full(len(test_labels), majority)
    macro = precision_recall_f1(test_labels, predictions, average="macro", labels=list(range(num_labels)),
                                zero_division=0)
    return {"accuracy": accuracy(test_labels, predictions), "macro_f1": float(macro.f)}
