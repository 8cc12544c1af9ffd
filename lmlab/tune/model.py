"""A pretrained backbone, a tuning method and a task head: the model that `lmlab tune` trains.

    text ──tokenizer──> ids ──backbone.features──> hidden states (B, T, C) ──task head──> logits (and loss)

The backbone is any lmlab family that exposes ``features`` (a BERT encoder, a GPT decoder). The
method (lmlab.tune.methods) decides what trains: every weight (``full``), only the head on frozen
features (``features``), or small added weights with the backbone frozen (``lora``, ``adapters``,
``prompt``). The head is the task's (lmlab.tune.tasks): a classifier's reads one vector per text,
pooled from the first token for an encoder (BERT puts ``[CLS]`` there for this purpose) or the
last real token for a decoder (the only position that has seen the whole text), or the mean.

`TunedModel` is a model family like any other (``model.json`` says ``"family": "tuned"`` and holds
the backbone's family and config, the task, the labels, the head and the method), so checkpoints,
resuming and `lmlab.models.load_model` work on a tuned run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from lmlab.config import build_config
from lmlab.errors import LmlabError
from lmlab.models import model_from_config
from lmlab.models.base import LMOutput, ModelFamily
from lmlab.tune.methods import MethodConfig, apply_method
from lmlab.tune.pooling import Pooling
from lmlab.tune.tasks import task_named
from lmlab.tune.tasks.base import HeadConfig


@dataclass
class TunedConfig:
    base_family: str = ""  # the backbone's family (model.json always names it; "" is no family)
    base_config: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    head: dict[str, Any] = field(default_factory=dict)  # a HeadConfig
    method: dict[str, Any] = field(default_factory=dict)  # a MethodConfig
    block_size: int = 128  # the longest text, in tokens, the model reads
    task: str = "classification"  # a name in lmlab.tune.tasks.TASKS

    def __post_init__(self) -> None:
        fewest = task_named(self.task).min_labels
        if len(self.labels) < fewest:
            raise LmlabError(f"a {self.task} model needs at least {fewest} labels, got {self.labels}")


# What a model tuned for each task does, and the pipeline that puts it to use ({run}: its directory).
USES = {
    "classification": ("labels texts", 'lmlab pipeline sentiment-analysis --model {run} "TEXT"'),
    "tagging": ("tags the words of texts", 'lmlab pipeline token-classification --model {run} "TEXT"'),
    "qa": ("finds answers in texts", 'lmlab pipeline question-answering --model {run} --question "Q?" "CONTEXT"'),
    "reward": ("scores answers (a reward model)", "lmlab tune base=SFT_RUN task=grpo reward={run} data=tasks"),
}


class TunedModel(ModelFamily, nn.Module):
    family = "tuned"
    config_class = TunedConfig
    kind = "task"
    exporter = "lmlab.tune.export:export_tuned"  # the base for transformers, the method's weights for PEFT

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return f"{config.get('base_family')} tuned for {config.get('task', 'classification')}"

    @classmethod
    def uses(cls, config: dict[str, Any]) -> tuple[str, str]:
        return USES.get(config.get("task", "classification"), ("answers its task", "lmlab report {run}"))

    def __init__(self, config: TunedConfig, backbone: nn.Module | None = None):
        """A fresh model from `config`; pass a pretrained `backbone` to start from its weights."""
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else model_from_config(
            config.base_family, config.base_config, source="tuned model's base")
        if getattr(self.backbone, "default_pooling", None) is None:
            raise LmlabError(f"a {config.base_family} model has no features() to put a task head on")
        head = build_config(HeadConfig, config.head, source="head")
        self.pooling: Pooling = head.pooling or self.backbone.default_pooling
        # Asked before a method wraps the backbone: a pair's segments reach only a backbone that reads them.
        self.segments: bool = getattr(self.backbone, "segments", False)
        self.method = build_config(MethodConfig, config.method, source="method")
        # The method goes on before the head exists, so that the head always trains.
        self.backbone = apply_method(self.backbone, self.method)
        self.head = task_named(config.task).head(self.backbone.hidden_size, config.labels, head, self.pooling)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                token_type_ids: Tensor | None = None, inputs_embeds: Tensor | None = None) -> LMOutput:
        """The task head's logits for a right-padded batch (a classifier's: (B, K)); with `labels`, its loss too.

        A grouped head's batch (multiple choice) is (B, N, T): every (question, choice) pair is a row
        for the backbone. `token_type_ids` are dropped for a backbone without segment embeddings.
        """
        rows = len(input_ids if input_ids is not None else inputs_embeds)
        if not self.segments:  # a decoder reads a pair as one text, in order
            token_type_ids = None
        if self.head.grouped:
            input_ids, attention_mask, token_type_ids, inputs_embeds = (
                None if t is None else t.flatten(0, 1) for t in (input_ids, attention_mask, token_type_ids,
                                                                  inputs_embeds))
        hidden = self.backbone.features(input_ids=None if inputs_embeds is not None else input_ids,
                                        attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                        **({"token_type_ids": token_type_ids} if token_type_ids is not None else {}))
        return self.head(hidden, attention_mask, labels, rows)

    def input_embeddings(self) -> nn.Embedding:
        return self.backbone.input_embeddings()


def tuned_config_from(backbone: nn.Module, labels: list[str], head: HeadConfig, method: MethodConfig,
                      block_size: int, task: str = "classification") -> TunedConfig:
    return TunedConfig(base_family=backbone.family, base_config=backbone.config_dict(),
                       labels=list(labels), head=head.model_dump(), method=method.model_dump(),
                       block_size=block_size, task=task)
