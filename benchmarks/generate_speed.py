"""Greedy generation speed: lmlab's GPT or LLaMA against transformers' GPT2LMHeadModel or LlamaForCausalLM,
same weights.

Batch 1, a 16-token prompt, 256 new tokens, eos disabled so all of them are produced. Three
contenders: lmlab eager, lmlab with ``GenerationParams(compile=True)`` (torch.compile of the
one-token step) and transformers' ``generate(do_sample=False)``, eager. Each gets a warm-up run,
whose time is reported for the compiled one (it includes the compilation, which the timed runs do
not pay again); then timed runs alternate between the three, so that whatever else the machine does
falls on all alike, and the median run of each counts. "ratio" is compiled lmlab over transformers,
"eager_ratio" plain lmlab over transformers. "compile_s" depends on inductor's on-disk cache: about
20 s on a cold cache on a 2-core machine, a few seconds once the kernels are cached.
The last line printed is one JSON object; the script exits 0 whether or not the target is met.

    .venv/bin/python benchmarks/generate_speed.py [--family gpt|llama] [--size small|quickstart|medium] [--runs 5]

A LLaMA has the GPT's depth, width and vocabulary, half as many key/value heads (GQA) and LLaMA's
SwiGLU width; it is exported as a LlamaForCausalLM directory and read back by transformers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM

from lmlab.generate import GenerationParams, generate_ids
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2
from lmlab.models.hf_llama import export_llama
from lmlab.models.llama import Llama, LlamaConfig

TARGET_RATIO = 2.0
SIZES = {
    # The width, depth and vocabulary of the model `lmlab quickstart` trains on a laptop CPU, with room
    # for 16 + 256 positions. Small enough that per-token overhead, not arithmetic, sets the speed.
    "small": GPTConfig(vocab_size=4096, block_size=512, n_layer=4, n_head=4, n_embd=192),
    # The narrower shape the quickstart may move to: even more overhead-bound.
    "quickstart": GPTConfig(vocab_size=4096, block_size=512, n_layer=4, n_head=4, n_embd=128),
    # Half of GPT-2 small's depth and width with its full vocabulary. Here every token streams ~120 MB
    # of float32 weights through memory in both libraries, so the ratio stays near 1.
    "medium": GPTConfig(vocab_size=50257, block_size=512, n_layer=6, n_head=6, n_embd=384),
}


def build(family: str, config: GPTConfig) -> tuple[torch.nn.Module, Callable[..., None]]:
    """The lmlab model of `family` in the shape of `config`, and its exporter."""
    if family == "gpt":
        return GPT(config).eval(), export_gpt2
    shape = LlamaConfig(vocab_size=config.vocab_size, block_size=config.block_size, n_layer=config.n_layer,
                        n_head=config.n_head, n_kv_head=config.n_head // 2, n_embd=config.n_embd)
    return Llama(shape).eval(), export_llama


def timed(run: Callable[[], list[int]]) -> tuple[float, list[int]]:
    start = time.perf_counter()
    tokens = run()
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--family", choices=("gpt", "llama"), default="gpt")
    args = parser.parse_args()

    torch.manual_seed(0)
    model, export = build(args.family, SIZES[args.size])
    config = model.config
    with tempfile.TemporaryDirectory() as folder:
        export(model, folder)
        hf_model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompt = torch.randint(0, config.vocab_size, (16,)).tolist()
    params = GenerationParams(max_new_tokens=args.new_tokens, temperature=0)
    compiled_params = params.model_copy(update={"compile": True})

    def hf_run() -> list[int]:
        input_ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = hf_model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                eos_token_id=None, pad_token_id=0,
            )
        return out[0, len(prompt):].tolist()

    runners = {
        "lmlab eager": lambda: generate_ids(model, [prompt], params)[0],
        "lmlab compiled": lambda: generate_ids(model, [prompt], compiled_params)[0],
        "transformers": hf_run,
    }
    # Warm-up: first-call allocations and kernel choice, and for the compiled one the compilation.
    warm_up_s, tokens = {}, {}
    for name, run in runners.items():
        warm_up_s[name], tokens[name] = timed(run)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.runs):
        for name, run in runners.items():
            elapsed, tokens[name] = timed(run)
            seconds[name].append(elapsed)
    speed = {name: len(tokens[name]) / statistics.median(seconds[name]) for name in runners}
    for name in runners:
        print(f"{name:15} {speed[name]:8.1f} tokens/s ({len(tokens[name])} tokens, median of {args.runs})")
    compile_s = warm_up_s["lmlab compiled"] - statistics.median(seconds["lmlab compiled"])
    print(f"compilation took {compile_s:.1f} s (the compiled warm-up run less a timed one)")
    hf_tps = speed["transformers"]
    print(json.dumps({
        "benchmark": "generate_speed",
        "ratio": round(speed["lmlab compiled"] / hf_tps, 3),
        "eager_ratio": round(speed["lmlab eager"] / hf_tps, 3),
        "target": TARGET_RATIO,
        "lmlab_compile": True,
        "compile_s": round(compile_s, 1),
        "identical": tokens["lmlab eager"] == tokens["lmlab compiled"] == tokens["transformers"],
        "lmlab_tokens_per_s": round(speed["lmlab compiled"], 1),
        "lmlab_eager_tokens_per_s": round(speed["lmlab eager"], 1),
        "hf_tokens_per_s": round(hf_tps, 1),
        "size": args.size,
        "family": args.family,
        "config": dataclasses.asdict(config),
        "new_tokens": args.new_tokens,
        "runs": args.runs,
        "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
