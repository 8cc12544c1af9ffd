"""FGM and PGD against their definitions, step by step, on a six-word embedding table.

The expected perturbations are computed here from the formulas of lmlab.tune.adversarial with plain
torch ops (autograd for each gradient), and compared with the tables the loss actually saw.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.tune.adversarial import FGM, PGD

IDS = torch.tensor([[1, 3, 3], [4, 1, 0]])  # rows 0, 1, 3 and 4 are used; 2 and 5 are not


def loss_at(table: Tensor, w: Tensor) -> Tensor:
    """A loss whose gradient turns as the table moves (so each PGD step has a direction of its own)."""
    x = F.embedding(IDS, table)  # (2, 3, d)
    return torch.sin(x @ w).sum() + 0.3 * (x**3).sum()


class Toy(nn.Module):
    def __init__(self, frozen_table: bool):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(6, 4)
        self.embed.weight.requires_grad_(not frozen_table)
        self.w = nn.Parameter(torch.randn(4))

    def input_embeddings(self) -> nn.Embedding:
        return self.embed


def gradients(table: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    table, w = table.clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    return torch.autograd.grad(loss_at(table, w), (table, w))


def size_of(table: Tensor, gradient: Tensor) -> Tensor:
    """s * sqrt(k): the mean length of the k used token vectors, times sqrt(k)."""
    used = gradient.norm(dim=1) > 0
    return table[used].norm(dim=1).mean() * used.sum() ** 0.5


def attack(model: Toy, adversary: FGM | PGD, scale: float) -> list[Tensor]:
    """One training step's backward with `adversary`; the tables every loss call saw."""
    seen = []

    def loss_of_batch() -> Tensor:
        seen.append(model.embed.weight.detach().clone())
        return loss_at(model.embed.weight, model.w)

    (loss_of_batch() * scale).backward()  # the ordinary gradient, as the loop computes it first
    seen.clear()
    adversary.backward(model, loss_of_batch, scale)
    return seen


@pytest.mark.parametrize("frozen_table", [False, True])
def test_pgd_steps_along_the_normalised_gradient_and_projects_onto_the_ball(frozen_table):
    model = Toy(frozen_table)
    original = model.embed.weight.detach().clone()
    w_plain = gradients(original, model.w)[1] * 0.5
    epsilon, alpha, steps = 0.5, 0.4, 3
    seen = attack(model, PGD(epsilon, alpha, steps), scale=0.5)

    gradient = gradients(original, model.w)[0]
    s = size_of(original, gradient)
    r, expected, projected = torch.zeros_like(original), [], []
    for _ in range(steps):
        r = r + alpha * s * gradient / gradient.norm()
        projected.append(bool(r.norm() > epsilon * s))
        if projected[-1]:
            r = r * (epsilon * s / r.norm())
        expected.append(original + r)
        gradient = gradients(original + r, model.w)[0]
    assert projected == [False, True, True]  # the first step fits in the ball (0.4 < 0.5); the next ones do not
    # A frozen table has no gradient yet, so the attack first computes it at the original table.
    assert len(seen) == steps + frozen_table
    for got, wanted in zip(seen[frozen_table:], expected, strict=True):
        torch.testing.assert_close(got, wanted, rtol=0, atol=1e-6)
    assert (seen[-1] - original).norm() == pytest.approx(float(epsilon * s), rel=1e-5)
    assert torch.equal(seen[-1][[2, 5]], original[[2, 5]])  # words outside the batch never move
    # The loss at the last perturbation trains, on top of the ordinary gradient; the table is put back.
    torch.testing.assert_close(model.w.grad, w_plain + 0.5 * gradients(expected[-1], model.w)[1])
    assert torch.equal(model.embed.weight, original) and model.embed.weight.requires_grad == (not frozen_table)


@pytest.mark.parametrize("frozen_table", [False, True])
def test_fgm_moves_epsilon_along_the_normalised_gradient(frozen_table):
    model = Toy(frozen_table)
    original = model.embed.weight.detach().clone()
    seen = attack(model, FGM(0.05), scale=1.0)
    gradient = gradients(original, model.w)[0]
    wanted = original + 0.05 * size_of(original, gradient) * gradient / gradient.norm()
    assert len(seen) == 1 + frozen_table
    torch.testing.assert_close(seen[-1], wanted, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.w.grad, gradients(original, model.w)[1] + gradients(wanted, model.w)[1])
    assert torch.equal(model.embed.weight, original)
