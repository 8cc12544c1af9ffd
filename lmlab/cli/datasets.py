"""`lmlab datasets list|get`: the named corpora and labelled sets, fetched into the cache on first use."""

from __future__ import annotations

import argparse

from lmlab.cli.common import add_command, add_json, save_json
from lmlab.datasets import LABELLED, list_corpora, list_labelled, load_corpus, load_labelled


def cmd_list(args: argparse.Namespace) -> None:
    specs = [*list_corpora(), *list_labelled()]
    for spec in specs:
        print(f"{spec.name:<20} {spec.description}")
    save_json(args.json, [{"name": spec.name, "language": spec.language, "description": spec.description,
                           "labelled": spec.name in LABELLED} for spec in specs])


def cmd_get(args: argparse.Namespace) -> None:
    if args.name in LABELLED:
        data = load_labelled(args.name)
        for split, counts in data.card["counts"].items():
            per_label = ", ".join(f"{label} {counts[str(label)]:,}" for label in data.labels)
            base = data.card["majority_baseline"][split]
            print(f"{split:<10} {counts['total']:>7,} ({per_label}); majority baseline {base['accuracy']:.3f}")
        print(f"files: {data.directory}/{{train,validation,test}}.jsonl   card: {data.directory}/CARD.md")
        save_json(args.json, {"name": data.name, "directory": str(data.directory), "card": data.card})
        return
    corpus = load_corpus(args.name)
    size = corpus.card.get("size", {})
    print(f"{corpus.name}: {size.get('documents', '?'):,} documents, {size.get('characters', '?'):,} characters")
    print(f"file: {corpus.path}")
    save_json(args.json, {"name": corpus.name, "path": str(corpus.path), "card": corpus.card})


def add_datasets(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = add_command(actions, "list", cmd_list, "list the known corpora and labelled sets")
    add_json(listing, "the list")
    get = add_command(actions, "get", cmd_get, "fetch a corpus or labelled set into the cache and show its card")
    get.add_argument("name")
    add_json(get, "its card and where its files are")
