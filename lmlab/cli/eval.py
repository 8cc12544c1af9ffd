"""`lmlab eval`: score runs. One run's perplexity, benchmark tasks (`--tasks`), runs side by side
(`eval compare`), chat runs' exact match on held-out verifiable questions, each against the first by
McNemar's paired test (`eval answers`), and human rating: a sheet to fill in (`eval sheet`) and the
report of filled ones (`eval ratings`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lmlab.cli.common import add_json, save_json
from lmlab.datasets.chat import conversation_splits
from lmlab.errors import LmlabError
from lmlab.evaluate import evaluate_run
from lmlab.evaluate.compare import compare_runs, comparison_table, count_notes, write_comparison
from lmlab.evaluate.harness import bundled_tasks
from lmlab.evaluate.human import (
    export_rating_sheet,
    rating_markdown,
    rating_report,
    read_rating_items,
    read_rating_sheets,
)
from lmlab.evaluate.leaderboard import evaluate_runs, results_json, results_table, write_results
from lmlab.files import write_text
from lmlab.pipelines.chat import compare_answers


def cmd_eval(args: argparse.Namespace) -> None:
    first = args.targets[0]
    if first in MODES:
        MODES[first](args)
    elif args.tasks:
        _tasks(args)
    else:
        _perplexity(args)


def _perplexity(args: argparse.Namespace) -> None:
    if len(args.targets) > 1:
        raise LmlabError("eval: one run at a time; to put several on one table use `lmlab eval compare RUN...`")
    result = evaluate_run(args.targets[0], args.split)
    print(f"{args.split}: perplexity {result['perplexity']:.2f} {result['counts']}")
    print(f"{args.split}: bits per byte {result['bits_per_byte']:.4f} (unigram baseline: "
          f"{result['unigram_bits_per_byte']:.4f}, perplexity {result['unigram_perplexity']:.2f} "
          "per packed token incl. document ends)")
    save_json(args.json, result)


def _compare(args: argparse.Namespace) -> None:
    rows = compare_runs(args.targets[1:], data=args.data, split=args.split, max_documents=args.max_documents)
    Console().print(comparison_table(rows))
    print("\n".join(count_notes(rows)))
    out = write_comparison(rows, args.out or "runs/compare")
    print(f"wrote {out}/compare.md, compare.json, compare.png")
    save_json(args.json, [row.to_dict() for row in rows])


def _tasks(args: argparse.Namespace) -> None:
    names = [name.strip() for group in args.tasks for name in group.split(",") if name.strip()]
    tasks = bundled_tasks() if names == ["all"] else names
    results = evaluate_runs(args.targets, tasks, limit=args.limit, num_fewshot=args.num_fewshot)
    Console().print(results_table(results))
    out = write_results(results, args.out or "runs/eval", with_samples=args.log_samples)
    print(f"wrote {out}/results.md, results.json" + (", results.png" if len(results) > 1 else ""))
    save_json(args.json, results_json(results))


def _answers(args: argparse.Namespace) -> None:
    runs = args.targets[1:]
    if not runs:
        raise LmlabError("eval answers: give one or more chat runs; the first is the one the others are compared with")
    splits = conversation_splits(args.data or "tasks")
    records = [r for r in splits["validation"] + splits["test"] if r.get("answer") is not None][:args.limit]
    if not records:
        raise LmlabError(f"eval answers: {args.data or 'tasks'} has no held-out record with an exact answer")
    results = compare_answers(runs, records)
    kinds = list(results[0]["kinds"])
    labels = [Path(run).name for run in runs]
    labels = labels if len(set(labels)) == len(labels) else list(runs)
    table = Table(title=f"greedy exact match on {len(records)} held-out questions, against {labels[0]}")
    for column in ("run", "exact match", "gained", "lost", "McNemar p"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, row in zip(labels, results, strict=True):
        table.add_row(label, f"{row['exact_match']:.4f}", str(row["gained"]), str(row["lost"]), f"{row['p_value']:.3f}")
    by_kind = Table(title="per kind")
    for column in ("kind", *labels):
        by_kind.add_column(column, justify="left" if column == "kind" else "right")
    for kind in kinds:
        by_kind.add_row(kind, *(f"{row['kinds'][kind]:.3f}" for row in results))
    if kinds:
        Console().print(by_kind)
    Console().print(table)
    save_json(args.json, {"items": len(records), "runs": results})


def _sheet(args: argparse.Namespace) -> None:
    if len(args.targets) != 2 or not args.out:
        raise LmlabError("eval sheet: give one JSONL of {id, system, prompt, output} records and --out SHEET.csv")
    items = read_rating_items(args.targets[1])
    key = export_rating_sheet(items, args.out, criteria=args.criteria, scale=tuple(args.scale), seed=args.seed,
                              blind=not args.not_blind)
    low, high = args.scale
    print(f"wrote {args.out} ({len(items)} outputs, shuffled{'' if args.not_blind else ', blind'}) and its key {key}")
    print(f"next: give each rater a copy named after them (alice.csv, ...) to fill in {', '.join(args.criteria)} "
          f"from {low} to {high}; then: lmlab eval ratings alice.csv bob.csv ... --key {key}")
    save_json(args.json, {"sheet": args.out, "key": str(key), "outputs": len(items)})


def _ratings(args: argparse.Namespace) -> None:
    if len(args.targets) < 2:
        raise LmlabError("eval ratings: give the filled sheets, one per rater (or with a `rater` column)")
    report = rating_report(read_rating_sheets(args.targets[1:], key=args.key, scale=tuple(args.scale)))
    markdown = rating_markdown(report)
    print(markdown)
    if args.out:
        write_text(args.out, markdown)
        print(f"wrote {args.out}")
    save_json(args.json, report.to_dict())


# The forms named by the first word; any other first word is a run directory.
MODES = {"compare": _compare, "answers": _answers, "sheet": _sheet, "ratings": _ratings}


def add_eval(parser: argparse.ArgumentParser) -> None:
    parser.description = ("perplexity and bits per byte of a run, beside a unigram baseline; "
                          "`eval RUN... --tasks T,...` runs benchmark tasks; "
                          "`eval compare RUN...` puts runs of any generation on one table; "
                          "`eval answers CHAT_RUN...`: exact match on held-out verifiable questions, paired; "
                          "`eval sheet OUTPUTS.jsonl --out S.csv` / `eval ratings S1.csv S2.csv...`: human rating")
    parser.set_defaults(handler=cmd_eval)
    parser.add_argument("targets", nargs="+", metavar="RUN", help="a run directory, or: compare RUN [RUN ...]")
    parser.add_argument("--tasks", action="append", metavar="TASK,...",
                        help="harness tasks: bundled names, YAML files, or `all` (any number of runs)")
    parser.add_argument("--limit", type=int, help="tasks: score the first N documents of each; answers: the first N "
                        "held-out questions")
    parser.add_argument("--num-fewshot", type=int, help="tasks: k solved examples before each question")
    parser.add_argument("--log-samples", action="store_true", help="tasks: keep every request and answer in JSON")
    parser.add_argument("--split", default="val", choices=["train", "val"])
    add_json(parser, "the result (sheet: where the sheet and its key went)")
    parser.add_argument("--data", help="compare: the packed data whose split all runs are scored on "
                        "(default: the first run's); answers: the conversation set whose validation and test "
                        "questions are asked (default: tasks)")
    parser.add_argument("--max-documents", type=int, help="compare: score this many documents, spread evenly")
    parser.add_argument("--out", help="compare or tasks: where the tables and chart go (default runs/compare or "
                        "runs/eval); sheet: the CSV to write; ratings: also write the Markdown report here")
    parser.add_argument("--criteria", nargs="+", default=["fluency", "coherence", "relevance"], metavar="NAME",
                        help="sheet: one rating column per criterion")
    parser.add_argument("--scale", nargs=2, type=int, default=[1, 5], metavar=("LOW", "HIGH"),
                        help="sheet: the rating scale; ratings: the scale of sheets read without --key")
    parser.add_argument("--seed", type=int, default=0, help="sheet: the shuffle seed")
    parser.add_argument("--not-blind", action="store_true", help="sheet: show the system names to the raters")
    parser.add_argument("--key", help="ratings: the SHEET.csv.key.json that `eval sheet` wrote")
