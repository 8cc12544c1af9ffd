"""`lmlab.evaluate`: the language-model interface, perplexity, bits per byte and baselines."""

from lmlab.evaluate.lm import CausalLanguageModel, LanguageModel, rolling_windows
from lmlab.evaluate.perplexity import SplitScore, score_texts, split_documents, unigram_baseline

__all__ = ["CausalLanguageModel", "LanguageModel", "SplitScore", "rolling_windows", "score_texts",
           "split_documents", "unigram_baseline"]
