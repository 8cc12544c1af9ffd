"""word2vec: gensim reads our files, tables follow the formulas, queries and scores agree with gensim, same quality."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import gensim
import numpy as np
import pytest
from gensim.models import KeyedVectors, Word2Vec
from png_checks import drawn_png, saved_figures
from rich.console import Console
from scipy.stats import spearmanr

from lmlab.config import build_config, load_config
from lmlab.errors import LmlabError
from lmlab.models.word2vec import (
    Word2VecConfig,
    WordVectors,
    evaluate_analogies,
    evaluate_word_pairs,
    keep_probabilities,
    noise_table,
    read_corpus,
    spearman,
    train_word2vec,
)
from lmlab.train.vectors import VectorsTrainConfig, train_vectors_run

TEST_DATA = Path(gensim.__file__).parent / "test" / "test_data"


def lee_sentences(lowercase: bool = True) -> list[list[str]]:
    """gensim's Lee background corpus (300 news articles, 60k words), one article per line."""
    lines = (TEST_DATA / "lee_background.cor").read_text(encoding="utf-8").splitlines()
    return [re.findall(r"[a-z]+", line.lower()) if lowercase else re.findall(r"[A-Za-z]+", line) for line in lines]


def to_gensim(vectors: WordVectors) -> KeyedVectors:
    keyed = KeyedVectors(vectors.dim)
    keyed.add_vectors(vectors.words, vectors.vectors)
    return keyed


def from_gensim(model: Word2Vec) -> WordVectors:
    return WordVectors(list(model.wv.index_to_key), model.wv.vectors)


@pytest.fixture(scope="module")
def cased_vectors() -> WordVectors:
    """Vectors of the Lee corpus as written (capitals kept), so case folding in the evaluations is exercised."""
    return train_word2vec(lee_sentences(lowercase=False), Word2VecConfig(dim=40, min_count=2, epochs=10, seed=3))


