"""`lmlab export` and `lmlab import`: a run's model to a Hugging Face directory, and back.

Which families export, and how, is theirs to say (`exporter`); which Hugging Face directories
import is the registry's (`lmlab.models.registry.HF_DIRECTORIES`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmlab.models import save_model
from lmlab.models.registry import resolve
from lmlab.runs import open_run


def cmd_export(args: argparse.Namespace) -> None:
    run = open_run(args.run)
    exporter = run.family_class.exporter
    if exporter is None:
        raise run.refusal(f"a {run.family} model has no Hugging Face counterpart to export to")
    tokenizer = run.path / "tokenizer.json"
    # An exporter may say what it wrote (a tuned run's: a base and a PEFT adapter); a family's says nothing.
    said = resolve(exporter)(run.model("cpu"), args.out, tokenizer_json=tokenizer if tokenizer.exists() else None)
    print(said or f"wrote a Hugging Face directory of the {run.describe()} model to {args.out}")


def cmd_import(args: argparse.Namespace) -> None:
    run = open_run(args.hf_dir)
    model = run.model("cpu")
    save_model(model, args.out)
    run.tokenizer().save(Path(args.out) / "tokenizer.json")  # as the reader cleaned it (no padding, no truncation)
    template = run.chat_template()
    if template is not None:  # a chat model keeps the format it was tuned with
        template.save(args.out)
    print(f"imported {args.hf_dir} ({run.describe()}) into {args.out}")
    if model.missing_weights:
        print(f"note: the directory has no {len(model.missing_weights)} of the weights (first: "
              f"{model.missing_weights[0]}); they keep a fresh random initialisation, so the parts they make up "
              "(a head the directory lacks) must be trained before use")


def add_export(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_export)
    parser.add_argument("run")
    parser.add_argument("out")


def add_import(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_import)
    parser.add_argument("hf_dir")
    parser.add_argument("out")
