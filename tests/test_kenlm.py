"""Modified Kneser-Ney against KenLM itself: lmplz's ARPA, the query program and the Python module.

lmplz, query and build_binary are built from KenLM's PyPI sdist by tests/oracles/build_kenlm.sh (the
pip package holds only the Python query module); `make test` runs it first, and the fixture below
runs it if the binaries are missing. A test that cannot build its oracle fails: it never skips.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import subprocess
import sys
from pathlib import Path

import kenlm
import numba
import numpy as np
import pytest

from lmlab.errors import LmlabError
from lmlab.models.ngram import NgramConfig, NgramLanguageModel, NgramModel, Splitter, log10f
from lmlab.models.ngram.counts import KeyIndex, lookup

BUILD_SCRIPT = Path(__file__).parent / "oracles" / "build_kenlm.sh"
PROGRAMS = ("lmplz", "query")


@pytest.fixture(scope="session")
def kenlm_bin() -> Path:
    """The folder holding lmplz and query, built on first use (about two minutes, once per machine)."""
    root = Path(os.environ.get("LMLAB_ORACLE_DIR", Path.home() / ".cache" / "lmlab" / "oracles"))
    folder = root / "kenlm" / "bin"
    if not all((folder / program).is_file() for program in PROGRAMS):
        build = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800,
                               env={**os.environ, "PYTHON": sys.executable})  # its pip fetches the sdist
        if build.returncode != 0 or not all((folder / program).is_file() for program in PROGRAMS):
            pytest.fail(f"could not build KenLM's lmplz and query with {BUILD_SCRIPT} (exit {build.returncode}); "
                        f"its output ends:\n{(build.stdout + build.stderr)[-3000:]}")
    return folder


def markov_sentences(count: int, vocab: int, seed: int) -> list[list[str]]:
    """Sentences from a sparse random Markov chain: each word has a few likely successors, as words
    do, so that even 5-grams recur and every order has n-grams of adjusted counts 1, 2, 3 and 4."""
    rng = np.random.default_rng(seed)
    structure = np.random.default_rng(0)  # the same "language" for every seed
    successors = structure.integers(0, vocab, size=(vocab, 4))
    zipf = 1.0 / np.arange(1, vocab + 1)
    zipf /= zipf.sum()
    sentences = []
    for _ in range(count):
        word = rng.choice(vocab, p=zipf)
        sentence = [word]
        for _ in range(rng.integers(1, 14)):
            stray = rng.random() < 0.15
            word = rng.choice(vocab, p=zipf) if stray else successors[word, rng.choice(4, p=[0.5, 0.25, 0.15, 0.1])]
            sentence.append(word)
        sentences.append([f"w{i}" for i in sentence])
    return sentences


TRAIN = markov_sentences(1200, 300, seed=1)
# Held-out sentences with words the model never saw, some next to each other and at the edges.
HELD_OUT = [*markov_sentences(60, 300, seed=2), ["zz1", "w1", "w4"], ["w0", "zz2", "zz3", "w7"], ["w5", "zz4"], ["zz5"]]
VOCAB = {word for sentence in TRAIN for word in sentence}


def write_lines(path: Path, sentences: list[list[str]]) -> Path:
    # Always end with a newline: without one, lmplz drops the last </s> and query its last line's score.
    path.write_text("".join(" ".join(sentence) + "\n" for sentence in sentences), encoding="utf-8")
    return path


def run_lmplz(kenlm_bin: Path, text: Path, arpa: Path, order: int, *extra: str) -> subprocess.CompletedProcess:
    command = [str(kenlm_bin / "lmplz"), "-o", str(order), "-S", "100M", "-T", str(arpa.parent), "--text", str(text),
               "--arpa", str(arpa), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def read_arpa_values(path: Path) -> dict[tuple[str, ...], tuple[np.float32, np.float32]]:
    """{n-gram: (log10 p, log10 back-off)} as float32, with the header's counts checked against the body."""
    table: dict[tuple[str, ...], tuple[np.float32, np.float32]] = {}
    promised, order = {}, 0
    for line in path.read_text(encoding="utf-8").split("\n"):
        if header := re.fullmatch(r"ngram (\d+)=(\d+)", line):
            promised[int(header.group(1))] = int(header.group(2))
        elif section := re.fullmatch(r"\\(\d+)-grams:", line):
            order = int(section.group(1))
        elif order and line and not line.startswith("\\"):
            fields = line.split("\t")
            backoff = np.float32(fields[2]) if len(fields) > 2 else np.float32(0.0)
            table[tuple(fields[1].split(" "))] = (np.float32(fields[0]), backoff)
    found = {k: sum(len(ngram) == k for ngram in table) for k in promised}
    assert found == promised, f"{path}: the header promises {promised} n-grams, the body holds {found}"
    return table


