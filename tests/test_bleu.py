"""BLEU against sacrebleu itself, run in the test: every tokenizer, every smoothing, sentence and corpus level."""

from __future__ import annotations

import random

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU

from lmlab.errors import LmlabError
from lmlab.evaluate.bleu import corpus_bleu, sentence_bleu

WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "The", "3.5", "1,000", "x-ray", "it's", "(ok)",
         '"quoted"', "&amp;", "end.", "yes,", "no!", "5-4", "Über", "naïve", "€5", "—", "«hi»", "¿qué?"]
CHINESE = list("我们今天去北京看天安门你好世界，。！？") + ["AI", "2024", "—", "…", "€"]
SMOOTHINGS = [("exp", None), ("floor", None), ("floor", 0.3), ("add-k", None), ("add-k", 2), ("none", None)]


def _sentence(rng: random.Random, vocab: list[str], joiner: str = " ") -> str:
    return joiner.join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))


def _corpus(seed: int, n: int, streams: int, vocab: list[str] = WORDS, joiner: str = " ") -> tuple[list, list]:
    rng = random.Random(seed)
    hyps = [_sentence(rng, vocab, joiner) for _ in range(n)]
    refs = [[_sentence(rng, vocab, joiner) for _ in range(n)] for _ in range(streams)]
    return hyps, refs


def _assert_same(ours, theirs) -> None:
    assert ours.score == pytest.approx(theirs.score, abs=1e-9)
    assert ours.bp == pytest.approx(theirs.bp, abs=1e-12)
    assert (ours.hyp_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)
    assert ours.ratio == pytest.approx(theirs.ratio, abs=1e-12)
    assert ours.precisions == pytest.approx(theirs.precisions, abs=1e-9)


@pytest.mark.parametrize("tokenize", ["13a", "intl", "char", "none"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_corpus_bleu_matches_sacrebleu(tokenize: str, lowercase: bool) -> None:
    hyps, refs = _corpus(seed=len(tokenize) + lowercase, n=40, streams=2)
    ours = corpus_bleu(hyps, refs, tokenize=tokenize, lowercase=lowercase)
    theirs = sacrebleu.corpus_bleu(hyps, refs, tokenize=tokenize, lowercase=lowercase)
    assert theirs.score > 0  # the sets overlap enough that a wrong count would show
    _assert_same(ours, theirs)


@pytest.mark.parametrize(("smooth_method", "smooth_value"), SMOOTHINGS)
@pytest.mark.parametrize("effective_order", [False, True])
def test_every_smoothing_matches_sacrebleu(smooth_method: str, smooth_value: float | None,
                                           effective_order: bool) -> None:
    # Short sentences, so higher orders often have no match and smoothing decides the score.
    rng = random.Random(7)
    hyps = [" ".join(rng.choice(WORDS[:8]) for _ in range(rng.randint(1, 5))) for _ in range(6)]
    refs = [[" ".join(rng.choice(WORDS[:8]) for _ in range(rng.randint(1, 5))) for _ in range(6)]]
    metric = BLEU(smooth_method=smooth_method, smooth_value=smooth_value, effective_order=effective_order)
    _assert_same(corpus_bleu(hyps, refs, smooth_method=smooth_method, smooth_value=smooth_value,
                             effective_order=effective_order), metric.corpus_score(hyps, refs))
    for hyp, ref in zip(hyps, refs[0], strict=True):
        _assert_same(corpus_bleu([hyp], [[ref]], smooth_method=smooth_method, smooth_value=smooth_value,
                                 effective_order=effective_order), metric.corpus_score([hyp], [[ref]]))


def test_sentence_bleu_matches_sacrebleu_defaults() -> None:
    hyps, refs = _corpus(seed=3, n=60, streams=3)
    for i, hyp in enumerate(hyps):
        segment_refs = [stream[i] for stream in refs]
        _assert_same(sentence_bleu(hyp, segment_refs), sacrebleu.sentence_bleu(hyp, segment_refs))


def test_chinese_with_zh_tokenizer() -> None:
    hyps, refs = _corpus(seed=11, n=30, streams=2, vocab=CHINESE, joiner="")
    ours = corpus_bleu(hyps, refs, tokenize="zh")
    theirs = sacrebleu.corpus_bleu(hyps, refs, tokenize="zh")
    assert theirs.score > 0
    _assert_same(ours, theirs)
    # sacrebleu's range-table quirk: dashes, ellipses and the euro sign count as Chinese characters.
    quirky = ["Hello—world… €5 →"]
    _assert_same(corpus_bleu(quirky, [quirky], tokenize="zh"), sacrebleu.corpus_bleu(quirky, [quirky], tokenize="zh"))
    for i, hyp in enumerate(hyps):
        _assert_same(sentence_bleu(hyp, [refs[0][i]], tokenize="zh"),
                     sacrebleu.sentence_bleu(hyp, [refs[0][i]], tokenize="zh"))


@pytest.mark.parametrize(("hyps", "refs"), [
    ([""], [["the cat sat on the mat"]]),  # empty hypothesis
    (["", "the cat"], [["the cat sat", ""]]),  # empty hypothesis and empty reference
    (["dog ran away quickly"], [["the cat sat on the mat"]]),  # no n-gram match at all
    (["the mat sat on cat"], [["the cat sat on the mat"]]),  # unigrams match, 4-grams do not
    (["the cat sat on the mat"], [["the cat sat on the mat"]]),  # perfect
    (["the cat sat on the mat today"], [["a cat sat on a mat"], ["the cat is on the mat today too"],
                                        ["the cat sat on the mat"]]),  # several references, tie in length
    (["cat"], [["cat"]]),  # shorter than every order above 1
])
def test_edge_cases_match_sacrebleu(hyps: list[str], refs: list[list[str]]) -> None:
    for smooth_method, smooth_value in SMOOTHINGS:
        metric = BLEU(smooth_method=smooth_method, smooth_value=smooth_value)
        _assert_same(corpus_bleu(hyps, refs, smooth_method=smooth_method, smooth_value=smooth_value),
                     metric.corpus_score(hyps, refs))
    for i, hyp in enumerate(hyps):
        segment_refs = [stream[i] for stream in refs]
        _assert_same(sentence_bleu(hyp, segment_refs), sacrebleu.sentence_bleu(hyp, segment_refs))


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(LmlabError, match="tokenize='moses'"):
        corpus_bleu(["a"], [["a"]], tokenize="moses")
    with pytest.raises(LmlabError, match="smooth_method='add-one'"):
        sentence_bleu("a", ["a"], smooth_method="add-one")
    with pytest.raises(LmlabError, match="stream 0 has 1 segments"):
        corpus_bleu(["a", "b"], [["a"]])  # per-segment lists instead of streams
    with pytest.raises(LmlabError, match="not one string"):
        sentence_bleu("a", "a")
