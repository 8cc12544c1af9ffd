"""`lmlab report RUN`: the run's figures, curves and attention as PNG, and a one-page HTML summary.

Works on every kind of run (a neural LM, an n-gram model, word vectors, a tuned head, a Hugging
Face directory), showing what the run has. Reads what the directory already holds (model.json,
summary.json, config.yaml, metrics.jsonl, and eval.json / samples.json when an evaluation or the
quickstart wrote them) and draws:

- the figures: model, parameters, steps (or epochs), wall time, and the run's results: validation
  loss and perplexity for a language model, test accuracy and macro-F1 for a tuned run;
- ``loss.png``: training loss per logged step and validation loss per evaluation (runs that log steps);
- ``lr.png``: the learning-rate schedule as it was applied;
- ``alignment.png``: what a chat task logs beside its loss, per step and per evaluation: GRPO's reward
  and KL to the reference, DPO's margin and preference accuracy, exact match, a reward model's accuracy;
- ``attention.png``: a Transformer's attention over a short prompt's tokens, averaged over heads, per layer;
- ``report.html``: all of the above with config, evaluation table and generated samples, on one page.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lmlab.errors import LmlabError  # noqa: E402
from lmlab.files import atomic_path, write_text  # noqa: E402
from lmlab.runs import Run, open_run  # noqa: E402

# Figures chat tasks log per step (and as val_NAME per evaluation), one panel each in alignment.png.
ALIGNMENT_FIGURES = {"reward": "mean reward", "kl": "KL to the reference (per token)", "margin": "reward margin",
                     "preference_accuracy": "preference accuracy", "exact_match": "exact match",
                     "accuracy": "pairwise accuracy"}
ATTENTION_PROMPT = "The cat sat on the mat because it was tired."
MAX_ATTENTION_TOKENS = 24  # more and the tick labels overlap


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl; none for a run that logs no steps (an n-gram model, a Hugging Face directory)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise LmlabError(f"{path}:{number}: not valid JSON") from None
    return records


def _read_optional_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _save_figure(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)


def plot_curves(records: list[dict[str, Any]], run_dir: Path) -> list[Path]:
    """Draw loss.png and lr.png from the records that have them; return the paths written."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train and not val:
        return []
    figure, axes = plt.subplots(figsize=(7, 4))
    if train:
        axes.plot(*zip(*train, strict=True), label="train loss", linewidth=1)
    if val:
        axes.plot(*zip(*val, strict=True), "o-", label="validation loss")
    axes.set(xlabel="step", ylabel="cross-entropy (nats/token)", title="Loss")
    axes.grid(alpha=0.3)
    axes.legend()
    written = [run_dir / "loss.png"]
    _save_figure(figure, written[0])

    rates = [(r["step"], r["lr"]) for r in records if "lr" in r]
    if rates:
        figure, axes = plt.subplots(figsize=(7, 3))
        axes.plot(*zip(*rates, strict=True))
        axes.set(xlabel="step", ylabel="learning rate", title="Learning-rate schedule")
        axes.grid(alpha=0.3)
        written.append(run_dir / "lr.png")
        _save_figure(figure, written[-1])
    alignment = plot_alignment(records, run_dir / "alignment.png")
    return written + ([alignment] if alignment else [])


