"""SQuAD v1.1 exact match and token F1, worked out by hand from the script's definitions."""

from __future__ import annotations

import pytest

from lmlab.errors import LmlabError
from lmlab.metrics.qa import exact_match, normalize_answer, squad_scores, token_f1


def test_normalisation_drops_case_punctuation_articles_and_extra_spaces():
    assert normalize_answer("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_exact_match_after_normalisation():
    assert exact_match("the Denver Broncos", "Denver Broncos.") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0


def test_token_f1_counts_common_tokens_with_multiplicity():
    # prediction "cat cat sat" (3 tokens), gold "the cat sat on mat" -> "cat sat on mat" (4 tokens)
    # common = min(2,1) cat + 1 sat = 2; P = 2/3, R = 2/4; F1 = 2PR/(P+R) = 4/7
    assert token_f1("cat cat sat", "the cat sat on mat") == pytest.approx(4 / 7, abs=1e-15)
    assert token_f1("nothing", "something else") == 0.0
    assert token_f1("", "an answer") == 0.0


def test_chinese_answers_by_character():
    # by words, each answer is one token: no overlap; by characters 北京 vs 北京市: P = 1, R = 2/3, F1 = 0.8
    assert token_f1("北京", "北京市") == 0.0
    assert token_f1("北京", "北京市", unit="char") == pytest.approx(0.8, abs=1e-15)


def test_corpus_scores_take_the_best_gold_and_average_times_100():
    predictions = ["Denver Broncos", "cat cat sat", "wrong"]
    golds = [["Carolina Panthers", "the Denver Broncos"], ["the cat sat on mat", "cat sat"], ["right"]]
    score = squad_scores(predictions, golds)
    # question 1: exact via the second gold; question 2: best F1 is vs "cat sat": P 2/3, R 1 -> 0.8
    assert score.exact_match == pytest.approx(100 / 3, abs=1e-12)
    assert score.f1 == pytest.approx(100 * (1 + 0.8 + 0) / 3, abs=1e-12)
    assert score.questions == 3


def test_mistakes_are_errors():
    with pytest.raises(LmlabError, match="predictions"):
        squad_scores(["a"], [["a"], ["b"]])
    with pytest.raises(LmlabError, match="question 0"):
        squad_scores(["a"], ["a"])
    with pytest.raises(LmlabError, match="no questions"):
        squad_scores([], [])
