"""Running a network for its outputs rather than to train it, and putting it back as it was.

Evaluation, generation and the pipelines all need the same three steps: switch dropout off
(``model.eval()``), stop recording the graph, and afterwards restore whatever mode the caller had
the model in, since evaluation happens in the middle of training:

    with evaluating(model):            # eval mode, no autograd graph
        logits = model(ids).logits
    # model.training is what it was before

``grad=True`` keeps autograd on, for attacks that need the gradient of an evaluation's loss (FGM).
`pick_device` is where a network runs when the caller does not say: CUDA when there is one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from lmlab.errors import LmlabError


def pick_device(choice: str | torch.device = "auto", setting: str = "device") -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda``...; asking for CUDA without one is an error
    naming the `setting` that asked."""
    if str(choice).startswith("cuda") and not torch.cuda.is_available():
        raise LmlabError(f"{setting}: {str(choice)!r} was asked for but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


@contextmanager
def evaluating(model: nn.Module, grad: bool = False) -> Iterator[nn.Module]:
    """`model` in eval mode (without autograd unless `grad`) for the block, its mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with nullcontext() if grad else torch.no_grad():
            yield model
    finally:
        model.train(was_training)
