"""N-gram fit and perplexity: lmlab against nltk.lm on the same sentences, with NLTK's conventions.

Corpus: the complete works of Shakespeare from ``lmlab.datasets`` (fetched on first use), one
sentence per non-empty line, words split on whitespace, lines shuffled with a fixed seed. The
first ``--lines`` train, the rest are held out; held-out lines with a word the training text lacks
are dropped, because NLTK gives such words probability 0 under most of its models (perplexity inf).
Both sides pad each sentence NLTK's way (n-1 ``<s>`` and n-1 ``</s>``, ``padding="nltk"`` in lmlab)
and score the same trigrams, ``ngrams(pad_both_ends(s, n), n)``.

Each estimator is fitted from scratch on each side, then scores its test set:
    MLE                      on training lines (held-out text has unseen trigrams: probability 0)
    Laplace                  on held-out lines
    WittenBellInterpolated   on held-out lines
    KneserNeyInterpolated    on a few held-out lines: NLTK scans every trigram for each lower-order
                             query, tens of milliseconds per scored n-gram (nltk#3317)
"agree" means every per-n-gram log2 score is within 1e-9; the times are one run of NLTK and the median of
``--repeats`` runs of lmlab. "ratio" is NLTK's total time over lmlab's.
The last line printed is one JSON object; the script exits 0 whether or not the target is met.

    .venv/bin/python benchmarks/ngram_vs_nltk.py [--lines 16000] [--test-lines 2000] [--kn-lines 15]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable

import nltk.lm.counter
from nltk.lm import MLE, KneserNeyInterpolated, Laplace, WittenBellInterpolated
from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline
from nltk.util import ngrams

from lmlab.datasets import load_corpus
from lmlab.files import read_text
from lmlab.models.ngram import NgramConfig, NgramModel, train_ngram
from lmlab.models.ngram_counts import pad

TARGET_RATIO = 100.0
ORDER = 3
# name: (NLTK's model, the same in lmlab, which test set)
ESTIMATORS: dict[str, tuple[Callable[[], object], dict, str]] = {
    "mle": (lambda: MLE(ORDER), {"estimator": "mle"}, "train"),
    "laplace": (lambda: Laplace(ORDER), {"estimator": "lidstone", "k": 1.0}, "test"),
    "witten-bell": (lambda: WittenBellInterpolated(ORDER), {"estimator": "witten-bell"}, "test"),
    "kneser-ney": (lambda: KneserNeyInterpolated(ORDER), {"estimator": "nltk-kneser-ney"}, "kn"),
}


def shakespeare_lines(seed: int = 0) -> list[list[str]]:
    corpus = load_corpus("shakespeare")
    texts = [json.loads(line)["text"] for line in read_text(corpus.path, "corpus").splitlines() if line.strip()]
    lines = [line.split() for text in texts for line in text.split("\n") if line.strip()]
    random.Random(seed).shuffle(lines)
    return lines


Timing = tuple[float, float, list[float], float]  # fit seconds, score seconds, log2 score of each n-gram, perplexity


def time_nltk(make_model: Callable[[], object], train: list[list[str]], test: list[list[str]]) -> Timing:
    """Fit and score as nltk.lm's own `perplexity` does: log2 scores, fsum, 2 ** cross-entropy."""
    start = time.perf_counter()
    model = make_model()
    model.fit(*padded_everygram_pipeline(ORDER, train))
    fitted = time.perf_counter()
    grams = [gram for sentence in test for gram in ngrams(pad_both_ends(sentence, n=ORDER), ORDER)]
    scores = [model.logscore(gram[-1], gram[:-1]) for gram in grams]
    perplexity = pow(2.0, -math.fsum(scores) / len(scores))
    return fitted - start, time.perf_counter() - fitted, scores, perplexity


