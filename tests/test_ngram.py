"""N-gram models: distributions sum to 1, NLTK parity, modified-KN and Katz by hand, ARPA, the LM interface."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from fractions import Fraction
from itertools import chain

import kenlm
import numpy as np
import pytest
from nltk.lm import (
    MLE,
    AbsoluteDiscountingInterpolated,
    KneserNeyInterpolated,
    Laplace,
    Lidstone,
    StupidBackoff,
    WittenBellInterpolated,
)
from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline
from nltk.util import ngrams

from lmlab.config import build_config
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams
from lmlab.models.ngram import NgramConfig, NgramLanguageModel, NgramModel, Splitter, train_ngram
from lmlab.models.ngram.counts import BOS, BOS_ID, EOS, EOS_ID, UNK, UNK_ID, Vocabulary, count_ngrams, pad
from lmlab.models.ngram.smoothing import adjusted_counts, good_turing_discounts, modified_discounts
from lmlab.tokenizers import TokenizerConfig, train_tokenizer

ESTIMATORS = ["mle", "lidstone", "interpolation", "witten-bell", "absolute-discounting", "kneser-ney",
              "modified-kneser-ney", "katz"]


def zipf_sentences(count: int, vocab: int, seed: int) -> list[list[str]]:
    """Sentences of Zipf-distributed words: natural enough that every count of counts n1..n4 is nonzero."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab + 1)
    words = [f"w{i}" for i in range(vocab)]
    return [list(rng.choice(words, size=rng.integers(1, 12), p=weights / weights.sum())) for _ in range(count)]


TRAIN = zipf_sentences(1500, 400, seed=0)
HELD_OUT = zipf_sentences(40, 400, seed=1)


def assert_distributions_sum_to_one(model: NgramModel, unseen_contexts: bool = True) -> None:
    """After seen contexts (starts of training sentences) and unseen ones (random ids, <unk>, none), p sums to 1."""
    order = model.order
    rng = np.random.default_rng(order)
    pads = [BOS] * (order - 1 if model.padding == "nltk" else 1)
    contexts = [model.vocab.encode(pads + s)[: rng.integers(1, 8)] for s in TRAIN[:20]]
    if unseen_contexts:
        contexts += [list(rng.integers(0, len(model.vocab), size=order - 1)) for _ in range(20)]
        contexts += [[UNK_ID] * (order - 1), []]
    for context in contexts:
        dist = model.next_distribution(context)
        assert abs(dist.sum() - 1.0) < 1e-9, (order, context)
        assert (dist >= 0).all()
    assert all((weights >= 0).all() for weights in model.backoff)


