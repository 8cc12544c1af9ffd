"""Every generation on one table: runs of any family scored on the same held-out text.

Perplexity counts per predicted unit, and units differ (a 4k BPE token, a character, a word), so it
only compares models that share a tokenizer. Bits per byte divides the same total negative
log-likelihood by the UTF-8 bytes of the text instead: whatever the units, every model pays for the
same bytes, so it is the column to rank by. Each model predicts each document and then its end
(``</s>`` for an n-gram, end-of-text for a neural model), so all of them predict the same things.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

from lmlab.data.packing import TokenShards, split_documents
from lmlab.errors import LmlabError
from lmlab.evaluate.held_out import held_out_score
from lmlab.files import atomic_path, write_json, write_text
from lmlab.runs import open_run
from lmlab.tokenizers import Tokenizer


@dataclass
class ComparisonRow:
    run: str
    model: str  # what the model is, in a few words
    parameters: int  # weights; for an n-gram, stored probabilities and back-off weights
    train_seconds: float | None
    units: int  # predictions made: tokens, characters or words, plus one end per document
    nll: float  # total negative log-likelihood, nats
    bytes: int
    counts: str  # what the perplexity counts (`lmlab.evaluate.held_out.describe_count`)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.units)

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.bytes

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "perplexity": self.perplexity, "bits_per_byte": self.bits_per_byte}


def held_out_texts(data: str | Path, split: str = "val", max_documents: int | None = None) -> list[str]:
    """The documents of a packed split, as text (every model re-tokenises them its own way)."""
    shards = TokenShards(data)
    texts = split_documents(shards, Tokenizer.load(Path(data) / "tokenizer.json"), split)
    if not texts:
        raise LmlabError(f"{data}: the {split} split holds no documents to compare on")
    if max_documents is not None and len(texts) > max_documents:
        step = len(texts) / max_documents  # spread evenly, so long and short documents both stay
        texts = [texts[int(i * step)] for i in range(max_documents)]
    return texts


def compare_runs(
    run_dirs: Sequence[str | Path], data: str | Path | None = None, split: str = "val",
    max_documents: int | None = None,
) -> list[ComparisonRow]:
    """Score every run on the same held-out documents (those of `data`, default the first run's data)."""
    if not run_dirs:
        raise LmlabError("eval compare: name at least one run directory")
    runs = [open_run(run_dir) for run_dir in run_dirs]
    for run in runs:  # what a run cannot do is said before anything is read for it
        run.check_scores_text()
    if data is None and "data" not in runs[0].config:
        raise LmlabError(f"{runs[0].path}: no config.yaml naming its data; give the data to compare on")
    texts = held_out_texts(data or runs[0].input_path("data"), split, max_documents)
    rows = []
    for run in runs:
        score, counts = held_out_score(run, texts, split)
        rows.append(ComparisonRow(
            run=run.path.name,
            model=run.describe(),
            parameters=run.parameters(),
            train_seconds=run.summary.get("train_seconds"),
            units=score.tokens,
            nll=score.nll,
            bytes=score.bytes,
            counts=counts,
        ))
    return sorted(rows, key=lambda row: row.bits_per_byte)


def _cells(row: ComparisonRow) -> list[str]:
    seconds = "-" if row.train_seconds is None else f"{row.train_seconds:,.0f}"
    return [row.run, row.model, f"{row.parameters:,}", seconds, f"{row.units:,}", f"{row.perplexity:,.2f}",
            f"{row.bits_per_byte:.3f}"]


HEADERS = ["run", "model", "parameters", "train s", "units", "ppl/unit", "bits/byte"]


def count_notes(rows: Sequence[ComparisonRow]) -> list[str]:
    """One line per run saying what its ppl/unit counts."""
    return [f"{row.run}: ppl/unit {row.perplexity:,.2f} {row.counts}" for row in rows]


def comparison_table(rows: Sequence[ComparisonRow]) -> Table:
    """The rows as a table; `count_notes` are the lines to print under it."""
    table = Table(*HEADERS, title="same held-out text, ranked by bits per byte")
    for row in rows:
        table.add_row(*_cells(row))
    return table


def comparison_markdown(rows: Sequence[ComparisonRow]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    lines += ["", *(f"- {note}" for note in count_notes(rows))]
    return "\n".join(lines) + "\n"


def plot_comparison(rows: Sequence[ComparisonRow], path: str | Path) -> None:
    """A horizontal bar per model, bits per byte, best at the top."""
    # matplotlib is slow to import and only drawing needs it, so it is imported here, not with the module.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.2))
    labels = [f"{row.run}\n{row.model}" for row in rows][::-1]
    values = [row.bits_per_byte for row in rows][::-1]
    bars = ax.barh(labels, values, color="#4878a8")
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=3)
    ax.set_xlabel("bits per byte on the same held-out text (lower is better)")
    ax.set_xlim(0, max(values) * 1.15)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_comparison(rows: Sequence[ComparisonRow], out_dir: str | Path) -> Path:
    """compare.md, compare.json and compare.png in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "compare.md", comparison_markdown(rows))
    write_json(out / "compare.json", [row.to_dict() for row in rows])
    plot_comparison(rows, out / "compare.png")
    return out
