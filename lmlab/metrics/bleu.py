"""BLEU: the n-gram overlap score of machine translation, with sacrebleu's defaults and tokenizers.

BLEU (Papineni et al., 2002) asks how many of a hypothesis' n-grams (n = 1..4) also occur in a
reference, and penalises hypotheses shorter than their references:

    p_n  = Σ_seg Σ_ngram min(count_hyp, max_ref count_ref) / Σ_seg (n-grams in the hypothesis)
    BP   = 1 if c >= r else exp(1 - r/c)          c: hypothesis tokens, r: closest reference tokens
    BLEU = 100 · BP · exp( (1/N) Σ_n log p_n )

The statistics are summed over the whole corpus *before* the ratio is taken, so corpus BLEU is not
the mean of sentence BLEUs. Every choice below follows sacrebleu 2.x, the tool whose scores papers
quote, so that a number printed by lmlab can be compared with one printed there:

- text is lower-cased (if asked), right-stripped, tokenized, then split on whitespace;
- a reference n-gram may be matched as often as it occurs in the reference that has most of it;
- the reference length of a segment is the one closest to the hypothesis, the shorter on a tie;
- a zero precision would send the log to -inf, so it is smoothed (Chen and Cherry, 2014):
  ``exp`` (NIST: the i-th zero precision becomes 1/(2^i · total)), ``floor`` (zero counts become
  a small value), ``add-k`` (k added to the counts of orders above 1) or ``none``;
- sentence BLEU uses the *effective order*: orders the hypothesis is too short to have are left
  out of the mean instead of counting as zero.

References come as sacrebleu's *streams*: ``references[k][i]`` is the k-th reference of segment
i, so K streams of N strings each (not N lists of K references). `sentence_bleu` takes the
references of its one segment as a flat list.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache

from lmlab.errors import LmlabError

MAX_ORDER = 4
# A log of zero precision: finite, so the score of a corpus with no n-gram of some order is
# exp(-huge) = 0.0, exactly as sacrebleu does it.
LOG_ZERO = -9999999999.0
SMOOTH_DEFAULTS: dict[str, float | None] = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}


@dataclass
class BleuScore:
    score: float  # 0..100
    precisions: list[float]  # per order, 0..100, after smoothing
    bp: float  # brevity penalty
    hyp_len: int
    ref_len: int
    correct: list[float] = field(default_factory=list)  # matched n-grams per order (add-k included)
    total: list[float] = field(default_factory=list)  # hypothesis n-grams per order (add-k included)

    @property
    def ratio(self) -> float:
        return self.hyp_len / self.ref_len if self.ref_len else 0.0


# ----------------------------------------------------------------------------------------------
# 1. Tokenizers. Each maps a line to a line whose tokens are separated by single spaces.

# mteval-v13a's punctuation rules: split off symbols, and periods/commas unless inside a number.
_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def _punctuation_rules(line: str) -> str:
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def tokenize_13a(line: str) -> str:
    """mteval-v13a, the WMT standard: undo a few XML escapes, then split punctuation off words."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    # The padding lets the period/comma rules see a non-digit at both ends of the line.
    return _punctuation_rules(f" {line} ")


# Code points sacrebleu's zh tokenizer treats as one-character words. Its table compares characters
# with strings such as "\u20000" (really "\u2000" followed by "0"), which for a single character
# means U+2001..U+2A6D and U+2F81..U+2FA1; we keep that reading so scores agree with sacrebleu's.
_CHINESE_RANGES = [
    (0x3400, 0x4DB5), (0x4E00, 0x9FA5), (0x9FA6, 0x9FBB), (0xF900, 0xFA2D), (0xFA30, 0xFA6A),
    (0xFA70, 0xFAD9), (0x2001, 0x2A6D), (0x2F81, 0x2FA1), (0xFF00, 0xFFEF), (0x2E80, 0x2EFF),
    (0x3000, 0x303F), (0x31C0, 0x31EF), (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF), (0x3100, 0x312F),
    (0x31A0, 0x31BF), (0xFE10, 0xFE1F), (0xFE30, 0xFE4F), (0x2600, 0x26FF), (0x2700, 0x27BF),
    (0x3200, 0x32FF), (0x3300, 0x33FF),
]


def _is_chinese(char: str) -> bool:
    code = ord(char)
    return any(start <= code <= end for start, end in _CHINESE_RANGES)


