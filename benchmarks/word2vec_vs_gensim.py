"""word2vec training speed: lmlab's `train_word2vec` beside gensim's `Word2Vec`, same corpus, settings and threads.

The corpus is lmlab's "shakespeare" (the plays and poems, about 0.9M words), one sentence per line,
lower-cased words. Both run the same recipe: skip-gram (or CBOW) with negative sampling, the same
dimension, window, noise words, subsampling threshold, min_count, epochs, learning rates and worker
threads. A run is timed whole, from the list of sentences to the finished vectors (vocabulary
included), and the runs alternate between the two so that whatever else the machine does falls on
both alike; the median counts. words/s = corpus words x epochs / seconds. lmlab's kernel is
compiled before timing (a first call of all, and its on-disk cache, pay that once).

Quality is measured on the vectors of each one's last run, with lmlab's own evaluators on both:
Spearman correlation on WordSim-353 and analogy accuracy on questions-words.txt (gensim's test data).

    python benchmarks/word2vec_vs_gensim.py [--workers 2] [--epochs 5] [--architecture skipgram] [--rounds 3]

Last line: {"benchmark": "word2vec_vs_gensim", "ratio": lmlab/gensim words per second, "target": 0.5, ...}
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

TARGET = 0.5
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def shakespeare_sentences() -> list[list[str]]:
    from lmlab.datasets import load_corpus

    corpus = load_corpus("shakespeare")
    sentences = []
    with open(corpus.path, encoding="utf-8") as lines:
        for record in lines:
            for line in json.loads(record)["text"].splitlines():
                if words := WORD.findall(line.lower()):
                    sentences.append(words)
    return sentences


def quality(vectors, test_data: Path) -> dict[str, float]:
    from lmlab.models.word2vec import evaluate_analogies, evaluate_word_pairs

    pairs = evaluate_word_pairs(vectors, test_data / "wordsim353.tsv")
    analogies = evaluate_analogies(vectors, test_data / "questions-words.txt")
    return {"wordsim353_spearman": pairs.spearman, "wordsim353_pairs": pairs.pairs,
            "analogy_accuracy": analogies.accuracy, "analogy_questions": sum(n for _, n in analogies.sections.values())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--architecture", choices=["skipgram", "cbow"], default="skipgram")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result: dict = {"benchmark": "word2vec_vs_gensim", "ratio": None, "target": TARGET}
    try:
        import gensim
        from gensim.models import Word2Vec

        from lmlab.models.word2vec import Word2VecConfig, WordVectors, train_word2vec

        sentences = shakespeare_sentences()
        words = sum(len(s) for s in sentences)
        settings = {"dim": 100, "window": 5, "negative": 5, "ns_exponent": 0.75, "sample": 1e-3, "min_count": 5,
                    "alpha": 0.025, "min_alpha": 1e-4, "epochs": args.epochs, "workers": args.workers}
        config = Word2VecConfig(architecture=args.architecture, seed=1, **settings)

        def run_gensim() -> WordVectors:
            model = Word2Vec(sentences, vector_size=settings["dim"], window=settings["window"], hs=0,
                             negative=settings["negative"], ns_exponent=settings["ns_exponent"],
                             sample=settings["sample"], min_count=settings["min_count"], alpha=settings["alpha"],
                             min_alpha=settings["min_alpha"], epochs=args.epochs, workers=args.workers,
                             sg=int(args.architecture == "skipgram"), seed=1)
            return WordVectors(list(model.wv.index_to_key), model.wv.vectors)

        runners = {"lmlab": lambda: train_word2vec(sentences, config), "gensim": run_gensim}
        train_word2vec(sentences[:50], Word2VecConfig(min_count=1, epochs=1))  # compile (or load) the kernel
        seconds: dict[str, list[float]] = {"lmlab": [], "gensim": []}
        last = {}
        for _ in range(args.rounds):
            for name, run in runners.items():
                start = time.perf_counter()
                last[name] = run()
                seconds[name].append(time.perf_counter() - start)
        speed = {name: words * args.epochs / statistics.median(times) for name, times in seconds.items()}
        test_data = Path(gensim.__file__).parent / "test" / "test_data"
        result.update({
            "ratio": speed["lmlab"] / speed["gensim"], "lmlab_words_per_s": speed["lmlab"],
            "gensim_words_per_s": speed["gensim"], "lmlab_seconds": seconds["lmlab"],
            "gensim_seconds": seconds["gensim"], "corpus": "shakespeare", "corpus_words": words,
            "vocabulary": len(last["lmlab"]), "gensim_vocabulary": len(last["gensim"]),
            "architecture": args.architecture, "settings": settings,
            "lmlab_quality": quality(last["lmlab"], test_data), "gensim_quality": quality(last["gensim"], test_data),
            "gensim_version": gensim.__version__,
        })
        print(f"lmlab {speed['lmlab']:,.0f} words/s, gensim {speed['gensim']:,.0f} words/s "
              f"({args.workers} workers, {args.architecture}, {words:,} words x {args.epochs} epochs); "
              f"WordSim-353 Spearman lmlab {result['lmlab_quality']['wordsim353_spearman']:.3f}, "
              f"gensim {result['gensim_quality']['wordsim353_spearman']:.3f}", file=sys.stderr)
    except Exception as exc:  # a benchmark reports its failure in its JSON line and still exits 0
        result["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