def train_lmlab(sentences: list[list[str]], order: int, fallback: bool = False) -> NgramLanguageModel:
    config = NgramConfig(order=order, precision="float32", discount_fallback=fallback)
    return NgramLanguageModel.train([" ".join(s) for s in sentences], config, Splitter("word"))


def assert_same_arpa(ours: Path, theirs: Path) -> None:
    mine, kenlms = read_arpa_values(ours), read_arpa_values(theirs)
    assert mine.keys() == kenlms.keys(), (
        f"n-grams only lmlab has: {sorted(mine.keys() - kenlms.keys())[:5]}, "
        f"only lmplz has: {sorted(kenlms.keys() - mine.keys())[:5]}")
    differ = [(ngram, mine[ngram], kenlms[ngram]) for ngram in kenlms if mine[ngram] != kenlms[ngram]]
    assert not differ, f"{len(differ)} of {len(kenlms)} n-grams differ, e.g. (lmlab, lmplz): {differ[:5]}"


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_arpa_equals_lmplz_and_perplexity_equals_kenlm(kenlm_bin: Path, tmp_path: Path, order: int) -> None:
    train, held_out = write_lines(tmp_path / "train.txt", TRAIN), write_lines(tmp_path / "test.txt", HELD_OUT)
    kenlm_arpa, lmlab_arpa = tmp_path / "lmplz.arpa", tmp_path / "lmlab.arpa"
    lmplz = run_lmplz(kenlm_bin, train, kenlm_arpa, order)
    assert lmplz.returncode == 0, lmplz.stderr[-2000:]
    lm = train_lmlab(TRAIN, order)
    lm.model.write_arpa(lmlab_arpa)
    assert_same_arpa(lmlab_arpa, kenlm_arpa)

    # Perplexity on held-out text with unseen words: lmlab's, KenLM's Python module's and query's.
    lines = [" ".join(sentence) for sentence in HELD_OUT]
    ours = lm.log10_scores(lines)
    assert ours.oov.sum() == sum(word not in VOCAB for sentence in HELD_OUT for word in sentence) >= 5
    for arpa in (kenlm_arpa, lmlab_arpa):  # KenLM reading lmlab's file reproduces lmlab's figures too
        model = kenlm.Model(str(arpa))
        assert [model.score(line) for line in lines] == ours.totals.tolist()
        per_token = [score for line in lines for score, _, _ in model.full_scores(line)]
        assert per_token == ours.tokens.tolist()
        assert [model.perplexity(line) for line in lines] == [
            10.0 ** -(total / (len(line.split()) + 1)) for line, total in zip(lines, ours.totals.tolist(), strict=True)]
        summary = query_summary(kenlm_bin, arpa, held_out)
        assert summary == {
            "Perplexity including OOVs": ours.perplexity(), "Perplexity excluding OOVs": ours.perplexity(False),
            "OOVs": int(ours.oov.sum()), "Tokens": len(ours.tokens),
        }
    # lmlab reading lmplz's file scores as lmplz's model does
    again = NgramModel.read_arpa(kenlm_arpa).log10_scores([lm.model.vocab.encode(s.split()) for s in lines])
    assert again.totals.tolist() == ours.totals.tolist()


def query_summary(kenlm_bin: Path, arpa: Path, text: Path) -> dict[str, float]:
    with text.open("rb") as stdin:
        query = subprocess.run([str(kenlm_bin / "query"), "-v", "summary", str(arpa)], stdin=stdin,
                               capture_output=True, text=True, timeout=60)
    assert query.returncode == 0, query.stderr[-2000:]
    found = dict(re.findall(r"^(Perplexity [a-z]+ OOVs|OOVs|Tokens):\t(\S+)$", query.stdout, re.MULTILINE))
    # query prints the shortest text that reads back as the same double, so == is fair
    return {name: (int(value) if name in ("OOVs", "Tokens") else float(value)) for name, value in found.items()}


def test_discount_fallback_equals_lmplz(kenlm_bin: Path, tmp_path: Path) -> None:
    """On text too small for 2- and 3-gram discounts, both substitute 0.5, 1, 1.5 for those orders alone."""
    small = TRAIN[:12]
    train = write_lines(tmp_path / "train.txt", small)
    lmplz = run_lmplz(kenlm_bin, train, tmp_path / "lmplz.arpa", 3, "--discount_fallback")
    assert lmplz.returncode == 0, lmplz.stderr[-2000:]
    # lmplz numbers the orders from 0 in this message: the unigram discounts are estimated, the rest fall back
    assert re.findall(r"Substituting fallback discounts for order (\d)", lmplz.stderr) == ["1", "2"]
    lm = train_lmlab(small, 3, fallback=True)
    lm.model.write_arpa(tmp_path / "lmlab.arpa")
    assert_same_arpa(tmp_path / "lmlab.arpa", tmp_path / "lmplz.arpa")


