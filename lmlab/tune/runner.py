"""`lmlab tune`: fine-tune a pretrained model for a task, and compare methods on one split.

    base (an lmlab run, a Hugging Face BERT directory, or named weights such as all-MiniLM-L6-v2)
      + method (full, features, lora, adapters, prompt, or several: lora+adapters) [+ adversarial: fgm, pgd]
      + the task's head ──> the one training loop (early stopping on validation, best weights kept)
      ──> run directory: model.safetensors + model.json (family "tuned"), tokenizer.json, config.yaml,
          metrics.jsonl, summary.json (the task's test figures, trainable parameters, time, memory)

`tune` knows no task: it asks the task named by `task=` (lmlab.tune.tasks.TASKS) for its data,
examples, objective and test figures, and puts its head on the base through `TunedModel`.

`compare_methods` runs each method in a process of its own, so that each one's peak memory is its
own, and puts them on one table beside the majority-class baseline.
"""

from __future__ import annotations

import copy
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator
from rich.console import Console
from rich.table import Table
from torch import nn

from lmlab.config import Config, InputPath, build_config, read_config_data, read_yaml, registered
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, write_json, write_text
from lmlab.models import save_model
from lmlab.modes import pick_device
from lmlab.runs import Run, open_run, start_run_dir
from lmlab.tokenizers import Tokenizer
from lmlab.tokenizers.chat import ChatTemplate, with_chat_tokens
from lmlab.train.dispatch import resumed_config_data
from lmlab.train.loop import LoopConfig, fit
from lmlab.train.objectives import Objective
from lmlab.train.optim import OptimizerConfig, ScheduleConfig
from lmlab.tune.adversarial import AdversarialConfig, build_adversary
from lmlab.tune.lora import remove_lora
from lmlab.tune.methods import MethodConfig, apply_method, method_name, split_method
from lmlab.tune.model import TunedModel, tuned_config_from
from lmlab.tune.params import trainable_parameters
from lmlab.tune.tasks import TASKS
from lmlab.tune.tasks.base import HeadConfig
from lmlab.tune.tasks.chat import ChatContext, ChatTask, base_template
from lmlab.tune.tasks.dpo import PreferenceConfig
from lmlab.tune.tasks.grpo import GRPOConfig

# Classification's validation figure: the loop's default, which another task replaces by its own.
DEFAULT_BEST_METRIC = "val_macro_f1"

# What each method trains well with, as sections of TuneConfig: laid under whatever the run gives, so a
# key the config file or an override sets always wins. `tune` and `tune compare` both get them here,
# and config.yaml records the values resolved. A method without an entry takes the sections' defaults.
METHOD_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"optimizer": {"lr": 5e-5}},
    "features": {"optimizer": {"lr": 1e-3}, "head": {"hidden": 512}},  # a frozen backbone: a larger head, faster
    "lora": {"optimizer": {"lr": 1e-3}},
    "adapters": {"optimizer": {"lr": 1e-3}},
    "prompt": {"optimizer": {"lr": 3e-2}},
}