@pytest.mark.parametrize("padding", ["kenlm", "nltk"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_distribution_sums_to_one(estimator: str, padding: str) -> None:
    for order in (1, 2, 3, 4):
        model = train_ngram(TRAIN, NgramConfig(order=order, estimator=estimator, padding=padding))
        assert_distributions_sum_to_one(model, unseen_contexts=estimator != "mle")  # MLE: undefined after unseen


def test_nltk_kneser_ney_sums_to_one_away_from_sentence_starts() -> None:
    model = train_ngram(TRAIN, NgramConfig(order=3, estimator="nltk-kneser-ney", padding="nltk"))
    for sentence in TRAIN[:30]:
        for context in zip(sentence, sentence[1:], strict=False):
            assert abs(model.next_distribution(model.vocab.encode(context)).sum() - 1) < 1e-9
    assert model.next_distribution([BOS_ID, BOS_ID])[UNK_ID] == 0  # NLTK's KN has no uniform share


@pytest.mark.parametrize(("reference", "settings"), [
    (MLE(3), {"estimator": "mle"}),
    (Laplace(3), {"estimator": "lidstone"}),
    (Lidstone(0.3, 3), {"estimator": "lidstone", "k": 0.3}),
    (WittenBellInterpolated(3), {"estimator": "witten-bell"}),
    (AbsoluteDiscountingInterpolated(3), {"estimator": "absolute-discounting"}),
    (AbsoluteDiscountingInterpolated(3, discount=0.5), {"estimator": "absolute-discounting", "discount": 0.5}),
    (KneserNeyInterpolated(3), {"estimator": "nltk-kneser-ney"}),
    (StupidBackoff(order=3), {"estimator": "stupid-backoff"}),
    (StupidBackoff(0.7, order=3), {"estimator": "stupid-backoff", "alpha": 0.7}),
], ids=lambda value: value.get("estimator") if isinstance(value, dict) else type(value).__name__)
def test_scores_equal_nltk(reference, settings: dict) -> None:
    order = 3
    train, vocab = padded_everygram_pipeline(order, TRAIN)
    reference.fit(train, vocab)
    model = train_ngram(TRAIN, NgramConfig(order=order, padding="nltk", **settings))
    checked = 0
    for sentence in TRAIN[:30] + HELD_OUT:
        for *context, word in ngrams(pad_both_ends(sentence, n=order), order):
            if word not in model.vocab.ids or any(w not in model.vocab.ids for w in context):
                continue
            expected = reference.score(word, context)
            if isinstance(reference, MLE) and reference.counts[context].N() == 0:
                continue  # NLTK's MLE gives 0 after an unseen context; lmlab's backs off
            assert math.exp(model.logprob(context, word)) == pytest.approx(expected, rel=1e-12, abs=0)
            checked += 1
    assert checked > 300


def test_modified_kneser_ney_discounts_follow_the_closed_form() -> None:
    # Adjusted counts recomputed with dicts, independently of the packed arrays.
    order = 3
    padded = [(BOS, *s, EOS) for s in TRAIN]
    grams = [Counter(tuple(p[i:i + k]) for p in padded for i in range(len(p) - k + 1)) for k in (1, 2, 3)]
    left = [Counter(g[1:] for g in grams[k]) for k in (1, 2)]
    expected_counts = []
    for k in (1, 2):
        expected_counts.append({g: (c if g[0] == BOS else left[k - 1][g]) for g, c in grams[k - 1].items()})
    expected_counts.append(dict(grams[2]))
    expected_counts[0][(BOS,)] = 0

    model_vocab = train_ngram(TRAIN, NgramConfig(order=1, estimator="mle")).vocab
    counts = count_ngrams([model_vocab.encode(s) for s in TRAIN], order, len(model_vocab), "kenlm")
    for k, adjusted in enumerate(adjusted_counts(counts), start=1):
        n = Counter(a for a in expected_counts[k - 1].values())
        assert sorted(Counter(adjusted[adjusted > 0].tolist()).items()) == sorted((a, c) for a, c in n.items() if a)
        y = n[1] / (n[1] + 2 * n[2])
        closed_form = [j - (j + 1) * y * n[j + 1] / n[j] for j in (1, 2, 3)]
        assert modified_discounts(adjusted, k, fallback=False) == pytest.approx(closed_form, rel=1e-12)
        as_lmplz = modified_discounts(adjusted, k, fallback=False, dtype=np.float32)
        assert as_lmplz == pytest.approx(closed_form, rel=1e-6)


def test_tiny_text_needs_the_discount_fallback() -> None:
    tiny = [["a", "b", "c"], ["a", "b"]]
    with pytest.raises(LmlabError, match="discount_fallback"):
        train_ngram(tiny, NgramConfig(order=2))
    model = train_ngram(tiny, NgramConfig(order=2, discount_fallback=True))
    assert abs(model.next_distribution([BOS_ID]).sum() - 1) < 1e-12


def test_kneser_ney_matches_its_definition_by_hand() -> None:
    """Bigram modified KN from dict counts: p(w|v) = (a - D(a))/A + gamma(v) p(w), p(w) = (a - D)/A + gamma/|V|."""
    model = train_ngram(TRAIN, NgramConfig(order=2))
    padded = [(BOS, *s, EOS) for s in TRAIN]
    bigrams = Counter((p[i], p[i + 1]) for p in padded for i in range(len(p) - 1))
    unigram = Counter(w for _, w in bigrams)  # distinct left extensions
    d1 = modified_discounts(np.array(list(unigram.values())), 1, False)
    d2 = modified_discounts(np.array(list(bigrams.values())), 2, False)
    size = len(model.vocab) - 1  # <s> is not predicted

    def discounted(counts: dict, d: tuple) -> tuple[dict, float]:
        total = sum(counts.values())
        u = {w: (c - d[min(c, 3) - 1]) / total for w, c in counts.items()}
        return u, 1.0 - sum(u.values())

    u1, gamma1 = discounted(unigram, d1)
    following = defaultdict(dict)
    for (v, w), c in bigrams.items():
        following[v][w] = c
    for v in ("w0", "w3", BOS):
        u2, gamma2 = discounted(following[v], d2)
        for w in ("w0", "w1", "w7", EOS, "w399"):
            lower = u1.get(w, 0.0) + gamma1 / size
            expected = u2.get(w, 0.0) + gamma2 * lower
            assert math.exp(model.logprob([v], w)) == pytest.approx(expected, rel=1e-12)


def test_katz_matches_a_textbook_bigram_example_by_hand() -> None:
    """Katz back-off as Jurafsky & Martin present it: bigrams, Good-Turing discounts, k = 2, worked out by hand."""
    corpus = [["I", "am"], ["I", "like", "ham"], ["Sam", "likes", "ham"], ["I", "like", "green", "eggs"]]
    model = train_ngram(corpus, NgramConfig(order=2, estimator="katz", katz_k=2))
    counts = count_ngrams([model.vocab.encode(s) for s in corpus], 2, len(model.vocab), "kenlm")
    # <s> I am </s> / <s> I like ham </s> / <s> Sam likes ham </s> / <s> I like green eggs </s>
    #
    # Unigrams (<s> is only context): I 3, am 1, like 2, ham 2, Sam 1, likes 1, green 1, eggs 1, </s> 4; N = 16.
    # Counts of counts: n1 = 5 (am Sam likes green eggs), n2 = 2 (like ham), n3 = 1 (I).
    star = {1: Fraction(2 * 2, 5), 2: Fraction(3 * 1, 2)}  # r* = (r + 1) n_{r+1} / n_r
    common = Fraction(3 * 1, 5)  # C = (k + 1) n_{k+1} / n_1
    d = {r: (star[r] / r - common) / (1 - common) for r in (1, 2)}
    assert d == {1: Fraction(1, 2), 2: Fraction(3, 8)}
    # Discounted: I 3/16 and </s> 4/16 (above k: kept whole), like and ham 3/8 * 2/16 = 3/64 each, the five
    # singletons 1/2 * 1/16 = 1/32 each; together 11/16. The 5/16 left (= n1 / N, Good-Turing's unseen mass)
    # is shared by |V| = 10 words (the 9 seen and <unk>; not <s>): 1/32 each.
    share = Fraction(5, 16) / 10
    p_am, p_like, p_ham, p_unk = Fraction(1, 32) + share, Fraction(3, 64) + share, Fraction(3, 64) + share, share
    assert (p_am, p_like, p_ham, p_unk) == (Fraction(1, 16), Fraction(5, 64), Fraction(5, 64), Fraction(1, 32))
    # Bigrams: <s> I 3; I like 2, ham </s> 2; I am, am </s>, like ham, like green, green eggs, eggs </s>, <s> Sam,
    # Sam likes, likes ham 1 each: n1 = 9, n2 = 2, n3 = 1.
    star = {1: Fraction(2 * 2, 9), 2: Fraction(3 * 1, 2)}
    common = Fraction(3 * 1, 9)
    d2 = {r: (star[r] / r - common) / (1 - common) for r in (1, 2)}
    assert d2 == {1: Fraction(1, 6), 2: Fraction(5, 8)}
    for order, expected in ((1, d), (2, d2)):
        assert good_turing_discounts(counts.counts[order - 1], 2)[1:] == pytest.approx([expected[1], expected[2]])
    # Seen after "I" (3 times): am once, like twice. A seen bigram keeps its discounted count, nothing added.
    p_am_after_i, p_like_after_i = d2[1] * Fraction(1, 3), d2[2] * Fraction(2, 3)
    assert (p_am_after_i, p_like_after_i) == (Fraction(1, 18), Fraction(5, 12))
    p_i_after_bos = Fraction(3, 4)  # <s> I: 3 of the 4 bigrams after <s>, above k, not discounted
    # bow(I) = (1 - 1/18 - 5/12) / (1 - p(am) - p(like)) = (19/36) / (55/64)
    bow_i = (1 - p_am_after_i - p_like_after_i) / (1 - p_am - p_like)
    assert bow_i == Fraction(304, 495)
    # Never seen after "I": ham, and a word never seen at all (<unk>).
    p_ham_after_i, p_new_after_i = bow_i * p_ham, bow_i * p_unk
    assert (p_ham_after_i, p_new_after_i) == (Fraction(19, 396), Fraction(19, 990))

    for context, word, expected in [([], "ham", p_ham), ([], "am", p_am), (["I"], "am", p_am_after_i),
                                    (["I"], "like", p_like_after_i), ([BOS], "I", p_i_after_bos),
                                    (["I"], "ham", p_ham_after_i), (["I"], "zebra", p_new_after_i)]:
        assert abs(math.exp(model.logprob(context, word)) - float(expected)) < 1e-12, (context, word)
    assert abs(model.backoff[0][model.vocab.ids["I"]] - float(bow_i)) < 1e-12


def test_katz_scales_up_a_context_with_nothing_below_to_back_off_to() -> None:
    """Unigrams with no valid discount keep all their mass; a bigram context seen before every word then has
    mass to hand down and no words left to hand it to, so its seen probabilities are scaled to sum to 1."""
    corpus = [["c", "a"], ["c", "b"], ["c", "c", "c"], ["a"]]
    model = train_ngram(corpus, NgramConfig(order=2, estimator="katz", katz_k=2))
    counts = count_ngrams([model.vocab.encode(s) for s in corpus], 2, len(model.vocab), "kenlm")
    # Unigrams c 5, </s> 4, a 2, b 1: n1 = 1, n2 = 1, n3 = 0, so d1 = 2 n2 / n1 = 2 > 1: not discounted,
    # p = count / 12 and <unk> gets 0.
    assert good_turing_discounts(counts.counts[0], 2) is None
    assert math.exp(model.logprob([], "a")) == pytest.approx(2 / 12, rel=1e-12)
    # Bigrams: <s> c 3; a </s> 2, c c 2; <s> a, c a, c b, c </s>, b </s> 1: n1 = 5, n2 = 2, n3 = 1, as in the
    # example above, d1 = 1/2, d2 = 3/8. After c (5 times): a, b, </s> 1/2 * 1/5 = 1/10 each, c 3/8 * 2/5 = 3/20;
    # together 9/20. Those four are every word the unigrams give any probability, so 11/20 has nowhere to go:
    # each is divided by 9/20.
    assert good_turing_discounts(counts.counts[1], 2)[1:] == pytest.approx([1 / 2, 3 / 8])
    for word, expected in (("a", Fraction(2, 9)), ("b", Fraction(2, 9)), (EOS, Fraction(2, 9)), ("c", Fraction(1, 3))):
        assert math.exp(model.logprob(["c"], word)) == pytest.approx(float(expected), rel=1e-12)
    assert model.backoff[0][model.vocab.ids["c"]] == 0
    assert model.next_distribution(model.vocab.encode(["c"])).sum() == pytest.approx(1.0, rel=1e-12)


def katz_by_dicts(sentences: list[list[str]], order: int, padding: str, katz_k: int) -> tuple[list[dict], list[dict]]:
    """Katz back-off from dict counts, formula by formula: p of every seen n-gram, bow of every context."""
    pads = 1 if padding == "kenlm" else max(order - 1, 1)
    padded = [(BOS,) * pads + tuple(s) + (EOS,) * pads for s in sentences]
    words = {w for p in padded for w in p} | {"<unk>"}
    predicted = words - {BOS} if padding == "kenlm" else words
    prob: list[dict] = []
    bow: list[dict] = []
    for k in range(1, order + 1):
        grams = Counter(p[i:i + k] for p in padded for i in range(len(p) - k + 1))
        if padding == "kenlm":
            grams.pop((BOS,), None)
        n = Counter(grams.values())
        common = (katz_k + 1) * n[katz_k + 1] / n[1] if n[1] else 1.0
        d = {r: ((r + 1) * n[r + 1] / (r * n[r]) - common) / (1.0 - common) for r in range(1, katz_k + 1) if n[r]}
        if len(d) < katz_k or common >= 1 or not all(0 < v <= 1 for v in d.values()):
            d = {}  # no valid discounts: counts kept whole
        totals: Counter = Counter()
        for gram, c in grams.items():
            totals[gram[:-1]] += c
        p = {gram: d.get(c, 1.0) * c / totals[gram[:-1]] for gram, c in grams.items()}
        if k == 1:
            share = (1 - sum(p.values())) / len(predicted)
            p = {(w,): p.get((w,), 0.0) + share for w in predicted}
        else:
            followers = defaultdict(list)
            for gram in grams:
                followers[gram[:-1]].append(gram)
            weights = {}
            for context, seen in followers.items():
                kept, room = sum(p[g] for g in seen), 1 - sum(prob[-1][g[1:]] for g in seen)
                left = 1 - kept if 1 - kept >= 1e-12 else 0.0  # less is rounding: an undiscounted context
                if room < 1e-12 and left > 0:
                    p.update({g: p[g] / kept for g in seen})
                weights[context] = left / room if room >= 1e-12 else 0.0
            bow.append(weights)
        prob.append(p)
    return prob, bow


@pytest.mark.parametrize("padding", ["kenlm", "nltk"])
def test_katz_backs_off_by_its_formulas_at_every_order(padding: str) -> None:
    """Orders 1..5 and k = 3, 5 on Zipf text, where some orders have valid discounts and some fall back to none.

    Seen n-grams get their discounted probability alone (not interpolated); unseen ones the product of the
    back-off weights of the contexts dropped and the shorter n-gram's probability.
    """
    fallbacks = set()
    for katz_k in (3, 5):
        model = train_ngram(TRAIN, NgramConfig(order=5, estimator="katz", katz_k=katz_k, padding=padding))
        assert_distributions_sum_to_one(model)
        counts = count_ngrams([model.vocab.encode(s) for s in TRAIN], 5, len(model.vocab), padding)
        fallbacks |= {good_turing_discounts(c, katz_k) is None for c in counts.counts}
        prob, bow = katz_by_dicts(TRAIN, 5, padding, katz_k)
        rng = np.random.default_rng(katz_k)
        for k in range(1, 6):
            grams = list(prob[k - 1])
            for i in rng.choice(len(grams), size=min(100, len(grams)), replace=False):
                context, word = grams[i][:-1], grams[i][-1]
                assert math.exp(model.logprob(context, word)) == pytest.approx(prob[k - 1][grams[i]], rel=1e-12)
                unseen = model.vocab.words[rng.integers(len(model.vocab))]
                if context + (unseen,) in prob[k - 1] or (padding == "kenlm" and unseen == BOS):
                    continue
                expected, weight = 0.0, 1.0  # back off to the longest context that saw the word
                for start in range(len(context) + 1):
                    shorter = context[start:] + (unseen,)
                    if shorter in prob[len(shorter) - 1]:
                        expected = weight * prob[len(shorter) - 1][shorter]
                        break
                    weight *= bow[len(shorter) - 2].get(shorter[:-1], 1.0)
                assert math.exp(model.logprob(context, unseen)) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert fallbacks == {True, False}


def test_kenlm_queries_a_katz_arpa_file_as_lmlab_does(tmp_path) -> None:
    """KenLM's query reads Katz's ARPA file as a back-off model: seen n-grams alone, back-off weights otherwise."""
    model = train_ngram(TRAIN, NgramConfig(order=3, estimator="katz", katz_k=3))
    path = tmp_path / "katz.arpa"
    model.write_arpa(path)
    reference = kenlm.Model(str(path))
    with np.errstate(divide="ignore"):
        ours = np.concatenate(model.score_ids([[BOS_ID, *model.vocab.encode(s), EOS_ID] for s in HELD_OUT]))
    theirs = np.array([score for s in HELD_OUT for score, _, _ in reference.full_scores(" ".join(s))])
    finite = np.isfinite(ours)
    assert finite.sum() > 250
    assert np.allclose(ours[finite] / math.log(10), theirs[finite], rtol=0, atol=1e-5)  # ARPA holds float32
    assert (theirs[~finite] <= -99).all()  # probability 0 is log10 -99 in ARPA


def test_interpolation_is_the_weighted_sum_of_mle_estimates() -> None:
    lambdas = [0.1, 0.2, 0.3, 0.4]
    model = train_ngram(TRAIN, NgramConfig(order=3, estimator="interpolation", lambdas=lambdas))
    mle = [train_ngram(TRAIN, NgramConfig(order=k, estimator="mle")) for k in (1, 2, 3)]
    for sentence in TRAIN[:10]:
        words = [BOS, *sentence, EOS]
        for i in range(2, len(words)):
            context, word = words[i - 2:i], words[i]
            parts = [math.exp(m.logprob(context, word)) for m in mle]
            uniform = 1 / (len(model.vocab) - 1)  # <s> is never predicted
            expected = lambdas[0] * uniform + sum(lam * p for lam, p in zip(lambdas[1:], parts, strict=True))
            assert math.exp(model.logprob(context, word)) == pytest.approx(expected, rel=1e-12)


def held_out_loglikelihood(model: NgramModel) -> float:
    sequences = [[BOS_ID, *model.vocab.encode(sentence), EOS_ID] for sentence in HELD_OUT]
    return float(sum(scores.sum() for scores in model.score_ids(sequences)))


def test_interpolation_weights_fitted_on_held_out_text_beat_others() -> None:
    fitted = train_ngram(TRAIN, NgramConfig(order=3, estimator="interpolation"), held_out=HELD_OUT)
    best = held_out_loglikelihood(fitted)
    rng = np.random.default_rng(0)
    for lambdas in [[0.25] * 4, *rng.dirichlet(np.ones(4), size=10).tolist()]:
        other = train_ngram(TRAIN, NgramConfig(order=3, estimator="interpolation", lambdas=lambdas))
        assert held_out_loglikelihood(other) < best


def test_stupid_backoff_is_a_score_not_a_distribution(tmp_path) -> None:
    model = train_ngram(TRAIN, NgramConfig(order=3, estimator="stupid-backoff"))
    assert model.next_distribution(model.vocab.encode(["w0", "w1"])).sum() > 1
    with pytest.raises(LmlabError, match="ARPA"):
        model.write_arpa(tmp_path / "lm.arpa")


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_arpa_round_trip_keeps_every_score(tmp_path, estimator: str) -> None:
    model = train_ngram(TRAIN[:300], NgramConfig(order=3, estimator=estimator, discount_fallback=True,
                                                 precision="float32"))
    path = tmp_path / "lm.arpa"
    model.write_arpa(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("\n\\data\\\nngram 1=") and text.rstrip().endswith("\\end\\")
    assert "\n0\t<s>\t" in text  # KenLM writes p(<s>) = 1 as log10 0
    again = NgramModel.read_arpa(path)
    sequences = [[BOS_ID, *model.vocab.encode(s), EOS_ID] for s in HELD_OUT]
    with np.errstate(divide="ignore"):
        before = np.concatenate(model.score_ids(sequences))
        after = np.concatenate(again.score_ids([[again.vocab.ids[model.vocab.words[i]] for i in s]
                                                for s in sequences]))
    finite = np.isfinite(before)
    assert (finite == np.isfinite(after)).all()
    # ARPA holds float32 log10 values
    assert np.allclose(before[finite], after[finite], rtol=1e-6, atol=1e-6)


def test_arpa_errors_name_the_line(tmp_path) -> None:
    path = tmp_path / "bad.arpa"
    path.write_text("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\n-1\ta\t0\n\n\\2-grams:\n"
                    "-1\tb a\n\\end\\\n", encoding="utf-8")
    with pytest.raises(LmlabError, match=r"bad.arpa:11: 'b a' has a word not in the 1-grams"):
        NgramModel.read_arpa(path)
    path.write_text("\\data\\\nngram 1=3\nngram 2=1\nngram 3=1\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\n-1\ta\t0\n\n"
                    "\\2-grams:\n-1\t<s> a\t0\n\n\\3-grams:\n-1\ta a </s>\n\\end\\\n", encoding="utf-8")
    with pytest.raises(LmlabError, match=r"bad.arpa:15: this 3-gram's context is not itself in the file"):
        NgramModel.read_arpa(path)
    path.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t</s>\nx\t<s>\n\\end\\\n", encoding="utf-8")
    with pytest.raises(LmlabError, match=r"bad.arpa:6: 'x' is not a number"):
        NgramModel.read_arpa(path)


def test_bad_configs_name_the_key() -> None:
    with pytest.raises(LmlabError, match="order"):
        build_config(NgramConfig, {"order": 7})
    with pytest.raises(LmlabError, match="lambdas"):
        build_config(NgramConfig, {"order": 2, "lambdas": [0.5, 0.5]})
    with pytest.raises(LmlabError, match="katz_k"):
        build_config(NgramConfig, {"estimator": "katz", "katz_k": 1})  # d_1 would always be 0


def test_vocabulary_numbers_new_words_in_order_of_first_appearance() -> None:
    vocab = Vocabulary(["b", "zz"])
    sentences = [["a", "b", EOS, "a"], [], ["c", "春", "", "a"], ["b"]]
    ids, lengths = vocab.add_all(sentences)
    expected = {UNK: UNK_ID, BOS: BOS_ID, EOS: EOS_ID, "b": 3, "zz": 4}
    for word in chain.from_iterable(sentences):  # lmplz's numbering
        expected.setdefault(word, len(expected))
    assert vocab.ids == expected and vocab.words == list(expected)
    assert ids.tolist() == [expected[word] for word in chain.from_iterable(sentences)]
    assert lengths.tolist() == [4, 0, 4, 1]
    with pytest.raises(LmlabError, match="UTF-8"):
        vocab.add_all([["a", 3]])


def test_vocabulary_numbers_words_of_texts_as_of_their_splits() -> None:
    """`add_texts` splits and numbers words in compiled code; `add_all` of ``text.split()`` is the judge,
    with a table that must grow (thousands of new words), known words and a boundary mark among them."""
    texts = ["a b  c", "", "b 春 a\u3000d </s>", "   ", "x\x85y", *(" ".join(f"w{i}" for i in range(j, j + 900))
                                                                for j in range(0, 9000, 450))]
    texts += [*texts[:3], " ".join("ab" * 500)]  # seen again after the table grew; more words than bytes / 4
    by_split, compiled = Vocabulary(["b", "zz"]), Vocabulary(["b", "zz"])
    expected = by_split.add_all([text.split() for text in texts])
    assert [a.tolist() for a in compiled.add_texts(texts)] == [a.tolist() for a in expected]
    assert compiled.words == by_split.words and compiled.ids == by_split.ids and len(compiled) > 9000
    with pytest.raises(LmlabError, match="UTF-8"):
        compiled.add_texts(["a \udc80 b"])  # a lone surrogate


@pytest.mark.parametrize("padding", ["kenlm", "nltk"])
def test_counts_equal_counting_with_dicts(padding: str) -> None:
    """Every order's keys, counts, suffixes and first words, against a Counter of the padded word tuples."""
    sentences = [*zipf_sentences(400, 60, seed=3), []]
    vocab = Vocabulary(chain.from_iterable(sentences))
    for order in (1, 2, 3, 5):
        pads = 1 if padding == "kenlm" else max(order - 1, 1)
        padded = [(BOS,) * pads + tuple(s) + (EOS,) * pads for s in sentences]
        counts = count_ngrams([vocab.encode(s) for s in sentences], order, len(vocab), padding)
        grams = [(word,) for word in vocab.words]
        for k in range(1, order + 1):
            if k > 1:
                shorter = grams
                grams = [shorter[key // len(vocab)] + (vocab.words[key % len(vocab)],) for key in counts.keys[k - 1]]
                assert [shorter[i] for i in counts.suffix[k - 1]] == [g[1:] for g in grams]
            expected = Counter(p[i:i + k] for p in padded for i in range(len(p) - k + 1))
            if padding == "kenlm" and k == 1:
                expected.pop((BOS,))  # context only, never counted
            found = dict(zip(grams, counts.counts[k - 1].tolist(), strict=True))
            assert {g: c for g, c in found.items() if c} == expected, (order, k)
            assert [vocab.words[i] for i in counts.first_word[k - 1]] == [g[0] for g in grams]


@pytest.mark.parametrize("padding", ["kenlm", "nltk"])
def test_score_sentences_equals_scoring_padded_ids(padding: str) -> None:
    model = train_ngram(TRAIN, NgramConfig(order=4, estimator="katz", padding=padding))  # some p = 0: -inf
    sentences = [*HELD_OUT, ["never-seen", "w1", "w2"], []]
    with np.errstate(divide="ignore"):
        expected = np.concatenate(model.score_ids([pad(model.vocab.encode(s), 4, padding) for s in sentences]))
    assert np.array_equal(model.score_sentences(sentences), expected)
    assert len(expected) == sum(len(s) + model.pads for s in sentences)


TEXTS = ["the cat sat on the mat", "the dog sat on the log", "春天来了，花开了。", "a cat and a dog"] * 5


@pytest.mark.parametrize("unit", ["word", "character", "token"])
def test_language_model_interface(unit: str) -> None:
    tokenizer = train_tokenizer(TEXTS, TokenizerConfig(kind="bpe", vocab_size=300)) if unit == "token" else None
    splitter = Splitter(unit, tokenizer)
    lm = NgramLanguageModel.train(TEXTS, NgramConfig(order=3, discount_fallback=True), splitter)

    rolling = lm.loglikelihood_rolling(["the cat sat on the log", "春天来了"])
    assert all(value < 0 for value in rolling)
    units = splitter.split("the cat sat on the log")
    by_hand = sum(lm.model.logprob([BOS, *units[:i]], unit) for i, unit in enumerate([*units, EOS]))
    assert rolling[0] == pytest.approx(by_hand, rel=1e-12)

    (seen, _), (odd, _) = lm.loglikelihood([("the cat sat on", " the mat"), ("the cat sat on", " 花 dog")])
    assert seen > odd
    if unit == "word":
        assert lm.loglikelihood([("a cat and a", " dog"), ("a cat and a", " cat")]) == [
            (pytest.approx(lm.model.logprob(["and", "a"], "dog")), True),
            (pytest.approx(lm.model.logprob(["and", "a"], "cat")), False),
        ]

    params = GenerationParams(max_new_tokens=8, temperature=1.0, seed=3)
    assert lm.generate(["the cat"], params) == lm.generate(["the cat"], params)
    prompt, expected = ("春天来", "了，花开了。") if unit == "character" else ("a cat and a", " dog")
    assert lm.generate([prompt], GenerationParams(max_new_tokens=20, temperature=0.0)) == [expected]


@pytest.mark.parametrize("unit", ["word", "character"])
def test_unit_logprobs_score_each_text_as_a_padded_sentence(unit: str) -> None:
    splitter = Splitter(unit)
    lm = NgramLanguageModel.train(TEXTS, NgramConfig(order=3, padding="nltk", estimator="witten-bell"), splitter)
    texts = ["the cat sat on the log", "春天来了", "", "a zebra"]
    expected = lm.model.score_sentences([splitter.split(text) for text in texts])
    assert np.array_equal(lm.unit_logprobs(texts), expected)
    assert len(expected) == sum(len(splitter.split(text)) + 2 for text in texts)


def test_character_splitter_keeps_whitespace_through_a_round_trip() -> None:
    splitter = Splitter("character")
    text = "a b\n中\t文"
    assert " " not in "".join(splitter.split(text))
    assert splitter.join(splitter.split(text)) == text
    with pytest.raises(LmlabError, match="tokenizer"):
        Splitter("token")


def test_word_texts_are_split_where_str_split_splits() -> None:
    """`Vocabulary.encode_texts` cuts UTF-8 bytes in compiled code; it must cut at every code point that
    Python calls whitespace, and only there, and find the same ids as looking up ``text.split()``."""
    every = "".join(f"x{chr(c)}" for c in range(0x110000) if not 0xD800 <= c < 0xE000)  # no lone surrogates
    texts = [every, "  the cat\u3000sat\n", "", "\t", "春天 来了，花开了。", "one", " ".join("ab" * 500)]
    words = sorted({word for text in texts for word in text.split()})
    vocab = Vocabulary(words[::2])  # half of them unknown
    ids, lengths = vocab.encode_texts(texts)
    expected_ids, expected_lengths = vocab.encode_all([text.split() for text in texts])
    assert lengths.tolist() == expected_lengths.tolist() == [sum(c.isspace() for c in every) + 1, 3, 0, 0, 2, 1, 1000]
    assert ids.tolist() == expected_ids.tolist()
    # a lone surrogate, which UTF-8 cannot hold, in the text or the vocabulary: Python splits and looks up
    for text, known in (("a \udc80 b", vocab), ("a b", Vocabulary(["b", "\udc80"]))):
        ids, lengths = known.encode_texts([text])
        assert (ids.tolist(), lengths.tolist()) == tuple(a.tolist() for a in known.encode_all([text.split()]))
