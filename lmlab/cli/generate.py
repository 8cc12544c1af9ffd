"""`lmlab generate`: continue prompts with a trained model, all at once or streamed token by token."""

from __future__ import annotations

import argparse

from torch import nn

from lmlab.cli.common import add_json, save_json
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, stream_text
from lmlab.models.quantize import QUANTIZATIONS
from lmlab.runs import open_run
from lmlab.tokenizers import Tokenizer


def _stream(model: nn.Module, tokenizer: Tokenizer, prompt: str, params: GenerationParams) -> str:
    """Print `prompt` and its continuation as the tokens come; the continuation."""
    print(prompt, end="", flush=True)
    pieces = []
    for piece in stream_text(model, tokenizer, prompt, params):
        print(piece, end="", flush=True)
        pieces.append(piece)
    print()
    return "".join(pieces)


def cmd_generate(args: argparse.Namespace) -> None:
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                              stop=args.stop or [], seed=args.seed, compile=args.compile)
    if args.stream:
        run = open_run(args.run)
        run.check_scores_text()
        if not issubclass(run.family_class, nn.Module):
            raise LmlabError(f"{args.run}: --stream prints a neural model's tokens as they come; a "
                             f"{run.describe()} model generates whole texts, so leave --stream out")
        model, tokenizer = run.model(quantization=args.quantize), run.tokenizer()
        texts = [_stream(model, tokenizer, prompt, params) for prompt in args.prompts]
    else:
        texts = open_run(args.run).language_model(quantization=args.quantize).generate(args.prompts, params)
        for prompt, text in zip(args.prompts, texts, strict=True):
            print(prompt + text)
    save_json(args.json, [{"prompt": prompt, "text": text} for prompt, text in zip(args.prompts, texts, strict=True)])


def add_generate(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_generate)
    parser.add_argument("run", help="a run or model directory")
    parser.add_argument("prompts", nargs="+")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--stop", action="append", help="stop string (repeatable)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--stream", action="store_true", help="print tokens as they come")
    parser.add_argument("--compile", action="store_true", help="torch.compile the decode step (long outputs)")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                        help="int8: int8 weights, a quarter of the bytes read per token (CPU)")
    add_json(parser, "{prompt, text} records (text: what was generated after the prompt)")
