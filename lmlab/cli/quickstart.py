"""`lmlab quickstart`: the whole pipeline on English and Chinese corpora in a few minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmlab.quickstart import QuickstartOptions, run_quickstart


def cmd_quickstart(args: argparse.Namespace) -> None:
    run_quickstart(QuickstartOptions(out=Path(args.out), steps=args.steps, corpora=tuple(map(Path, args.corpus))))


def add_quickstart(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_quickstart)
    parser.add_argument("--out", default="runs/quickstart")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the tuned demo)")
    parser.add_argument("--corpus", action="append", default=[], metavar="PATH",
                        help="your own corpus file instead of the two named corpora (repeatable): with a few "
                             "--steps, a quick tour of every stage")
