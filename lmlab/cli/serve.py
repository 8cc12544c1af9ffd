"""`lmlab serve RUN [RUN ...]`: an OpenAI-compatible HTTP server on loopback (see `lmlab.serve`)."""

from __future__ import annotations

import argparse

from lmlab.models.quantize import QUANTIZATIONS
from lmlab.serve import ServeSettings, serve


def cmd_serve(args: argparse.Namespace) -> None:
    settings = ServeSettings(host=args.host, port=args.port, api_key=args.api_key, device=args.device or "auto",
                             max_batch=args.max_batch, max_waiting=args.max_waiting,
                             max_prompt_tokens=args.max_prompt_tokens, max_tokens=args.max_tokens,
                             max_body_bytes=args.max_body_bytes, quantize=args.quantize,
                             stream_interval_ms=args.stream_interval_ms)
    print(f"serving {', '.join(args.runs)} on http://{settings.host}:{settings.port}/v1 (Ctrl-C stops)", flush=True)
    serve(args.runs, settings)


def add_serve(parser: argparse.ArgumentParser) -> None:
    defaults = ServeSettings()
    parser.set_defaults(handler=cmd_serve)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="runs to serve, each named by its folder's name")
    parser.add_argument("--host", default=defaults.host, help="the address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--api-key", help="require `Authorization: Bearer KEY` on every route but /health")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when there is one)")
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch,
                        help="sequences decoded together in one forward pass")
    parser.add_argument("--max-waiting", type=int, default=defaults.max_waiting,
                        help="sequences that may wait for a place; beyond, requests get 429")
    parser.add_argument("--max-prompt-tokens", type=int, help="a longer prompt gets 413 (default: the context)")
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                        help="the most tokens one choice may ask for")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                        help="a larger request body gets 413")
    parser.add_argument("--stream-interval-ms", type=float, default=defaults.stream_interval_ms,
                        help="hand a stream its tokens at most this often, together (0: each at once)")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default=defaults.quantize,
                        help="int8: int8 weights, a quarter of the bytes read per token (CPU)")
