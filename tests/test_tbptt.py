"""Truncated back-propagation through time: streams, the carried state, its checkpoint, streamed evaluation.

The streaming objective (``causal_lm_stream``) reads the train split as batch_size contiguous
streams; the loop feeds each window the state the previous one ended in, detached. These tests
check the layout against the split itself, the forward values against one long pass, the cut in
the backward pass, the exact resume, and that an LSTM trained this way learns.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_train_overrides

from lmlab.config import load_config
from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError
from lmlab.models import load_model
from lmlab.models.rnn import RNNConfig, RNNLanguageModel
from lmlab.train import TrainConfig, train
from lmlab.train import loop as loop_module
from lmlab.train.checkpoint import list_checkpoints
from lmlab.train.objectives import StreamingCausalLM

LSTM = "model={family: rnn, cell: lstm, n_embd: 16, hidden: 16, n_layer: 1, block_size: 32}"


def _config(packed_dir, run_dir, *extra: str, steps: int = 12) -> TrainConfig:
    """The tiny training config of conftest, as an LSTM on streams: 16 streams of 32-token windows."""
    base = [o for o in tiny_train_overrides(packed_dir, run_dir, steps) if not o.startswith("model=")]
    overrides = [*base, LSTM, "objective=causal_lm_stream", "train.batch_size=16", "optimizer.lr=0.03", *extra]
    return load_config(TrainConfig, None, overrides)


def _split(packed_dir, split: str = "train") -> np.ndarray:
    """The split's token ids read straight from disk, independently of TokenShards."""
    meta = json.loads((packed_dir / "meta.json").read_text())
    return np.fromfile(packed_dir / f"{split}.bin", dtype=np.dtype(meta["dtype"]).newbyteorder("<")).astype(np.int64)


def _stream_losses(model, tokens: np.ndarray, streams: int, length: int, targets: int) -> torch.Tensor:
    """Per-token losses (streams, targets) of one long forward over each stream, from a zero state."""
    ids = torch.tensor(np.stack([tokens[b * length : b * length + targets + 1] for b in range(streams)]))
    with torch.no_grad():
        logits = model(ids[:, :-1]).logits
    return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")


