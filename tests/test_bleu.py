"""BLEU against sacrebleu itself, run in the test: every tokenizer, every smoothing, sentence and corpus level."""

from __future__ import annotations

import random
import re
import warnings

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU

from lmlab.errors import LmlabError
from lmlab.metrics.bleu import corpus_bleu, nltk_corpus_bleu, nltk_sentence_bleu, sentence_bleu

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


def test_sentence_bleu_on_nltk_style_token_lists_points_to_the_nltk_call() -> None:
    references, hypothesis = [["the", "cat", "sat"]], ["the", "cat", "sat"]
    with pytest.raises(LmlabError, match="use nltk_sentence_bleu"):
        sentence_bleu(references, hypothesis)  # NLTK's argument order and types
    with pytest.raises(LmlabError, match="use nltk_sentence_bleu"):
        sentence_bleu("the cat sat", [hypothesis])


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


# ----------------------------------------------------------------------------------------------
# NLTK-compatible mode against nltk.translate.bleu_score itself.

NLTK_METHODS = [f"method{i}" for i in range(8)]


def _nltk(name: str, *args, **kwargs):
    import nltk.translate.bleu_score as nltk_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # method0 warns about every zero precision
        return getattr(nltk_bleu, name)(*args, **kwargs)


def _nltk_smoothing(method: str):
    from nltk.translate.bleu_score import SmoothingFunction

    return getattr(SmoothingFunction(), method)


def _token_corpus(seed: int, n: int, refs_per_segment: int, vocab_size: int = 6) -> tuple[list, list]:
    rng = random.Random(seed)
    vocab = WORDS[:vocab_size]

    def tokens() -> list[str]:
        return [rng.choice(vocab) for _ in range(rng.randint(0, 9))]

    hyps = [tokens() for _ in range(n)]
    return [[tokens() for _ in range(refs_per_segment)] for _ in range(n)], hyps


def _overlap_warnings(caught: list[warnings.WarningMessage]) -> list[int]:
    """The n-gram orders that NLTK's or lmlab's zero-overlap warnings name, in order."""
    return [int(re.search(r"(\d+)-gram overlap", str(w.message)).group(1)) for w in caught
            if re.search(r"\d+-gram overlap", str(w.message))]


def _assert_same_as_nltk(nltk_name: str, ours, refs, hyps, method: str, **kwargs) -> float | None:
    """Run NLTK and lmlab on the same input: equal scores, and a warning for the same zero-overlap orders.
    Where NLTK's method6 asserts a trigram match, we must raise instead."""
    import nltk.translate.bleu_score as nltk_bleu

    with warnings.catch_warnings(record=True) as nltk_caught:
        warnings.simplefilter("always")
        try:
            theirs = getattr(nltk_bleu, nltk_name)(refs, hyps, smoothing_function=_nltk_smoothing(method), **kwargs)
        except AssertionError:
            assert method == "method6"
            with pytest.raises(LmlabError, match="method6"):
                ours(refs, hyps, smoothing=method, **kwargs)
            return None
    with warnings.catch_warnings(record=True) as our_caught:
        warnings.simplefilter("always")
        assert ours(refs, hyps, smoothing=method, **kwargs) == pytest.approx(theirs, abs=1e-9)
    assert _overlap_warnings(our_caught) == _overlap_warnings(nltk_caught)
    return theirs


