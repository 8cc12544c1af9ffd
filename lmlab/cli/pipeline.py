"""`lmlab pipeline TASK --model RUN [TEXT ...]`: run a model on texts, one answer per text."""

from __future__ import annotations

import argparse
import sys
from typing import Any, get_args

from lmlab.cli.common import add_command, add_json, save_json
from lmlab.datasets.weights import WEIGHTS
from lmlab.models.base import Pooling
from lmlab.pipelines import PIPELINES, format_answer, pipeline

# The task options `cmd_pipeline` hands on when given (each task defines a few of them).
OPTIONS = ("top_k", "pooling", "normalize", "max_new_tokens", "temperature", "top_p", "seed")


def cmd_pipeline(args: argparse.Namespace) -> None:
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    options = {name: getattr(args, name) for name in OPTIONS if getattr(args, name, None) is not None}
    if getattr(args, "all_labels", False):
        options["top_k"] = None
    run = pipeline(args.task, model=args.model, device=args.device, batch_size=args.batch_size)
    if args.task == "question-answering":  # each text is a context for the one question
        answers = run([{"question": args.question, "context": text} for text in texts], **options)
    elif args.task == "chat":  # each text is a user's message, a conversation of its own
        system = [{"role": "system", "content": args.system}] if args.system else []
        answers = run([[*system, {"role": "user", "content": text}] for text in texts], **options)
    else:
        answers = run(texts, **options)
    for text, answer in zip(texts, answers, strict=True):
        print(format_answer(args.task, text, answer), flush=True)
    save_json(args.json, [{"input": text, "output": answer} for text, answer in zip(texts, answers, strict=True)])


def _add_task(tasks: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    command = add_command(tasks, name, cmd_pipeline, help_text)
    # Only the named weights that can do this task are offered.
    weights = [spec.name for spec in WEIGHTS.values() if PIPELINES[name].takes_weights(spec)]
    named = f", or named weights ({', '.join(weights)})" if weights else ""
    command.add_argument("--model", required=True, help=f"a run or model directory or a Hugging Face directory{named}")
    command.add_argument("texts", nargs="*", help="the texts (default: one per line of standard input)")
    add_json(command, "a list of {input, output} objects, one per text,")
    command.add_argument("--device", help="cpu, cuda, ... (default: cuda when there is one)")
    command.add_argument("--batch-size", type=int, default=16)
    return command


def add_pipeline(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in ("sentiment-analysis", "text-classification"):
        classify = _add_task(tasks, name, "label texts with a classifier from `lmlab tune`")
        classify.add_argument("--top-k", type=int, help="how many labels to list (default 1)")
        classify.add_argument("--all-labels", action="store_true", help="every label, best first")
    fill = _add_task(tasks, "fill-mask", "the likeliest tokens for each [MASK], from a BERT")
    fill.add_argument("--top-k", type=int, help="predictions per [MASK] (default 5)")
    features = _add_task(tasks, "feature-extraction", "hidden states per token, or one vector per text")
    features.add_argument("--pooling", choices=get_args(Pooling), help="one vector per text")
    features.add_argument("--normalize", action=argparse.BooleanOptionalAction,
                          help="unit-length vectors (default: as a sentence-transformers model is used)")
    write = _add_task(tasks, "text-generation", "continue each text with a GPT, LLaMA, RNN, MLP or n-gram run")
    chat = _add_task(tasks, "chat", "answer each text, a user's message, with a chat run (lmlab tune task=sft)")
    chat.add_argument("--system", help="a system prompt before each message")
    for command in (write, chat):
        command.add_argument("--max-new-tokens", type=int)
        command.add_argument("--temperature", type=float, help="0 = greedy")
        command.add_argument("--top-k", type=int)
        command.add_argument("--top-p", type=float)
        command.add_argument("--seed", type=int)
    _add_task(tasks, "token-classification", "tag the words of texts with a run of `lmlab tune task=tagging`")
    answer = _add_task(tasks, "question-answering", "find the answer in each text (a context), with a run of "
                       "`lmlab tune task=qa`")
    answer.add_argument("--question", required=True, help="the question asked of every context")
