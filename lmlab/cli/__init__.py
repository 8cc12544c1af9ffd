"""The `lmlab` command: one verb per stage of the pipeline, each in its own module of this package.

    lmlab data stats|prepare   lmlab tokenizer train   lmlab datasets list|get
    lmlab train                lmlab eval [compare|sheet|ratings]     lmlab generate
    lmlab tune [compare]       lmlab pipeline TASK --model RUN [TEXT ...]
    lmlab vectors train|similar|analogy|map|export|evaluate
    lmlab export / import      lmlab report             lmlab quickstart [chat]
    lmlab chat RUN

A verb module defines its arguments and handlers; a handler parses nothing more, calls the library and
prints what was done, the figures, where files went and what to run next. Config overrides are bare
dotted `key=value` words, and every command that prints figures takes `--json PATH`. A user's mistake
(`LmlabError`) ends the command with one ``error: ...`` line and status 2; what lmlab did but the user
should know (`LmlabWarning`: a vocabulary short of its size, a tiny split) is one ``warning: ...`` line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from lmlab import __version__
from lmlab.errors import LmlabError, LmlabWarning

# verb: ("module:function" adding the verb's arguments, its line in `lmlab --help`). Names only, so that
# `lmlab --help` lists every verb without importing torch and the rest of the library.
VERBS: dict[str, tuple[str, str]] = {
    "data": ("lmlab.cli.data:add_data", "read, clean, deduplicate, tokenize and pack corpora"),
    "tokenizer": ("lmlab.cli.tokenizer:add_tokenizer", "train tokenizers"),
    "datasets": ("lmlab.cli.datasets:add_datasets", "named corpora and labelled sets, fetched on first use"),
    "train": ("lmlab.cli.train:add_train", "train a model (or --resume RUN_DIR)"),
    "eval": ("lmlab.cli.eval:add_eval", "score runs: perplexity, benchmark tasks, comparisons, human ratings"),
    "tune": ("lmlab.cli.tune:add_tune", "fine-tune a pretrained model on labelled data (`tune compare`: "
             "several methods on the same split)"),
    "generate": ("lmlab.cli.generate:add_generate", "continue prompts with a trained model"),
    "chat": ("lmlab.cli.chat:add_chat", "talk with a chat run in the terminal (streamed, /reset, a system prompt)"),
    "serve": ("lmlab.cli.serve:add_serve", "an OpenAI-compatible HTTP server over runs, batching all clients together"),
    "pipeline": ("lmlab.cli.pipeline:add_pipeline", "run a model on texts: `pipeline TASK --model RUN [TEXT ...]`"),
    "vectors": ("lmlab.cli.vectors:add_vectors", "word vectors (word2vec): skip-gram and CBOW, negative sampling"),
    "export": ("lmlab.cli.export:add_export", "write a run's model as a Hugging Face directory (GPT-2, LLaMA, BERT)"),
    "import": ("lmlab.cli.export:add_import", "import a Hugging Face directory (GPT-2, LLaMA, Qwen2, BERT) into lmlab"),
    "report": ("lmlab.cli.report:add_report", "loss and learning-rate curves and an HTML summary of a run"),
    "quickstart": ("lmlab.cli.quickstart:add_quickstart", "the whole pipeline on English + Chinese in a few minutes"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """Every verb with its help; `verb`, the one being run, also with its arguments."""
    parser = argparse.ArgumentParser(prog="lmlab", description="Build your own language model, end to end.")
    parser.add_argument("--version", action="version", version=f"lmlab {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, (target, help_text) in VERBS.items():
        command = verbs.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            module, function = target.split(":")
            # Only the verb asked for is loaded: a verb module imports the library (torch, ...) at its top.
            getattr(importlib.import_module(module), function)(command)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """A `LmlabWarning` as one ``warning: ...`` line on stderr; any other warning as Python prints it."""
    if issubclass(category, LmlabWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The top level takes no option but --help, so the first other word is the verb.
    parser = build_parser(next((word for word in argv if not word.startswith("-")), None))
    args, left_over = parser.parse_known_args(argv)
    # argparse fills a list of positional words only up to the first option; the words after it belong there too.
    unknown = [word for word in left_over if word.startswith("-") or "words" not in args]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if left_over:
        args.words = [*args.words, *left_over]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", LmlabWarning)  # each one said, even when repeated
            warnings.showwarning = _show_warning
            args.handler(args)
    except LmlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
