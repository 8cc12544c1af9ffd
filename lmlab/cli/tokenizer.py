"""`lmlab tokenizer train`: a tokenizer on its own, from a corpus (`data prepare` trains one as it packs)."""

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
from lmlab.data import read_documents
from lmlab.tokenizers import TokenizerConfig, train_tokenizer


def cmd_train(args: argparse.Namespace) -> None:
    paths, overrides = corpus_and_overrides(args.words, "tokenizer train")
    cfg = load_config(TokenizerConfig, args.config, overrides)
    tokenizer = train_tokenizer(read_documents(paths, text_field=args.text_field), cfg)
    tokenizer.save(args.out)
    print(f"trained a {cfg.kind} tokenizer of {tokenizer.vocab_size:,} tokens; wrote {args.out}")
    save_json(args.json, {"kind": cfg.kind, "vocab_size": tokenizer.vocab_size, "path": args.out})


def add_tokenizer(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = add_command(actions, "train", cmd_train, "train a byte-level BPE, WordPiece or char tokenizer")
    add_corpus_and_overrides(train, "kind=wordpiece vocab_size=8000")
    add_text_field(train)
    train.add_argument("--out", required=True, help="tokenizer.json to write")
    train.add_argument("--config", help="YAML tokenizer config (kind, vocab_size, ...)")
    add_json(train, "the kind and vocabulary size")
