"""`lmlab.evaluate`: language models scored on text: perplexity and bits per byte beside a unigram
baseline, benchmark tasks (the harness), every generation on one table, and human rating.

The figures themselves (BLEU, ROUGE, F1, perplexity) are `lmlab.metrics`; the interface every
model is scored through is `lmlab.models.LanguageModel`.
"""

from lmlab.evaluate.perplexity import SplitScore, evaluate_run, score_texts, unigram_baseline

__all__ = ["SplitScore", "evaluate_run", "score_texts", "unigram_baseline"]