@pytest.fixture(scope="module")
def analogy_vectors() -> WordVectors:
    """Made-up vectors that answer many questions of questions-words.txt, right and wrong, in two spellings.

    Each section gets a random offset and the second word of each pair is its first word plus that
    offset plus noise. A quarter of the words also get a near-copy in lower case, listed before or
    after them, which the evaluation must treat as the same word.
    """
    rng = np.random.default_rng(0)
    table: dict[str, np.ndarray] = {}
    offset = np.zeros(32)
    for line in (TEST_DATA / "questions-words.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            offset = rng.normal(size=32)
            continue
        a, b, c, d = line.split()
        for first, second in ((a, b), (c, d)):
            table.setdefault(first, rng.normal(size=32))
            table.setdefault(second, table[first] + offset + rng.normal(scale=1.2, size=32))
    words = list(table)
    for word in words[::4]:
        if word.lower() != word:
            table[word.lower()] = table[word] + rng.normal(scale=0.05, size=32)
    order = list(table)
    rng.shuffle(order)
    return WordVectors(order, np.array([table[word] for word in order]))


# -- the tables -----------------------------------------------------------------------------------


def test_vocabulary_subsampling_and_noise_tables_match_gensim_and_the_formulas() -> None:
    sentences = lee_sentences()
    corpus = read_corpus(sentences, min_count=2, max_sentence=10_000)
    model = Word2Vec(min_count=2, sample=1e-3, negative=5, ns_exponent=0.75)
    model.build_vocab(sentences)
    counts = {word: model.wv.get_vecattr(word, "count") for word in model.wv.index_to_key}
    assert dict(zip(corpus.words, corpus.counts.tolist(), strict=True)) == counts
    assert list(corpus.counts) == sorted(corpus.counts, reverse=True)

    # Subsampling: gensim stores keep-probability * (2**32 - 1), truncated to an integer.
    keep = keep_probabilities(corpus.counts, 1e-3)
    theirs = np.array([model.wv.get_vecattr(word, "sample_int") for word in corpus.words]) / (2**32 - 1)
    assert np.abs(keep - theirs).max() < 1e-9
    # The formula at hand-checkable points: c = 4sN keeps (2 + 1) / 4, c = sN keeps all, rarer words too.
    c = np.array([4.0, 1.0, 0.25]) * 100.0
    np.testing.assert_allclose(keep_probabilities(c, 100.0 / c.sum()), [0.75, 1.0, 1.0])
    assert (keep_probabilities(corpus.counts, 0.0) == 1.0).all()

    # Noise: the same cumulative table as gensim's (built in gensim's vocabulary order) ...
    in_gensim_order = np.array([counts[word] for word in model.wv.index_to_key])
    assert np.abs(noise_table(in_gensim_order, 0.75) - model.cum_table.astype(np.int64)).max() <= 1
    # ... whose steps are the unigram distribution to the 3/4.
    table = noise_table(corpus.counts, 0.75)
    share = np.diff(table, prepend=0) / (2**31 - 1)
    expected = corpus.counts**0.75 / (corpus.counts**0.75).sum()
    assert np.abs(share - expected).max() < 2 / 2**31
    assert table[-1] == 2**31 - 1


def test_long_sentences_are_cut_and_unknown_words_dropped() -> None:
    sentences = [["a"] * 7 + ["rare"], ["b", "a"], ["rare2"]]
    corpus = read_corpus(sentences, min_count=2, max_sentence=3)
    assert corpus.words == ["a"]  # "b" occurs once
    assert np.diff(corpus.bounds).tolist() == [3, 3, 1, 1]  # 7 a's cut 3+3+1; "b a" keeps its "a"


def test_subsampling_keeps_the_expected_share_of_words() -> None:
    # CBOW makes one example per kept word with a neighbour; in long sentences that is nearly every kept word.
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, 201)
    sentences = [list(rng.choice([f"w{i}" for i in range(200)], size=500, p=weights / weights.sum()))
                 for _ in range(100)]
    stats = []
    config = Word2VecConfig(architecture="cbow", dim=8, epochs=2, min_count=1, sample=1e-2, seed=0)
    vectors = train_word2vec(sentences, config, on_epoch=stats.append)
    expected = float((keep_probabilities(vectors.counts, 1e-2) * vectors.counts).sum())
    assert expected < 0.8 * 50_000  # subsampling does bite here
    for epoch in stats:
        assert abs(epoch.examples / expected - 1) < 0.01


# -- files --------------------------------------------------------------------------------------


def test_gensim_reads_our_word2vec_files_and_we_read_its(tmp_path: Path) -> None:
    sentences = lee_sentences() + [["café", "中国", "naïve"]] * 3
    vectors = train_word2vec(sentences, Word2VecConfig(dim=24, min_count=3, epochs=1, seed=0))
    assert "中国" in vectors
    for binary in (False, True):
        path = tmp_path / f"vectors.{'bin' if binary else 'txt'}"
        vectors.save_word2vec_format(path, binary=binary)
        theirs = KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert theirs.index_to_key == vectors.words
        # Binary is the float32 bytes; text prints 9 significant digits, enough to read every float32 back.
        np.testing.assert_array_equal(theirs.vectors, vectors.vectors)
        ours = WordVectors.load(path)  # text or binary told apart from the bytes
        assert ours.words == vectors.words
        np.testing.assert_array_equal(ours.vectors, vectors.vectors)
        # gensim writes binary without word2vec.c's newline after each vector: we read that too.
        theirs.save_word2vec_format(str(tmp_path / "gensim.out"), binary=binary)
        back = WordVectors.load_word2vec_format(tmp_path / "gensim.out")
        assert back.words == vectors.words
        np.testing.assert_array_equal(back.vectors, vectors.vectors)


