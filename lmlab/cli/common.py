"""What the verb modules share: subcommands, positional words with `key=value` overrides, and `--json PATH`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lmlab.datasets import CORPORA, load_corpus
from lmlab.errors import LmlabError
from lmlab.files import write_json

Handler = Callable[[argparse.Namespace], None]


def add_command(actions: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """One subcommand (`data prepare`, `vectors similar`, ...) of a verb's `add_subparsers()`, run by `handler`."""
    command = actions.add_parser(name, help=help_text, description=help_text)
    command.set_defaults(handler=handler)
    return command


def add_words(command: argparse.ArgumentParser, nargs: str, metavar: str, help_text: str) -> None:
    """The positional words of a command that takes dotted `key=value` overrides among them.

    They may also come after options (`data prepare corpus/ --out DIR tokenizer.kind=bpe`): argparse
    leaves such words over, and `lmlab.cli.main` hands them to `args.words`.
    """
    command.add_argument("words", nargs=nargs, metavar=metavar, help=help_text)


def add_corpus_and_overrides(command: argparse.ArgumentParser, example: str) -> None:
    """Corpus paths mixed with dotted overrides (split by `corpus_and_overrides`); `example` shows some."""
    add_words(command, "+", "PATH|NAME|key=value", "corpus files, directories or globs (.txt .jsonl .csv .parquet), "
              f"named corpora ({', '.join(CORPORA)}) and dotted config overrides: {example}")


def add_text_field(command: argparse.ArgumentParser) -> None:
    command.add_argument("--text-field", default="text", help="JSONL field / CSV or Parquet column")


def add_json(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--json", metavar="PATH", help=f"also write {what} as JSON to PATH")


def save_json(path: str | None, payload: Any) -> None:
    """Write `payload` to the `--json PATH` of the command, when one was given."""
    if path:
        write_json(path, payload)


def split_overrides(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """Positional words as (paths, overrides): a word with `=` that is not an existing path is a dotted override."""
    paths: list[str] = []
    overrides: list[str] = []
    for word in words:
        (overrides if "=" in word and not Path(word).exists() else paths).append(word)
    return paths, overrides


def corpus_and_overrides(words: Sequence[str], command: str) -> tuple[list[str], list[str]]:
    """Corpus paths (at least one) and dotted overrides, in any order.

    A word that is no file but the name of a corpus (`lmlab datasets list`) is that corpus, fetched
    on first use: ``lmlab data prepare shakespeare`` as ``lmlab tune data=sentiment-en`` takes a named set.
    """
    paths, overrides = split_overrides(words)
    if not paths:
        raise LmlabError(f"{command}: give at least one corpus file, directory, glob or named corpus besides the "
                         "key=value overrides")
    return [_corpus_path(path) for path in paths], overrides


def _corpus_path(word: str) -> str:
    """A corpus word as a path: itself if it is a file, directory or glob, else the named corpus's file."""
    if Path(word).exists() or any(mark in word for mark in "*?["):
        return word
    if word not in CORPORA:
        raise LmlabError(f"{word}: no such file or directory, nor a named corpus ({', '.join(CORPORA)})")
    return str(load_corpus(word).path)


def config_and_overrides(words: Sequence[str], command: str) -> tuple[str | None, list[str]]:
    """An optional YAML config and dotted overrides, in any order."""
    paths, overrides = split_overrides(words)
    if len(paths) > 1:
        raise LmlabError(f"{command}: one config file at a time, got {', '.join(paths)} "
                         f"(an override is written key=value)")
    return (paths[0] if paths else None), overrides


def new_or_resumed_config(args: argparse.Namespace, command: str, read: Callable[[str | None, list[str]], Any],
                          load: Callable[[str, list[str]], Any]) -> Any:
    """The config of a new run (`read`: a YAML file and/or overrides), or with --resume the one the run
    directory saved (`load`), with the overrides a resume may make."""
    config, overrides = config_and_overrides(args.words, command)
    if not args.resume:
        return read(config, overrides)
    if config is None:
        raise LmlabError("--resume continues a run with its saved config: give its run directory")
    return load(config, overrides)
