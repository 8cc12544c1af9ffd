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

from typing import Any, Literal

from torch import nn

from lmlab.config import Config, build_config
from lmlab.tune.adapters import AdapterConfig, apply_adapters
from lmlab.tune.lora import LoraConfig, apply_lora
from lmlab.tune.prompt import PromptTuningConfig, apply_prompt_tuning

# The attention projections, as PEFT's defaults for these architectures: GPT-2's fused q/k/v, BERT's q and v.
DEFAULT_LORA_TARGETS = {"gpt": ["c_attn"], "bert": ["query", "value"]}


class MethodConfig(Config):
    """What trains. `lora`, `adapters` and `prompt` take their own settings (see their modules)."""

    method: Literal["full", "features", "lora", "adapters", "prompt"] = "full"
    lora: dict[str, Any] = {}
    adapters: dict[str, Any] = {}
    prompt: dict[str, Any] = {}


def apply_method(backbone: nn.Module, method: MethodConfig) -> nn.Module:
    """The backbone made ready for `method`: the same module changed in place, or a wrapper around it."""
    if method.method == "full":
        return backbone
    if method.method == "features":
        for param in backbone.parameters():
            param.requires_grad_(False)
        return backbone
    if method.method == "lora":
        settings = {"target_modules": DEFAULT_LORA_TARGETS.get(backbone.family, ["c_attn"]), **method.lora}
        return apply_lora(backbone, build_config(LoraConfig, settings, source="method.lora"))
    if method.method == "adapters":
        return apply_adapters(backbone, build_config(AdapterConfig, method.adapters, source="method.adapters"))
    return apply_prompt_tuning(backbone, build_config(PromptTuningConfig, method.prompt, source="method.prompt"))
