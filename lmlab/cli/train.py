"""`lmlab train`: train a run from a YAML config and/or dotted overrides, or continue one with --resume."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from lmlab.cli.common import add_json, add_words, config_and_overrides, save_json
from lmlab.config import Config
from lmlab.errors import LmlabError
from lmlab.runs import open_run
from lmlab.train import TrainConfig, load_run_config, read_train_config, train_run


def _run_config(args: argparse.Namespace) -> Config:
    config, overrides = config_and_overrides(args.words, "train")
    if not args.resume:
        return read_train_config(config, overrides)
    if overrides or config is None:
        raise LmlabError("--resume continues a run with its saved config: give its run directory and no overrides")
    return load_run_config(config)


def cmd_train(args: argparse.Namespace) -> None:
    cfg = _run_config(args)
    result = train_run(cfg, resume=args.resume)
    if not isinstance(cfg, TrainConfig):
        print(f"counted {result.tokens_seen:,} units in {result.seconds:.1f}s")
        print(f"wrote {result.run_dir}/ (model.safetensors, model.json, summary.json)")
    else:
        val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        print(f"trained {result.steps} steps ({result.tokens_seen:,} tokens) in {result.seconds:.1f}s: "
              f"train loss {result.train_loss:.4f}{val}")
        print(f"wrote {result.run_dir}/ (model.safetensors, metrics.jsonl, checkpoints/)")
    if open_run(result.run_dir).family_class.kind == "encoder":
        print(f"next: lmlab tune base={result.run_dir} data=sentiment-en-binary   "
              f"lmlab pipeline fill-mask --model {result.run_dir} \"The [MASK] is here.\"")
    else:
        print(f"next: lmlab eval {result.run_dir}   lmlab generate {result.run_dir} \"Once upon a time\"")
    save_json(args.json, {**asdict(result), "run_dir": str(result.run_dir)})


def add_train(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_train)
    add_words(parser, "+", "CONFIG|key=value", "a YAML train config and/or dotted overrides: data=... "
              "train.max_steps=4000; with --resume the run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in CONFIG (a run directory)")
    add_json(parser, "the steps, tokens, seconds and losses")
