"""The analogy and word-similarity sets bundled with lmlab: well formed, installed, used by name by
`lmlab vectors evaluate`, and scored as gensim scores the same file with the same vectors."""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from lmlab.cli import main
from lmlab.models.word2vec import WordVectors, evaluate_analogies, evaluate_word_pairs, evaluation_set

SIZES = {("analogies", "en"): 100, ("analogies", "zh"): 80, ("pairs", "en"): 40, ("pairs", "zh"): 30}


def _sections(path: Path) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(": "):
            current = sections.setdefault(line[2:], [])
        else:
            current.append(line.split())
    return sections


def _pairs(path: Path) -> list[tuple[str, str, float]]:
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return [(a, b, float(score)) for a, b, score in lines]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_bundled_sets_are_well_formed_and_sized_as_their_card_says(language):
    sections = _sections(evaluation_set("analogies", language))
    assert sum(map(len, sections.values())) == SIZES["analogies", language]
    for questions in sections.values():
        pairs = {(a, b) for a, b, _, _ in questions}
        assert all(len(q) == 4 for q in questions) and len(pairs) == 5
        assert len({word for pair in pairs for word in pair}) == 10  # no word twice in a section
        assert sorted(map(tuple, questions)) == sorted(  # every ordered choice of two different pairs
            (*p, *q) for p, q in itertools.permutations(sorted(pairs), 2))
    pairs = _pairs(evaluation_set("pairs", language))
    assert len(pairs) == SIZES["pairs", language] and all(0 <= score <= 10 for _, _, score in pairs)
    assert len({(a, b) for a, b, _ in pairs}) == len(pairs)
    if language == "zh":  # one character per word: what `vectors train` makes of Chinese text
        assert all(len(word) == 1 for q in sections.values() for line in q for word in line)
    readme = (evaluation_set("analogies", language).parent / "README.md").read_text(encoding="utf-8")
    assert f"| {SIZES['pairs', language]} pairs |" in readme


def test_the_sets_are_package_data():
    setuptools = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = setuptools["package-data"]["lmlab.models.word2vec"]
    folder = evaluation_set("pairs", "en").parent
    shipped = {path.name for pattern in globs for path in folder.parent.glob(pattern)}
    assert shipped == {path.name for path in folder.iterdir()}


def _offset_vectors(language: str, seed: int = 0) -> WordVectors:
    """Vectors where each section's second words are its first plus a section offset plus noise, and
    the pair words near their similarity score: many right and many wrong answers, a sharp parity."""
    rng = np.random.default_rng(seed)
    table: dict[str, np.ndarray] = {}
    for questions in _sections(evaluation_set("analogies", language)).values():
        offset = rng.normal(size=24)
        for a, b, _, _ in questions:
            table.setdefault(a, rng.normal(size=24))
            table.setdefault(b, table[a] + offset + rng.normal(scale=1.1, size=24))
    for a, b, score in _pairs(evaluation_set("pairs", language)):
        table.setdefault(a, rng.normal(size=24))
        table.setdefault(b, table[a] * score / 10 + rng.normal(scale=0.6, size=24))
    words = list(table)
    return WordVectors(words, np.array([table[word] for word in words], dtype=np.float32))


def _gensim(vectors: WordVectors) -> KeyedVectors:
    keyed = KeyedVectors(vectors.dim)
    keyed.add_vectors(vectors.words, vectors.vectors)
    return keyed


@pytest.mark.parametrize("language", ["en", "zh"])
def test_bundled_sets_score_as_gensim_scores_them(language):
    vectors = _offset_vectors(language)
    questions, pairs = evaluation_set("analogies", language), evaluation_set("pairs", language)
    ours = evaluate_analogies(vectors, questions)
    score, sections = _gensim(vectors).evaluate_word_analogies(str(questions))
    assert ours.sections == {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"]))
                             for s in sections[:-1]}
    assert ours.accuracy == pytest.approx(score) and 0.2 < score < 0.95
    mine = evaluate_word_pairs(vectors, pairs)
    pearson, rho, oov = _gensim(vectors).evaluate_word_pairs(str(pairs))
    assert mine.spearman == pytest.approx(rho.statistic, abs=1e-6) and mine.pairs == SIZES["pairs", language]
    assert mine.pearson == pytest.approx(pearson.statistic, abs=1e-6) and oov == 0


