"""Runs of any generation on a set of harness tasks: one table, JSON, Markdown and a bar chart.

Each run is loaded behind the `LanguageModel` interface, so an n-gram, an LSTM and a GPT answer the
same requests; the table puts a column per run and a row per task and metric, with the standard
error of the mean where the figure is a mean over documents, so that a difference smaller than
the noise of a small task is seen as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress
from rich.table import Table

from lmlab.evaluate.harness import LOWER_IS_BETTER, Task, TaskResult, evaluate_task, load_task
from lmlab.files import atomic_path, write_json, write_text
from lmlab.runs import Run, open_run

Results = dict[str, dict[str, TaskResult]]  # run -> task -> result


def evaluate_runs(runs: Sequence[str | Path], tasks: Sequence[str | Path | Task], limit: int | None = None,
                  num_fewshot: int | None = None, progress: bool = True) -> Results:
    """Every run on every task (Task objects, YAML paths or bundled names); the tasks are read once."""
    loaded = [task if isinstance(task, Task) else load_task(task) for task in tasks]
    results: Results = {}
    with Progress(disable=not progress, transient=True) as bar:
        job = bar.add_task("evaluating", total=len(runs) * len(loaded))
        for run in map(open_run, runs):
            lm = run.language_model()
            label = _label(run, results)
            results[label] = {}
            for task in loaded:
                bar.update(job, description=f"{label}: {task.name}")
                results[label][task.name] = evaluate_task(lm, task, limit, num_fewshot)
                bar.advance(job)
    return results


def _label(run: Run, taken: Results) -> str:
    """The run's folder name, with its model when it fits ("gpt (GPT 4x128)"), unique among the runs."""
    label = f"{run.path.name} ({run.describe()})"
    return label if label not in taken else f"{run.path} ({run.describe()})"


def _rows(results: Results) -> list[tuple[str, str, list[str]]]:
    runs = list(results)
    first = results[runs[0]]
    rows = []
    for task_name, task_result in first.items():
        for metric in task_result.metrics:
            cells = []
            for run in runs:
                result = results[run][task_name]
                value, stderr = result.metrics[metric], result.stderr.get(metric)
                cell = f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3f}"
                cells.append(cell if stderr is None or math.isnan(stderr) else f"{cell} ± {stderr:.3f}")
            arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
            rows.append((f"{task_name} ({task_result.num_fewshot}-shot, {task_result.documents})",
                         f"{metric} {arrow}", cells))
    return rows


def results_table(results: Results) -> Table:
    table = Table(title="harness tasks; ± is the standard error")
    for header in ("task (shots, docs)", "metric", *results):
        table.add_column(header, overflow="fold")  # a narrow terminal wraps names instead of cutting them
    for task, metric, cells in _rows(results):
        table.add_row(task, metric, *cells)
    return table


def results_markdown(results: Results) -> str:
    headers = ["task (shots, docs)", "metric", *results]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join([task, metric, *cells]) + " |" for task, metric, cells in _rows(results)]
    return "\n".join(lines) + "\n"


def results_json(results: Results, with_samples: bool = False) -> dict[str, Any]:
    return {run: {task: result.to_dict(with_samples) for task, result in tasks.items()}
            for run, tasks in results.items()}


def plot_results(results: Results, path: str | Path) -> None:
    """One panel per task, a bar per run: its first metric, or bits per byte for a perplexity set
    (word perplexity is meaningless for text without spaces, and perplexities span decades)."""
    # matplotlib is slow to import and only drawing needs it, so it is imported here, not with the module.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(results)
    tasks = list(results[runs[0]])
    columns = min(3, len(tasks))
    rows = math.ceil(len(tasks) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 0.45 * len(runs) * rows + 1.4 * rows),
                             squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        metrics = results[runs[0]][task].metrics
        metric = "bits_per_byte" if "bits_per_byte" in metrics else next(iter(metrics))
        values = [results[run][task].metrics[metric] for run in runs]
        values = [v if math.isfinite(v) else 0.0 for v in values]  # an overflowed figure is shown as no bar
        errors = [results[run][task].stderr.get(metric, 0.0) for run in runs]
        errors = [0.0 if math.isnan(e) else e for e in errors]
        bars = ax.barh(runs[::-1], values[::-1], xerr=errors[::-1], color="#4878a8", ecolor="#999999")
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values[::-1]], padding=3, fontsize=8)
        arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        ax.set_title(f"{task}\n{metric} ({arrow})", fontsize=9)
        ax.tick_params(labelsize=8)
        reach = max(value + error for value, error in zip(values, errors, strict=True))
        ax.set_xlim(0, reach * 1.25 if reach > 0 else 1.0)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_results(results: Results, out_dir: str | Path, with_samples: bool = False) -> Path:
    """results.md, results.json (samples too if asked) and, for several runs, results.png in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.md", results_markdown(results))
    write_json(out / "results.json", results_json(results, with_samples))
    if len(results) > 1:
        plot_results(results, out / "results.png")
    else:  # one run draws no chart, and an earlier evaluation's must not pass for this one's
        (out / "results.png").unlink(missing_ok=True)
    return out
