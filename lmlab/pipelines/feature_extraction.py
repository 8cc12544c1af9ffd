"""feature-extraction: a BERT's or GPT's last hidden states, per token or pooled into one vector per text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.errors import LmlabError
from lmlab.pipelines.base import Pipeline
from lmlab.runs import Run
from lmlab.tune.pooling import Pooling, pool

POOLINGS = get_args(Pooling)


class FeatureExtractionPipeline(Pipeline):
    """Hidden states of the last layer: one vector per token, or one per text pooled from them.

    `normalize` (unit length, so a dot product is a cosine) defaults to what the model was trained
    for: on for a sentence-transformers directory whose modules end in Normalize (all-MiniLM-L6-v2,
    whose normalised mean pooling is its sentence embedding), off otherwise.
    """

    kinds = ("encoder", "decoder")
    options = ("pooling", "normalize")

    def __init__(self, *args: Any, max_length: int, normalize: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_length, self.normalize = max_length, normalize
        self.framed = self.tokenizer.token_to_id("[CLS]") is not None  # BERT reads [CLS] text [SEP]

    @classmethod
    def from_run(cls, task: str, run: Run, device: torch.device, batch_size: int) -> FeatureExtractionPipeline:
        cls.check_model(task, run)
        if run.family_class.default_pooling is None:
            raise run.refusal("feature-extraction needs a backbone with hidden states to read (an encoder or a "
                              f"Transformer decoder), not a {run.family} model")
        net, folder = run.model(device), run.path
        return cls(task, net, run.tokenizer(), device, batch_size, folder, max_length=_max_length(folder, net),
                   normalize=_sentence_transformers_normalizes(folder))

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        pooled = not isinstance(answer[0], list)
        first = answer if pooled else answer[0]
        shape = f"a vector of {len(answer)}" if pooled else f"{len(answer)} tokens x {len(first)}"
        return f"{text}\t{shape}: [" + ", ".join(f"{v:.4f}" for v in first[:4]) + ", ...]"

    def _check(self, options: dict[str, Any]) -> None:
        pooling = options.get("pooling")
        if pooling is not None and pooling not in POOLINGS:
            raise LmlabError(f"feature-extraction: pooling must be one of {', '.join(POOLINGS)} or None, "
                             f"got {pooling!r}")
        if pooling is None and options.get("normalize"):
            raise LmlabError("feature-extraction: normalize applies to pooled vectors; give pooling too")

    def _run(self, texts: list[str], first_index: int, pooling: Pooling | None = None,
             normalize: bool | None = None) -> list[Any]:
        rows = []
        for index, text in enumerate(texts, start=first_index):
            tokens = self.tokenizer.encode(text, add_special_tokens=self.framed)
            if len(tokens) > self.max_length:  # keep [SEP] last, as the model always saw it
                tokens = tokens[: self.max_length - 1] + tokens[-1:] if self.framed else tokens[: self.max_length]
            if not tokens:
                raise LmlabError(f"{self.task}: text {index} encodes to no tokens")
            rows.append(tokens)
        ids, mask = self._padded(rows)
        hidden = self.model.features(input_ids=ids, attention_mask=mask).float()  # (B, T, H)
        if pooling is None:
            return [hidden[r, : len(row)].cpu().tolist() for r, row in enumerate(rows)]
        vectors = pool(hidden, mask, pooling)  # (B, H)
        if self.normalize if normalize is None else normalize:
            vectors = F.normalize(vectors, p=2, dim=-1)
        return vectors.cpu().tolist()


def _max_length(folder: Path, net: nn.Module) -> int:
    """The model's positions, or fewer where sentence-transformers cuts texts (all-MiniLM-L6-v2: 256)."""
    settings = folder / "sentence_bert_config.json"
    limit = json.loads(settings.read_text(encoding="utf-8")).get("max_seq_length") if settings.exists() else None
    return min(net.config.block_size, limit or net.config.block_size)


def _sentence_transformers_normalizes(folder: Path) -> bool:
    modules = folder / "modules.json"
    if not modules.exists():
        return False
    return any(str(module.get("type", "")).endswith(".Normalize")
               for module in json.loads(modules.read_text(encoding="utf-8")))