def test_lmlab_directory_round_trip(tmp_path: Path) -> None:
    config = Word2VecConfig(dim=16, min_count=3, epochs=1, seed=0)
    vectors = train_word2vec(lee_sentences()[:50], config)
    vectors.save(tmp_path / "w2v")
    assert {p.name for p in (tmp_path / "w2v").iterdir()} == {"model.safetensors", "model.json"}
    loaded = WordVectors.load(tmp_path / "w2v")
    assert loaded.words == vectors.words and loaded.config == config
    np.testing.assert_array_equal(loaded.vectors, vectors.vectors)
    np.testing.assert_array_equal(loaded.counts, vectors.counts)
    plain = WordVectors(vectors.words[:5], vectors.vectors[:5])
    plain.save(tmp_path / "plain")
    assert WordVectors.load(tmp_path / "plain").config is None


def test_bad_files_are_errors_naming_the_place(tmp_path: Path) -> None:
    bad_header = tmp_path / "header.txt"
    bad_header.write_text("three 2\nword 1 2\n", encoding="utf-8")
    with pytest.raises(LmlabError, match=r"header\.txt:1"):
        WordVectors.load(bad_header)
    bad_row = tmp_path / "row.txt"
    bad_row.write_text("2 2\nfirst 1 2\nsecond 1\n", encoding="utf-8")
    with pytest.raises(LmlabError, match=r"row\.txt:3"):
        WordVectors.load_word2vec_format(bad_row, binary=False)
    short = tmp_path / "short.bin"
    short.write_bytes(b"2 2\nfirst " + np.ones(2, "<f4").tobytes())
    with pytest.raises(LmlabError, match="after 1 of the 2 vectors"):
        WordVectors.load_word2vec_format(short, binary=True)
    with pytest.raises(LmlabError, match="cannot hold"):
        WordVectors(["two words"], np.ones((1, 2))).save_word2vec_format(tmp_path / "x.txt")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.json").write_text('{"family": "gpt", "config": {}}', encoding="utf-8")
    (tmp_path / "other" / "model.safetensors").write_bytes(b"")
    with pytest.raises(LmlabError, match="model.safetensors"):
        WordVectors.load(tmp_path / "other")


def test_config_and_input_mistakes_are_errors() -> None:
    with pytest.raises(LmlabError, match="windw"):
        build_config(Word2VecConfig, {"windw": 3})
    with pytest.raises(LmlabError, match="architecture"):
        build_config(Word2VecConfig, {"architecture": "glove"})
    with pytest.raises(LmlabError, match="lists of words"):
        train_word2vec(["a whole line of text"], Word2VecConfig(min_count=1))
    with pytest.raises(LmlabError, match="min_count=5"):
        train_word2vec([["too", "few"]], Word2VecConfig())
    vectors = WordVectors(["a", "b"], np.eye(2))
    with pytest.raises(LmlabError, match="'c' is not in the vocabulary"):
        vectors.most_similar("c")


# -- queries and evaluations against gensim on the same vectors -----------------------------------------


