"""Serving under load: `lmlab serve` against `transformers serve`, with and without its
``--continuous-batching``, on the same exported LLaMA, with 1, 4, 8 and 16 concurrent streaming clients.

The model is a LLaMA in the "small" shape of generate_speed.py (vocabulary 4096, 4 layers, width 192,
GQA), with random weights and a byte-level BPE trained on the Shakespeare corpus. It is exported once as
a LlamaForCausalLM directory, and every server is started on that directory as a subprocess on a free
loopback port. Each one then gets the same load: `--requests` streamed greedy completions per client,
and at least 12 in a level (``max_tokens`` 64, distinct Shakespeare prompts), each client sending its
requests one after another.

For each server and client count the script records:
- throughput: completion tokens from ``usage`` over the wall time of the level;
- time to first token: until the first chunk with text;
- inter-token latency: a request's (last chunk - first chunk) / (tokens - 1);
- p50 and p99 over requests, and the errors (non-200 or broken streams).
- mixed-up streams: for lmlab, texts that differ from what lmlab's own `generate` gives for that
  prompt alone. Peers are compared the same way and their count is only reported: near-ties in float32
  can turn a greedy choice.
- resident memory of the server process after a warm-up (one request per client at the highest client
  count) and after the run: what grows between them is what a long-running server would leak.

"overhead_1_client" sets lmlab's server at 1 client against direct in-process `generate`, in 7
alternating rounds of 4 requests on the same prompts, from the medians (target ≤ 10%). "ratio" is
lmlab's throughput at 8 clients over the peer's best at 8 clients (target ≥ 1.5). The script runs on
loopback only, stops by itself, and prints one JSON line last; it exits 0 whether or not the targets
are met.

    .venv/bin/python benchmarks/serve_load.py [--requests 3] [--max-tokens 64] [--clients 1,4,8,16]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from lmlab.datasets import load_corpus
from lmlab.generate import GenerationParams, generate_ids
from lmlab.models.hf_llama import export_llama
from lmlab.models.llama import Llama, LlamaConfig
from lmlab.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer

TARGET_RATIO = 1.5  # over the peer's best throughput at 8 clients
TARGET_OVERHEAD = 0.10
SHAPE = dict(block_size=512, n_layer=4, n_head=4, n_kv_head=2, n_embd=192)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Server:
    """A server subprocess on a free loopback port, up once /health answers."""

    def __init__(self, name: str, command: list[str], model: str):
        self.name, self.model, self.port = name, model, free_port()
        self.log = Path(tempfile.gettempdir()) / f"serve-load-{name}-{self.port}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        started = time.perf_counter()
        with self.log.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen([*command, "--port", str(self.port)], stdout=log, stderr=log, env=env)
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.perf_counter() - started > 300:
                raise RuntimeError(f"{name} did not start; see {self.log}")
            time.sleep(0.2)
        self.startup_s = time.perf_counter() - started

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def stream_completion(port: int, model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One streamed greedy completion: its text, token count, and when its chunks arrived."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}})
    started = time.perf_counter()
    times, text, tokens = [], [], None
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            return {"error": f"HTTP {response.status}: {response.read()[:200]!r}"}
        done = finished = False
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices") or []:
                if choice.get("text"):
                    times.append(time.perf_counter())
                    text.append(choice["text"])
                finished = finished or choice.get("finish_reason") is not None
        # transformers serve ends a completion stream after the usage chunk, without OpenAI's [DONE]
        if not (done or finished) or not times:
            return {"error": "the stream ended before its finish_reason, or without text"}
    except (OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        connection.close()
    return {"text": "".join(text), "tokens": tokens, "ttft": times[0] - started,
            "itl": (times[-1] - times[0]) / max(1, (tokens or len(times)) - 1)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(server: Server, prompts: list[str], clients: int, per_client: int, max_tokens: int,
         expected: dict[str, str]) -> dict[str, Any]:
    """`clients` threads, each streaming `per_client` completions one after another."""
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for r in range(per_client):
            prompt = prompts[(index * per_client + r) % len(prompts)]
            result = stream_completion(server.port, server.model, prompt, max_tokens)
            result["prompt"] = prompt
            with lock:
                results.append(result)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    good = [r for r in results if "error" not in r]
    tokens = sum(r["tokens"] or 0 for r in good)
    return {
        "clients": clients, "requests": len(results), "errors": len(results) - len(good),
        "error_examples": [r["error"] for r in results if "error" in r][:2],
        "differ_from_generate": sum(r["text"] != expected[r["prompt"]] for r in good),
        "missing_usage": sum(r["tokens"] is None for r in good),
        "tokens_per_s": round(tokens / wall, 1), "wall_s": round(wall, 2),
        "ttft_ms_p50": round(1000 * percentile([r["ttft"] for r in good], 0.5), 1) if good else None,
        "ttft_ms_p99": round(1000 * percentile([r["ttft"] for r in good], 0.99), 1) if good else None,
        "itl_ms_p50": round(1000 * percentile([r["itl"] for r in good], 0.5), 2) if good else None,
        "itl_ms_p99": round(1000 * percentile([r["itl"] for r in good], 0.99), 2) if good else None,
    }


def direct_generate(model: Llama, tokenizer: Tokenizer, prompts: list[str], max_tokens: int
                    ) -> tuple[dict[str, str], float]:
    """lmlab's own greedy `generate`, one prompt at a time: the texts every server should stream, and tokens/s."""
    params = GenerationParams(max_new_tokens=max_tokens, temperature=0)
    texts, tokens = {}, 0
    generate_ids(model, [tokenizer.encode(prompts[0])], params, tokenizer.eos_id)  # warm-up
    started = time.perf_counter()
    for prompt in prompts:
        ids = tokenizer.encode(prompt)
        new = generate_ids(model, [ids], params, tokenizer.eos_id)[0]
        tokens += len(new)
        texts[prompt] = tokenizer.decode(ids + new)[len(tokenizer.decode(ids)):]
    return texts, tokens / (time.perf_counter() - started)