class TuneConfig(Config):
    run_dir: str = "runs/tune"
    base: InputPath = Field(description="an lmlab run directory, a Hugging Face BERT directory, or all-MiniLM-L6-v2")
    data: InputPath = Field(description="a named labelled set (sentiment-en, sentiment-zh, ...), a .jsonl/.csv file "
                      "(split for you) or a directory of train/validation/test files")
    task: Annotated[str, registered(TASKS, "task")] = Field(
        "classification", description="classification, or tagging {tokens, tags}, qa {question, "
                      "context, answers}, multiple_choice {question, choices, answer} read JSONL; on a "
                      "decoder, sft and grpo {messages}, dpo and reward {prompt, chosen, rejected} (lmlab.tune.tasks)")
    doc_stride: int = Field(32, ge=0, description="qa: tokens shared by neighbouring windows of a long context")
    text_field: str = "text"
    label_field: str = "label"
    block_size: int = Field(128, ge=2, description="the longest text, in tokens; longer ones are cut")
    limit_train: int | None = Field(None, ge=1, description="use only the first N training examples")
    limit_eval: int | None = Field(None, ge=1, description="score only the first N validation and test examples")
    attack_epsilon: float | None = Field(None, gt=0, description="also score the test split under an FGM attack "
                                         "of this relative size (see lmlab.tune.adversarial)")
    method: MethodConfig = MethodConfig()
    adversarial: AdversarialConfig = Field(AdversarialConfig(), validate_default=True)  # see _one_adversary
    head: HeadConfig = HeadConfig()
    preference: PreferenceConfig = PreferenceConfig()  # task=dpo's loss
    grpo: GRPOConfig = GRPOConfig()  # task=grpo's reward, groups and clip
    optimizer: OptimizerConfig = OptimizerConfig(weight_decay=0.01)  # lr: the method's (METHOD_DEFAULTS)
    schedule: ScheduleConfig = ScheduleConfig(kind="linear", warmup_steps=10, min_lr_ratio=0.0)
    train: LoopConfig = LoopConfig(max_steps=300, batch_size=16, eval_every=50, log_every=10, checkpoint_every=100,
                                   best_metric=DEFAULT_BEST_METRIC, early_stopping=3, eval_tokens=None)

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        """The method's defaults (METHOD_DEFAULTS) under the sections the run gave; a combination's parts' in
        `METHODS` order, the first one's winning where they differ (lora+prompt: LoRA's learning rate)."""
        if not isinstance(data, dict):
            return data
        method = data.get("method", {})
        name = method.method if isinstance(method, MethodConfig) else (
            method.get("method", MethodConfig.model_fields["method"].default) if isinstance(method, dict) else None)
        try:
            parts = split_method(name)[0] if isinstance(name, (str, list)) else []
        except ValueError:  # MethodConfig's own validation names what is wrong
            parts = []
        defaults: dict[str, dict[str, Any]] = {}
        for part in reversed(parts):
            for section, values in METHOD_DEFAULTS.get(part, {}).items():
                defaults[section] = {**defaults.get(section, {}), **values}
        given = {section: data.get(section, {}) for section in defaults}
        # A section given as a config object was set whole: it keeps its own values.
        return {**data, **{section: {**defaults[section], **values} for section, values in given.items()
                           if isinstance(values, dict)}}

    @field_validator("adversarial")
    @classmethod
    def _one_adversary(cls, adversarial: AdversarialConfig, info: ValidationInfo) -> AdversarialConfig:
        """An adversary named in the method (``lora+fgm``) is `adversarial.method`, unless that names another."""
        method = info.data.get("method")
        named = method.adversary if method is not None else None
        if named is None:
            return adversarial
        if adversarial.method not in ("none", named):
            raise ValueError(f"method.method {method.method!r} names {named} but adversarial.method is "
                             f"{adversarial.method}; name one adversary")
        return adversarial.model_copy(update={"method": named})

    @model_validator(mode="after")
    def _adversary_in_one_place(self) -> TuneConfig:
        # The adversary is `adversarial`'s from here on (config.yaml, the summary, the training step).
        self.method.method = method_name(self.method.parts)
        return self


def read_tune_config(path: str | Path | None, overrides: list[str]) -> TuneConfig:
    data = read_config_data(path, overrides, TuneConfig)
    return build_config(TuneConfig, data, source=str(path) if path else "config")


def load_tune_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> TuneConfig:
    """The config a tune run saved, to resume it, with overrides of the keys a resumed run may change."""
    data, path = resumed_config_data(run_dir, overrides, TuneConfig)
    return build_config(TuneConfig, data, source=str(path))


def check_resumable(cfg: TuneConfig) -> None:
    """Refuse, before anything is written, to resume a run that is done: resuming must never change it."""
    run_dir = Path(cfg.run_dir)
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {}
    if "test_examples" not in summary:  # the test figures come last: without them the run is not done
        return
    steps, planned = summary["steps"], read_yaml(run_dir / "config.yaml")["train"]["max_steps"]
    if steps < planned:
        raise LmlabError(f"{run_dir}: stopped early at step {steps} of {planned} ({cfg.train.best_metric} did not "
                         f"improve in {cfg.train.early_stopping} evaluations); there is nothing to resume")
    if cfg.train.max_steps <= steps:
        raise LmlabError(f"{run_dir}: finished at step {steps} of train.max_steps={cfg.train.max_steps}; to train "
                         f"it longer: lmlab tune {run_dir} --resume train.max_steps=N (N > {steps})")


def open_base(base: str) -> Run:
    """The run a task head can go on (a run, a Hugging Face directory or named weights), or a one-line refusal."""
    run = open_run(base)
    if getattr(run.family_class, "default_pooling", None) is None:
        raise LmlabError(f"base {base}: a {run.describe()} model has no features() to put a task head on")
    return run


