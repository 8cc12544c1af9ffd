"""The one training loop shared by every neural model in lmlab.

Each optimizer step:

    for each of grad_accum micro-batches:     batch = objective.training_batch(step, micro)
        loss = objective.loss(model, batch) / grad_accum   (under the runtime's autocast)
        loss.backward()
    clip gradients; set the scheduled learning rate; optimizer.step()

What a batch is and how its loss is computed belongs to the objective (`lmlab.train.objectives`):
next-token prediction, masked LM, a classifier's cross-entropy, a pair of answers compared. Where
it computes (device, bf16, compile, which process logs) belongs to the runtime
(`lmlab.train.runtime`). The loop is the same for all of them.

Around it: evaluation every ``eval_every`` steps, a line of ``metrics.jsonl`` per logged step and per
evaluation, a progress bar with loss, tokens/s and ETA, and a checkpoint every
``checkpoint_every`` steps. A resumed run restores weights, optimizer moments, RNG state and the
objective's state (a recurrent state carried between windows), and since batches are a function
of the step, it finishes with the very weights an uninterrupted run would have (on CPU, where
kernels are deterministic). At the end,
``summary.json`` records steps, tokens, training seconds (summed over resumes), parameters and the
final losses.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import torch
from pydantic import Field, model_validator
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from lmlab.config import Config, FieldError, InputPath, registered
from lmlab.data.packing import TokenShards
from lmlab.errors import LmlabError
from lmlab.files import read_json, write_json, write_text
from lmlab.models import load_weights, model_from_config, read_safetensors, save_model
from lmlab.models.registry import DEFAULT_FAMILY
from lmlab.runs import start_run_dir
from lmlab.train.checkpoint import TrainerState, list_checkpoints, load_checkpoint, save_checkpoint
from lmlab.train.objectives import OBJECTIVES, Batch, Objective, ObjectiveSettings, on_device
from lmlab.train.optim import OptimizerConfig, ScheduleConfig, build_optimizer, lr_at, penalty
from lmlab.train.runtime import Runtime


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
    best_metric: str | None = Field(None, description="keep the weights of the best evaluation by this figure "
                                    "(e.g. val_loss, lower is better; val_accuracy, higher is better)")
    early_stopping: int | None = Field(None, ge=1, description="stop after this many evaluations without a "
                                       "better best_metric")

    @model_validator(mode="after")
    def _early_stopping_has_a_metric(self) -> LoopConfig:
        if self.early_stopping is not None and self.best_metric is None:
            raise FieldError("early_stopping", "needs train.best_metric, the figure that must stop improving",
                             self.early_stopping)
        return self


class TrainConfig(Config):
    run_dir: str = "runs/gpt"
    data: InputPath = Field(description="a packed directory (train.bin, val.bin, meta.json)")
    objective: Annotated[str, registered(OBJECTIVES, "objective")] = Field(
        "causal_lm", description="causal_lm: random windows; causal_lm_stream: the text in order, the state carried "
        "from window to window (truncated BPTT, for recurrent models); masked_lm: fill in masked tokens (BERT, "
        "WordPiece data); masked_lm_nsp: masked_lm plus next-sentence prediction on [CLS] A [SEP] B [SEP] pairs")
    model: dict[str, Any] = Field(default_factory=lambda: {"family": DEFAULT_FAMILY})
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: LoopConfig = LoopConfig()


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    tokens_seen: int
    seconds: float  # wall time spent training, summed over every session of a resumed run
    train_loss: float
    val_loss: float | None
    val_counts: str | None  # what val_loss averages over (`Objective.evaluation_note`)


def build_model(cfg: TrainConfig, vocab_size: int) -> nn.Module:
    spec = dict(cfg.model)
    family = spec.pop("family", DEFAULT_FAMILY)
    spec.setdefault("vocab_size", vocab_size)
    if spec["vocab_size"] < vocab_size:
        raise LmlabError(f"model.vocab_size: {spec['vocab_size']} is smaller than the data's {vocab_size}")
    return model_from_config(family, spec, source="config", section="model")


def build_objective(cfg: TrainConfig, model: nn.Module, shards: TokenShards, block_size: int) -> Objective:
    """The objective `cfg` names, built for `model` (which it may refuse, saying why) on the packed shards."""
    loop = cfg.train
    settings = ObjectiveSettings(batch_size=loop.batch_size, block_size=block_size, seed=loop.seed,
                                 grad_accum=loop.grad_accum, eval_tokens=loop.eval_tokens)
    return OBJECTIVES[cfg.objective].build(model, shards, settings)


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


def _prepare_run_dir(cfg: TrainConfig, resume: bool) -> Path:
    run_dir = Path(cfg.run_dir)
    checkpoints = list_checkpoints(run_dir)
    if not resume and checkpoints:
        raise LmlabError(f"{run_dir}: already holds a run; resume it with --resume or choose another run_dir")
    done = int(checkpoints[-1].name.removeprefix("step-")) if resume and checkpoints else 0
    if done >= cfg.train.max_steps and (run_dir / "summary.json").exists():
        # Refused before anything is written: resuming must never change a finished run.
        raise LmlabError(f"{run_dir}: finished at step {done} of train.max_steps={cfg.train.max_steps}; to train "
                         f"it longer: lmlab train {run_dir} --resume train.max_steps=N (N > {done})")
    return start_run_dir(run_dir, cfg, Path(cfg.data) / "tokenizer.json")


def train(cfg: TrainConfig, *, resume: bool = False, console: Console | None = None) -> TrainResult:
    """Train the configured model on the packed data; resume from the newest checkpoint if asked."""
    loop = cfg.train
    shards = TokenShards(cfg.data)
    torch.manual_seed(loop.seed)
    model = build_model(cfg, shards.meta.vocab_size)
    block_size = loop.block_size or model.config.block_size
    if block_size > model.config.block_size:
        raise LmlabError(f"train.block_size: {block_size} exceeds the model's context {model.config.block_size}")
    objective = build_objective(cfg, model, shards, block_size)
    run_dir = _prepare_run_dir(cfg, resume)
    return fit(model, objective, cfg, run_dir, resume=resume, console=console)


class LoopSettings(Protocol):
    """What `fit` reads of a config: a train config and a tune config both have these sections."""

    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    train: LoopConfig


class Adversary(Protocol):
    """Adds an adversarial gradient to a micro-batch's (lmlab.tune.adversarial: FGM, PGD)."""

    def backward(self, model: nn.Module, loss_of_batch: Callable[[], torch.Tensor], scale: float) -> None: ...