def test_vectors_evaluate_uses_the_bundled_sets_by_name_and_agrees_with_gensim(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = []
    for language in ("en", "zh"):
        for questions in _sections(evaluation_set("analogies", language)).values():
            words = sorted({w for q in questions for w in q})
            lines += [(" " if language == "en" else "").join(rng.choice(words, size=8)) for _ in range(30)]
        words = sorted({w for a, b, _ in _pairs(evaluation_set("pairs", language)) for w in (a, b)})
        lines += [(" " if language == "en" else "").join(rng.choice(words, size=8)) for _ in range(60)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "vectors"
    assert main(["vectors", "train", str(corpus), "--out", str(out), "min_count=1", "epochs=3", "dim=16",
                 "sample=0"]) == 0
    capsys.readouterr()
    assert main(["vectors", "evaluate", str(out), "--json", str(tmp_path / "all.json")]) == 0  # no set named
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "all.json").read_text())
    assert set(result["analogies"]) == set(result["pairs"]) == {"en", "zh"}
    for language in ("en", "zh"):
        found = result["analogies"][language]
        assert found["answered"] == SIZES["analogies", language] and found["skipped"] == 0
        assert f"analogies {language}: accuracy {found['accuracy']:.3f} on {found['answered']:,} questions" in printed
        assert result["pairs"][language]["pairs"] == SIZES["pairs", language]

    assert main(["vectors", "export", str(out), str(tmp_path / "v.txt")]) == 0
    keyed = KeyedVectors.load_word2vec_format(str(tmp_path / "v.txt"))
    for language in ("en", "zh"):
        score, _ = keyed.evaluate_word_analogies(str(evaluation_set("analogies", language)))
        assert result["analogies"][language]["accuracy"] == pytest.approx(score)

    assert main(["vectors", "evaluate", str(out), "--analogies", "en", "--json", str(tmp_path / "en.json")]) == 0
    assert set(json.loads((tmp_path / "en.json").read_text())["analogies"]) == {"en"}
    assert main(["vectors", "evaluate", str(out), "--pairs", str(tmp_path / "missing.tsv")]) == 2
    assert "missing.tsv" in capsys.readouterr().err


def _small_run(tmp_path: Path, words: list[str]) -> Path:
    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, size=8)) for _ in range(200)) + "\n", encoding="utf-8")
    out = tmp_path / "vectors"
    assert main(["vectors", "train", str(corpus), "--out", str(out), "min_count=1", "epochs=2", "dim=8"]) == 0
    return out


def test_a_bundled_set_the_vocabulary_cannot_cover_is_skipped_with_a_warning_and_the_others_run(tmp_path, capsys):
    english = sorted({w for a, b, _ in _pairs(evaluation_set("pairs", "en")) for w in (a, b)})
    chinese = ["鑫", "曦", "琪", "翔"]  # Chinese, so the zh sets are used, but in neither of them
    zh_words = {w for a, b, _ in _pairs(evaluation_set("pairs", "zh")) for w in (a, b)}
    zh_words |= {w for questions in _sections(evaluation_set("analogies", "zh")).values() for q in questions
                 for w in q}
    assert not zh_words & set(chinese) and not any(c in w for w in zh_words for c in chinese)
    run = _small_run(tmp_path, english + chinese)
    capsys.readouterr()
    assert main(["vectors", "evaluate", str(run), "--json", str(tmp_path / "e.json")]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["warning: the bundled word-pair set zh: fewer than two pairs have both "
                                         "words in the vocabulary, so it is skipped"]
    printed = captured.out.splitlines()
    assert f"analogies zh: accuracy n/a (0 of {SIZES['analogies', 'zh']} answered: each has a word outside the " \
           "vocabulary)" in printed
    assert any(line.startswith("word pairs en: Spearman ") and f"({SIZES['pairs', 'en']} pairs, 0 skipped" in line
               for line in printed)
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["analogies"]["zh"]["accuracy"] is None and result["analogies"]["zh"]["answered"] == 0
    assert set(result["pairs"]) == {"en"} and result["pairs"]["en"]["pairs"] == SIZES["pairs", "en"]


def test_a_vocabulary_covering_no_bundled_set_is_one_error_and_a_named_file_keeps_its_error(tmp_path, capsys):
    run = _small_run(tmp_path, ["apple", "banana", "river", "stone", "cloud"])
    capsys.readouterr()
    assert main(["vectors", "evaluate", str(run), "--json", str(tmp_path / "e.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not (tmp_path / "e.json").exists()
    assert captured.err.splitlines() == [f"error: {run}: the vocabulary covers none of the bundled sets (en); "
                                         "give --analogies FILE and/or --pairs FILE"]
    # Named by the user: their set or file, an error naming it as they wrote it.
    assert main(["vectors", "evaluate", str(run), "--pairs", "en"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: the bundled word-pair set en: fewer than two pairs have both words in the vocabulary"]
    (tmp_path / "p.tsv").write_text("apple\tbanana\t3.0\napple\tunicorn\t1.0\n", encoding="utf-8")
    given = str(tmp_path) + "/./p.tsv"
    assert main(["vectors", "evaluate", str(run), "--pairs", given]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {given}: fewer than two pairs have both words in the vocabulary"]
    # An analogy set with no question answered has no accuracy, not an accuracy of 0.
    assert main(["vectors", "evaluate", str(run), "--analogies", "en", "--json", str(tmp_path / "a.json")]) == 0
    assert capsys.readouterr().out == (f"analogies en: accuracy n/a (0 of {SIZES['analogies', 'en']} answered: "
                                       "each has a word outside the vocabulary)\n")
    assert json.loads((tmp_path / "a.json").read_text())["analogies"]["en"]["accuracy"] is None
