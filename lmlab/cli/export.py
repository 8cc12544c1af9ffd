"""`lmlab export` and `lmlab import`: a run's GPT to a Hugging Face GPT-2 directory, and back."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from lmlab.models import load_model, save_model
from lmlab.models.hf import export_gpt2, import_gpt2


def cmd_export(args: argparse.Namespace) -> None:
    tokenizer = Path(args.run) / "tokenizer.json"
    export_gpt2(load_model(args.run), args.out, tokenizer_json=tokenizer if tokenizer.exists() else None)
    print(f"wrote a Hugging Face GPT-2 directory to {args.out}")


def cmd_import(args: argparse.Namespace) -> None:
    save_model(import_gpt2(args.hf_dir), args.out)
    tokenizer = Path(args.hf_dir) / "tokenizer.json"
    if tokenizer.exists():
        shutil.copyfile(tokenizer, Path(args.out) / "tokenizer.json")
    print(f"imported {args.hf_dir} into {args.out}")


def add_export(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_export)
    parser.add_argument("run")
    parser.add_argument("out")


def add_import(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_import)
    parser.add_argument("hf_dir")
    parser.add_argument("out")
