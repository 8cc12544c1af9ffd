"""Which weights train: the fine-tuning methods, each one call that changes a backbone in place.

    full       every weight of the backbone (and the head)
    features   nothing of the backbone: the head learns on frozen features (feature extraction)
    lora       low-rank updates of chosen linear layers (lmlab.tune.lora)
    adapters   bottleneck layers inside each block (lmlab.tune.adapters)
    prompt     trainable virtual tokens before the text (lmlab.tune.prompt)

Methods compose with ``+`` (or a YAML list): ``lora+adapters``, ``prompt+lora``. The backbone is
frozen, then each method adds its trainable parts, in the order of `METHODS` whatever the order
written (the ones that change layers inside the backbone first, the prompt that wraps it last), so
``prompt+lora`` and ``lora+prompt`` are one model, named ``lora+prompt``. Each keeps its own
settings section (``method.lora``, ``method.adapters``, ``method.prompt``).

Adversarial training (lmlab.tune.adversarial) is not a method of its own: it changes how a training
step computes its gradient, so it combines with any of them. ``+fgm`` or ``+pgd`` in the name
selects it (``adapters+fgm``), as ``adversarial.method`` does; its settings stay in ``adversarial``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import field_validator
from torch import nn

from lmlab.config import Config, build_config
from lmlab.tune.adapters import AdapterConfig, apply_adapters
from lmlab.tune.adversarial import ADVERSARIES
from lmlab.tune.lora import LoraConfig, apply_lora
from lmlab.tune.prompt import PromptTuningConfig, apply_prompt_tuning


def _full(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    return backbone


def _features(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    for param in backbone.parameters():
        param.requires_grad_(False)
    return backbone


def lora_config(backbone: nn.Module, method: MethodConfig) -> LoraConfig:
    """The LoRA settings of `method` on `backbone`."""
    # The family says where LoRA goes unless the config does (PEFT's defaults: GPT-2's c_attn, BERT's q and v).
    settings = {"target_modules": list(getattr(backbone, "lora_targets", ())), **method.lora}
    return build_config(LoraConfig, settings, source="method.lora")


def _lora(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    return apply_lora(backbone, lora_config(backbone, method))


def _adapters(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    return apply_adapters(backbone, build_config(AdapterConfig, method.adapters, source="method.adapters"))


def _prompt(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    return apply_prompt_tuning(backbone, build_config(PromptTuningConfig, method.prompt, source="method.prompt"))


# method name -> the function that makes a backbone ready for it; a new method is one function + one line.
# The order is the order a composition applies them in.
METHODS: dict[str, Callable[[nn.Module, MethodConfig], nn.Module]] = {
    "full": _full,
    "features": _features,
    "lora": _lora,
    "adapters": _adapters,
    "prompt": _prompt,
}

# Each decides every backbone weight alone (all train, or none), so adding another method means nothing.
ALONE = {"full": "it trains every weight already", "features": "it trains no weight of the backbone"}


def split_method(name: str | list[str]) -> tuple[list[str], str | None]:
    """The weight methods (in `METHODS` order) and the adversary (or None) of a method name such as
    ``lora+adapters+fgm``; a combination that makes no sense is a ValueError naming it."""
    parts = [part.strip() for part in (name.split("+") if isinstance(name, str) else name)]
    written = "+".join(parts)
    for part in parts:
        if part not in METHODS and part not in ADVERSARIES:
            raise ValueError(f"unknown method {part!r} in {written!r}; known: {', '.join(METHODS)}, "
                             f"and the adversaries {', '.join(ADVERSARIES)} (combine with +, e.g. lora+adapters)")
        if parts.count(part) > 1:
            raise ValueError(f"{part} appears twice in {written!r}")
    adversaries = [part for part in parts if part in ADVERSARIES]
    if len(adversaries) > 1:
        raise ValueError(f"{written!r} names two adversaries ({' and '.join(adversaries)}); a step has one")
    weights = [name for name in METHODS if name in parts]
    if not weights:
        raise ValueError(f"{written!r} names no method for the weights (e.g. lora+{adversaries[0]} or "
                         f"full+{adversaries[0]})")
    for alone, why in ALONE.items():
        if alone in weights and len(weights) > 1:
            other = next(name for name in weights if name != alone)
            raise ValueError(f"{alone} does not combine with {other} in {written!r}: {why}")
    return weights, (adversaries[0] if adversaries else None)


def method_name(weights: list[str], adversary: str | None = None) -> str:
    return "+".join(weights + ([adversary] if adversary else []))


class MethodConfig(Config):
    """What trains: a method of `METHODS` or a ``+`` of several, maybe with an adversary.

    `lora`, `adapters` and `prompt` take their own settings (see their modules).
    """

    method: str = "full"
    lora: dict[str, Any] = {}
    adapters: dict[str, Any] = {}
    prompt: dict[str, Any] = {}

    @field_validator("method", mode="before")
    @classmethod
    def _canonical(cls, value: Any) -> Any:
        """One spelling per combination: the weight methods in `METHODS` order, then the adversary."""
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return method_name(*split_method(value))
        return value  # not a name: pydantic's own error says so

    @property
    def parts(self) -> list[str]:
        """The weight methods, in the order they are applied."""
        return split_method(self.method)[0]

    @property
    def adversary(self) -> str | None:
        return split_method(self.method)[1]


def apply_method(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    """The backbone made ready for `method`: the same module changed in place, or a wrapper around it."""
    added: list[nn.Parameter] = []
    for part in method.parts:
        backbone = METHODS[part](backbone, method)
        added += [param for param in backbone.parameters() if param.requires_grad]
    # Each method freezes the whole model before adding its own weights, which would freeze what an
    # earlier one added: those train again. Alone, a method's own freezing is the whole story.
    for param in added:
        param.requires_grad_(True)
    return backbone
