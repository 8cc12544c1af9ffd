"""ROUGE against Google's rouge-score itself, run in the test: random pairs, empty texts, stemming, the mean."""

from __future__ import annotations

import random

import pytest
from rouge_score import rouge_scorer, tokenizers

from lmlab.errors import LmlabError
from lmlab.metrics.rouge import ROUGE_TYPES, corpus_rouge, lcs_length, rouge, tokenize_default

# Inflected forms so stemming changes matches; punctuation, digits, accents and Chinese so the tokenizer is exercised.
WORDS = ["the", "cat", "cats", "sat", "sitting", "on", "a", "mat", "mats", "dog", "dogs", "running", "runs", "ran",
         "The", "RUN", "3.5", "1,000", "x-ray", "it's", "(ok)", "end.", "yes,", "naïve", "Über", "北京", "generously",
         "generous", "happily", "happiness", "was", "is", "caresses", "ponies", "relational"]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 15)))


def _pairs(seed: int, n: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(_sentence(rng), _sentence(rng)) for _ in range(n)]


def _assert_same(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    for rouge_type, score in ours.items():
        expected = theirs[rouge_type]
        assert (score.precision, score.recall, score.fmeasure) == pytest.approx(
            (expected.precision, expected.recall, expected.fmeasure), abs=1e-12, rel=0), rouge_type


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_tokens_match_rouge_score_tokenizer(use_stemmer: bool) -> None:
    # Scores alone can hide a tokenizer slip that hits both sides alike (e.g. stemming "was" to "wa").
    theirs = tokenizers.DefaultTokenizer(use_stemmer=use_stemmer)
    texts = [" ".join(WORDS), "Ponies' CARESSES, 2x-ray\tnaïve\n北京 was is", ""]
    for text in texts + [p for pair in _pairs(seed=9, n=20) for p in pair]:
        assert tokenize_default(text, use_stemmer) == theirs.tokenize(text)


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_random_pairs_match_rouge_score(use_stemmer: bool) -> None:
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
    nonzero = 0
    for prediction, reference in _pairs(seed=int(use_stemmer), n=200):
        theirs = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        _assert_same(rouge(prediction, reference, use_stemmer=use_stemmer), theirs)
        nonzero += all(theirs[t].fmeasure > 0 for t in ROUGE_TYPES)
    assert nonzero >= 30  # enough pairs share bigrams that a wrong count would show


def test_stemming_changes_scores_as_in_rouge_score() -> None:
    prediction, reference = "the cats were running happily", "a cat runs happy"
    plain, stemmed = rouge(prediction, reference), rouge(prediction, reference, use_stemmer=True)
    assert stemmed["rouge1"].fmeasure > plain["rouge1"].fmeasure
    _assert_same(stemmed, rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True).score(reference, prediction))


@pytest.mark.parametrize(("prediction", "reference"), [("", ""), ("", "the cat"), ("the cat", ""), ("cat", "cat"),
                                                        ("!!! ...", "the cat"), ("cat", "dog")])
def test_empty_and_degenerate_texts_match_rouge_score(prediction: str, reference: str) -> None:
    for use_stemmer in (False, True):
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)
        _assert_same(rouge(prediction, reference, use_stemmer=use_stemmer), scorer.score(reference, prediction))


def test_rouge_l_rewards_order_without_adjacency() -> None:
    # LCS "a c e" has length 3 though no bigram is shared.
    assert lcs_length(["a", "b", "c", "d", "e"], ["a", "x", "c", "y", "e"]) == 3
    prediction, reference = "police killed the gunman", "the gunman killed police"
    ours = rouge(prediction, reference, rouge_types=["rougeL"])
    _assert_same(ours, rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction))
    assert ours["rougeL"].fmeasure == pytest.approx(0.5)


def test_corpus_rouge_is_the_mean_of_rouge_score_per_pair() -> None:
    pairs = _pairs(seed=5, n=30)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    per_pair = [scorer.score(reference, prediction) for prediction, reference in pairs]
    ours = corpus_rouge([p for p, _ in pairs], [r for _, r in pairs], use_stemmer=True)
    for rouge_type in ROUGE_TYPES:
        for field in ("precision", "recall", "fmeasure"):
            expected = sum(getattr(s[rouge_type], field) for s in per_pair) / len(per_pair)
            assert getattr(ours[rouge_type], field) == pytest.approx(expected, abs=1e-12, rel=0)


def test_chinese_vanishes_by_default_and_scores_with_char_tokenizer() -> None:
    prediction, reference = "我们今天去北京", "今天我们去北京看天安门"
    theirs = rouge_scorer.RougeScorer(list(ROUGE_TYPES)).score(reference, prediction)
    assert all(theirs[t].fmeasure == 0 for t in ROUGE_TYPES)  # the documented rouge-score behaviour
    _assert_same(rouge(prediction, reference), theirs)
    chars = rouge(prediction, reference, tokenizer="char")
    # 7 predicted characters all occur in the 11 of the reference; LCS 今天去北京 = 5.
    assert (chars["rouge1"].precision, chars["rouge1"].recall) == (1.0, 7 / 11)
    assert (chars["rougeL"].precision, chars["rougeL"].recall) == (5 / 7, 5 / 11)


def test_bad_arguments_raise_lmlab_error() -> None:
    with pytest.raises(LmlabError, match="rouge3"):
        rouge("a", "b", rouge_types=["rouge3"])
    with pytest.raises(LmlabError, match="tokenizer"):
        rouge("a", "b", tokenizer="jieba")
    with pytest.raises(LmlabError, match="use_stemmer"):
        rouge("a", "b", tokenizer="char", use_stemmer=True)
    with pytest.raises(LmlabError, match="2 predictions but 1 references"):
        corpus_rouge(["a", "b"], ["a"])
    with pytest.raises(LmlabError, match="list"):
        corpus_rouge("a", "b")
