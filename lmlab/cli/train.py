"""`lmlab train`: train a run from a YAML config and/or dotted overrides, or continue one with --resume."""

from __future__ import annotations

import argparse
import math
from dataclasses import fields

from lmlab.cli.common import add_json, add_words, new_or_resumed_config, save_json
from lmlab.config import Config
from lmlab.runs import open_run
from lmlab.train import TrainConfig, TrainResult, load_run_config, read_train_config, train_run


def _run_config(args: argparse.Namespace) -> Config:
    return new_or_resumed_config(args, "train", read_train_config, load_run_config)


def cmd_train(args: argparse.Namespace) -> None:
    cfg = _run_config(args)
    result = train_run(cfg, resume=args.resume)
    kind = open_run(result.run_dir).family_class.kind
    if isinstance(cfg, TrainConfig):
        val = "" if result.val_loss is None else (
            f", val loss {result.val_loss:.4f}, val perplexity {math.exp(result.val_loss):.2f}"
            + (f" {result.val_counts}" if result.val_counts else ""))
        print(f"trained {result.steps} steps ({result.tokens_seen:,} tokens) in {result.seconds:.1f}s: "
              f"train loss {result.train_loss:.4f}{val}")
        print(f"wrote {result.run_dir}/ (model.safetensors, metrics.jsonl, checkpoints/)")
    elif kind == "count-based":
        print(f"counted {result.tokens_seen:,} units in {result.seconds:.1f}s")
        print(f"wrote {result.run_dir}/ (model.safetensors, model.json, summary.json)")
    else:
        print(f"learned from {result.tokens_seen:,} words in {result.steps} epochs ({result.seconds:.1f}s)")
        print(f"wrote {result.run_dir}/ (model.safetensors, model.json, metrics.jsonl, summary.json)")
    print(f"next: {NEXT.get(kind, NEXT['decoder']).format(run=result.run_dir)}")
    save_json(args.json, {field.name: getattr(result, field.name) for field in fields(TrainResult)}
              | {"run_dir": str(result.run_dir)})


# What to run next, by the kind of model just trained.
NEXT = {
    "decoder": 'lmlab eval {run}   lmlab generate {run} "Once upon a time"',
    "count-based": 'lmlab eval {run}   lmlab generate {run} "Once upon a time"',
    "encoder": 'lmlab tune base={run} data=sentiment-en-binary   lmlab pipeline fill-mask --model {run} '
               '"The [MASK] is here."',
    "word-vectors": "lmlab vectors similar {run} WORD   lmlab vectors analogy {run} king man woman",
}


def add_train(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_train)
    add_words(parser, "+", "CONFIG|key=value", "a YAML train config and/or dotted overrides: data=... "
              "train.max_steps=4000; with --resume the run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in CONFIG (a run directory)")
    add_json(parser, "the steps, tokens, seconds and losses")
