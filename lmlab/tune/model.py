"""A pretrained backbone, a tuning method and a task head: the model that `lmlab tune` trains.

    text ──tokenizer──> ids ──backbone.features──> hidden states (B, T, C) ──pool──> (B, C) ──head──> logits (B, K)

The backbone is any lmlab family that exposes ``features`` (a BERT encoder, a GPT decoder). The
method decides what trains: every weight (``full``), only the head on frozen features
(``features``), or small added weights with the backbone frozen (``lora``, ``adapters``,
``prompt``). The head reads one vector per text: the first token for an encoder (BERT puts
``[CLS]`` there for this purpose), the last real token for a decoder (the only position that has
seen the whole text), or the mean over real tokens.

`TunedModel` is a model family like any other (``model.json`` says ``"family": "tuned"`` and holds
the backbone's family and config, the labels, the head and the method), so checkpoints, resuming
and `lmlab.models.load_model` work on a tuned run unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.config import Config, build_config
from lmlab.errors import LmlabError
from lmlab.models import model_from_config
from lmlab.models.base import LMOutput

Pooling = Literal["first", "last", "mean"]


class HeadConfig(Config):
    hidden: int | None = None  # None: one linear layer; a size: linear -> ReLU -> dropout -> linear
    dropout: float = 0.1
    pooling: Pooling | None = None  # default: first for encoders, last for decoders


class MethodConfig(Config):
    """What trains. `lora`, `adapters` and `prompt` take their own settings (see their modules)."""

    method: Literal["full", "features", "lora", "adapters", "prompt"] = "full"
    lora: dict[str, Any] = {}
    adapters: dict[str, Any] = {}
    prompt: dict[str, Any] = {}


DECODER_FAMILIES = {"gpt", "rnn", "mlp"}


@dataclass
class TunedConfig:
    base_family: str = "bert"
    base_config: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    head: dict[str, Any] = field(default_factory=dict)  # a HeadConfig
    method: dict[str, Any] = field(default_factory=dict)  # a MethodConfig
    block_size: int = 128  # the longest text, in tokens, the model reads
    task: str = "classification"  # or tagging, qa, multiple_choice (lmlab.tune.heads)

    def __post_init__(self) -> None:
        if self.task in ("classification", "tagging") and len(self.labels) < 2:
            raise LmlabError(f"a classifier needs at least two labels, got {self.labels}")


def pool(hidden: Tensor, attention_mask: Tensor | None, pooling: Pooling) -> Tensor:
    """One vector per row of (B, T, C) `hidden`; `attention_mask` (B, T) marks real tokens (right padding)."""
    if pooling == "first":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden[:, -1] if pooling == "last" else hidden.mean(dim=1)
    real = attention_mask.to(hidden.dtype)
    if pooling == "last":
        last = attention_mask.long().sum(dim=1) - 1  # (B,) the index of each row's last real token
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    return (hidden * real[..., None]).sum(dim=1) / real.sum(dim=1, keepdim=True).clamp(min=1)


class ClassificationHead(nn.Module):
    """Pooled vector -> label logits: one linear layer, or a small MLP (the usual head on frozen features)."""

    def __init__(self, in_features: int, num_labels: int, cfg: HeadConfig):
        super().__init__()
        self.dropout = nn.Dropout(cfg.dropout)
        if cfg.hidden is None:
            self.layers = nn.Sequential(nn.Linear(in_features, num_labels))
        else:
            self.layers = nn.Sequential(nn.Linear(in_features, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                        nn.Linear(cfg.hidden, num_labels))

    def forward(self, pooled: Tensor) -> Tensor:
        return self.layers(self.dropout(pooled))


class TunedModel(nn.Module):
    family = "tuned"
    config_class = TunedConfig

    def __init__(self, config: TunedConfig, backbone: nn.Module | None = None):
        """A fresh model from `config`; pass a pretrained `backbone` to start from its weights."""
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else model_from_config(
            config.base_family, config.base_config, source="tuned model's base")
        if not hasattr(self.backbone, "features"):
            raise LmlabError(f"a {config.base_family} model has no features() to put a task head on")
        head = build_config(HeadConfig, config.head, source="head")
        self.pooling: Pooling = head.pooling or ("last" if config.base_family in DECODER_FAMILIES else "first")
        self.method = build_config(MethodConfig, config.method, source="method")
        # The method goes on before the head exists, so that the head always trains.
        from lmlab.tune.methods import apply_method

        self.backbone = apply_method(self.backbone, self.method)
        if config.task == "classification":
            self.head = ClassificationHead(self.backbone.hidden_size, len(config.labels), head)
        else:
            from lmlab.tune.heads import task_head

            self.head = task_head(config.task, self.backbone.hidden_size, len(config.labels), head.dropout,
                                  self.pooling)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                token_type_ids: Tensor | None = None, inputs_embeds: Tensor | None = None) -> LMOutput:
        """Label logits (B, K) for a right-padded batch; with `labels` (B,), their mean cross-entropy too.

        Other tasks' heads give their own logits and loss (lmlab.tune.heads); a multiple-choice batch
        is (B, N, T), every (question, choice) pair a row for the backbone.
        """
        rows = len(input_ids if input_ids is not None else inputs_embeds)
        if self.config.task == "multiple_choice":
            input_ids, attention_mask, token_type_ids, inputs_embeds = (
                None if t is None else t.flatten(0, 1) for t in (input_ids, attention_mask, token_type_ids,
                                                                  inputs_embeds))
        hidden = self.backbone.features(input_ids=None if inputs_embeds is not None else input_ids,
                                        attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                        **({"token_type_ids": token_type_ids} if token_type_ids is not None else {}))
        if self.config.task != "classification":
            return self.head(hidden, attention_mask, labels, rows)
        logits = self.head(pool(hidden, attention_mask, self.pooling))
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return LMOutput(logits=logits, loss=loss)

    def input_embeddings(self) -> nn.Embedding:
        return self.backbone.input_embeddings()


def tuned_config_from(backbone: nn.Module, labels: list[str], head: HeadConfig, method: MethodConfig,
                      block_size: int, task: str = "classification") -> TunedConfig:
    return TunedConfig(base_family=backbone.family, base_config=dataclasses.asdict(backbone.config),
                       labels=list(labels), head=head.model_dump(), method=method.model_dump(),
                       block_size=block_size, task=task)
