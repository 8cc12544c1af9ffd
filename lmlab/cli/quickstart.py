"""`lmlab quickstart`: the whole pipeline on English and Chinese corpora in a few minutes; `lmlab quickstart
chat`: from raw text to a small assistant (pretrain, SFT, reward model, DPO, GRPO, chat) in about ten."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmlab.quickstart import QuickstartOptions, run_quickstart
from lmlab.quickstart.chat import ChatQuickstartOptions, run_chat_quickstart


def cmd_quickstart(args: argparse.Namespace) -> None:
    corpora = tuple(map(Path, args.corpus))
    if args.demo == "chat":
        run_chat_quickstart(ChatQuickstartOptions(out=Path(args.out or "runs/quickstart-chat"), steps=args.steps,
                                                  corpora=corpora, held_out=args.held_out))
        return
    run_quickstart(QuickstartOptions(out=Path(args.out or "runs/quickstart"), steps=args.steps, corpora=corpora))


def add_quickstart(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_quickstart)
    parser.add_argument("demo", nargs="?", choices=("chat",), help="chat: pretrain, instruct, align and chat "
                        "(default: the language-model tour)")
    parser.add_argument("--out", default=None, help="default: runs/quickstart (runs/quickstart-chat for chat)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the tuned demo; for "
                        "chat, every stage's)")
    parser.add_argument("--corpus", action="append", default=[], metavar="PATH",
                        help="your own corpus file instead of the two named corpora (repeatable): with a few "
                             "--steps, a quick tour of every stage")
    parser.add_argument("--held-out", type=int, default=200, help="chat: the held-out tasks and pairs each stage "
                        "is scored on")