class BestWeights:
    """Keeps the weights of the best evaluation by `metric` (lower is better for a loss, higher otherwise)
    in ``run_dir/best``, and counts the evaluations since, for early stopping."""

    def __init__(self, run_dir: Path, metric: str | None, patience: int | None, resumed_at: int | None):
        self.directory, self.record = run_dir / "best", run_dir / "best.json"
        self.metric, self.patience = metric, patience
        self.value: float | None = None
        self.stale = 0  # evaluations since the best one
        metrics = run_dir / "metrics.jsonl"
        if metric and resumed_at is not None and metrics.exists():
            # Counted again from the evaluations up to the checkpoint, as the run had counted them when it
            # wrote it; a best.json from a later step is one the resumed run reaches again.
            for line in metrics.read_text(encoding="utf-8").splitlines():
                record = json.loads(line) if line.strip() else {}
                if metric in record and record["step"] <= resumed_at:
                    self._count(record[metric])

    def _count(self, value: float) -> bool:
        """Count one evaluation; True when it is the best so far."""
        better = self.value is None or (value < self.value if self.metric.endswith("loss") else value > self.value)
        self.value, self.stale = (value, 0) if better else (self.value, self.stale + 1)
        return better

    def update(self, model: nn.Module, evaluation: dict[str, float], step: int, writes: bool) -> bool:
        """Record an evaluation; True when training should stop early."""
        if not self.metric:
            return False
        if self.metric not in evaluation:
            raise LmlabError(f"train.best_metric: {self.metric!r} is not evaluated here; "
                             f"choose one of {', '.join(evaluation)}")
        value = evaluation[self.metric]
        if self._count(value):
            if writes:
                save_model(model, self.directory)
                write_json(self.record, {"step": step, "metric": self.metric, "value": value})
            return False
        return self.patience is not None and self.stale >= self.patience

    def restore(self, model: nn.Module) -> dict[str, Any]:
        """Put the best weights back into `model`; what summary.json records of them."""
        if not (self.metric and self.directory.exists()):
            return {}
        load_weights(model, read_safetensors(self.directory / "model.safetensors"), str(self.directory))
        return {"best": read_json(self.record)}


def _accumulate_gradients(model: nn.Module, forward: nn.Module, objective: Objective, cfg: LoopSettings,
                          runtime: Runtime, adversary: Adversary | None, step: int) -> tuple[float, int]:
    """The gradients of one optimizer step, over `grad_accum` micro-batches: (the mean loss, the tokens read)."""
    loop = cfg.train
    step_loss, step_tokens = 0.0, 0
    for micro in range(loop.grad_accum):
        batch = on_device(objective.training_batch(step, micro), runtime.device)
        step_tokens += batch["input_ids"].numel()
        with runtime.autocast():
            loss = objective.loss(forward, batch)
        extra = penalty(model, cfg.optimizer)
        total = (loss if extra is None else loss + extra) / loop.grad_accum
        total.backward()
        if adversary is not None:
            def loss_of_batch(batch: Batch = batch) -> torch.Tensor:
                with runtime.autocast():
                    return objective.loss(forward, batch)

            adversary.backward(model, loss_of_batch, 1.0 / loop.grad_accum)
        step_loss += float(loss.detach()) / loop.grad_accum
    return step_loss, step_tokens