def time_lmlab(settings: dict, train: list[list[str]], test: list[list[str]]) -> Timing:
    """The same with lmlab: train_ngram, then every padded test sentence scored at once (natural log)."""
    start = time.perf_counter()
    model: NgramModel = train_ngram(train, NgramConfig(order=ORDER, padding="nltk", **settings))
    fitted = time.perf_counter()
    sequences = [pad(model.vocab.encode(sentence), ORDER, "nltk") for sentence in test]
    scores = [float(x) / math.log(2) for row in model.score_ids(sequences) for x in row]
    perplexity = pow(2.0, -math.fsum(scores) / len(scores))
    return fitted - start, time.perf_counter() - fitted, scores, perplexity


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=16000, help="training lines")
    parser.add_argument("--test-lines", type=int, default=2000, help="lines scored by MLE, Laplace, Witten-Bell")
    parser.add_argument("--kn-lines", type=int, default=15, help="held-out lines scored by Kneser-Ney")
    parser.add_argument("--repeats", type=int, default=5, help="lmlab runs per estimator (the median counts)")
    args = parser.parse_args()

    lines = shakespeare_lines()
    train = lines[: args.lines]
    tokens = sum(map(len, train))
    # nltk 3.10 refuses to count past MAX_NGRAMS distinct n-grams (CVE-2026-12928); allow every one there can be
    nltk.lm.counter.MAX_NGRAMS = max(nltk.lm.counter.MAX_NGRAMS, ORDER * (tokens + 2 * ORDER * len(train)))
    known = {word for sentence in train for word in sentence}
    held_out = [s for s in lines[args.lines:] if all(word in known for word in s)]
    tests = {"train": train[: args.test_lines], "test": held_out[: args.test_lines], "kn": held_out[: args.kn_lines]}

    results, nltk_total, lmlab_total, worst = {}, 0.0, 0.0, 0.0
    for name, (make_model, settings, which) in ESTIMATORS.items():
        test = tests[which]
        nltk_fit, nltk_score, nltk_scores, nltk_ppl = time_nltk(make_model, train, test)
        runs = [time_lmlab(settings, train, test) for _ in range(args.repeats)]
        lmlab_fit = statistics.median(run[0] for run in runs)
        lmlab_score = statistics.median(run[1] for run in runs)
        _, _, lmlab_scores, lmlab_ppl = runs[0]
        diff = max(abs(a - b) if math.isfinite(a) or math.isfinite(b) else 0.0
                   for a, b in zip(nltk_scores, lmlab_scores, strict=True))
        worst = max(worst, diff)
        nltk_total += nltk_fit + nltk_score
        lmlab_total += lmlab_fit + lmlab_score
        results[name] = {
            "test_set": which, "ngrams_scored": len(nltk_scores), "nltk_fit_s": nltk_fit, "nltk_score_s": nltk_score,
            "lmlab_fit_s": lmlab_fit, "lmlab_score_s": lmlab_score,
            "ratio": (nltk_fit + nltk_score) / (lmlab_fit + lmlab_score),
            "nltk_perplexity": nltk_ppl, "lmlab_perplexity": lmlab_ppl, "max_abs_log2_diff": diff,
        }
        print(f"{name:12s} {which:5s} {len(nltk_scores):6d} n-grams  nltk fit {nltk_fit:6.2f} s score "
              f"{nltk_score:6.2f} s | lmlab fit {lmlab_fit:6.3f} s score {lmlab_score:6.3f} s | perplexity "
              f"{nltk_ppl:.6g} vs {lmlab_ppl:.6g}, max |log2 diff| {diff:.2e}", file=sys.stderr)
    print(f"{len(train)} training lines, {tokens} words; nltk {nltk_total:.1f} s, lmlab {lmlab_total:.3f} s",
          file=sys.stderr)
    print(json.dumps({
        "benchmark": "ngram_vs_nltk", "ratio": nltk_total / lmlab_total, "target": TARGET_RATIO,
        "nltk_s": nltk_total, "lmlab_s": lmlab_total, "max_abs_log2_diff": worst, "agree": worst < 1e-9,
        "order": ORDER, "train_lines": len(train), "train_words": tokens, "estimators": results,
    }))


if __name__ == "__main__":
    main()
