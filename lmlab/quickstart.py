"""`lmlab quickstart` (what `make demo` runs): the whole pipeline, on English and Chinese, in minutes.

    1 data        Shakespeare (English) and People's Daily 1998 (Chinese), fetched on first use
    2 prepare     clean, deduplicate, train a byte-level BPE tokenizer, pack token shards
    3 train       a GPT of about a million parameters, on the CPU
    4 evaluate    validation perplexity and bits per byte, beside a unigram baseline
    5 history     an LSTM (truncated BPTT) and a Kneser-Ney 5-gram on the same data, and the three
                  generations on one table (`lmlab eval compare`)
    6 generate    an English and a Chinese continuation
    7 report      loss and learning-rate curves and an HTML page

Each stage prints what it did, its figures and where its files went, so the output reads as a
guided tour; the closing lines say what to try next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lmlab.data.pipeline import DataConfig
from lmlab.data.prepare import PrepareConfig, prepare_corpus
from lmlab.datasets import load_corpus
from lmlab.evaluate.compare import compare_runs, comparison_table, write_comparison
from lmlab.files import write_json
from lmlab.generate import GenerationParams, generate_text
from lmlab.report import write_report
from lmlab.runs import evaluate_run, load_run
from lmlab.tokenizers import TokenizerConfig
from lmlab.train import LoopConfig, OptimizerConfig, ScheduleConfig, TrainConfig, train
from lmlab.train.counting import NgramRunModel, NgramTrainConfig, train_ngram_run

PROMPTS = ["ROMEO:\nO, ", "新华社北京一月一日电", "我们要"]
DEMO_STEPS = 1000
# The LSTM of stage 5, trained for LSTM_SHARE of the GPT's steps. Measured on this corpus: an LSTM
# wants a far higher learning rate than the GPT (200 steps: lr 0.003 -> val loss 6.62, 0.03 -> 5.64,
# 0.06 -> 5.50), and at a budget of minutes many short streams (128 x 16) beat few long ones.
LSTM_MODEL = {"cell": "lstm", "n_layer": 1, "n_embd": 128, "hidden": 128, "block_size": 16, "dropout": 0.0}
LSTM_LR, LSTM_BATCH, LSTM_SHARE = 0.06, 128, 0.3


@dataclass
class QuickstartOptions:
    out: Path = Path("runs/quickstart")
    steps: int | None = None


def _stage(console: Console, number: int, title: str) -> None:
    console.rule(f"[bold cyan]{number}. {title}", align="left")


def run_quickstart(options: QuickstartOptions, console: Console | None = None) -> dict[str, float]:
    """Run every stage; return the evaluation figures."""
    console = console or Console()
    started = time.perf_counter()
    steps = options.steps or DEMO_STEPS

    _stage(console, 1, "Data: two real corpora, fetched once and cached")
    corpora = [load_corpus("shakespeare"), load_corpus("peoples-daily")]
    for corpus in corpora:
        size = corpus.card["size"]
        console.print(f"  {corpus.name:<14} {size['documents']:>6,} documents {size['characters']:>11,} characters"
                      f"   licence: {corpus.card.get('licence', '?')}")
    console.print(f"  cached at {corpora[0].path.parent.parent}")

    _stage(console, 2, "Prepare: clean, deduplicate, train a tokenizer, pack token shards")
    prepare_cfg = PrepareConfig(
        data=DataConfig(dedup="near"),
        tokenizer=TokenizerConfig(kind="bpe", vocab_size=4096),
        val_fraction=0.05,
        seed=2,  # this split holds out two whole plays (Henry VI part 3, Timon of Athens) and ~5% of the news
    )
    data_dir = options.out / "data"
    prepared = prepare_corpus([c.path for c in corpora], data_dir, prepare_cfg)
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
    train_cfg = TrainConfig(
        run_dir=str(options.out / "gpt"),
        data=str(data_dir),
        # Small and fast beats big and slow on a CPU budget: at ~1.3M parameters the model sees 2M
        # tokens (0.6 epoch) in three to four minutes, where a 2.6M one would see half as much and score worse.
        model={"family": "gpt", "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128, "dropout": 0.0},
        optimizer=OptimizerConfig(lr=3e-3, weight_decay=0.1),
        schedule=ScheduleConfig(kind="cosine", warmup_steps=min(50, steps // 10)),
        train=LoopConfig(max_steps=steps, batch_size=16, eval_every=max(1, steps // 4), eval_tokens=32_768,
                         log_every=10, checkpoint_every=max(1, steps // 2)),
    )
    result = train(train_cfg, console=console)
    model, tokenizer = load_run(result.run_dir)
    console.print(f"  {model.num_parameters(non_embedding=False):,} parameters, {result.steps} steps, "
                  f"{result.tokens_seen:,} tokens in {result.seconds:.0f}s "
                  f"({result.tokens_seen / result.seconds:,.0f} tokens/s)")

    _stage(console, 4, "Evaluate: validation perplexity and bits per byte")
    figures = evaluate_run(result.run_dir)
    table = Table("model", "perplexity", "bits per byte")
    table.add_row("unigram baseline", f"{figures['unigram_perplexity']:.1f}", f"{figures['unigram_bits_per_byte']:.3f}")
    table.add_row("GPT", f"{figures['perplexity']:.1f}", f"{figures['bits_per_byte']:.3f}")
    console.print(table)
    console.print("  bits per byte does not depend on the tokenizer: it is the figure to compare across models")

    _stage(console, 5, "History: an LSTM and a Kneser-Ney 5-gram on the same data, on one table")
    lstm_steps = max(1, round(steps * LSTM_SHARE))
    lstm_cfg = TrainConfig(
        run_dir=str(options.out / "lstm"),
        data=str(data_dir),
        objective="causal_lm_stream",  # truncated BPTT: the state runs on from window to window
        model={"family": "rnn", **LSTM_MODEL},
        optimizer=OptimizerConfig(lr=LSTM_LR),
        schedule=ScheduleConfig(kind="cosine", warmup_steps=min(20, lstm_steps // 10)),
        train=LoopConfig(max_steps=lstm_steps, batch_size=LSTM_BATCH, eval_every=lstm_steps, eval_tokens=32_768,
                         log_every=10, checkpoint_every=lstm_steps),
    )
    lstm = train(lstm_cfg, console=console)
    ngram = train_ngram_run(NgramTrainConfig(
        run_dir=str(options.out / "kn5"), data=str(data_dir),
        model=NgramRunModel(order=5, estimator="modified-kneser-ney", unit="token"),
    ))
    console.print(f"  LSTM: {lstm.steps} steps in {lstm.seconds:.0f}s;  5-gram: {ngram.tokens_seen:,} tokens "
                  f"counted in {ngram.seconds:.1f}s")
    rows = compare_runs([result.run_dir, lstm.run_dir, ngram.run_dir])
    console.print(comparison_table(rows))
    write_comparison(rows, options.out / "compare")
    console.print(f"  every model predicts the same held-out text and each document's end; "
                  f"{options.out / 'compare'}/compare.png draws it")

    _stage(console, 6, "Generate: English and Chinese (temperature 0.8, top-k 50)")
    params = GenerationParams(max_new_tokens=80, temperature=0.8, top_k=50, seed=0)
    completions = generate_text(model, tokenizer, PROMPTS, params)
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