def test_stream_layout_follows_the_split(packed_dir):
    tokens = _split(packed_dir)
    B, T, A = 4, 8, 3
    objective = StreamingCausalLM(TokenShards(packed_dir), B, T, grad_accum=A)
    L = (len(tokens) - 1) // B
    W = L // T
    assert (objective.stream_length, objective.windows_per_epoch) == (L, W)
    for step, micro in [(0, 0), (0, 2), (1, 0), (W // A, W % A), (W // A + 1, 1)]:
        s = (step * A + micro) % W  # consecutive windows per micro-step, wrapping after an epoch
        batch = objective.training_batch(step, micro)
        assert batch["input_ids"].shape == batch["labels"].shape == (B, T)
        for b in range(B):
            start = b * L + s * T
            assert batch["input_ids"][b].tolist() == tokens[start : start + T].tolist()
            assert batch["labels"][b].tolist() == tokens[start + 1 : start + T + 1].tolist()
        assert objective.starts_stream(step, micro) == (s == 0)
    assert sum(objective.starts_stream(step, micro) for step in range(W) for micro in range(A)) == A


def test_too_short_streams_and_stateless_models_are_refused(packed_dir, tmp_path):
    with pytest.raises(LmlabError, match=r"train\.batch_size=4000 streams.*train\.block_size=32"):
        StreamingCausalLM(TokenShards(packed_dir), 4000, 32)
    gpt = "model={family: gpt, n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}"
    with pytest.raises(LmlabError, match="objective: causal_lm_stream.*gpt model has none"):
        train(_config(packed_dir, tmp_path / "gpt", gpt))
    with pytest.raises(LmlabError, match="objective"):
        _config(packed_dir, tmp_path / "bad", "objective=causal_lm_tbptt")


def test_carried_state_gives_the_losses_of_one_long_forward(packed_dir, tmp_path):
    """With a learning rate of 0 the weights never move, so each logged step loss must be the loss of
    its windows inside one unbroken pass over every stream, and again from zero after the epoch wraps."""
    run = tmp_path / "run"
    B, T, A, steps = 16, 32, 2, 12
    train(_config(packed_dir, run, "optimizer.lr=0.0", "train.checkpoint_every=100", steps=steps))
    logged = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]

    tokens = _split(packed_dir)
    L = (len(tokens) - 1) // B
    W = L // T
    assert steps * A > W, "the run should cross an epoch boundary"
    per_window = _stream_losses(load_model(run), tokens, B, L, W * T).view(B, W, T).mean(dim=(0, 2))
    expected = [float(per_window[(A * s) % W] + per_window[(A * s + 1) % W]) / A for s in range(steps)]
    assert logged == pytest.approx(expected, abs=1e-5)

    # The check can fail: from a zero state each window, the losses are not those of the long pass.
    model = load_model(run)
    ids = torch.tensor(np.stack([tokens[b * L + T : b * L + 2 * T + 1] for b in range(B)]))
    with torch.no_grad():
        cold = float(model(ids[:, :-1], labels=ids[:, 1:]).loss)
    assert abs(cold - float(per_window[1])) > 1e-4


def test_gradients_stop_at_the_window_boundary(packed_dir, tmp_path, monkeypatch):
    """Every window starts from the state the previous one ended in, with no autograd history: the
    backward pass of one window cannot reach into the one before. At the epoch's wrap, from zero."""
    seen: list[dict] = []
    real_forward = RNNLanguageModel.forward

    def spy(self, input_ids, attention_mask=None, labels=None, cache=None, last_token_only=False):
        state_in = None if cache is None or cache.state is None else [t.clone() for t in cache.state]
        history = cache is not None and any(t.requires_grad for t in cache.tensors().values())
        out = real_forward(self, input_ids, attention_mask, labels, cache, last_token_only)
        if self.training:
            seen.append({"in": state_in, "out": [t.detach().clone() for t in out.cache.state], "history": history})
        return out

    monkeypatch.setattr(RNNLanguageModel, "forward", spy)
    steps, A = 12, 2
    train(_config(packed_dir, tmp_path / "run", "train.checkpoint_every=100", steps=steps))
    W = (len(_split(packed_dir)) - 1) // 16 // 32
    assert len(seen) == steps * A
    for window, call in enumerate(seen):
        if window % W == 0:
            assert call["in"] is None
        else:
            previous = seen[window - 1]["out"]
            assert all(torch.equal(a, b) for a, b in zip(call["in"], previous, strict=True))
            assert not call["history"]

    # What the detach buys: the gradient is the one from a constant starting state, unlike full BPTT.
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNConfig(cell="lstm", vocab_size=200, n_embd=16, hidden=16, n_layer=1))
    ids = torch.randint(0, 200, (2, 17))
    grads = {}
    for mode in ("detached", "constant", "full"):
        model.zero_grad()
        first = model(ids[:, :8])
        if mode == "detached":
            first.cache.detach_()
        elif mode == "constant":
            first.cache.state = tuple(t.detach().clone() for t in first.cache.state)
        model(ids[:, 8:16], labels=ids[:, 9:17], cache=first.cache).loss.backward()
        grads[mode] = model.rnn.weight_hh_l0.grad.clone()
    assert torch.equal(grads["detached"], grads["constant"])
    assert not torch.allclose(grads["detached"], grads["full"])


