"""The one training loop shared by every neural model in lmlab.

Each optimizer step:

    for each of grad_accum micro-batches:     batch = objective.training_batch(step, micro)
        loss = model(**batch).loss / grad_accum  (bf16 autocast on CUDA)
        loss.backward()
    clip gradients; set the scheduled learning rate; optimizer.step()

Around it: evaluation every ``eval_every`` steps, a line of ``metrics.jsonl`` per logged step and per
evaluation, a progress bar with loss, tokens/s and ETA, and a checkpoint every
``checkpoint_every`` steps. A resumed run restores weights, optimizer moments and RNG state, and
since batches are a function of the step, it finishes with the very weights an uninterrupted run
would have (on CPU, where kernels are deterministic).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from lmlab.config import Config, build_config, read_yaml, save_config
from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError
from lmlab.files import write_text
from lmlab.models import model_from_config, save_model
from lmlab.train.checkpoint import TrainerState, list_checkpoints, load_checkpoint, save_checkpoint
from lmlab.train.objectives import CausalLM, Objective
from lmlab.train.optim import OptimizerConfig, ScheduleConfig, build_optimizer, lr_at, penalty


class LoopConfig(Config):
    max_steps: int = Field(1000, ge=1)
    batch_size: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1)
    block_size: int | None = Field(None, ge=1, description="training window; default: the model's context")
    eval_every: int = Field(100, ge=1)
    eval_tokens: int | None = Field(65_536, ge=1, description="validation targets per evaluation")
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(200, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 1337
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False


class TrainConfig(Config):
    run_dir: str = "runs/gpt"
    data: str = Field(description="a packed directory (train.bin, val.bin, meta.json)")
    objective: Literal["causal_lm"] = "causal_lm"
    model: dict[str, Any] = Field(default_factory=lambda: {"family": "gpt"})
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: LoopConfig = LoopConfig()


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    tokens_seen: int
    seconds: float
    train_loss: float
    val_loss: float | None


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise LmlabError("train.device: 'cuda' was asked for but no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def build_model(cfg: TrainConfig, vocab_size: int) -> nn.Module:
    spec = dict(cfg.model)
    family = spec.pop("family", "gpt")
    spec.setdefault("vocab_size", vocab_size)
    if spec["vocab_size"] < vocab_size:
        raise LmlabError(f"model.vocab_size: {spec['vocab_size']} is smaller than the data's {vocab_size}")
    return model_from_config(family, spec)


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines after the checkpoint's step are dropped."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]
            write_text(path, "".join(line + "\n" for line in kept))
        elif resume_step is None:
            write_text(path, "")

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


@torch.no_grad()
def evaluate_loss(model: nn.Module, objective: Objective, max_tokens: int | None, device: torch.device,
                  autocast: Callable[[], Any]) -> float:
    """Token-weighted mean loss over the validation batches."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in objective.eval_batches(max_tokens):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            loss = model(**batch).loss
        n = int((batch["labels"] != -100).sum())
        total += float(loss) * n
        count += n
    model.train(was_training)
    if count == 0:
        raise LmlabError("the validation split has no complete window to evaluate on")
    return total / count