def load_base(base: str) -> tuple[nn.Module, Tokenizer]:
    """The pretrained backbone and its tokenizer."""
    run = open_base(base)
    return run.model("cpu"), run.tokenizer()


def peak_memory_mb(device: torch.device) -> float:
    """The most memory this process has held: the GPU's allocator on CUDA, else resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


@dataclass
class TuneRun:
    """What every task's run shares: the model on its base, the tokenizer, and the run directory."""

    cfg: TuneConfig
    model: nn.Module  # a TunedModel, or for a chat task the decoder itself
    tokenizer: Tokenizer
    block_size: int
    pad_id: int
    run_dir: Path
    trainable: int
    total: int
    started: float
    console: Console
    template: ChatTemplate | None = None  # the chat format of a task that reads conversations, kept in the run

    def fit(self, objective: Objective, resume: bool = False) -> torch.device:
        """Write the run directory, then the one training loop on `objective` (with the configured adversary),
        from the newest checkpoint when resuming; the device the model is on."""
        cfg = self.cfg
        adversary = f" + {cfg.adversarial.method}" if cfg.adversarial.method != "none" else ""
        self.console.print(f"{cfg.task}, {cfg.method.method}{adversary}: {self.trainable:,} of {self.total:,} "
                           f"parameters train ({100 * self.trainable / self.total:.2f}%)")
        start_run_dir(self.run_dir, cfg, self.tokenizer)
        if self.template is not None:
            self.template.save(self.run_dir)
        fit(self.model, objective, cfg, self.run_dir, resume=resume, console=self.console,
            adversary=build_adversary(cfg.adversarial))
        return pick_device(cfg.train.device, "train.device")

    def finish(self, figures: dict[str, Any], labels: list[str], train_examples: int, test_examples: int,
               device: torch.device) -> dict[str, Any]:
        """The run's summary.json: the loop's figures, the test figures, the parameters, time and memory."""
        cfg = self.cfg
        summary = {
            **read_json(self.run_dir / "summary.json"),
            "task": cfg.task,
            "method": cfg.method.method,
            "adversarial": cfg.adversarial.method,
            "labels": labels,
            "trainable_parameters": self.trainable,
            "total_parameters": self.total,
            "trainable_share": self.trainable / self.total,
            **figures,
            "train_examples": train_examples,
            "test_examples": test_examples,
            "wall_seconds": time.perf_counter() - self.started,
            "peak_memory_mb": peak_memory_mb(device),
        }
        write_json(self.run_dir / "summary.json", summary)
        return summary


