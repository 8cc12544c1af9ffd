"""`lmlab datasets list|get`: the named corpora, labelled sets and chat sets, fetched into the cache on first use."""

from __future__ import annotations

import argparse

from lmlab.cli.common import add_command, add_json, save_json
from lmlab.datasets import LABELLED, list_corpora, list_labelled, load_corpus, load_labelled
from lmlab.datasets.chat import CONVERSATION_SETS, PREFERENCE_SETS, conversation_splits, preference_splits


def cmd_list(args: argparse.Namespace) -> None:
    specs = [*list_corpora(), *list_labelled()]
    rows = [{"name": spec.name, "language": spec.language, "description": spec.description,
             "kind": "labelled" if spec.name in LABELLED else "corpus"} for spec in specs]
    rows += [{"name": name, "description": description, "kind": "conversations"}
             for name, description in CONVERSATION_SETS.items()]
    rows += [{"name": name, "description": description, "kind": "preferences"}
             for name, description in PREFERENCE_SETS.items()]
    for row in rows:
        print(f"{row['name']:<24} {row['description']}")
    save_json(args.json, rows)


def cmd_get(args: argparse.Namespace) -> None:
    if args.name in CONVERSATION_SETS or args.name in PREFERENCE_SETS:
        read = conversation_splits if args.name in CONVERSATION_SETS else preference_splits
        splits = read(args.name)
        print(f"{args.name}: " + ", ".join(f"{split} {len(rows):,}" for split, rows in splits.items()))
        save_json(args.json, {"name": args.name, "counts": {split: len(rows) for split, rows in splits.items()}})
        return
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
    listing = add_command(actions, "list", cmd_list, "list the known corpora, labelled sets and chat sets")
    add_json(listing, "the list")
    get = add_command(actions, "get", cmd_get, "fetch a corpus or named set into the cache and describe it")
    get.add_argument("name")
    add_json(get, "its card and where its files are")
