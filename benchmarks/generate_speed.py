"""Greedy generation speed: lmlab's GPT against transformers' GPT2LMHeadModel, same weights.

Batch 1, a 16-token prompt, 256 new tokens, eos disabled so both produce all of them. Each side
gets a warm-up run, then the best of a few timed runs is kept (the least disturbed by the machine).
The last line printed is one JSON object; the script exits 0 whether or not the target is met.

    .venv/bin/python benchmarks/generate_speed.py [--size small|medium] [--runs 3] [--new-tokens 256]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable

import torch
from transformers import GPT2LMHeadModel

from lmlab.generate import GenerationParams, generate_ids
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2

TARGET_RATIO = 2.0
SIZES = {
    # The width, depth and vocabulary of the model `lmlab quickstart` trains on a laptop CPU, with room
    # for 16 + 256 positions. Small enough that per-token overhead, not arithmetic, sets the speed.
    "small": GPTConfig(vocab_size=4096, block_size=512, n_layer=4, n_head=4, n_embd=192),
    # Half of GPT-2 small's depth and width with its full vocabulary. Here every token streams ~120 MB
    # of float32 weights through memory in both libraries, so the ratio stays near 1.
    "medium": GPTConfig(vocab_size=50257, block_size=512, n_layer=6, n_head=6, n_embd=384),
}


def best_time(run: Callable[[], list[int]], runs: int) -> tuple[float, list[int]]:
    run()  # warm-up: first-call allocations and kernel selection are not what we measure
    timings, tokens = [], []
    for _ in range(runs):
        start = time.perf_counter()
        tokens = run()
        timings.append(time.perf_counter() - start)
    return min(timings), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args()
    config = SIZES[args.size]

    torch.manual_seed(0)
    model = GPT(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        export_gpt2(model, folder)
        hf_model = GPT2LMHeadModel.from_pretrained(folder).eval()
    prompt = torch.randint(0, config.vocab_size, (16,)).tolist()
    params = GenerationParams(max_new_tokens=args.new_tokens, temperature=0)

    def lmlab_run() -> list[int]:
        return generate_ids(model, [prompt], params)[0]

    def hf_run() -> list[int]:
        input_ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = hf_model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                eos_token_id=None, pad_token_id=0,
            )
        return out[0, len(prompt):].tolist()

    lmlab_s, lmlab_tokens = best_time(lmlab_run, args.runs)
    hf_s, hf_tokens = best_time(hf_run, args.runs)
    lmlab_tps, hf_tps = len(lmlab_tokens) / lmlab_s, len(hf_tokens) / hf_s
    print(f"lmlab        {lmlab_tps:8.1f} tokens/s ({len(lmlab_tokens)} tokens in {lmlab_s:.2f} s)")
    print(f"transformers {hf_tps:8.1f} tokens/s ({len(hf_tokens)} tokens in {hf_s:.2f} s)")
    print(json.dumps({
        "benchmark": "generate_speed",
        "ratio": round(lmlab_tps / hf_tps, 3),
        "target": TARGET_RATIO,
        "identical": lmlab_tokens == hf_tokens,
        "lmlab_tokens_per_s": round(lmlab_tps, 1),
        "hf_tokens_per_s": round(hf_tps, 1),
        "size": args.size,
        "config": dataclasses.asdict(config),
        "new_tokens": args.new_tokens,
        "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