def test_similarity_most_similar_and_analogy_agree_with_gensim(cased_vectors: WordVectors) -> None:
    keyed = to_gensim(cased_vectors)
    for a, b in [("fire", "fires"), ("Australia", "Sydney"), ("the", "government")]:
        assert cased_vectors.similarity(a, b) == pytest.approx(keyed.similarity(a, b), abs=1e-5)
    queries = [
        {"positive": ["fire"]},
        {"positive": ["Sydney", "government"], "negative": ["police"]},
        {"positive": ["Australia"], "topn": 25, "restrict_vocab": 500},
    ]
    for query in queries:
        ours = cased_vectors.most_similar(**query)
        theirs = keyed.most_similar(**query)
        assert [word for word, _ in ours] == [word for word, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    ours = cased_vectors.analogy("Sydney", "Australia", "America", topn=5)
    theirs = keyed.most_similar(positive=["Sydney", "America"], negative=["Australia"], topn=5)
    assert [word for word, _ in ours] == [word for word, _ in theirs]


@pytest.mark.parametrize("restrict_vocab", [300_000, 600])
@pytest.mark.parametrize("which", ["made-up", "trained"])
def test_analogy_evaluation_agrees_with_gensim(analogy_vectors: WordVectors, cased_vectors: WordVectors,
                                               which: str, restrict_vocab: int) -> None:
    vectors = analogy_vectors if which == "made-up" else cased_vectors
    questions = TEST_DATA / "questions-words.txt"
    ours = evaluate_analogies(vectors, questions, restrict_vocab=restrict_vocab)
    score, sections = to_gensim(vectors).evaluate_word_analogies(str(questions), restrict_vocab=restrict_vocab)
    theirs = {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections[:-1]}
    assert ours.sections == theirs
    assert ours.accuracy == pytest.approx(score)
    if which == "made-up":  # many right and many wrong answers: a sharp comparison
        assert 0.2 < ours.accuracy < 0.8 and sum(n for _, n in ours.sections.values()) > 1000


@pytest.mark.parametrize("restrict_vocab", [300_000, 1500])
def test_word_pair_evaluation_agrees_with_gensim(cased_vectors: WordVectors, restrict_vocab: int) -> None:
    keyed = to_gensim(cased_vectors)
    for pairs in ("wordsim353.tsv", "simlex999.txt"):
        ours = evaluate_word_pairs(cased_vectors, TEST_DATA / pairs, restrict_vocab=restrict_vocab)
        pearson, rho, oov_ratio = keyed.evaluate_word_pairs(str(TEST_DATA / pairs), restrict_vocab=restrict_vocab)
        # Cosines agree to float32 rounding (1e-7), which may swap two near-tied ranks: about 1e-4 of rho.
        assert ours.spearman == pytest.approx(rho.statistic, abs=1e-3)
        assert ours.pearson == pytest.approx(pearson.statistic, abs=1e-6)
        assert 100 * ours.skipped / (ours.skipped + ours.pairs) == pytest.approx(oov_ratio)
        assert ours.pairs > 40


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, size=200).astype(float)  # many ties
    y = x + rng.normal(0, 3, size=200)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert spearman(x, np.round(y)) == pytest.approx(spearmanr(x, np.round(y)).statistic, abs=1e-12)


# -- training -------------------------------------------------------------------------------------


def topic_sentences(seed: int) -> list[list[str]]:
    """Two topics whose words never meet: a model that learned anything puts each topic's words together."""
    rng = np.random.default_rng(seed)
    topics = [[f"sea{i}" for i in range(10)], [f"sky{i}" for i in range(10)]]
    return [list(rng.choice(topics[i % 2], size=12)) for i in range(400)]


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_both_architectures_learn_which_words_go_together(architecture: str) -> None:
    vectors = train_word2vec(topic_sentences(0), Word2VecConfig(architecture=architecture, dim=16, epochs=5,
                                                                min_count=1, sample=0, seed=0))
    for word in ("sea0", "sky3"):
        neighbours = [w for w, _ in vectors.most_similar(word, topn=9)]
        assert all(w[:3] == word[:3] for w in neighbours), neighbours


def test_one_worker_reproduces_a_run_and_two_workers_train_too() -> None:
    sentences = lee_sentences()[:100]
    config = Word2VecConfig(dim=20, min_count=2, epochs=2, seed=5, batch_words=1000)
    first, again = train_word2vec(sentences, config), train_word2vec(sentences, config)
    np.testing.assert_array_equal(first.vectors, again.vectors)
    other = train_word2vec(sentences, config.model_copy(update={"seed": 6}))
    assert not np.array_equal(first.vectors, other.vectors)
    threaded = train_word2vec(topic_sentences(1), Word2VecConfig(dim=16, epochs=5, min_count=1, sample=0, workers=2))
    assert all(w.startswith("sea") for w, _ in threaded.most_similar("sea1", topn=9))


