"""`lmlab.metrics`: figures computed from predictions and references alone, with no model.

Classification (precision, recall, F1, accuracy, the confusion matrix, the majority-class baseline),
entity-level precision, recall and F1 of BIO tags (seqeval's), BLEU, ROUGE, SQuAD exact match and
F1, and the likelihood figures (perplexity, bits per byte). They sit low in the layers, so
training, tuning, evaluation and serving all use the same definitions, each tested against its
reference implementation (scikit-learn, sacrebleu and NLTK, rouge-score, seqeval, the SQuAD script).

What a user types first (each call shaped as its reference's):

    from lmlab.metrics import precision_recall_f1, confusion_matrix, plot_confusion_matrix
    precision_recall_f1(y_true, y_pred, average="macro")   # scikit-learn's precision_recall_fscore_support
    plot_confusion_matrix(y_true, y_pred, "cm.png")         # draws confusion_matrix(y_true, y_pred); returns it
    from lmlab.metrics import corpus_bleu, sentence_bleu, nltk_sentence_bleu, rouge, squad_scores
    corpus_bleu(hypotheses, [references])                   # sacrebleu's, 0..100
    nltk_sentence_bleu([reference_tokens], hypothesis_tokens)  # NLTK's, 0..1; warns as NLTK does where an
                                                            # order has no overlap (pass smoothing="method1")
    perplexity(nll, units), bits_per_byte(nll, utf8_bytes)  # from a total negative log-likelihood in nats

Perplexity of a model on text (rather than from a total already computed) is
`lmlab.evaluate.perplexity`.
"""

from lmlab.metrics.bleu import BleuScore, corpus_bleu, nltk_corpus_bleu, nltk_sentence_bleu, sentence_bleu
from lmlab.metrics.classification import (
    PrecisionRecallF1,
    accuracy,
    confusion_matrix,
    majority_baseline,
    plot_confusion_matrix,
    precision_recall_f1,
)
from lmlab.metrics.entities import EntityScores, bio_chunks, entity_scores
from lmlab.metrics.likelihood import bits_per_byte, bits_per_character, perplexity
from lmlab.metrics.qa import QAScore, squad_scores
from lmlab.metrics.rouge import RougeScore, corpus_rouge, rouge

__all__ = ["BleuScore", "EntityScores", "PrecisionRecallF1", "QAScore", "RougeScore", "accuracy", "bio_chunks",
           "bits_per_byte", "bits_per_character", "confusion_matrix", "corpus_bleu", "corpus_rouge", "entity_scores",
           "majority_baseline", "nltk_corpus_bleu", "nltk_sentence_bleu", "perplexity", "plot_confusion_matrix",
           "precision_recall_f1", "rouge", "sentence_bleu", "squad_scores"]
