"""`lmlab report RUN`: the run's curves as PNG and a one-page HTML summary.

Reads what the run directory already holds (config.yaml, metrics.jsonl, and eval.json /
samples.json when an evaluation or the quickstart wrote them) and draws:

- ``loss.png``: training loss per logged step and validation loss per evaluation;
- ``lr.png``: the learning-rate schedule as it was applied;
- ``report.html``: config, figures, evaluation table and generated samples, on one page.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402

from lmlab.errors import LmlabError  # noqa: E402
from lmlab.files import atomic_path, write_text  # noqa: E402


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise LmlabError(f"{path}: missing; is {run_dir} a training run?")
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
    """Draw loss.png and lr.png; return the paths written."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
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
    return written


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def write_report(run_dir: str | Path) -> Path:
    """Draw the figures and write report.html in `run_dir`; return the HTML path."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    figures = plot_curves(records, run_dir)
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
    if evaluation:
        parts += ["<h2>Evaluation</h2>", _table(evaluation)]
    parts += ["<h2>Curves</h2>", *(f"<img src='{p.name}' alt='{p.stem}'>" for p in figures)]
    if samples:
        parts.append("<h2>Samples</h2>")
        for sample in samples:
            parts.append(f"<p><b>{html.escape(sample['prompt'])}</b></p>"
                         f"<pre>{html.escape(sample['prompt'] + sample['completion'])}</pre>")
    parts += ["<h2>Config</h2>", f"<pre>{html.escape(config)}</pre>", "</body></html>"]
    out = run_dir / "report.html"
    write_text(out, "\n".join(parts))
    return out