def tokenize_zh(line: str) -> str:
    """Chinese: every Chinese character is a word; the rest is tokenized by the 13a punctuation rules."""
    spaced = "".join(f" {char} " if _is_chinese(char) else char for char in line.strip())
    return _punctuation_rules(spaced)


def tokenize_char(line: str) -> str:
    """Every character is a token (whitespace is dropped by the final split)."""
    return " ".join(line)


def tokenize_none(line: str) -> str:
    return line


@cache
def _unicode_class(prefix: str) -> str:
    """A regex character class of every code point whose Unicode category starts with `prefix`."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)).startswith(prefix):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


@cache
def _intl_rules() -> list[tuple[re.Pattern[str], str]]:
    # mteval-v14's international rules; Python's re has no \p{..}, so the classes are spelled out.
    punct, symbol, number = _unicode_class("P"), _unicode_class("S"), _unicode_class("N")
    return [
        (re.compile(f"([^{number}])([{punct}])"), r"\1 \2 "),
        (re.compile(f"([{punct}])([^{number}])"), r" \1 \2"),
        (re.compile(f"([{symbol}])"), r" \1 "),
    ]


def tokenize_intl(line: str) -> str:
    """mteval-v14 international: split off every Unicode punctuation and symbol, except inside numbers."""
    for pattern, replacement in _intl_rules():
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


TOKENIZERS: dict[str, Callable[[str], str]] = {
    "13a": tokenize_13a, "intl": tokenize_intl, "zh": tokenize_zh, "char": tokenize_char, "none": tokenize_none,
}


# ----------------------------------------------------------------------------------------------
# 2. Sufficient statistics of one segment: lengths, matched and total n-grams per order.


def _ngrams(tokens: Sequence[str], max_order: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def _closest_length(hyp_len: int, ref_lens: Sequence[int]) -> int:
    # min over (distance, length): the closest reference, the shorter one on a tie.
    return min(ref_lens, key=lambda ref_len: (abs(hyp_len - ref_len), ref_len))


@dataclass
class SegmentStats:
    hyp_len: int
    ref_len: int
    correct: list[int]
    total: list[int]


def segment_stats(hyp: Sequence[str], refs: Sequence[Sequence[str]], max_order: int = MAX_ORDER) -> SegmentStats:
    """BLEU statistics of one tokenized hypothesis against its tokenized references."""
    clip: Counter[tuple[str, ...]] = Counter()
    for ref in refs:
        clip |= _ngrams(ref, max_order)  # | keeps the max count: the reference that has most of each n-gram
    correct, total = [0] * max_order, [0] * max_order
    for ngram, count in _ngrams(hyp, max_order).items():
        total[len(ngram) - 1] += count
        correct[len(ngram) - 1] += min(count, clip[ngram])
    return SegmentStats(len(hyp), _closest_length(len(hyp), [len(ref) for ref in refs]), correct, total)


# ----------------------------------------------------------------------------------------------
# 3. From statistics to the score.


def bleu_from_stats(correct: Sequence[float], total: Sequence[float], hyp_len: int, ref_len: int,
                    smooth_method: str = "exp", smooth_value: float | None = None,
                    effective_order: bool = False) -> BleuScore:
    """BLEU from corpus statistics. The float operations keep sacrebleu's order, so scores agree to the bit."""
    _check_choice("smooth_method", smooth_method, SMOOTH_DEFAULTS)
    if smooth_value is None:
        smooth_value = SMOOTH_DEFAULTS[smooth_method]
    correct, total = list(correct), list(total)
    max_order = len(correct)
    bp = 1.0
    if hyp_len < ref_len:
        bp = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    precisions = [0.0] * max_order
    if not any(correct):  # nothing matched at all: no smoothing can make that a translation
        return BleuScore(0.0, precisions, bp, hyp_len, ref_len, correct, total)

    zeros_smoothed = 1.0  # exp: each further zero precision is halved again
    order = max_order
    for n in range(max_order):
        if smooth_method == "add-k" and n > 0:
            correct[n] += smooth_value
            total[n] += smooth_value
        if total[n] == 0:  # the hypotheses are shorter than n+1: higher orders stay at 0
            break
        if effective_order:
            order = n + 1
        if correct[n] == 0:
            if smooth_method == "exp":
                zeros_smoothed *= 2
                precisions[n] = 100.0 / (zeros_smoothed * total[n])
            elif smooth_method == "floor":
                precisions[n] = 100.0 * smooth_value / total[n]
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    log_sum = sum([math.log(p) if p != 0.0 else LOG_ZERO for p in precisions[:order]])
    return BleuScore(bp * math.exp(log_sum / order), precisions, bp, hyp_len, ref_len, correct, total)


