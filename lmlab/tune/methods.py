"""Which weights train: the fine-tuning methods, each one call that changes a backbone in place.

    full       every weight of the backbone (and the head)
    features   nothing of the backbone: the head learns on frozen features (feature extraction)
    lora       low-rank updates of chosen linear layers (lmlab.tune.lora)
    adapters   bottleneck layers inside each block (lmlab.tune.adapters)
    prompt     trainable virtual tokens before the text (lmlab.tune.prompt)

Adversarial training (lmlab.tune.adversarial) is not a method of its own: it changes how a training
step computes its gradient, so it combines with any of them (e.g. LoRA + FGM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from torch import nn

from lmlab.config import Config, build_config, registered
from lmlab.tune.adapters import AdapterConfig, apply_adapters
from lmlab.tune.lora import LoraConfig, apply_lora
from lmlab.tune.prompt import PromptTuningConfig, apply_prompt_tuning


def _full(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    return backbone


def _features(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    for param in backbone.parameters():
        param.requires_grad_(False)
    return backbone


def _lora(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    # The family says where LoRA goes unless the config does (PEFT's defaults: GPT-2's c_attn, BERT's q and v).
    settings = {"target_modules": list(getattr(backbone, "lora_targets", ())), **method.lora}
    return apply_lora(backbone, build_config(LoraConfig, settings, source="method.lora"))


def _adapters(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    return apply_adapters(backbone, build_config(AdapterConfig, method.adapters, source="method.adapters"))


def _prompt(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    return apply_prompt_tuning(backbone, build_config(PromptTuningConfig, method.prompt, source="method.prompt"))


# method name -> the function that makes a backbone ready for it; a new method is one function + one line.
METHODS: dict[str, Callable[[nn.Module, MethodConfig], nn.Module]] = {
    "full": _full,
    "features": _features,
    "lora": _lora,
    "adapters": _adapters,
    "prompt": _prompt,
}


class MethodConfig(Config):
    """What trains. `lora`, `adapters` and `prompt` take their own settings (see their modules)."""

    method: Annotated[str, registered(METHODS, "method")] = "full"
    lora: dict[str, Any] = {}
    adapters: dict[str, Any] = {}
    prompt: dict[str, Any] = {}


def apply_method(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    """The backbone made ready for `method`: the same module changed in place, or a wrapper around it."""
    return METHODS[method.method](backbone, method)
