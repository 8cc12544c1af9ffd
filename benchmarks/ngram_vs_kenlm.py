"""N-gram models: lmlab's modified Kneser-Ney against KenLM, building a 5-gram and scoring with it.

Corpus: People's Daily, January 1998 (``lmlab.datasets`` "peoples-daily", 19,484 articles, 1.84 M
characters), with Chinese characters as the units, one article per line; every 20th article is
held out. Both sides start from the same text file:

- build: ``lmplz -o 5 -S 100M`` (KenLM, built from its PyPI sdist by tests/oracles/build_kenlm.sh)
  against lmlab reading the file, splitting its lines, counting, estimating with ``precision="float32"``
  and writing its ARPA file, which holds the same n-grams and float32 numbers as lmplz's;
- score: log10 p of every held-out line, ``kenlm.Model.score`` line by line on lmplz's model against
  ``NgramLanguageModel.log10_scores`` on all lines at once; both sum to the same float32 totals,
  which the run checks. KenLM loads its ARPA file and lmlab builds its hash index beforehand (both
  reported, not counted); the best of several rounds counts.

lmlab's counting, hashing and scoring loops are compiled by numba on first use and cached on disk
(seconds on a machine that has never run them; loading them from the cache takes a fraction of a
second). lmlab is timed as a long-lived process sees it: an untimed warm-up builds and scores a small
model first, and its time is reported ("lmlab_first_call_s"), not counted.

    python benchmarks/ngram_vs_kenlm.py [--order 5] [--rounds 7]

Last line: {"benchmark": "ngram_vs_kenlm", "ratio": lmplz_s / lmlab_build_s, "target": 0.5,
"score_ratio": kenlm_score_s / lmlab_score_s, "score_target": 1.0, ...}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tests" / "oracles" / "build_kenlm.sh"


def kenlm_programs() -> Path:
    """The folder of lmplz and query, built first if this machine has not built them yet."""
    folder = Path(os.environ.get("LMLAB_ORACLE_DIR", Path.home() / ".cache" / "lmlab" / "oracles")) / "kenlm" / "bin"
    if not (folder / "lmplz").is_file():
        subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, env={**os.environ, "PYTHON": sys.executable})
    return folder


def write_corpus(folder: Path, held_out_every: int) -> tuple[Path, list[str], int]:
    """train.txt (one article per line, characters separated by spaces), the held-out lines, train tokens."""
    from lmlab.datasets import load_corpus
    from lmlab.models.ngram import Splitter

    splitter = Splitter("character")  # spaces and other whitespace inside an article become visible marks
    with open(load_corpus("peoples-daily").path, encoding="utf-8") as corpus:
        lines = [" ".join(splitter.split(json.loads(record)["text"])) for record in corpus]
    train = [line for i, line in enumerate(lines) if i % held_out_every]
    held_out = [line for i, line in enumerate(lines) if not i % held_out_every]
    path = folder / "train.txt"
    path.write_text("".join(line + "\n" for line in train), encoding="utf-8")  # lmplz needs the final newline
    return path, held_out, sum(len(line.split()) for line in train)


def build_lmlab(text: Path, arpa: Path, order: int):
    """Text file in, ARPA file out, as lmplz does: each line split at whitespace (by lmlab, in compiled
    code) and counted; returns the model and the times of the two halves."""
    from lmlab.models.ngram import NgramConfig, NgramLanguageModel, Splitter

    start = time.perf_counter()
    lines = text.read_text(encoding="utf-8").splitlines()
    model = NgramLanguageModel.train(lines, NgramConfig(order=order, precision="float32"), Splitter("word")).model
    trained = time.perf_counter()
    model.write_arpa(arpa)
    return model, trained - start, time.perf_counter() - trained


def warm_up(folder: Path) -> float:
    """Build, write and score a small model once, so that numba compiles or loads lmlab's loops; its time."""
    from lmlab.models.ngram import NgramConfig, NgramLanguageModel, Splitter

    start = time.perf_counter()
    lines = [" ".join(f"w{(i * j) % 17}" for j in range(1, 3 + i % 5)) for i in range(300)]
    config = NgramConfig(order=5, precision="float32", discount_fallback=True)
    lm = NgramLanguageModel.train(lines, config, Splitter("word"))
    lm.model.write_arpa(folder / "warm-up.arpa")
    lm.log10_scores(lines[:10])
    return time.perf_counter() - start


