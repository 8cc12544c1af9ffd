"""`lmlab quickstart` (what `make demo` runs): the whole pipeline, on English and Chinese, in minutes.

    1 data        Shakespeare (English) and People's Daily 1998 (Chinese), fetched on first use
    2 prepare     clean, deduplicate, train a byte-level BPE tokenizer, pack token shards
    3 train       a GPT of about a million parameters, on the CPU
    4 evaluate    validation perplexity and bits per byte, beside a unigram baseline, saying what
                  each figure counts
    5 history     an LSTM (truncated BPTT) and a Kneser-Ney 5-gram on the same data, and the three
                  generations on one table (`lmlab eval compare`)
    6 generate    an English and a Chinese continuation
    7 report      loss and learning-rate curves and an HTML page

Each stage prints what it did, its figures and where its files went, so the output reads as a
guided tour; the closing lines say what to try next.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lmlab.data.pipeline import DataConfig
from lmlab.data.prepare import PrepareConfig, prepare_corpus
from lmlab.datasets import load_corpus
from lmlab.evaluate import evaluate_run
from lmlab.evaluate.compare import ComparisonRow, compare_runs, comparison_table, count_notes, write_comparison
from lmlab.files import write_json
from lmlab.generate import GenerationParams
from lmlab.report import write_report
from lmlab.runs import open_run
from lmlab.tokenizers import TokenizerConfig
from lmlab.train import read_train_config, train_run

PROMPTS = ["ROMEO:\nO, ", "新华社北京一月一日电", "我们要"]
DEMO_STEPS = 1000
LSTM_SHARE = 0.3  # the LSTM of stage 5 trains for this share of the GPT's steps
RECIPES = resources.files("lmlab") / "recipes"  # the three models' configs, as data
RECIPE_FILES = ("quickstart-gpt.yaml", "quickstart-lstm.yaml", "quickstart-kn5.yaml")


@dataclass
class QuickstartOptions:
    out: Path = Path("runs/quickstart")
    steps: int | None = None
    corpora: tuple[Path, ...] = ()  # your own corpus files instead of the two named corpora (a quick tour)


def _run_dir(options: QuickstartOptions, recipe: str) -> Path:
    """Where a recipe's run goes: quickstart-gpt.yaml trains into OUT/gpt."""
    return options.out / Path(recipe).stem.removeprefix("quickstart-")


def _clear_previous(options: QuickstartOptions, console: Console) -> None:
    """Remove what an earlier quickstart wrote in `options.out`, so that `make demo` runs again; only the
    folders the quickstart itself makes there go, and only when they hold what it writes."""
    ours = {options.out / "data": "meta.json", options.out / "compare": "compare.json",
            **{_run_dir(options, recipe): "config.yaml" for recipe in RECIPE_FILES}}
    previous = [folder for folder, mark in ours.items() if (folder / mark).exists()]
    if previous:
        console.print(f"  replacing the previous quickstart in {options.out}/ ({', '.join(p.name for p in previous)})",
                      highlight=False)
    for folder in previous:
        shutil.rmtree(folder)


def _stage(console: Console, number: int, title: str) -> None:
    console.rule(f"[bold cyan]{number}. {title}", align="left")


def show_evaluation(console: Console, model: str, figures: dict[str, Any]) -> None:
    """Stage 4's table: the model beside the unigram baseline, and what its perplexity counts."""
    table = Table("model", "perplexity", "bits per byte")
    table.add_row("unigram baseline", f"{figures['unigram_perplexity']:.1f}", f"{figures['unigram_bits_per_byte']:.3f}")
    table.add_row(model, f"{figures['perplexity']:.1f}", f"{figures['bits_per_byte']:.3f}")
    console.print(table)
    console.print(f"  perplexity {figures['perplexity']:.1f} {figures['counts']}", highlight=False)
    console.print("  (training's val perplexity counts other predictions: the packed split as one stream, in windows "
                  "that run across documents, on a sample of it)", highlight=False)
    console.print("  bits per byte does not depend on the tokenizer: it is the figure to compare across models")


def show_comparison(console: Console, rows: list[ComparisonRow], out: Path, evaluated: str) -> None:
    """Stage 5's table, written to `out`; the row of run `evaluated` is stage 4's figure, counted alike."""
    console.print(comparison_table(rows))
    for note in count_notes(rows):
        console.print(f"  {note}", highlight=False)
    write_comparison(rows, out)
    console.print(f"  every model predicts the same held-out text and each document's end, so {evaluated}'s row "
                  f"repeats stage 4's figure; {out}/compare.png draws it", highlight=False)