def start_run(cfg: TuneConfig, labels: list[str], console: Console | None = None, resume: bool = False) -> TuneRun:
    """Load the base and put the method and the task's head on it; the run directory is written by `fit`."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    torch.manual_seed(cfg.train.seed)
    if TASKS[cfg.task].reads_conversations:
        backbone, tokenizer, template = chat_ready(open_base(cfg.base))
    else:
        (backbone, tokenizer), template = load_base(cfg.base), None
    block_size = min(cfg.block_size, backbone.config.block_size)
    if "prompt" in cfg.method.parts:  # the virtual tokens take positions too
        block_size -= int(cfg.method.prompt.get("num_virtual_tokens", 20))
    model = TunedModel(tuned_config_from(backbone, labels, cfg.head, cfg.method, block_size, task=cfg.task),
                       backbone=backbone)
    run_dir = Path(cfg.run_dir)
    if not resume and (run_dir / "checkpoints").exists():
        raise LmlabError(f"{run_dir}: already holds a run; resume it with --resume or choose another run_dir")
    trainable, total = trainable_parameters(model)
    pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    return TuneRun(cfg, model, tokenizer, block_size, pad_id, run_dir, trainable, total, started, console, template)


def tune(cfg: TuneConfig, console: Console | None = None, resume: bool = False) -> dict[str, Any]:
    """Fine-tune `cfg.base` for `cfg.task` on `cfg.data` with `cfg.method`; returns (and writes) the run's summary.

    With `resume`, the run in `cfg.run_dir` goes on from its newest checkpoint, as if never stopped.
    """
    task = TASKS[cfg.task]
    if cfg.train.best_metric == DEFAULT_BEST_METRIC:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"best_metric": task.best_metric})})
    if resume:
        check_resumable(cfg)
    if isinstance(task, ChatTask):
        return tune_decoder(cfg, task, console, resume)
    data = task.read(cfg)
    run = start_run(cfg, data.labels, console, resume)
    # Every split is encoded before the run directory is written: a record the task refuses leaves nothing behind.
    train, validation, test = (task.encode(data.splits[split], data.labels, run.tokenizer, run.block_size, cfg)
                               for split in ("train", "validation", "test"))
    objective = task.objective(train, validation, data.labels, cfg, run.pad_id)
    device = run.fit(objective, resume)
    figures = task.test_figures(run.model, objective, test, data.labels, cfg, device)
    return run.finish(figures, data.labels, len(data.splits["train"]), len(data.splits["test"]), device)


# Methods a chat task's decoder can be generated from while it trains (prompt tuning wraps the model, and
# bottleneck adapters have no export): the ones `tune_decoder` accepts.
DECODER_METHODS = ("full", "lora")


def chat_ready(run: Run) -> tuple[nn.Module, Tokenizer, ChatTemplate]:
    """The run's decoder and tokenizer with the chat tokens (new embedding rows where they are new), and its
    chat template (ChatML for a base that has none yet)."""
    if run.family_class.kind != "decoder":
        raise run.refusal("a chat task trains a decoder's own next-token predictions")
    model, tokenizer = run.model("cpu"), with_chat_tokens(run.tokenizer())
    model.grow_vocabulary(tokenizer.vocab_size)
    return model, tokenizer, base_template(run.path)


def frozen_copy(model: nn.Module) -> nn.Module:
    reference = copy.deepcopy(model).eval()
    for param in reference.parameters():
        param.requires_grad_(False)
    return reference


def tune_decoder(cfg: TuneConfig, task: ChatTask, console: Console | None = None,
                 resume: bool = False) -> dict[str, Any]:
    """`tune` for a chat task (lmlab.tune.tasks.chat): train the base decoder itself, and write a decoder run.

    The summary holds the task's test figures of the base (``base_test_*``) beside the tuned model's
    (``test_*``), so a run says what the tuning changed. With LoRA, the embeddings train too (PEFT's
    ``modules_to_save``): the chat tokens' rows are new, and a frozen row could never learn what a turn is.
    """
    console = console or Console(stderr=True)
    started = time.perf_counter()
    refused = [part for part in cfg.method.parts if part not in DECODER_METHODS]
    if refused:
        raise LmlabError(f"method.method: {task.name} trains with {' or '.join(DECODER_METHODS)}, not {refused[0]}")
    splits = task.read(cfg)
    torch.manual_seed(cfg.train.seed)
    model, tokenizer, template = chat_ready(open_run(cfg.base))
    reference = frozen_copy(model) if task.needs_reference(cfg) else None
    policy = apply_method(model, cfg.method)
    if "lora" in cfg.method.parts:
        for layer in (policy.input_embeddings(), policy.lm_head):
            layer.weight.requires_grad_(True)
    pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else template.end_of_turn_id(tokenizer)
    context = ChatContext(tokenizer, template, min(cfg.block_size, model.config.block_size), pad_id,
                          template.end_of_turn_id(tokenizer), reference, cfg, model.packs_documents)
    # Every split is encoded before the run directory is written: a record the task refuses leaves nothing behind.
    train, validation, test = task.encode_splits(splits, context)
    objective = task.chat_objective(train, validation, context)
    run_dir = Path(cfg.run_dir)
    if not resume and (run_dir / "checkpoints").exists():
        raise LmlabError(f"{run_dir}: already holds a run; resume it with --resume or choose another run_dir")
    device = pick_device(cfg.train.device, "train.device")
    base_figures = task.chat_figures(policy.to(device), objective, test, context, device, "base_test_")
    trainable, total = trainable_parameters(policy)
    run = TuneRun(cfg, policy, tokenizer, context.block_size, pad_id, run_dir, trainable, total, started, console,
                  template)
    run.fit(objective, resume)
    if "lora" in cfg.method.parts:  # a decoder run again: what generation, export and the next task read
        policy = remove_lora(policy, merge=True)
        save_model(policy, run_dir)
    figures = task.chat_figures(policy, objective, test, context, device, "test_")
    return run.finish({**base_figures, **figures}, [], len(splits["train"]), len(splits["test"]), device)


# ---- several methods on one task ------------------------------------------------------------------

def method_overrides(method: str) -> list[str]:
    """What runs `method` (``lora``, ``lora+adapters``, ``lora+fgm``, ...) in `tune compare`: its name alone,
    so its settings come from METHOD_DEFAULTS and the overrides, as in `lmlab tune`."""
    try:
        split_method(method)
    except ValueError as exc:
        raise LmlabError(f"tune compare: {exc}") from None
    return [f"method.method={method}"]


def compare_methods(config: str | Path | None, overrides: list[str], methods: list[str],
                    out: str | Path) -> list[dict[str, Any]]:
    """Run each method (a method of `METHODS` or any valid combination such as ``lora+adapters``) as its
    own `lmlab tune` process; one summary each."""
    # A mistake (a setting, a base without features, data that is not there) is found before any run starts.
    settings = [read_tune_config(config, [*overrides, *method_overrides(method)]) for method in methods]
    if settings:
        open_base(settings[0].base)
        TASKS[settings[0].task].read(settings[0])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in methods:
        run_dir = out / method.replace("+", "-")
        command = [sys.executable, "-m", "lmlab.cli", "tune", *([str(config)] if config else []),
                   *overrides, *method_overrides(method), f"run_dir={run_dir}"]
        done = subprocess.run(command, env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
        if done.returncode != 0:
            raise LmlabError(f"tune compare: the {method} run failed (exit status {done.returncode}); "
                             f"see its output above")
        rows.append({"name": method, **read_json(run_dir / "summary.json")})
    write_json(out / "compare.json", rows)
    write_text(out / "compare.md", comparison_markdown(rows))
    plot_methods(rows, out / "compare.png")
    return rows


HEADERS = ["method", "test accuracy", "test macro-F1", "trainable", "share", "seconds", "peak MB"]
ATTACKED = "accuracy under FGM"


def _headers(rows: list[dict[str, Any]]) -> list[str]:
    return HEADERS + ([ATTACKED] if any("test_accuracy_attacked" in row for row in rows) else [])


def _cells(row: dict[str, Any], attacked: bool) -> list[str]:
    cells = [row["name"], f"{row['test_accuracy']:.3f}", f"{row['test_macro_f1']:.3f}",
             f"{row['trainable_parameters']:,}", f"{100 * row['trainable_share']:.2f}%",
             f"{row['wall_seconds']:.0f}", f"{row['peak_memory_mb']:,.0f}"]
    return cells + ([f"{row['test_accuracy_attacked']:.3f}" if "test_accuracy_attacked" in row else "-"]
                    if attacked else [])


def comparison_table(rows: list[dict[str, Any]]) -> Table:
    baseline = rows[0]["majority_baseline"]
    headers = _headers(rows)
    table = Table(*headers, title=f"same task and split; majority-class baseline: accuracy {baseline['accuracy']:.3f}, "
                  f"macro-F1 {baseline['macro_f1']:.3f}")
    for row in rows:
        table.add_row(*_cells(row, len(headers) > len(HEADERS)))
    return table


def comparison_markdown(rows: list[dict[str, Any]]) -> str:
    baseline = rows[0]["majority_baseline"]
    headers = _headers(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cells(row, len(headers) > len(HEADERS))) + " |" for row in rows]
    lines.append("| " + " | ".join(["majority class", f"{baseline['accuracy']:.3f}", f"{baseline['macro_f1']:.3f}",
                                    "0", "0%"] + [""] * (len(headers) - 5)) + " |")
    return "\n".join(lines) + "\n"


def plot_methods(rows: list[dict[str, Any]], path: Path) -> None:
    """Test macro-F1 per method (bars) against the share of weights each trains (log scale)."""
    # Imported here: matplotlib is slow to import and only the comparison draws anything.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.5 * len(rows) + 1.8))
    names = [row["name"] for row in rows][::-1]
    f1 = [row["test_macro_f1"] for row in rows][::-1]
    bars = left.barh(names, f1, color="#4878a8")
    left.bar_label(bars, labels=[f"{v:.3f}" for v in f1], padding=3)
    left.axvline(rows[0]["majority_baseline"]["macro_f1"], color="#c44", linestyle="--", label="majority class")
    left.set_xlabel("test macro-F1")
    left.set_xlim(0, 1.05)
    left.legend(loc="lower right", fontsize=8)
    share = [max(100 * row["trainable_share"], 1e-4) for row in rows][::-1]
    right.barh(names, share, color="#6a9f58")
    right.set_xscale("log")
    right.set_xlabel("trainable parameters, % of the model (log scale)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