def _prepare_run_dir(cfg: TrainConfig, resume: bool) -> Path:
    run_dir = Path(cfg.run_dir)
    if not resume and list_checkpoints(run_dir):
        raise LmlabError(f"{run_dir}: already holds a run; resume it with --resume or choose another run_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    tokenizer = Path(cfg.data) / "tokenizer.json"
    if tokenizer.exists():
        shutil.copyfile(tokenizer, run_dir / "tokenizer.json")
    return run_dir


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config a run saved, for resuming or inspecting it."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise LmlabError(f"{path}: missing; is {run_dir} a run directory?")
    return build_config(TrainConfig, read_yaml(path), source=str(path))


def train(cfg: TrainConfig, *, resume: bool = False, console: Console | None = None) -> TrainResult:
    """Train the configured model on the packed data; resume from the newest checkpoint if asked."""
    console = console or Console(stderr=True)
    loop = cfg.train
    shards = TokenShards(cfg.data)
    torch.manual_seed(loop.seed)
    model = build_model(cfg, shards.meta.vocab_size)
    block_size = loop.block_size or model.config.block_size
    if block_size > model.config.block_size:
        raise LmlabError(f"train.block_size: {block_size} exceeds the model's context {model.config.block_size}")
    device = pick_device(loop.device)
    model.to(device)
    optimizer = build_optimizer(model, cfg.optimizer)
    objective = CausalLM(shards, loop.batch_size, block_size, loop.seed)
    run_dir = _prepare_run_dir(cfg, resume)

    state = TrainerState(step=0, tokens_seen=0)
    checkpoints = list_checkpoints(run_dir)
    if resume and checkpoints:
        state = load_checkpoint(checkpoints[-1], model, optimizer)
        console.print(f"resumed from {checkpoints[-1]} (step {state.step})")
    metrics = MetricsLog(run_dir / "metrics.jsonl", state.step if resume else None)

    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast() -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else nullcontext()

    forward = torch.compile(model) if loop.compile else model
    tokens_per_step = loop.batch_size * block_size * loop.grad_accum
    train_loss, val_loss = math.nan, None
    start, window_start, window_tokens = time.perf_counter(), time.perf_counter(), 0

    progress = Progress(
        TextColumn("[bold]train"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
    )
    model.train()
    with progress:
        task = progress.add_task("train", total=loop.max_steps, completed=state.step, loss="-", speed="-")
        while state.step < loop.max_steps:
            step = state.step
            lr = lr_at(step, loop.max_steps, cfg.optimizer.lr, cfg.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = 0.0
            for micro in range(loop.grad_accum):
                batch = {k: v.to(device) for k, v in objective.training_batch(step, micro).items()}
                with autocast():
                    loss = forward(**batch).loss
                extra = penalty(model, cfg.optimizer)
                total = (loss if extra is None else loss + extra) / loop.grad_accum
                total.backward()
                step_loss += float(loss.detach()) / loop.grad_accum
            if not math.isfinite(step_loss):
                last = list_checkpoints(run_dir)
                kept = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
                raise LmlabError(
                    f"step {step + 1}: the training loss became {step_loss}; training stopped and {kept} "
                    "(try a lower optimizer.lr or a stronger grad_clip)"
                )
            if cfg.optimizer.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.tokens_seen += tokens_per_step
            window_tokens += tokens_per_step
            train_loss = step_loss

            if state.step % loop.log_every == 0 or state.step == loop.max_steps:
                now = time.perf_counter()
                speed = window_tokens / max(now - window_start, 1e-9)
                window_start, window_tokens = now, 0
                metrics.write({"step": state.step, "loss": train_loss, "lr": lr,
                               "tokens": state.tokens_seen, "tokens_per_s": speed})
                progress.update(task, loss=f"{train_loss:.3f}", speed=f"{speed:,.0f}")
            if state.step % loop.eval_every == 0 or state.step == loop.max_steps:
                val_loss = evaluate_loss(model, objective, loop.eval_tokens, device, autocast)
                metrics.write({"step": state.step, "val_loss": val_loss, "val_perplexity": math.exp(val_loss)})
                console.print(f"step {state.step:>6}  train loss {train_loss:.4f}  val loss {val_loss:.4f}  "
                              f"val perplexity {math.exp(val_loss):.2f}")
            if state.step % loop.checkpoint_every == 0 or state.step == loop.max_steps:
                save_checkpoint(run_dir, model, optimizer, state, keep_last=loop.keep_checkpoints)
            progress.update(task, completed=state.step)

    save_model(model, run_dir)
    return TrainResult(run_dir, state.step, state.tokens_seen, time.perf_counter() - start, train_loss, val_loss)
