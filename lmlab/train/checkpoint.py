"""Training checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is a directory ``checkpoints/step-N/`` holding

- ``model.safetensors`` + ``model.json``: the weights, in the same format as a finished model;
- ``optimizer.safetensors``: AdamW's moments and step counts, one tensor per parameter and slot;
- ``trainer.json``: the step, tokens seen, training seconds so far and the optimizer's
  hyper-parameters;
- ``rng.safetensors``: the RNG states (dropout draws must continue the same sequence after a resume);
- ``carried_state.safetensors``, for a recurrent model trained on streams (truncated
  back-propagation through time): the state its last window ended in, which the next window
  starts from. Without it a resumed run would restart every stream from zero and drift away from
  the uninterrupted one.

Nothing is pickled, so a checkpoint handed over by someone else cannot run code when loaded. The
directory is written under a temporary name and renamed when complete: a run killed while saving
leaves the previous checkpoint intact and no half-written one.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, write_json
from lmlab.models import load_weights, read_model_json, read_safetensors, save_model

STEP_DIR = re.compile(r"^step-(\d+)$")


CARRIED_FILE = "carried_state.safetensors"


@dataclass
class TrainerState:
    step: int  # optimizer steps completed
    tokens_seen: int
    train_seconds: float = 0.0  # wall time spent training, summed over every session of the run
    carried: dict[str, torch.Tensor] = field(default_factory=dict)  # a recurrent state carried between windows


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{slot}": value.detach().contiguous().cpu()
        for index, slots in state["state"].items()
        for slot, value in slots.items()
        if isinstance(value, torch.Tensor)
    }
    return tensors, state["param_groups"]


def _rng_tensors() -> dict[str, torch.Tensor]:
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda.{index}"] = cuda_state
    return rng


def save_checkpoint(
    run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainerState, keep_last: int = 2
) -> Path:
    """Write ``checkpoints/step-N`` atomically and prune older ones, keeping the newest `keep_last`."""
    target = run_dir / "checkpoints" / f"step-{state.step}"
    tensors, param_groups = _optimizer_tensors(optimizer)
    with atomic_path(target) as tmp:
        save_model(model, tmp)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        save_file(_rng_tensors(), str(tmp / "rng.safetensors"))
        if state.carried:
            save_file({name: t.detach().contiguous().cpu() for name, t in state.carried.items()},
                      str(tmp / CARRIED_FILE))
        write_json(
            tmp / "trainer.json",
            {"step": state.step, "tokens_seen": state.tokens_seen, "train_seconds": state.train_seconds,
             "param_groups": param_groups},
        )
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are never listed)."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found)]


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainerState:
    """Restore weights, optimizer and RNG from `path` into the given objects; return the trainer state
    (with the carried recurrent state, on the CPU, when the checkpoint has one)."""
    trainer_file = path / "trainer.json"
    meta: dict[str, Any] = read_json(trainer_file, "file; the checkpoint is incomplete")
    try:
        step, tokens_seen, param_groups = meta["step"], meta["tokens_seen"], meta["param_groups"]
        train_seconds = float(meta.get("train_seconds", 0.0))  # absent from checkpoints older than the field
    except (KeyError, TypeError, ValueError) as exc:
        raise LmlabError(f"{trainer_file}: corrupt checkpoint metadata ({exc})") from None

    # Read into the run's own model, which may carry more than its family's config says (a chat task's
    # LoRA layers on a plain decoder): the weights must fit it exactly, name for name.
    family, config = read_model_json(path / "model.json")
    if family != model.family or config != json.loads(json.dumps(model.config_dict())):
        raise LmlabError(f"{path}: the checkpoint's model does not match this run's model config")
    load_weights(model, read_safetensors(path / "model.safetensors"), str(path / "model.safetensors"))

    tensors = read_safetensors(path / "optimizer.safetensors")
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, slot = key.split(".", 1)
        slots.setdefault(int(index), {})[slot] = value
    try:
        optimizer.load_state_dict({"state": slots, "param_groups": param_groups})
    except (ValueError, KeyError) as exc:
        raise LmlabError(f"{path / 'optimizer.safetensors'}: does not fit this run's optimizer ({exc})") from None

    rng = read_safetensors(path / "rng.safetensors")
    torch.set_rng_state(rng["cpu"])
    cuda_states = [rng[f"cuda.{i}"] for i in range(len(rng) - 1) if f"cuda.{i}" in rng]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    carried = read_safetensors(path / CARRIED_FILE) if (path / CARRIED_FILE).exists() else {}
    return TrainerState(step=step, tokens_seen=tokens_seen, train_seconds=train_seconds, carried=carried)
