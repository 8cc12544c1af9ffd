"""`lmlab data stats|prepare`: count a corpus, then clean, deduplicate, tokenize and pack it for training."""

from __future__ import annotations

import argparse

from lmlab.cli.common import (
    add_command,
    add_corpus_and_overrides,
    add_json,
    add_text_field,
    corpus_and_overrides,
    save_json,
)
from lmlab.config import load_config
from lmlab.data import corpus_stats, format_report, format_stats
from lmlab.data.prepare import PrepareConfig, prepare_corpus


def cmd_stats(args: argparse.Namespace) -> None:
    stats = corpus_stats(args.paths, text_field=args.text_field, txt_mode=args.txt_mode)
    print(format_stats(stats))
    save_json(args.json, stats.to_dict())


def cmd_prepare(args: argparse.Namespace) -> None:
    paths, overrides = corpus_and_overrides(args.words, "data prepare")
    cfg = load_config(PrepareConfig, args.config, overrides)
    prepared = prepare_corpus(paths, args.out, cfg)
    print(format_report(prepared.report))
    splits = prepared.meta.splits
    print(f"tokenizer: {prepared.tokenizer.vocab_size:,} tokens ({cfg.tokenizer.kind})")
    print(f"packed: train {splits['train'].tokens:,} tokens, val {splits['val'].tokens:,} tokens")
    print(f"wrote {prepared.path}/ (clean.jsonl, tokenizer.json, train.bin, val.bin, meta.json)")
    print(f"next: lmlab train data={prepared.path} run_dir=runs/mine train.max_steps=2000   (a GPT by default; "
          "model.family=... or a config file chooses another)")
    save_json(args.json, {
        "path": str(prepared.path),
        "report": prepared.report.to_dict(),
        "tokenizer": {"kind": cfg.tokenizer.kind, "vocab_size": prepared.tokenizer.vocab_size},
        "splits": {name: split.model_dump() for name, split in splits.items()},
    })


def add_data(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    stats = add_command(actions, "stats", cmd_stats, "documents, characters, duplicate rate, CJK/Latin share")
    stats.add_argument("paths", nargs="+", help="files, directories or globs (.txt .jsonl .csv .parquet)")
    add_text_field(stats)
    stats.add_argument("--txt-mode", choices=["file", "blocks"], default="file")
    add_json(stats, "the table")

    prepare = add_command(actions, "prepare", cmd_prepare, "clean + dedup, train a tokenizer, pack token shards")
    add_corpus_and_overrides(prepare, "tokenizer.kind=wordpiece tokenizer.vocab_size=8000")
    prepare.add_argument("--out", required=True, help="the prepared folder to write")
    prepare.add_argument("--config", help="YAML with data / tokenizer / val_fraction / seed sections")
    add_json(prepare, "the report, tokenizer and split sizes")
