"""`lmlab tune [compare]`: fine-tune a pretrained model on labelled data, or run several methods side by side."""

from __future__ import annotations

import argparse

from rich.console import Console

from lmlab.cli.common import add_json, add_words, config_and_overrides, new_or_resumed_config, save_json
from lmlab.errors import LmlabError
from lmlab.tune.runner import (
    TuneConfig,
    compare_methods,
    comparison_table,
    load_tune_run_config,
    read_tune_config,
    tune,
)


def _run_config(args: argparse.Namespace) -> TuneConfig:
    return new_or_resumed_config(args, "tune", read_tune_config, load_tune_run_config)


def cmd_tune(args: argparse.Namespace) -> None:
    if args.words and args.words[0] == "compare":
        if args.resume:
            raise LmlabError("tune compare --resume: resume one run at a time (lmlab tune RUN_DIR --resume)")
        _compare(args)
        return
    cfg = _run_config(args)
    summary = tune(cfg, resume=args.resume)
    figures = ", ".join(f"{name[len('test_'):].replace('_', ' ')} {value:.3f}" for name, value in summary.items()
                        if name.startswith("test_") and name != "test_examples" and isinstance(value, float))
    baseline = summary.get("majority_baseline")
    against = f" (majority class: accuracy {baseline['accuracy']:.3f})" if baseline else ""
    print(f"test: {figures}{against}; {summary['trainable_parameters']:,} trainable parameters; "
          f"{summary['wall_seconds']:.0f}s")
    print(f"wrote {cfg.run_dir}/ (model.safetensors, model.json, summary.json, metrics.jsonl)")
    print(f"next: {TRY_IT.get(cfg.task, 'lmlab report {run}').format(run=cfg.run_dir)}")
    save_json(args.json, summary)


# How to put a tuned run to work, by its task.
TRY_IT = {
    "classification": 'lmlab pipeline sentiment-analysis --model {run} "What a lovely film"',
    "tagging": 'lmlab pipeline token-classification --model {run} "Ada Lovelace lived in London"',
    "qa": 'lmlab pipeline question-answering --model {run} --question "Where?" "She lived in London."',
}


def _compare(args: argparse.Namespace) -> None:
    config, overrides = config_and_overrides(args.words[1:], "tune compare")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows = compare_methods(config, overrides, methods, args.out)
    Console().print(comparison_table(rows))
    print(f"wrote {args.out}/compare.md, compare.json, compare.png")
    save_json(args.json, rows)


def add_tune(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_tune)
    add_words(parser, "*", "[compare] [CONFIG] key=value",
              "a YAML tune config and/or dotted overrides: base=... data=... method.method=lora; "
              "with --resume the run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in CONFIG (a run directory) from "
                        "its newest checkpoint")
    parser.add_argument("--methods", default="features,full,adapters,lora,prompt,lora+fgm",
                        help="compare: the methods to run, comma-separated")
    parser.add_argument("--out", default="runs/tune-compare",
                        help="compare: where the runs and compare.md/.json/.png go (default runs/tune-compare)")
    add_json(parser, "the summary (or the comparison)")
