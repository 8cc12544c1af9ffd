"""`lmlab.evaluate`: language models scored on text: perplexity and bits per byte beside a unigram
baseline, benchmark tasks (the harness), every generation on one table, and human rating.

What a user types first:

    from lmlab.evaluate import perplexity, evaluate_run, compare_runs
    perplexity("runs/gpt")                  # per token of the run's val documents, their ends included
    perplexity("runs/gpt", ["To be, or not to be"])
    evaluate_run("runs/gpt")                # perplexity, bits per byte, the unigram baseline -> eval.json
    compare_runs(["runs/gpt", "runs/kn5"])  # any generations on the same held-out text, by bits per byte

Benchmark tasks are `lmlab.evaluate.harness` (`load_task`, `evaluate_tasks`); human rating sheets
`lmlab.evaluate.human`. The figures themselves (BLEU, ROUGE, F1, perplexity from a total
log-likelihood) are `lmlab.metrics`; the interface every model is scored through is
`lmlab.models.LanguageModel`.
"""

from lmlab.evaluate.compare import ComparisonRow, compare_runs
from lmlab.evaluate.held_out import (
    SplitScore,
    describe_count,
    evaluate_run,
    held_out_score,
    perplexity,
    score_texts,
    unigram_baseline,
)

__all__ = ["ComparisonRow", "SplitScore", "compare_runs", "describe_count", "evaluate_run", "held_out_score",
           "perplexity", "score_texts", "unigram_baseline"]
