"""Running a network for its outputs rather than to train it, and putting it back as it was.

Evaluation, generation and the pipelines all need the same three steps: switch dropout off
(``model.eval()``), stop recording the graph, and afterwards restore whatever mode the caller had
the model in, since evaluation happens in the middle of training:

    with evaluating(model):            # eval mode, no autograd graph
        logits = model(ids).logits
    # model.training is what it was before

``grad=True`` keeps autograd on, for attacks that need the gradient of an evaluation's loss (FGM).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn


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