def run_quickstart(options: QuickstartOptions, console: Console | None = None) -> dict[str, float]:
    """Run every stage; return the evaluation figures."""
    console = console or Console()
    started = time.perf_counter()
    steps = options.steps or DEMO_STEPS
    _clear_previous(options, console)

    if options.corpora:
        _stage(console, 1, "Data: your corpus files")
        paths = list(options.corpora)
        console.print("  " + ", ".join(map(str, paths)))
    else:
        _stage(console, 1, "Data: two real corpora, fetched once and cached")
        corpora = [load_corpus("shakespeare"), load_corpus("peoples-daily")]
        for corpus in corpora:
            size = corpus.card["size"]
            console.print(f"  {corpus.name:<14} {size['documents']:>6,} documents {size['characters']:>11,} "
                          f"characters   licence: {corpus.card.get('licence', '?')}")
        console.print(f"  cached at {corpora[0].path.parent.parent}")
        paths = [c.path for c in corpora]

    _stage(console, 2, "Prepare: clean, deduplicate, train a tokenizer, pack token shards")
    prepare_cfg = PrepareConfig(
        data=DataConfig(dedup="near"),
        tokenizer=TokenizerConfig(kind="bpe", vocab_size=4096),
        val_fraction=0.05,
        seed=2,  # this split holds out two whole plays (Henry VI part 3, Timon of Athens) and ~5% of the news
    )
    data_dir = options.out / "data"
    prepared = prepare_corpus(paths, data_dir, prepare_cfg)
    report = prepared.report
    splits = prepared.meta.splits
    console.print(f"  read {report.documents_read:,} documents; removed {report.exact_duplicates:,} exact and "
                  f"{report.near_duplicates:,} near duplicates; kept {report.kept:,}")
    console.print(f"  byte-level BPE tokenizer: {prepared.tokenizer.vocab_size:,} tokens "
                  f"({report.chars_out / max(1, splits['train'].tokens + splits['val'].tokens):.2f} "
                  "characters per token)")
    console.print(f"  shards: train {splits['train'].tokens:,} tokens, val {splits['val'].tokens:,} tokens"
                  f"  -> {data_dir}/")

    _stage(console, 3, "Train: a small GPT on the CPU")
    result = train_run(read_train_config(RECIPES / "quickstart-gpt.yaml", [
        f"run_dir={_run_dir(options, 'quickstart-gpt.yaml')}", f"data={data_dir}", f"train.max_steps={steps}",
        f"schedule.warmup_steps={min(50, steps // 10)}", f"train.eval_every={max(1, steps // 4)}",
        f"train.checkpoint_every={max(1, steps // 2)}"]), console=console)
    run = open_run(result.run_dir)
    console.print(f"  {run.parameters():,} parameters, {result.steps} steps, "
                  f"{result.tokens_seen:,} tokens in {result.seconds:.0f}s "
                  f"({result.tokens_seen / result.seconds:,.0f} tokens/s)")

    _stage(console, 4, "Evaluate: validation perplexity and bits per byte")
    figures = evaluate_run(result.run_dir)
    show_evaluation(console, run.describe(), figures)

    _stage(console, 5, "History: an LSTM and a Kneser-Ney 5-gram on the same data, on one table")
    lstm_steps = max(1, round(steps * LSTM_SHARE))
    lstm = train_run(read_train_config(RECIPES / "quickstart-lstm.yaml", [
        f"run_dir={_run_dir(options, 'quickstart-lstm.yaml')}", f"data={data_dir}", f"train.max_steps={lstm_steps}",
        f"schedule.warmup_steps={min(20, lstm_steps // 10)}", f"train.eval_every={lstm_steps}",
        f"train.checkpoint_every={lstm_steps}"]), console=console)
    # A corpus of your own may be too small to estimate every Kneser-Ney discount; the named two are not.
    fallback = ["model.discount_fallback=true"] if options.corpora else []
    ngram = train_run(read_train_config(RECIPES / "quickstart-kn5.yaml", [
        f"run_dir={_run_dir(options, 'quickstart-kn5.yaml')}", f"data={data_dir}", *fallback]))
    console.print(f"  LSTM: {lstm.steps} steps in {lstm.seconds:.0f}s;  5-gram: {ngram.tokens_seen:,} tokens "
                  f"counted in {ngram.seconds:.1f}s")
    show_comparison(console, compare_runs([result.run_dir, lstm.run_dir, ngram.run_dir]), options.out / "compare",
                    result.run_dir.name)

    _stage(console, 6, "Generate: English and Chinese (temperature 0.8, top-k 50)")
    params = GenerationParams(max_new_tokens=80, temperature=0.8, top_k=50, seed=0)
    completions = run.language_model().generate(PROMPTS, params)
    samples = [{"prompt": p, "completion": c} for p, c in zip(PROMPTS, completions, strict=True)]
    write_json(result.run_dir / "samples.json", samples)
    for sample in samples:
        console.print(f"[bold]{sample['prompt']}[/bold]{sample['completion']}\n", highlight=False, markup=True)

    _stage(console, 7, "Report")
    page = write_report(result.run_dir)
    console.print(f"  {page} (open it in a browser), loss.png, lr.png")
    console.print(f"\nDone in {time.perf_counter() - started:.0f}s. What to try next:")
    console.print(f"  lmlab generate {result.run_dir} \"To be, or not\" --stream")
    console.print(f"  lmlab train {result.run_dir}/config.yaml run_dir=runs/big model.n_layer=6 train.max_steps=2000")
    console.print(f"  lmlab export {result.run_dir} runs/hf-gpt2   # load it with transformers")
    console.print(f"  lmlab eval {result.run_dir} {lstm.run_dir} {ngram.run_dir} --tasks all   # benchmark tasks")
    return figures