def best_time(function, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def ngram_counts(arpa: Path) -> list[int]:
    with arpa.open(encoding="utf-8") as lines:
        head = [next(lines) for _ in range(12)]
    return [int(m.group(1)) for line in head if (m := re.fullmatch(r"ngram \d+=(\d+)\n", line))]


def main() -> None:
    import kenlm
    import numpy as np

    from lmlab.models.ngram import NgramLanguageModel, Splitter

    parser = argparse.ArgumentParser()
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7, help="scoring rounds (the build runs once per side)")
    parser.add_argument("--held-out-every", type=int, default=20, help="hold out every n-th article")
    args = parser.parse_args()
    programs = kenlm_programs()

    with tempfile.TemporaryDirectory(prefix="ngram_vs_kenlm_") as tmp:
        folder = Path(tmp)
        text, held_out, train_tokens = write_corpus(folder, args.held_out_every)
        first_call_s = warm_up(folder)

        start = time.perf_counter()
        subprocess.run([str(programs / "lmplz"), "-o", str(args.order), "-S", "100M", "-T", tmp, "--text", str(text),
                        "--arpa", str(folder / "lmplz.arpa")], check=True, capture_output=True)
        lmplz_s = time.perf_counter() - start
        model, train_s, arpa_s = build_lmlab(text, folder / "lmlab.arpa", args.order)
        lmlab_build_s = train_s + arpa_s
        counts = ngram_counts(folder / "lmplz.arpa")
        same_counts = counts == ngram_counts(folder / "lmlab.arpa")

        start = time.perf_counter()
        reference = kenlm.Model(str(folder / "lmplz.arpa"))
        kenlm_load_s = time.perf_counter() - start
        ours = NgramLanguageModel(model, Splitter("word"))
        kenlm_totals = [reference.score(line) for line in held_out]
        start = time.perf_counter()
        scores = ours.log10_scores(held_out)  # the first call also builds the model's hash index
        lmlab_first_score_s = time.perf_counter() - start
        same_scores = kenlm_totals == scores.totals.tolist()
        kenlm_score_s = best_time(lambda: [reference.score(line) for line in held_out], args.rounds)
        lmlab_score_s = best_time(lambda: ours.log10_scores(held_out), args.rounds)

    held_out_tokens = len(scores.tokens)  # words and one </s> per line
    print(f"build: lmplz {lmplz_s:.2f} s, lmlab {lmlab_build_s:.2f} s (count + estimate {train_s:.2f} s, "
          f"ARPA {arpa_s:.2f} s); score {held_out_tokens:,} tokens: KenLM {kenlm_score_s * 1e3:.1f} ms, "
          f"lmlab {lmlab_score_s * 1e3:.1f} ms; same n-gram counts {same_counts}, same scores {same_scores}; "
          f"lmlab's first call (numba compiling or loading its loops, not timed) {first_call_s:.2f} s", file=sys.stderr)
    print(json.dumps({
        "benchmark": "ngram_vs_kenlm", "ratio": lmplz_s / lmlab_build_s, "target": 0.5,
        "score_ratio": kenlm_score_s / lmlab_score_s, "score_target": 1.0,
        "corpus": "peoples-daily (People's Daily 1998-01), characters as units, one article per line, "
        f"every {args.held_out_every}th article held out",
        "order": args.order, "train_tokens": train_tokens, "held_out_lines": len(held_out),
        "held_out_tokens": held_out_tokens, "ngrams": counts, "same_ngram_counts": same_counts,
        "same_sentence_scores": same_scores, "perplexity": scores.perplexity(),
        "lmplz_s": lmplz_s, "lmlab_build_s": lmlab_build_s, "lmlab_count_estimate_s": train_s,
        "lmlab_arpa_s": arpa_s, "kenlm_score_s": kenlm_score_s, "lmlab_score_s": lmlab_score_s,
        "kenlm_arpa_load_s": kenlm_load_s, "lmlab_first_score_s": lmlab_first_score_s,
        "lmlab_first_call_s": first_call_s,
        "kenlm_score_us_per_token": kenlm_score_s / held_out_tokens * 1e6,
        "lmlab_score_us_per_token": lmlab_score_s / held_out_tokens * 1e6, "numpy": np.__version__,
    }))


if __name__ == "__main__":
    main()