# ----------------------------------------------------------------------------------------------
# 4. The public entry points.


def _check_choice(name: str, value: str, allowed: dict[str, object]) -> None:
    if value not in allowed:
        raise LmlabError(f"BLEU {name}={value!r} is unknown; choose one of {', '.join(map(repr, allowed))}")


def _preprocess(line: str, tokenizer: Callable[[str], str], lowercase: bool) -> list[str]:
    if lowercase:
        line = line.lower()
    return tokenizer(line.rstrip()).split()


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]], tokenize: str = "13a",
                smooth_method: str = "exp", smooth_value: float | None = None, lowercase: bool = False,
                effective_order: bool = False, max_order: int = MAX_ORDER) -> BleuScore:
    """Corpus BLEU of `hypotheses` against reference streams: ``references[k][i]`` is segment i's k-th reference."""
    _check_choice("tokenize", tokenize, TOKENIZERS)
    _check_choice("smooth_method", smooth_method, SMOOTH_DEFAULTS)
    if isinstance(hypotheses, str) or not references or any(isinstance(stream, str) for stream in references):
        raise LmlabError("BLEU takes a list of hypotheses and a list of reference streams (lists of strings)")
    for k, stream in enumerate(references):
        if len(stream) != len(hypotheses):
            raise LmlabError(f"BLEU reference stream {k} has {len(stream)} segments but there are "
                             f"{len(hypotheses)} hypotheses; references are streams, one string per hypothesis")
    tokenizer = TOKENIZERS[tokenize]
    hyp_len = ref_len = 0
    correct, total = [0] * max_order, [0] * max_order
    for i, hypothesis in enumerate(hypotheses):
        refs = [_preprocess(stream[i], tokenizer, lowercase) for stream in references]
        stats = segment_stats(_preprocess(hypothesis, tokenizer, lowercase), refs, max_order)
        hyp_len += stats.hyp_len
        ref_len += stats.ref_len
        correct = [a + b for a, b in zip(correct, stats.correct, strict=True)]
        total = [a + b for a, b in zip(total, stats.total, strict=True)]
    return bleu_from_stats(correct, total, hyp_len, ref_len, smooth_method, smooth_value, effective_order)


def sentence_bleu(hypothesis: str, references: Sequence[str], tokenize: str = "13a", smooth_method: str = "exp",
                  smooth_value: float | None = None, lowercase: bool = False, effective_order: bool = True,
                  max_order: int = MAX_ORDER) -> BleuScore:
    """BLEU of one hypothesis against its references, with effective order as sacrebleu's sentence_bleu."""
    if isinstance(references, str):
        raise LmlabError("sentence BLEU takes a list of reference strings, not one string")
    if not isinstance(hypothesis, str) or not all(isinstance(ref, str) for ref in references):
        raise LmlabError("sentence_bleu scores strings, as sacrebleu does; for NLTK's call on token lists "
                         "(references first, then the hypothesis) use nltk_sentence_bleu")
    return corpus_bleu([hypothesis], [[ref] for ref in references], tokenize, smooth_method, smooth_value,
                       lowercase, effective_order, max_order)


# ----------------------------------------------------------------------------------------------
# 5. NLTK-compatible BLEU (nltk.translate.bleu_score), for numbers comparable with NLTK's.
#
# NLTK scores pre-tokenised lists on a 0..1 scale and differs from sacrebleu in three ways that move
# the number: a segment's order-n denominator is max(1, hypothesis n-grams), so a hypothesis shorter
# than n still adds 1 to it; a corpus with zero precision at some order scores sys.float_info.min
# there ("method0"), a tiny positive number rather than 0; and the smoothing methods of Chen and
# Cherry (2014) are numbered method0..method7. Some methods read the *last* segment of the corpus
# (method5's 5-gram precision, method6's n-gram count); we keep that so corpus scores agree too.
# Precisions stay exact fractions where NLTK keeps them exact, so the float rounding happens at the
# same places and the scores agree to the last bits.