def test_skipgram_quality_is_within_a_few_points_of_gensim() -> None:
    # Same corpus, settings and seeds, one worker each, so both sides are deterministic; two seeds
    # averaged. Spearman with WordSim-353 (133 pairs in this vocabulary) is the signal a 60k-word
    # corpus gives; its analogy accuracy is about 1% for both and says nothing.
    sentences = lee_sentences()
    settings = {"window": 5, "negative": 5, "sample": 1e-3, "min_count": 2, "epochs": 15, "alpha": 0.025}
    ours, theirs = [], []
    for seed in (0, 1):
        config = Word2VecConfig(architecture="skipgram", dim=50, seed=seed, workers=1, **settings)
        vectors = train_word2vec(sentences, config)
        model = Word2Vec(sentences, sg=1, vector_size=50, seed=seed, workers=1, **settings)
        ours.append(evaluate_word_pairs(vectors, TEST_DATA / "wordsim353.tsv").spearman)
        theirs.append(evaluate_word_pairs(from_gensim(model), TEST_DATA / "wordsim353.tsv").spearman)
    assert np.mean(theirs) > 0.1  # the settings do learn something: the comparison means something
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.05, (ours, theirs)


def test_plot_words_writes_a_png(cased_vectors: WordVectors, tmp_path: Path, monkeypatch) -> None:
    import matplotlib.image

    saved = saved_figures(monkeypatch)
    path = tmp_path / "map.png"
    words = ["fire", "fires", "Sydney", "Australia", "government", "police"]
    cased_vectors.plot_words(words, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).ndim == 3
    drawn_png(path)
    (plot,) = saved[0].axes  # a point and a label per word
    assert [text.get_text() for text in plot.texts] == words and len(plot.collections[0].get_offsets()) == 6
    with pytest.raises(LmlabError, match="not in the vocabulary"):
        cased_vectors.plot_words(["fire", "nonexistentword"], tmp_path / "bad.png")


def test_text_sentences_split_words_chinese_characters_and_lines() -> None:
    from lmlab.models.word2vec import text_sentences

    text = "The King's men\n\n中国人民 spoke, 2 times.\n"
    assert list(text_sentences([text])) == [["the", "king's", "men"], ["中", "国", "人", "民", "spoke", "2", "times"]]
    assert list(text_sentences(["Ab c"], unit="character", lowercase=False)) == [["A", "b", "c"]]


