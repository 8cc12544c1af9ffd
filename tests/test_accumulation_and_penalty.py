"""Gradient accumulation is one larger batch, and the L1 penalty is what it claims: l1 * sum |w| over the
decayed matrices, which pulls weights toward zero."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from lmlab.data.packing import TokenShards
from lmlab.models import model_from_config
from lmlab.train.loop import LoopConfig, TrainConfig, _accumulate_gradients, fit
from lmlab.train.objectives import CausalLM, ObjectiveSettings
from lmlab.train.optim import OptimizerConfig, parameter_groups, penalty
from lmlab.train.runtime import Runtime

TINY = {"family": "gpt", "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, "dropout": 0.0}


def tiny_model(vocab_size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    spec = {key: value for key, value in TINY.items() if key != "family"}
    return model_from_config("gpt", {**spec, "vocab_size": vocab_size})


def objective(shards: TokenShards, batch_size: int, grad_accum: int) -> CausalLM:
    settings = ObjectiveSettings(batch_size=batch_size, block_size=16, seed=7, grad_accum=grad_accum, eval_tokens=64)
    return CausalLM.build(tiny_model(shards.meta.vocab_size), shards, settings)


def train_tiny(packed_dir: Path, run_dir: Path, batch_size: int, grad_accum: int, steps: int = 3,
               **optimizer: float) -> nn.Module:
    shards = TokenShards(packed_dir)
    model = tiny_model(shards.meta.vocab_size)
    cfg = TrainConfig(
        data=str(packed_dir), run_dir=str(run_dir), model=TINY,
        optimizer=OptimizerConfig(lr=3e-3, **optimizer),
        train=LoopConfig(max_steps=steps, batch_size=batch_size, grad_accum=grad_accum, eval_every=steps,
                         eval_tokens=64, log_every=steps, checkpoint_every=steps, seed=7, device="cpu"),
    )
    run_dir.mkdir()
    fit(model, objective(shards, batch_size, grad_accum), cfg, run_dir, console=Console(quiet=True))
    return model


def test_the_micro_batches_of_a_step_are_the_larger_batch(packed_dir):
    shards = TokenShards(packed_dir)
    big, small = objective(shards, 12, 1), objective(shards, 4, 3)
    for step in (0, 5):
        whole = big.training_batch(step, 0)
        parts = [small.training_batch(step, micro) for micro in range(3)]
        for key in ("input_ids", "labels"):
            assert torch.equal(torch.cat([part[key] for part in parts]), whole[key])
    # the steps still differ from each other
    assert not torch.equal(big.training_batch(0, 0)["input_ids"], big.training_batch(1, 0)["input_ids"])


def test_accumulated_steps_train_the_weights_of_one_larger_batch(packed_dir, tmp_path):
    accumulated = train_tiny(packed_dir, tmp_path / "accumulated", batch_size=4, grad_accum=3)
    larger = train_tiny(packed_dir, tmp_path / "larger", batch_size=12, grad_accum=1)
    smaller = train_tiny(packed_dir, tmp_path / "smaller", batch_size=4, grad_accum=1)
    moved = 0.0
    for (name, a), b, c in zip(accumulated.named_parameters(), larger.parameters(), smaller.parameters(),
                               strict=True):
        # float32 sums the same numbers in another order: the weights agree to rounding (8e-7 measured,
        # against 1e-2 for a third of the batch)
        assert torch.allclose(a, b, rtol=0, atol=1e-5), (name, (a - b).abs().max().item())
        moved = max(moved, (a - c).abs().max().item())
    assert moved > 1e-3  # a third of the batch trains other weights: the comparison can tell them apart


def test_l1_penalty_is_l1_times_the_sum_of_absolute_decayed_weights():
    model = tiny_model(vocab_size=20)
    l1 = 0.003
    decayed, undecayed = parameter_groups(model)
    by_hand = l1 * sum(float(p.detach().abs().double().sum()) for p in decayed)
    assert float(penalty(model, OptimizerConfig(l1=l1)).detach()) == pytest.approx(by_hand, rel=1e-5)
    assert penalty(model, OptimizerConfig()) is None
    # decayed: every matrix (the tied embedding once); not: biases and LayerNorm gains
    matrices = {id(p) for p in model.parameters() if p.dim() >= 2}
    assert {id(p) for p in decayed} == matrices and all(p.dim() == 1 for p in undecayed)

    # its gradient is l1 * sign(w) on each decayed weight, and nothing on the others
    penalty(model, OptimizerConfig(l1=l1)).backward()
    for param in decayed:
        assert torch.allclose(param.grad, l1 * param.detach().sign())
    assert all(param.grad is None for param in undecayed)


def test_l1_in_the_training_loss(packed_dir):
    """The loop adds the penalty to the objective's loss once per optimizer step (split over micro-batches)."""
    shards = TokenShards(packed_dir)
    model = tiny_model(shards.meta.vocab_size)
    task = objective(shards, 4, 2)
    l1 = 0.01
    cfg = TrainConfig(data=str(packed_dir), model=TINY, optimizer=OptimizerConfig(l1=l1),
                      train=LoopConfig(batch_size=4, grad_accum=2, device="cpu"))
    _accumulate_gradients(model, model, task, cfg, Runtime.single("cpu"), None, step=0)
    with_l1 = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    data_loss = sum(task.loss(model, task.training_batch(0, micro)) for micro in range(2)) / 2
    data_loss.backward()
    decayed = {id(p) for p in parameter_groups(model)[0]}
    for name, param in model.named_parameters():
        expected = param.grad + (l1 * param.detach().sign() if id(param) in decayed else 0)
        assert torch.allclose(with_l1[name], expected, atol=1e-7), name


def test_a_large_l1_shrinks_the_weights(packed_dir, tmp_path):
    plain = train_tiny(packed_dir, tmp_path / "plain", 4, 1, steps=10, weight_decay=0.0)
    sparse = train_tiny(packed_dir, tmp_path / "l1", 4, 1, steps=10, weight_decay=0.0, l1=0.01)
    plain_decayed, _ = parameter_groups(plain)
    sparse_decayed, _ = parameter_groups(sparse)
    plain_mass = sum(float(p.detach().abs().sum()) for p in plain_decayed)
    sparse_mass = sum(float(p.detach().abs().sum()) for p in sparse_decayed)
    assert sparse_mass < 0.8 * plain_mass  # 0.26 measured
    # and the undecayed parameters (LayerNorm gains) are left out of it: they stay near their start of 1
    gains = [p for name, p in sparse.named_parameters() if name.endswith("ln_1.weight")]
    assert all(float(g.detach().mean()) > 0.8 for g in gains)
