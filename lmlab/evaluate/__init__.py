"""`lmlab.evaluate`: the language-model interface, perplexity, bits per byte, baselines and metrics."""

from lmlab.evaluate.bleu import BleuScore, corpus_bleu, nltk_corpus_bleu, nltk_sentence_bleu, sentence_bleu
from lmlab.evaluate.lm import CausalLanguageModel, LanguageModel, rolling_windows
from lmlab.evaluate.metrics import (
    PrecisionRecallF1,
    accuracy,
    bits_per_byte,
    bits_per_character,
    confusion_matrix,
    plot_confusion_matrix,
    precision_recall_f1,
)
from lmlab.evaluate.perplexity import SplitScore, score_texts, split_documents, unigram_baseline
from lmlab.evaluate.qa import QAScore, squad_scores
from lmlab.evaluate.rouge import RougeScore, corpus_rouge, rouge

__all__ = ["BleuScore", "CausalLanguageModel", "LanguageModel", "PrecisionRecallF1", "QAScore", "RougeScore",
           "SplitScore", "accuracy", "bits_per_byte", "bits_per_character", "confusion_matrix", "corpus_bleu",
           "corpus_rouge", "nltk_corpus_bleu", "nltk_sentence_bleu", "plot_confusion_matrix",
           "precision_recall_f1", "rolling_windows", "rouge", "score_texts", "sentence_bleu", "split_documents",
           "squad_scores", "unigram_baseline"]