@dataclass
class _NltkCorpus:
    numerators: list[int]  # matched n-grams per order, summed over segments
    denominators: list[int]  # Σ_seg max(1, hypothesis n-grams) per order
    hyp_len: int
    last_refs: Sequence[Sequence[str]]
    last_hyp: Sequence[str]


Precision = Fraction | float


def _nltk_method0(p: list[Precision], corpus: _NltkCorpus, epsilon: float, alpha: float, k: float) -> list[Precision]:
    # No smoothing, but log(0) is avoided: the smallest positive float makes the score tiny, not 0.
    # NLTK warns at each order with no match, since the score is then ~0 whatever the lower orders
    # match; so does lmlab, on the same inputs.
    for order, p_n in enumerate(p, start=1):
        if p_n.numerator == 0:
            warnings.warn(f"NLTK BLEU: the hypothesis has no {order}-gram overlap with its references, so BLEU is "
                          f"about 0 however many lower-order n-grams match; use smoothing='method1' (or another "
                          f"method), or fewer orders in weights", UserWarning, stacklevel=4)
    return [p_n if p_n.numerator != 0 else sys.float_info.min for p_n in p]


def _nltk_method1(p: list[Precision], corpus: _NltkCorpus, epsilon: float, alpha: float, k: float) -> list[Precision]:
    # Add epsilon to zero match counts.
    return [epsilon / den if num == 0 else p_n
            for p_n, num, den in zip(p, corpus.numerators, corpus.denominators, strict=True)]


def _nltk_method2(p: list[Precision], corpus: _NltkCorpus, epsilon: float, alpha: float, k: float) -> list[Precision]:
    # Lin and Och (2004): add one to matches and total of every order above 1, zero or not.
    return [p[0]] + [Fraction(num + 1, den + 1)
                     for num, den in zip(corpus.numerators[1:], corpus.denominators[1:], strict=True)]


def _nltk_method3(p: list[Precision], corpus: _NltkCorpus, epsilon: float, alpha: float, k: float) -> list[Precision]:
    # NIST geometric smoothing (sacrebleu's "exp"): the i-th zero precision becomes 1 / (2^i · total).
    smoothed, zeros = list(p), 0
    for n, den in enumerate(corpus.denominators):
        if corpus.numerators[n] == 0:
            zeros += 1
            smoothed[n] = 1 / (2**zeros * den)
    return smoothed


def _nltk_method4(p: list[Precision], corpus: _NltkCorpus, epsilon: float, alpha: float, k: float) -> list[Precision]:
    # As method3, but a longer hypothesis earns a larger pseudo-count: 1 / (2^i · k / ln(length)).
    # A one-token corpus has ln(1) = 0, so its zeros are left unsmoothed (and drop out of the mean).
    smoothed, zeros = list(p), 0
    for n, den in enumerate(corpus.denominators):
        if corpus.numerators[n] == 0 and corpus.hyp_len > 1:
            zeros += 1
            smoothed[n] = 1 / (2**zeros * k / math.log(corpus.hyp_len)) / den
    return smoothed


def _nltk_method5(p: list[Precision], corpus: _NltkCorpus, epsilon: float, alpha: float, k: float) -> list[Precision]:
    # Each precision becomes the mean of itself, its smoothed predecessor and its raw successor; the
    # successor of the last order is always the 5-gram precision of the last segment.
    stats = segment_stats(corpus.last_hyp, corpus.last_refs, 5)
    successors = list(p[1:]) + [Fraction(stats.correct[4], max(1, stats.total[4]))]
    smoothed: list[Precision] = []
    previous = p[0] + 1
    for p_n, successor in zip(p, successors, strict=True):
        previous = (previous + p_n + successor) / 3
        smoothed.append(previous)
    return smoothed


def _nltk_method6(p: list[Precision], corpus: _NltkCorpus, epsilon: float, alpha: float, k: float) -> list[Precision]:
    # Gao and He (2013): from the third order on, interpolate the match count with a prior that
    # continues the ratio of the two previous precisions; the n-gram count is the last segment's.
    if len(p) < 3 or p[2] == 0:
        raise LmlabError("NLTK BLEU smoothing='method6' needs a weight for trigrams and at least one trigram match; "
                         "choose another smoothing method")
    smoothed = list(p)
    for n in range(2, len(p)):
        prior = 0 if smoothed[n - 2] == 0 else smoothed[n - 1] ** 2 / smoothed[n - 2]
        ngram_count = max(0, len(corpus.last_hyp) - n)
        smoothed[n] = (corpus.numerators[n] + alpha * prior) / (ngram_count + alpha)
    return smoothed