def fit(model: nn.Module, objective: Objective, cfg: LoopSettings, run_dir: Path, *, resume: bool = False,
        console: Console | None = None, adversary: Adversary | None = None,
        runtime: Runtime | None = None) -> TrainResult:
    """The loop itself: `model` trained on `objective`'s batches, checkpointed into `run_dir`."""
    console = console or Console(stderr=True)
    loop = cfg.train
    runtime = runtime or Runtime.single(loop.device, loop.compile)
    model.to(runtime.device)
    optimizer = build_optimizer(model, cfg.optimizer)

    # 1. where to start: from scratch, or from the newest checkpoint with the objective's state
    state = TrainerState(step=0, tokens_seen=0)
    checkpoints = list_checkpoints(run_dir)
    if resume and checkpoints:
        state = load_checkpoint(checkpoints[-1], model, optimizer)
        objective.load_state(state.carried, model, runtime.device)
        console.print(f"resumed from {checkpoints[-1]} (step {state.step})")
    metrics = MetricsLog(run_dir / "metrics.jsonl", state.step if resume else None) if runtime.is_main else None
    best = BestWeights(run_dir, loop.best_metric, loop.early_stopping, state.step if resume else None)

    forward = runtime.wrap(model)
    train_loss, evaluation = math.nan, {}
    start, window_start, window_tokens = time.perf_counter(), time.perf_counter(), 0
    seconds_before = state.train_seconds  # spent in earlier sessions of a resumed run

    progress = Progress(
        TextColumn("[bold]train"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, disable=not runtime.is_main,
    )
    model.train()
    with progress:
        task = progress.add_task("train", total=loop.max_steps, completed=state.step, loss="-", speed="-")
        while state.step < loop.max_steps:
            # 2. one optimizer step at the scheduled learning rate
            lr = lr_at(state.step, loop.max_steps, cfg.optimizer.lr, cfg.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss, step_tokens = _accumulate_gradients(model, forward, objective, cfg, runtime, adversary,
                                                           state.step)
            step_figures = objective.step_figures()
            if not math.isfinite(step_loss):
                last = list_checkpoints(run_dir)
                kept = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
                raise LmlabError(
                    f"{run_dir}: step {state.step + 1}: the training loss became {step_loss}; training stopped and "
                    f"{kept} (try a lower optimizer.lr or a stronger grad_clip)"
                )
            if cfg.optimizer.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.tokens_seen += step_tokens
            window_tokens += step_tokens
            train_loss = step_loss
            last_step = state.step == loop.max_steps

            # 3. log, evaluate (keeping the best weights), checkpoint
            if metrics and (state.step % loop.log_every == 0 or last_step):
                now = time.perf_counter()
                speed = window_tokens / max(now - window_start, 1e-9)
                window_start, window_tokens = now, 0
                metrics.write({"step": state.step, "loss": train_loss, **step_figures, "lr": lr,
                               "tokens": state.tokens_seen, "tokens_per_s": speed})
                progress.update(task, loss=f"{train_loss:.3f}", speed=f"{speed:,.0f}")
            stop = False
            if state.step % loop.eval_every == 0 or last_step:
                with runtime.autocast():
                    evaluation = objective.evaluate(model, runtime.device)
                if metrics:
                    metrics.write({"step": state.step, **evaluation})
                    console.print(f"step {state.step:>6}  train loss {train_loss:.4f}  " + "  ".join(
                        f"{name.replace('_', ' ')} {value:.4f}" for name, value in evaluation.items()))
                stop = best.update(model, evaluation, state.step, writes=runtime.is_main)
                if metrics and (last_step or stop) and (note := objective.evaluation_note()):
                    console.print(f"  (val loss and perplexity {note})")
            if runtime.is_main and (state.step % loop.checkpoint_every == 0 or last_step or stop):
                state.train_seconds = seconds_before + time.perf_counter() - start
                state.carried = objective.state()
                save_checkpoint(run_dir, model, optimizer, state, keep_last=loop.keep_checkpoints)
            progress.update(task, completed=state.step)
            if stop:
                console.print(f"early stop at step {state.step}: {loop.best_metric} did not improve in "
                              f"{loop.early_stopping} evaluations")
                break

    # 4. the final (or best) weights and the summary, which the main process alone writes
    model = runtime.unwrap(forward)
    kept_best = best.restore(model) if runtime.is_main else {}
    seconds = seconds_before + time.perf_counter() - start
    val_loss = evaluation.get("val_loss")
    if runtime.is_main:
        save_model(model, run_dir)
        write_json(run_dir / "summary.json", {
            "steps": state.step,
            "tokens_seen": state.tokens_seen,
            "train_seconds": seconds,
            "parameters": sum(p.numel() for p in model.parameters()),  # tied weights once
            "train_loss": train_loss if math.isfinite(train_loss) else None,  # NaN when a finished run is resumed
            "val_loss": val_loss,
            **kept_best,
        })
    return TrainResult(run_dir, state.step, state.tokens_seen, seconds, train_loss, val_loss,
                       objective.evaluation_note() if evaluation else None)