def test_nltk_sentence_bleu_without_a_4gram_match_warns_as_nltk_does() -> None:
    refs, hyp = [["the", "cat", "sat", "on", "the", "mat"]], ["the", "mat", "sat", "on", "cat"]
    with pytest.warns(UserWarning, match=r"no 4-gram overlap .* smoothing='method1'"):
        ours = nltk_sentence_bleu(refs, hyp)
    assert ours < 1e-70 and ours == pytest.approx(_nltk("sentence_bleu", refs, hyp), abs=1e-300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # smoothing takes the warning's advice: no warning
        assert nltk_sentence_bleu(refs, hyp, smoothing="method1") > 0.1


@pytest.mark.parametrize("method", NLTK_METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nltk_corpus_bleu_matches_nltk(method: str, seed: int) -> None:
    refs, hyps = _token_corpus(seed, n=30, refs_per_segment=1 + seed, vocab_size=4)
    theirs = _assert_same_as_nltk("corpus_bleu", nltk_corpus_bleu, refs, hyps, method)
    # Every order matters here; method6 can exceed 1 at corpus level (it mixes corpus counts with the last segment).
    assert theirs is not None and theirs > 0


@pytest.mark.parametrize("method", NLTK_METHODS)
@pytest.mark.parametrize("auto_reweigh", [False, True])
def test_nltk_sentence_bleu_matches_nltk(method: str, auto_reweigh: bool) -> None:
    # Short sentences over a small vocabulary: zero precisions, short hypotheses and ties all occur.
    refs, hyps = _token_corpus(seed=5, n=80, refs_per_segment=3, vocab_size=4)
    for segment_refs, hyp in zip(refs, hyps, strict=True):
        _assert_same_as_nltk("sentence_bleu", nltk_sentence_bleu, segment_refs, hyp, method, auto_reweigh=auto_reweigh)


@pytest.mark.parametrize(("refs", "hyp"), [
    ([["the", "cat", "sat"]], []),  # empty hypothesis
    ([["the", "cat", "sat", "on", "the", "mat"]], ["dog", "ran", "away"]),  # no match at all
    ([["the", "cat", "sat", "on", "the", "mat"]], ["the", "mat", "sat", "on", "cat"]),  # no 4-gram match
    ([["the", "cat", "sat", "on", "the", "mat"]], ["the", "cat", "sat", "on", "the", "mat"]),  # perfect
    ([["a", "cat", "sat", "on", "a", "mat"], ["the", "cat", "is", "on", "the", "mat", "today", "too"],
      ["the", "cat", "sat", "on", "the", "mat"]], ["the", "cat", "sat", "on", "the", "mat", "today"]),  # several refs
    ([["cat"]], ["cat"]),  # shorter than every order above 1
    ([["the", "the", "the"]], ["the"] * 7),  # clipping
])
@pytest.mark.parametrize("method", NLTK_METHODS)
def test_nltk_edge_cases_match_nltk(refs: list, hyp: list, method: str) -> None:
    _assert_same_as_nltk("sentence_bleu", nltk_sentence_bleu, refs, hyp, method)


@pytest.mark.parametrize("weights", [(1.0,), (0.5, 0.5), (0.2, 0.3, 0.5), (0.1, 0.2, 0.3, 0.2, 0.2)])
def test_nltk_weights_match_nltk(weights: tuple[float, ...]) -> None:
    refs, hyps = _token_corpus(seed=9, n=20, refs_per_segment=2, vocab_size=5)
    for method in ("method0", "method3", "method5"):
        theirs = _nltk("corpus_bleu", refs, hyps, weights=weights, smoothing_function=_nltk_smoothing(method))
        assert nltk_corpus_bleu(refs, hyps, weights=weights, smoothing=method) == pytest.approx(theirs, abs=1e-9)


def test_nltk_differs_from_sacrebleu_where_documented() -> None:
    # max(1, ·) denominators: a one-token hypothesis still counts one n-gram of every order in NLTK.
    refs, hyps = [[["a", "b"]], [["a", "b", "c", "d"]]], [["a"], ["a", "b", "c", "e"]]
    ours = nltk_corpus_bleu(refs, hyps, smoothing="method3")
    sacre = corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r[0]) for r in refs]], tokenize="none")
    assert ours < sacre.score / 100


def test_nltk_bad_arguments_name_the_field() -> None:
    with pytest.raises(LmlabError, match="smoothing='method9'"):
        nltk_sentence_bleu([["a"]], ["a"], smoothing="method9")
    with pytest.raises(LmlabError, match="2 hypotheses but 1 reference lists"):
        nltk_corpus_bleu([[["a"]]], [["a"], ["b"]])
    with pytest.raises(LmlabError, match="segment 0"):
        nltk_sentence_bleu(["a b"], "a b")  # strings instead of token lists