def plot_alignment(records: list[dict[str, Any]], path: Path) -> Path | None:
    """alignment.png: a panel per chat-task figure the run logged (see ALIGNMENT_FIGURES); None if it logged none."""
    panels = []
    for name, title in ALIGNMENT_FIGURES.items():
        steps = [(r["step"], r[name]) for r in records if "loss" in r and name in r]
        evaluations = [(r["step"], r[f"val_{name}"]) for r in records if f"val_{name}" in r]
        if steps or evaluations:
            panels.append((title, steps, evaluations))
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for axis, (title, steps, evaluations) in zip(axes[0], panels, strict=True):
        if steps:
            axis.plot(*zip(*steps, strict=True), linewidth=1, label="train (per step)")
        if evaluations:
            axis.plot(*zip(*evaluations, strict=True), "o-", label="validation")
        axis.set(xlabel="step", title=title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    _save_figure(figure, path)
    return path


def plot_attention(maps: torch.Tensor, tokens: list[str], path: Path, title: str) -> None:
    """One heat map per layer of `maps` (layers, heads, T, T), averaged over heads; tokens label both axes."""
    layers = maps.size(0)
    figure, axes = plt.subplots(1, layers, figsize=(3.2 * layers + 1, 3.6), squeeze=False)
    for layer, ax in enumerate(axes[0]):
        image = ax.imshow(maps[layer].mean(dim=0).cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
        ax.set(title=f"layer {layer + 1}", xlabel="attended to")
    axes[0][0].set_ylabel("query token")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    figure.suptitle(title)
    _save_figure(figure, path)


def attention_figure(run: Run, prompt: str = ATTENTION_PROMPT) -> Path | None:
    """attention.png of `prompt` for a Transformer run; None for a model without attention maps."""
    if not issubclass(run.family_class, torch.nn.Module):
        return None
    model, tokenizer = run.model("cpu"), run.tokenizer()
    ids = tokenizer.encode(prompt)[: min(MAX_ATTENTION_TOKENS, model.config.block_size)]
    maps = model.attention_maps(torch.tensor(ids)) if ids else None
    if maps is None:
        return None
    path = run.path / "attention.png"
    plot_attention(maps, [tokenizer.decode([i]).strip() or "\u2423" for i in ids], path,
                   f"attention over {len(ids)} tokens, mean of {maps.size(1)} heads")
    return path


def report_figures(run_dir: str | Path, run: Run | None = None) -> dict[str, Any]:
    """What the run is and what it reached, from its model and summary.json: the rows of the report's first table."""
    run_dir = Path(run_dir)
    run = run if run is not None else report_run(run_dir)
    summary = run.summary if run is not None else _read_optional_json(run_dir / "summary.json") or {}
    rows: dict[str, Any] = {}
    if run is not None:
        rows["model"] = run.describe()
        rows["parameters"] = f"{run.parameters():,}"
    if "trainable_parameters" in summary:
        rows["trainable parameters"] = f"{summary['trainable_parameters']:,}"
    for key, name in (("steps", "steps"), ("epochs", "epochs"), ("tokens_seen", "tokens seen"),
                      ("words_seen", "words seen")):
        if key in summary:
            rows[name] = f"{summary[key]:,}"
    seconds = summary.get("wall_seconds", summary.get("train_seconds"))
    if seconds is not None:
        rows["wall time"] = f"{seconds:.3g} s"
    for key in ("train_loss", "val_loss"):
        if isinstance(summary.get(key), float):  # a run that validates by other figures (GRPO's reward) has none
            rows[key.replace("_", " ")] = summary[key]
    scores_text = run is not None and run.family_class.kind != "task"
    if scores_text and isinstance(summary.get("val_loss"), float):
        rows["val perplexity"] = math.exp(summary["val_loss"])
    for key, value in summary.items():
        if key.startswith("test_") and key != "test_examples" and isinstance(value, float):
            rows[key.replace("_", " ").replace("macro f1", "macro-F1")] = value
    if isinstance(summary.get("majority_baseline"), dict):
        rows["majority-class accuracy"] = summary["majority_baseline"].get("accuracy")
    return rows


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def report_run(run_dir: str | Path) -> Run | None:
    """The run behind the directory, when there is a model in it (a folder of metrics alone still reports)."""
    run_dir = Path(run_dir)
    return open_run(run_dir) if (run_dir / "model.json").exists() or (run_dir / "config.json").exists() else None


def write_report(run_dir: str | Path) -> Path:
    """Draw the figures and write report.html in `run_dir`; return the HTML path."""
    run_dir = Path(run_dir)
    run = report_run(run_dir)
    records = read_metrics(run_dir)
    if run is None and not records and not (run_dir / "summary.json").exists():
        raise LmlabError(f"{run_dir / 'metrics.jsonl'}: missing, and no model.json or summary.json either; is "
                         f"{run_dir} a run directory?")
    figures = report_figures(run_dir, run)
    images = plot_curves(records, run_dir)
    attention = attention_figure(run) if run is not None else None
    config = (run_dir / "config.yaml").read_text(encoding="utf-8") if (run_dir / "config.yaml").exists() else ""
    evaluation = _read_optional_json(run_dir / "eval.json")
    samples = _read_optional_json(run_dir / "samples.json") or []

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>lmlab report: {html.escape(run_dir.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}"
        "pre{background:#f6f6f6;padding:.8rem;white-space:pre-wrap}img{max-width:100%}</style></head><body>",
        f"<h1>Run <code>{html.escape(run_dir.name)}</code></h1>",
    ]
    if figures:
        parts += ["<h2>Figures</h2>", _table(figures)]
    if evaluation:
        parts += ["<h2>Evaluation</h2>", _table(evaluation)]
    parts += ["<h2>Curves</h2>", *(f"<img src='{p.name}' alt='{p.stem}'>" for p in images)]
    if not images:
        parts.append("<p>No training curve: this run logged no steps (it is counted or read in one pass).</p>")
    if attention is not None:
        parts += ["<h2>Attention</h2>", f"<p>Over <code>{html.escape(ATTENTION_PROMPT)}</code></p>",
                  f"<img src='{attention.name}' alt='attention'>"]
    if samples:
        parts.append("<h2>Samples</h2>")
        for sample in samples:
            parts.append(f"<p><b>{html.escape(sample['prompt'])}</b></p>"
                         f"<pre>{html.escape(sample['prompt'] + sample['completion'])}</pre>")
    parts += ["<h2>Config</h2>", f"<pre>{html.escape(config)}</pre>", "</body></html>"]
    out = run_dir / "report.html"
    write_text(out, "\n".join(parts))
    return out
