"""Training throughput: lmlab's GPT or LLaMA beside transformers' GPT2LMHeadModel or LlamaForCausalLM of
the same shape, CPU float32, in one run.

Same configuration, same batch, same optimizer (AdamW, foreach), dropout off, no gradient
accumulation. Each model takes warm-up steps, then timed rounds alternate between the two so that
whatever else the machine does falls on both alike; the median round counts.

Model FLOPs utilisation counts 6N + 12*L*d*T FLOPs per token (nanoGPT's count: N parameters
without position embeddings, L layers, d width, T context) against this machine's own float32
matrix-multiply peak, measured in the same run.

    python benchmarks/train_throughput.py [--family gpt|llama] [--compile] [--rounds 9]

The LLaMA has the GPT's depth, width, vocabulary and context, 3 key/value heads for its 6 query heads
and LLaMA's SwiGLU width (8/3 of the width).

Last line: {"benchmark": "train_throughput", "ratio": lmlab/hf tokens per second, "target": 1.2, "mfu": ...}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

CONFIG = {"vocab_size": 8192, "block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384}
BATCH = 8


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """The best float32 FLOP/s of a large square matmul: the ceiling a training step could reach."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def lmlab_model(family: str) -> torch.nn.Module:
    if family == "llama":
        from lmlab.models.llama import Llama, LlamaConfig

        return Llama(LlamaConfig(**CONFIG, n_kv_head=CONFIG["n_head"] // 2))
    from lmlab.models.gpt import GPT, GPTConfig

    return GPT(GPTConfig(**CONFIG, dropout=0.0))


def hf_model(family: str, twin: torch.nn.Module) -> torch.nn.Module:
    if family == "llama":  # transformers' own class with the same weights, read from lmlab's export
        import tempfile

        from transformers import LlamaForCausalLM

        from lmlab.models.hf_llama import export_llama

        with tempfile.TemporaryDirectory() as folder:
            export_llama(twin, folder)
            return LlamaForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=CONFIG["vocab_size"], n_positions=CONFIG["block_size"], n_layer=CONFIG["n_layer"],
                        n_head=CONFIG["n_head"], n_embd=CONFIG["n_embd"], resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, attn_implementation="sdpa")
    return GPT2LMHeadModel(config)


def make_stepper(model: torch.nn.Module, is_hf: bool, compile_model: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, foreach=True)
    forward = torch.compile(model) if compile_model else model
    generator = torch.Generator().manual_seed(0)
    model.train()

    def step() -> float:
        ids = torch.randint(CONFIG["vocab_size"], (BATCH, CONFIG["block_size"] + 1), generator=generator)
        if is_hf:  # transformers shifts the labels itself
            loss = forward(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss
        else:
            loss = forward(input_ids=ids[:, :-1], labels=ids[:, 1:]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return step


def time_steps(step, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        step()
    return BATCH * CONFIG["block_size"] * count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile", action="store_true", help="lmlab with torch.compile (train.compile=true)")
    parser.add_argument("--family", choices=("gpt", "llama"), default="gpt")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=4, help="steps per timed round")
    args = parser.parse_args()
    torch.manual_seed(0)

    ours = lmlab_model(args.family)
    theirs = hf_model(args.family, ours)
    steppers = {"lmlab": make_stepper(ours, False, args.compile), "hf": make_stepper(theirs, True, False)}
    for name, step in steppers.items():
        for _ in range(3 if not args.compile or name == "hf" else 6):  # compilation happens in warm-up
            step()
    speeds: dict[str, list[float]] = {"lmlab": [], "hf": []}
    for _ in range(args.rounds):
        for name, step in steppers.items():
            speeds[name].append(time_steps(step, args.steps))
    lmlab_speed, hf_speed = statistics.median(speeds["lmlab"]), statistics.median(speeds["hf"])
    peak = matmul_peak_flops()
    flops_per_token = ours.flops_per_token(CONFIG["block_size"])
    mfu = lmlab_speed * flops_per_token / peak
    print(f"lmlab {lmlab_speed:,.0f} tok/s, transformers {hf_speed:,.0f} tok/s, "
          f"MFU {mfu:.2f} of a {peak / 1e9:.0f} GFLOP/s matmul peak", file=sys.stderr)
    print(json.dumps({
        "benchmark": "train_throughput", "family": args.family, "ratio": lmlab_speed / hf_speed, "target": 1.2,
        "mfu": mfu,
        "mfu_target": 0.4, "lmlab_tokens_per_s": lmlab_speed, "hf_tokens_per_s": hf_speed,
        "matmul_peak_gflops": peak / 1e9, "flops_per_token": flops_per_token, "compile": args.compile,
        "config": CONFIG, "batch": BATCH, "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
