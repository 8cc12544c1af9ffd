"""Bottleneck adapters: a fresh adapter computes exactly the backbone, and training moves only what it adds."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_backbones import TINY, padded_ids, tiny_gpt

from lmlab.train.loop import LoopConfig, fit
from lmlab.train.objectives import Objective
from lmlab.train.optim import OptimizerConfig, ScheduleConfig
from lmlab.tune.adapters import Adapted, AdapterConfig, apply_adapters


@pytest.mark.parametrize("family", ["gpt", "bert"])
def test_a_fresh_adapter_computes_exactly_the_backbone(family):
    backbone = TINY[family]()
    original = copy.deepcopy(backbone)
    apply_adapters(backbone, AdapterConfig(size=8))
    assert sum(isinstance(m, Adapted) for m in backbone.modules()) == 4  # two per block, two blocks
    ids, mask = padded_ids()
    with torch.no_grad():
        assert torch.equal(backbone.features(input_ids=ids, attention_mask=mask),
                           original.features(input_ids=ids, attention_mask=mask))
        assert torch.equal(backbone(ids, attention_mask=mask).logits, original(ids, attention_mask=mask).logits)
        # the detour is live: an up-projection that is not zero changes the output
        next(m for m in backbone.modules() if isinstance(m, Adapted)).adapter.up.weight.normal_()
        assert not torch.equal(backbone(ids, attention_mask=mask).logits, original(ids, attention_mask=mask).logits)


class RepeatObjective(Objective):
    """Next-token batches of one repeated pattern, which a random GPT's adapters learn in a few steps."""

    def __init__(self) -> None:
        pattern = torch.arange(3, 10).repeat(5)[:33]
        self.inputs, self.labels = pattern[:-1].repeat(4, 1), pattern[1:].repeat(4, 1)

    def training_batch(self, step: int, micro_step: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.inputs, "labels": self.labels}

    def eval_batches(self, max_tokens):
        yield self.training_batch(0, 0)


class Settings:
    optimizer, schedule = OptimizerConfig(lr=1e-2, weight_decay=0.1), ScheduleConfig(kind="constant")
    train = LoopConfig(max_steps=12, batch_size=4, eval_every=12, log_every=4, checkpoint_every=12, device="cpu")


def test_training_moves_the_adapters_and_layer_norms_and_leaves_the_backbone_bitwise(tmp_path):
    model = apply_adapters(tiny_gpt(), AdapterConfig(size=8))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    objective = RepeatObjective()
    batch = objective.training_batch(0, 0)

    def loss() -> float:
        with torch.no_grad():
            logits = model.eval()(batch["input_ids"]).logits
        return float(F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten()))

    start = loss()
    fit(model.train(), objective, Settings(), tmp_path / "run")
    assert loss() < start - 0.1
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all(".adapter." in name or ".ln_" in name for name in trained)
    for name, param in model.named_parameters():
        if name in trained:
            assert not torch.equal(param, before[name]), name
        else:
            assert torch.equal(param, before[name]), name  # frozen: not even weight decay touches it