@pytest.mark.parametrize("sentences", [
    [["a", "b", "c"]] * 5,  # every n-gram seen equally often: no unigram of adjusted count 2
    [["a", "b"], ["b", "a"], ["a", "a", "b"], ["c"]],  # no bigram of adjusted count 3
    [["x2", "x1", "x3"], ["x2", "x1"], ["x3", "x0"], ["x1", "x2", "x3"], ["x2", "x2"]],  # bigram D2 < 0
], ids=["repeated", "tiny", "out-of-range"])
def test_bad_discounts_fail_on_the_order_lmplz_names(kenlm_bin: Path, tmp_path: Path, sentences) -> None:
    train = write_lines(tmp_path / "train.txt", sentences)
    lmplz = run_lmplz(kenlm_bin, train, tmp_path / "lmplz.arpa", 3)
    assert lmplz.returncode != 0 and "BadDiscountException" in lmplz.stderr, lmplz.stderr[-2000:]
    named = re.search(r"discounts for (\d)-grams|ERROR: (\d)-gram discount .* count (\d): (\S+)\.", lmplz.stderr)
    assert named, lmplz.stderr[-2000:]
    order, k, value = named.group(1) or named.group(2), named.group(3), named.group(4)
    expected = f"the {order}-gram discount D{k} = {value} is outside" if value else f"the {order}-gram discounts"
    with pytest.raises(LmlabError, match=rf"{re.escape(expected)}.*discount_fallback=true"):
        train_lmlab(sentences, 3)


def test_key_index_finds_what_binary_search_finds() -> None:
    """The hash table `log10_scores` looks n-grams up in agrees with binary search, collisions included."""
    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 5000):
        keys = np.unique(rng.integers(0, 10**12, size))
        wanted = np.concatenate([keys, rng.integers(0, 10**12, 500), keys[::3] + 1, keys[:5]])
        index = KeyIndex(keys)
        assert (index.find(wanted) == lookup(keys, wanted)).all()
    assert (index.slot_key[index._home(keys)] != keys).sum() > 100  # many keys sit past their home slot


def test_pruned_lmplz_model_scores_as_kenlm(kenlm_bin: Path, tmp_path: Path) -> None:
    """lmplz --prune drops rare n-grams, so a match can stop short of a longer n-gram whose context was
    kept: KenLM's query stops at the first n-gram it lacks, and so must lmlab's."""
    train = write_lines(tmp_path / "train.txt", TRAIN)
    lines = [" ".join(sentence) for sentence in HELD_OUT + TRAIN[:200]]
    for prune in (["0", "1", "1"], ["0", "1", "2", "2", "3"]):
        arpa = tmp_path / f"pruned-{len(prune)}.arpa"
        lmplz = run_lmplz(kenlm_bin, train, arpa, len(prune), "--prune", *prune)
        assert lmplz.returncode == 0, lmplz.stderr[-2000:]
        model = NgramModel.read_arpa(arpa)
        reference = kenlm.Model(str(arpa))
        ours = model.log10_scores([model.vocab.encode(line.split()) for line in lines])
        assert [reference.score(line) for line in lines] == ours.totals.tolist()
        assert [score for line in lines for score, _, _ in reference.full_scores(line)] == ours.tokens.tolist()


def test_log10f_is_the_c_librarys_to_the_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """lmplz writes the C library's log10f of each probability; lmlab's compiled loop must give the very
    same bits (NumPy's vectorised float32 log10 does not, on AVX-512 machines), with and without SVML."""
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    libm.log10f.argtypes, libm.log10f.restype = [ctypes.c_float], ctypes.c_float
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.integers(1, 0x7F800000, 200_000).astype(np.uint32).view(np.float32),  # every exponent, subnormals too
        rng.random(100_000, dtype=np.float32),  # probabilities
        np.array([0.0, 1.0, 0.5, np.finfo(np.float32).max], dtype=np.float32),
    ])
    expected = np.array([libm.log10f(value) for value in values.tolist()], dtype=np.float32).view(np.uint32)
    assert (log10f(values).view(np.uint32) == expected).all()
    monkeypatch.setattr(numba.config, "USING_SVML", True)
    assert (log10f(values[::50]).view(np.uint32) == expected[::50]).all()
