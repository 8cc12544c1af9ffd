"""`lmlab chat RUN`: talk with a chat run in the terminal, its replies streamed as they are written.

Each line you type is a user's turn; the whole conversation so far is the model's prompt. Commands:
``/reset`` forgets the turns (the system prompt stays), ``/system TEXT`` sets a new system prompt
and starts over, ``/exit`` (or end of input) leaves. ``--message`` sends turns without typing them,
for scripts and demos.
"""

from __future__ import annotations

import argparse
import sys

from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams
from lmlab.pipelines.chat import ChatModel, Conversation
from lmlab.runs import open_run

HELP = "type a message; /reset forgets the conversation, /system TEXT sets the system prompt, /exit leaves"


def say(conversation: Conversation, text: str) -> None:
    print("assistant> ", end="", flush=True)
    for piece in conversation.send(text):
        print(piece, end="", flush=True)
    print(flush=True)


def cmd_chat(args: argparse.Namespace) -> None:
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, seed=args.seed)
    conversation = Conversation(ChatModel.from_run(open_run(args.run), args.device), args.system, params)
    if args.message:
        for text in args.message:
            print(f"you> {text}")
            say(conversation, text)
        return
    interactive = sys.stdin.isatty()
    if interactive:
        print(HELP)
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() == "/exit":
            return
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            conversation.reset()
            print("(conversation reset)")
        elif text.startswith("/system"):
            conversation.system = text[len("/system"):].strip() or None
            conversation.reset()
            print(f"(system prompt: {conversation.system or 'none'}; conversation reset)")
        else:
            try:
                say(conversation, text)
            except LmlabError as exc:  # one turn went wrong (the context is full): say so and go on
                print(f"\nerror: {exc}", file=sys.stderr, flush=True)


def add_chat(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_chat)
    parser.add_argument("run", help="a chat run (lmlab tune task=sft, dpo or grpo)")
    parser.add_argument("--system", help="a system prompt that opens the conversation")
    parser.add_argument("--message", "-m", action="append", help="send this message and print the reply "
                        "(repeatable: the turns of one conversation), instead of reading standard input")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when there is one)")
