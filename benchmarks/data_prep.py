"""Data preparation streams: throughput, and peak memory as the corpus grows tenfold.

Clean + exact/near dedup + tokenise + pack, in one streaming pass, on a synthetic bilingual corpus
of SIZE MB and of 10 x SIZE MB (sentences of Python's own documentation and of Chinese text,
shuffled into unique documents). Each size runs in a fresh process, so its peak resident memory
(ru_maxrss) is its own. The tokenizer is trained once beforehand and shared.

    python benchmarks/data_prep.py [--mb 4]

Last line: {"benchmark": "data_prep", "ratio": peak_rss_small / peak_rss_large, "target": 0.9, ...}
(ratio 1 means perfectly flat memory; the target asks the tenfold corpus for at most ~11% more).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHINESE = (
    "新华社北京一月一日电。中国人民在新的一年里继续努力工作。春天来了，花开了，鸟儿在树上歌唱。"
    "经济建设取得了新的进展，农村和城市的面貌发生了很大变化。学生们在教室里认真读书，老师耐心讲解。"
    "人工智能的研究正在快速发展，语言模型能够理解和生成自然语言。我们要坚持改革开放，推动社会进步。"
)


def make_corpus(path: Path, megabytes: float, seed: int) -> int:
    """Write unique documents of shuffled sentences until `megabytes` of UTF-8 text; return bytes."""
    import pydoc_data.topics

    english = [s.strip() for t in pydoc_data.topics.topics.values() for s in re.split(r"(?<=[.!?])\s+", t)]
    english = [s for s in english if 20 < len(s) < 400]
    chinese = [s + "。" for s in CHINESE.split("。") if s]
    rng = random.Random(seed)
    target, written = int(megabytes * 1e6), 0
    with path.open("w", encoding="utf-8") as sink:
        while written < target:
            parts = rng.sample(english, 8) + rng.choices(chinese, k=4)
            rng.shuffle(parts)
            line = json.dumps({"text": " ".join(parts)}, ensure_ascii=False) + "\n"
            sink.write(line)
            written += len(line.encode("utf-8"))
    return written


def child(corpus: str, tokenizer_path: str, out: str) -> None:
    """Runs in a fresh process: the whole preparation, then its own figures as JSON."""
    from lmlab.data import DataConfig, PrepareReport, prepare_documents
    from lmlab.data.packing import pack_corpus
    from lmlab.tokenizers import Tokenizer

    tokenizer = Tokenizer.load(tokenizer_path)
    report = PrepareReport()
    start = time.perf_counter()
    meta = pack_corpus(prepare_documents([corpus], DataConfig(dedup="near"), report), tokenizer, out)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "seconds": seconds, "peak_rss_mb": peak_kib / 1024, "documents": report.documents_read,
        "kept": report.kept, "tokens": meta.splits["train"].tokens + meta.splits["val"].tokens,
    }))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=4.0, help="size of the small corpus; the large is 10x")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from lmlab.data import read_documents
    from lmlab.tokenizers import TokenizerConfig, train_tokenizer

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sizes = {"small": args.mb, "large": args.mb * 10}
        corpus_bytes = {name: make_corpus(root / f"{name}.jsonl", mb, seed=i) for i, (name, mb) in
                        enumerate(sizes.items())}
        tokenizer = train_tokenizer(read_documents([root / "small.jsonl"]), TokenizerConfig(vocab_size=4096))
        tokenizer.save(root / "tokenizer.json")
        for name in sizes:
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(root / f"{name}.jsonl"), str(root / "tokenizer.json"),
                 str(root / f"{name}-packed")], check=True, capture_output=True, text=True,
                env={**os.environ, "TOKENIZERS_PARALLELISM": "true"},
            )
            runs[name] = json.loads(result.stdout.strip().splitlines()[-1])
            runs[name]["mb"] = corpus_bytes[name] / 1e6
            runs[name]["mb_per_s"] = runs[name]["mb"] / runs[name]["seconds"]
            print(f"{name:>5}: {runs[name]['mb']:.1f} MB in {runs[name]['seconds']:.1f}s = "
                  f"{runs[name]['mb_per_s']:.2f} MB/s, peak RSS {runs[name]['peak_rss_mb']:.0f} MB", file=sys.stderr)
    print(json.dumps({
        "benchmark": "data_prep",
        "ratio": runs["small"]["peak_rss_mb"] / runs["large"]["peak_rss_mb"],
        "target": 0.9,
        "mb_per_s": runs["large"]["mb_per_s"],
        "memory_growth": runs["large"]["peak_rss_mb"] / runs["small"]["peak_rss_mb"],
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
