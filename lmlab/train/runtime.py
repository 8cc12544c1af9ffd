"""Where and how the loop computes: the device, mixed precision, the wrapped model, and which
process speaks.

The loop never asks "am I on CUDA?" or "am I rank 0?" itself; it asks the runtime:

    runtime.device          where the model and every batch live
    runtime.autocast()      bf16 autocast on a CUDA device that has it, otherwise nothing
    runtime.wrap(model)     what the steps call: the model, compiled (train.compile), or later
                            wrapped for several processes (DDP/FSDP)
    runtime.unwrap(wrapped) the plain module again, whose state dict is saved
    runtime.is_main         whether this process logs, prints and writes checkpoints

One process on one device is the default; a multi-process runtime changes what these return, not
the loop.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from lmlab.modes import pick_device


@dataclass
class Runtime:
    device: torch.device
    bf16: bool = False
    compile: bool = False
    rank: int = 0  # this process's place among those training together (torchrun's RANK); 0 alone

    @classmethod
    def single(cls, device: str = "auto", compile: bool = False) -> Runtime:
        """One process on the `device` a config chose (``auto``, ``cpu``, ``cuda``)."""
        chosen = pick_device(device, "train.device")
        return cls(chosen, bf16=chosen.type == "cuda" and torch.cuda.is_bf16_supported(), compile=compile)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> AbstractContextManager[object]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def wrap(self, model: nn.Module) -> nn.Module:
        return torch.compile(model) if self.compile else model  # type: ignore[return-value]

    def unwrap(self, wrapped: nn.Module) -> nn.Module:
        return getattr(wrapped, "_orig_mod", wrapped)  # torch.compile keeps the module it compiled here
