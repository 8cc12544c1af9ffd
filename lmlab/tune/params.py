"""Which parameters train: counting them, and freezing all but a named few.

Every tuning method reports "trainable / total", the figure that sets LoRA or prompt tuning apart
from full fine-tuning. Both counts take each tensor once: GPT's token embedding is also its output
layer, one matrix under two names, and it is one matrix's worth of memory and of optimizer state.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lmlab.errors import LmlabError


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts of `model`, each shared tensor counted once."""
    # `parameters()` yields a Parameter object once however many modules hold it, which is how ties are made.
    trainable = total = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def matches_name(module_name: str, names: Sequence[str]) -> bool:
    """Is `module_name` one of `names`, or does it end with ``.name``? (PEFT's rule for module lists.)

    ``"c_attn"`` thus picks ``transformer.h.0.attn.c_attn`` in every block, and ``"h.0.attn.c_attn"``
    only the first block's.
    """
    return any(module_name == name or module_name.endswith(f".{name}") for name in names)


def freeze(model: nn.Module, except_names: Sequence[str] = ()) -> nn.Module:
    """Stop gradients for every parameter of `model` except those inside the modules `except_names`.

    `except_names` are module names matched as by `matches_name` (e.g. ``["score", "classifier"]`` for
    a task head, which must learn from scratch whatever the method). Returns `model`.
    """
    model.requires_grad_(False)
    kept = set()
    for name, module in model.named_modules():
        for wanted in except_names:
            if name and matches_name(name, [wanted]):
                module.requires_grad_(True)
                kept.add(wanted)
    # A misspelt head name would otherwise leave the head frozen at its random initialisation.
    missing = [wanted for wanted in except_names if wanted not in kept]
    if missing:
        raise LmlabError(f"no module named {missing[0]!r} to keep trainable (module names end with it)")
    return model