def overhead_rounds(server: Server, model: Llama, tokenizer: Tokenizer, prompts: list[str], max_tokens: int,
                    expected: dict[str, str], rounds: int = 7, per_round: int = 4) -> dict[str, list[float]]:
    """Tokens/s of direct `generate` and of the server at 1 client, in alternating rounds on the same prompts,
    so that whatever else the machine does falls on both alike; the overhead is set from their medians."""
    figures: dict[str, list[float]] = {"direct": [], "served": []}
    for index in range(rounds):
        chosen = prompts[index * per_round % len(prompts):][:per_round]
        figures["direct"].append(direct_generate(model, tokenizer, chosen, max_tokens)[1])
        figures["served"].append(load(server, chosen, 1, per_round, max_tokens, expected)["tokens_per_s"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3, help="streamed completions per client")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--peers", default="transformers,transformers-cb", help="which peers to run")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]

    def requests_per_client(clients: int) -> int:
        """At least 12 requests a level: a level of 3 requests lasts a fifth of a second, too short to time."""
        return max(args.requests, -(-12 // clients))

    lines = [json.loads(line)["text"] for line in load_corpus("shakespeare").path.read_text().splitlines()[:3000]]
    tokenizer = train_tokenizer(lines, TokenizerConfig(kind="bpe", vocab_size=4096, min_frequency=2))
    prompts = []
    for line in lines:
        words = " ".join(line.split()[:24])
        if len(tokenizer.encode(words)) >= 16 and words not in prompts:
            prompts.append(words)
        if len(prompts) == max(c * requests_per_client(c) for c in levels):
            break
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=tokenizer.vocab_size, **SHAPE)).eval()
    expected, direct_tps = direct_generate(model, tokenizer, prompts, args.max_tokens)

    folder = Path(tempfile.mkdtemp(prefix="serve-load-"))
    run, exported = folder / "run", folder / "llama-small"
    run.mkdir()
    tokenizer.save(run / "tokenizer.json")
    export_llama(model, exported, tokenizer_json=run / "tokenizer.json")
    transformers_cli = str(Path(sys.executable).with_name("transformers"))
    servers = {
        "lmlab": [sys.executable, "-m", "lmlab.cli", "serve", str(exported), "--device", "cpu"],
        "transformers": [transformers_cli, "serve", str(exported), "--host", "127.0.0.1", "--device", "cpu",
                         "--log-level", "warning"],
        "transformers-cb": [transformers_cli, "serve", str(exported), "--host", "127.0.0.1", "--device", "cpu",
                            "--log-level", "warning", "--continuous-batching"],
    }
    chosen = ["lmlab", *args.peers.split(",")] if args.peers else ["lmlab"]
    figures: dict[str, Any] = {}
    try:
        for name in chosen:
            server = Server(name, servers[name], exported.name if name == "lmlab" else str(exported))
            try:
                # warm-up at the highest load: the batch's caches and the allocator reach their working size
                load(server, prompts, max(levels), 1, args.max_tokens, expected)
                warm = resident_mb(server.process.pid)
                levels_out = [load(server, prompts, c, requests_per_client(c), args.max_tokens, expected)
                              for c in levels]
                after = resident_mb(server.process.pid)
                if name == "lmlab":
                    rounds = overhead_rounds(server, model, tokenizer, prompts, args.max_tokens, expected)
            finally:
                server.stop()
            figures[name] = {"startup_s": round(server.startup_s, 1), "rss_mb_after_warmup": round(warm, 1),
                             "rss_mb_after_run": round(after, 1), "rss_growth": round(after / warm - 1, 4),
                             "levels": levels_out}
            for level in levels_out:
                print(f"{name:16s} {level['clients']:2d} clients: {level['tokens_per_s']:8.1f} tok/s, "
                      f"TTFT p50 {level['ttft_ms_p50']} ms p99 {level['ttft_ms_p99']} ms, "
                      f"ITL p50 {level['itl_ms_p50']} ms p99 {level['itl_ms_p99']} ms, "
                      f"{level['errors']} errors, {level['differ_from_generate']} differ", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def at(name: str, clients: int) -> float:
        return next(level["tokens_per_s"] for level in figures[name]["levels"] if level["clients"] == clients)

    peers = [n for n in figures if n != "lmlab"]
    best_peer = max((at(n, 8) for n in peers), default=None) if 8 in levels else None
    direct, served = statistics.median(rounds["direct"]), statistics.median(rounds["served"])
    print(f"1 client, {len(rounds['direct'])} alternating rounds: generate {direct:.1f} tok/s, "
          f"lmlab serve {served:.1f} tok/s, overhead {100 * (direct / served - 1):.1f}%")
    print(json.dumps({
        "benchmark": "serve_load",
        "ratio": round(at("lmlab", 8) / best_peer, 3) if best_peer else None,
        "target": TARGET_RATIO,
        "overhead_1_client": round(direct / served - 1, 4),
        "overhead_target": TARGET_OVERHEAD,
        "overhead_rounds": {name: [round(v, 1) for v in values] for name, values in rounds.items()},
        "direct_generate_tokens_per_s": round(direct_tps, 1),
        "lmlab_errors": sum(level["errors"] for level in figures["lmlab"]["levels"]),
        "lmlab_mixed_up_streams": sum(level["differ_from_generate"] for level in figures["lmlab"]["levels"]),
        "servers": figures, "max_tokens": args.max_tokens, "requests_per_client": args.requests,
        "model": {"family": "llama", "vocab_size": tokenizer.vocab_size, **SHAPE,
                  "parameters": sum(p.numel() for p in model.parameters())},
        "torch_threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