def test_word2vec_cli_trains_queries_and_exports_for_gensim(tmp_path: Path, capsys) -> None:
    from lmlab.cli import main

    rng = np.random.default_rng(0)
    topics = [["cat", "dog", "pet", "fur"], ["stock", "bank", "money", "loan"]]
    lines = [" ".join(rng.choice(topics[i % 2], size=8)) for i in range(400)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "vectors"
    assert main(["vectors", "train", str(corpus), "--out", str(out), "min_count=1", "epochs=10", "dim=16",
                 "sample=0", "--json", str(tmp_path / "train.json")]) == 0
    trained = json.loads((tmp_path / "train.json").read_text())
    assert trained["dim"] == 16 and trained["words"] == 8 and len(trained["epochs"]) == 10
    assert main(["vectors", "similar", str(out), "cat", "--topn", "3", "--json", str(tmp_path / "similar.json")]) == 0
    neighbours = capsys.readouterr().out.splitlines()[-1]
    assert neighbours.startswith("cat:") and set(re.findall(r"[a-z]+", neighbours[4:])) <= {"dog", "pet", "fur"}
    [similar] = json.loads((tmp_path / "similar.json").read_text())
    assert similar["word"] == "cat" and [n["word"] for n in similar["neighbours"]] == re.findall(
        r"([a-z]+) [\d.-]+", neighbours[4:])
    assert main(["vectors", "analogy", str(out), "dog", "cat", "bank", "--topn", "2",
                 "--json", str(tmp_path / "analogy.json")]) == 0
    analogy = json.loads((tmp_path / "analogy.json").read_text())
    assert (analogy["a"], analogy["b"], analogy["c"]) == ("dog", "cat", "bank") and len(analogy["answers"]) == 2
    assert capsys.readouterr().out.startswith("dog - cat + bank = " + analogy["answers"][0]["word"])
    assert main(["vectors", "export", str(out), str(tmp_path / "v.bin"), "--binary"]) == 0
    loaded = KeyedVectors.load_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    assert np.array_equal(loaded["bank"], WordVectors.load(out)["bank"])
    assert main(["vectors", "map", str(out), "cat", "dog", "bank", "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    drawn_png(tmp_path / "m.png")
    assert main(["vectors", "train", str(corpus), "--out", str(tmp_path / "x"), "dimm=3"]) == 2
    assert "dimm" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["vectors", "similar", str(out), "unicorn"]) == 2


# -- a run directory ------------------------------------------------------------------------------

RUN_FILES = ["config.yaml", "metrics.jsonl", "model.json", "model.safetensors", "summary.json"]


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_word2vec_run_writes_config_metrics_summary_and_vectors(tmp_path: Path) -> None:
    sentences = topic_sentences(0)
    corpus = tmp_path / "corpus.jsonl"  # ten sentences a document, under a field other than "text"
    corpus.write_text("".join(json.dumps({"body": "\n".join(" ".join(s) for s in sentences[i:i + 10])}) + "\n"
                              for i in range(0, len(sentences), 10)), encoding="utf-8")
    model = {"family": "word2vec", "dim": 12, "epochs": 4, "min_count": 1, "sample": 0, "seed": 0}
    cfg = VectorsTrainConfig(run_dir=str(tmp_path / "run"), paths=[str(corpus)], text_field="body", model=model)
    printed = io.StringIO()
    result = train_vectors_run(cfg, console=Console(file=printed))
    run = tmp_path / "run"
    assert result.run_dir == run and sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "run"]
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES
    assert re.findall(r"^epoch (\d)/4: loss \d\.\d{4}, [\d,]+ words/s$", printed.getvalue(), re.M) == list("1234")

    metrics = read_metrics(run)
    assert [m["epoch"] for m in metrics] == [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert all(m["words"] == 400 * 12 and m["examples"] > m["words"] for m in metrics)
    assert all(math.isfinite(m["loss"]) and m["loss"] > 0 for m in metrics) and metrics[-1]["loss"] < metrics[0]["loss"]
    assert all(m["words_per_s"] == pytest.approx(m["words"] / m["seconds"]) for m in metrics)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary == {
        "family": "word2vec", "epochs": 4, "words_seen": 4 * 400 * 12, "train_seconds": result.seconds,
        "parameters": 2 * 20 * 12, "vocabulary": 20, "train_loss": metrics[-1]["loss"],
    }
    assert (result.steps, result.tokens_seen, result.train_loss, result.val_loss) == (4, 4 * 4800, metrics[-1]["loss"],
                                                                                      None)
    assert result.seconds >= sum(m["seconds"] for m in metrics) > 0
    assert load_config(VectorsTrainConfig, run / "config.yaml") == cfg
    spec = json.loads((run / "model.json").read_text(encoding="utf-8"))
    assert spec["family"] == "word2vec" and spec["config"] == Word2VecConfig(
        dim=12, epochs=4, min_count=1, sample=0, seed=0).model_dump(mode="json")

    loaded = WordVectors.load(run)
    assert loaded.words == result.vectors.words and np.array_equal(loaded.vectors, result.vectors.vectors)
    assert np.array_equal(loaded.counts, result.vectors.counts) and loaded.config == Word2VecConfig(
        dim=12, epochs=4, min_count=1, sample=0, seed=0)
    # The corpus read from files is the very list of sentences: the same seed gives the same vectors.
    direct = train_word2vec(sentences, loaded.config)
    assert direct.words == loaded.words and np.array_equal(direct.vectors, loaded.vectors)

    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(LmlabError, match=f"run_dir: {re.escape(str(run))} already holds files"):
        train_vectors_run(cfg, console=Console(file=io.StringIO()))
    assert (run / "model.safetensors").read_bytes() == before and sorted(p.name for p in run.iterdir()) == RUN_FILES


def test_word2vec_cli_train_writes_a_run_directory_and_refuses_bad_keys(tmp_path: Path, capsys) -> None:
    from lmlab.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in topic_sentences(1)) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    train = ["vectors", "train", str(corpus), "--out", str(run), "min_count=1", "epochs=5",
             "dim=16", "sample=0", "architecture=cbow"]
    assert main(train) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[:5]] == [f"epoch {epoch}/5" for epoch in range(1, 6)]
    assert out[5] == f"20 words x 16 dimensions (cbow); wrote {run}/" and out[6].startswith("next: lmlab vectors")
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES and len(read_metrics(run)) == 5
    cfg = load_config(VectorsTrainConfig, run / "config.yaml")
    settings = cfg.model_settings()
    assert (cfg.run_dir, cfg.paths, settings.unit, settings.keep_case) == (str(run), [str(corpus)], "word", False)
    assert (settings.family, settings.epochs, settings.dim, settings.architecture) == ("word2vec", 5, 16, "cbow")
    assert json.loads((run / "summary.json").read_text(encoding="utf-8"))["epochs"] == 5
    assert main(["vectors", "similar", str(run), "sky1", "--topn", "3"]) == 0
    assert re.fullmatch(r"sky1: sky\d \S+, sky\d \S+, sky\d \S+\n", capsys.readouterr().out)

    assert main(train) == 2
    assert capsys.readouterr().err == (
        f"error: run_dir: {run} already holds files; choose another run_dir or delete it\n")
    bad = tmp_path / "bad"
    assert main(["vectors", "train", str(corpus), "--out", str(bad), "window_size=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "window_size" in err and not bad.exists()
    assert main(["vectors", "train", str(corpus), "--out", str(bad), "epochs=0"]) == 2
    assert capsys.readouterr().err.startswith("error: config: model.epochs: ") and not bad.exists()


def test_lmlab_train_takes_word2vec_through_the_registry(tmp_path: Path, packed_dir: Path, capsys) -> None:
    """`lmlab train model.family=word2vec` finds the trainer by the family's kind, and the run is what
    `lmlab vectors train` writes; eval compare says it gives no probabilities rather than failing oddly."""
    from lmlab.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in topic_sentences(1)) + "\n", encoding="utf-8")
    settings = ["model.min_count=1", "model.epochs=3", "model.dim=8", "model.sample=0"]
    assert main(["train", "model.family=word2vec", f"paths={corpus}", f"run_dir={tmp_path / 'a'}", *settings]) == 0
    assert main(["vectors", "train", str(corpus), "--out", str(tmp_path / "b"),
                 *(s.removeprefix("model.") for s in settings)]) == 0
    a, b = WordVectors.load(tmp_path / "a"), WordVectors.load(tmp_path / "b")
    assert a.words == b.words and np.array_equal(a.vectors, b.vectors)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == RUN_FILES
    capsys.readouterr()
    assert main(["eval", "compare", str(tmp_path / "a"), "--data", str(packed_dir)]) == 2
    assert "word2vec model (word-vectors) gives no next-token probabilities" in capsys.readouterr().err


def test_training_word_vectors_says_what_to_run_next(tmp_path: Path, capsys) -> None:
    from lmlab.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in topic_sentences(2)) + "\n", encoding="utf-8")
    assert main(["train", "model.family=word2vec", f"paths={corpus}", f"run_dir={tmp_path / 'v'}",
                 "model.min_count=1", "model.epochs=2", "model.dim=8", "--json", str(tmp_path / "t.json")]) == 0
    printed = capsys.readouterr().out
    assert "epochs" in printed and f"next: lmlab vectors similar {tmp_path / 'v'}" in printed
    assert json.loads((tmp_path / "t.json").read_text())["steps"] == 2
    assert main(["eval", str(tmp_path / "v")]) == 2
    assert "gives no next-token probabilities" in capsys.readouterr().err