def _nltk_method7(p: list[Precision], corpus: _NltkCorpus, epsilon: float, alpha: float, k: float) -> list[Precision]:
    return _nltk_method5(_nltk_method4(p, corpus, epsilon, alpha, k), corpus, epsilon, alpha, k)


NLTK_SMOOTHINGS: dict[str, Callable[[list[Precision], _NltkCorpus, float, float, float], list[Precision]]] = {
    "method0": _nltk_method0, "method1": _nltk_method1, "method2": _nltk_method2, "method3": _nltk_method3,
    "method4": _nltk_method4, "method5": _nltk_method5, "method6": _nltk_method6, "method7": _nltk_method7,
}


def nltk_corpus_bleu(list_of_references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]],
                     weights: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25), smoothing: str = "method0",
                     auto_reweigh: bool = False, epsilon: float = 0.1, alpha: float = 5, k: float = 5) -> float:
    """NLTK's corpus BLEU on 0..1: ``list_of_references[i]`` is the list of token lists referencing hypothesis i.

    `epsilon` is method1's pseudo-count, `alpha` method6's prior weight and `k` method4's divisor, with NLTK's
    defaults. With ``auto_reweigh`` a corpus of fewer than 4 tokens scored with the uniform 4-gram weights
    uses uniform weights over as many orders as it has tokens.
    """
    _check_choice("smoothing", smoothing, NLTK_SMOOTHINGS)
    if len(list_of_references) != len(hypotheses):
        raise LmlabError(f"NLTK BLEU has {len(hypotheses)} hypotheses but {len(list_of_references)} reference lists; "
                         "give one list of references per hypothesis")
    if not hypotheses:
        raise LmlabError("NLTK BLEU needs at least one hypothesis")
    for i, (refs, hyp) in enumerate(zip(list_of_references, hypotheses, strict=True)):
        if isinstance(hyp, str) or not refs or any(isinstance(ref, str) for ref in refs):
            raise LmlabError(f"NLTK BLEU segment {i}: the hypothesis must be a token list and its references a "
                             "non-empty list of token lists (NLTK does not tokenize)")
    max_order = len(weights)
    numerators, denominators = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for refs, hyp in zip(list_of_references, hypotheses, strict=True):
        stats = segment_stats(hyp, refs, max_order)
        numerators = [a + b for a, b in zip(numerators, stats.correct, strict=True)]
        denominators = [a + max(1, b) for a, b in zip(denominators, stats.total, strict=True)]
        hyp_len += stats.hyp_len
        ref_len += stats.ref_len
    if numerators[0] == 0:  # no unigram matches: no smoothing makes that a translation
        return 0.0
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    corpus = _NltkCorpus(numerators, denominators, hyp_len, list_of_references[-1], hypotheses[-1])
    raw: list[Precision] = [Fraction(num, den) for num, den in zip(numerators, denominators, strict=True)]
    precisions = NLTK_SMOOTHINGS[smoothing](raw, corpus, epsilon, alpha, k)
    if auto_reweigh and hyp_len < 4 and weights == (0.25, 0.25, 0.25, 0.25):
        weights = (1 / hyp_len,) * hyp_len
    # zip stops at the shorter: reweighted weights cover only the first hyp_len orders.
    log_terms = [w * math.log(p_n) for w, p_n in zip(weights, precisions, strict=False) if p_n > 0]
    return bp * math.exp(math.fsum(log_terms))


def nltk_sentence_bleu(references: Sequence[Sequence[str]], hypothesis: Sequence[str],
                       weights: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25), smoothing: str = "method0",
                       auto_reweigh: bool = False, epsilon: float = 0.1, alpha: float = 5, k: float = 5) -> float:
    """NLTK's sentence BLEU: the corpus BLEU of a one-segment corpus (no effective order, unlike sacrebleu)."""
    return nltk_corpus_bleu([references], [hypothesis], weights, smoothing, auto_reweigh, epsilon, alpha, k)