def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(packed_dir, tmp_path, monkeypatch):
    steps, stop_at = 14, 6  # 16 streams of 650 tokens: 20 windows an epoch, so the run wraps at step 10
    dropout = "model.dropout=0.1"  # so that the RNG state must be restored too
    every = "train.checkpoint_every=3"
    straight = tmp_path / "straight"
    train(_config(packed_dir, straight, dropout, every, steps=steps))

    class Interrupted(Exception):
        pass

    real_save = loop_module.save_checkpoint

    def save_then_stop(run_dir, model, optimizer, state, keep_last):
        path = real_save(run_dir, model, optimizer, state, keep_last)
        if state.step == stop_at:
            raise Interrupted
        return path

    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        train(_config(packed_dir, interrupted, dropout, every, steps=steps))
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    checkpoint = list_checkpoints(interrupted)[-1]
    assert checkpoint.name == f"step-{stop_at}" and (checkpoint / "carried_state.safetensors").exists()
    assert not (interrupted / "summary.json").exists()

    seconds_before = json.loads((checkpoint / "trainer.json").read_text())["train_seconds"]
    # A copy resumed without the carried state: what the test below would miss if the state were not restored.
    stateless = tmp_path / "stateless"
    shutil.copytree(interrupted, stateless)
    (list_checkpoints(stateless)[-1] / "carried_state.safetensors").unlink()

    train(_config(packed_dir, interrupted, dropout, every, steps=steps), resume=True)
    resumed, reference = load_model(interrupted).state_dict(), load_model(straight).state_dict()
    assert resumed.keys() == reference.keys()
    for name in reference:
        assert torch.equal(resumed[name], reference[name]), name

    train(_config(packed_dir, stateless, dropout, every, steps=steps), resume=True)
    assert not torch.equal(load_model(stateless).state_dict()["rnn.weight_hh_l0"], reference["rnn.weight_hh_l0"])

    # Training time adds up over the two sessions, and the summary describes the whole run.
    summary = json.loads((interrupted / "summary.json").read_text())
    assert summary["train_seconds"] > seconds_before > 0
    assert summary["steps"] == steps and summary["tokens_seen"] == steps * 16 * 32 * 2
    assert summary["parameters"] == sum(p.numel() for p in load_model(interrupted).parameters())
    records = [json.loads(line) for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert summary["val_loss"] == [r["val_loss"] for r in records if "val_loss" in r][-1]
    assert summary["train_loss"] == [r["loss"] for r in records if "loss" in r][-1]


@pytest.mark.parametrize("max_tokens", [None, 320])
def test_streamed_validation_equals_one_long_forward_per_stream(packed_dir, max_tokens):
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNConfig(cell="gru", vocab_size=200, n_embd=16, hidden=16, n_layer=2)).eval()
    B, T = 8, 32
    objective = StreamingCausalLM(TokenShards(packed_dir), B, T, eval_tokens=max_tokens)
    loss = objective.validation_loss(model, torch.device("cpu"))

    tokens = _split(packed_dir, "val")
    L = (len(tokens) - 1) // B
    targets = L if max_tokens is None else max_tokens // B
    assert targets % T, "the last window should be a short one"
    assert loss == pytest.approx(float(_stream_losses(model, tokens, B, L, targets).mean()), abs=1e-5)


def test_an_lstm_learns_with_the_state_carried(packed_dir, tmp_path):
    """It must do clearly better than the best context-free guess: the train split's unigram distribution."""
    run = tmp_path / "run"
    wider = "model={family: rnn, cell: lstm, n_embd: 32, hidden: 32, n_layer: 1, block_size: 32}"
    train(_config(packed_dir, run, wider, "optimizer.lr=0.05", "train.eval_every=10", "train.checkpoint_every=100",
                  steps=40))
    val = [json.loads(line)["val_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
           if "val_loss" in line]
    counts = np.bincount(_split(packed_dir), minlength=200) + 1  # add-one, so no val token has probability 0
    targets = _split(packed_dir, "val")[1:]
    unigram = float(-np.log(counts[targets] / counts.sum()).mean())
    assert val == sorted(val, reverse=True) and val[-1] < unigram - 0.4


def test_a_streamed_windows_loss_is_taken_once(packed_dir):
    """Its state moves on with the loss, so a second loss of the same window (an adversary's) is refused."""
    model = RNNLanguageModel(RNNConfig(cell="gru", vocab_size=200, n_embd=8, hidden=8, n_layer=1))
    objective = StreamingCausalLM(TokenShards(packed_dir), 4, 16)
    batch = objective.training_batch(0, 0)
    objective.loss(model, batch)
    with pytest.raises(LmlabError, match="takes each window's loss once"):
        objective.loss(model, batch)
