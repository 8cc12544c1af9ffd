"""Silent data problems made loud: a vocabulary short of the size asked for, a split too small to
mean anything, and named corpora taken where corpus files are (`data prepare shakespeare`)."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from conftest import tiny_documents

from lmlab.cli import main
from lmlab.data.prepare import MIN_SPLIT_DOCUMENTS, MIN_SPLIT_TOKENS
from lmlab.datasets import load_corpus
from lmlab.errors import LmlabWarning
from lmlab.tokenizers import TokenizerConfig, train_tokenizer


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_a_vocabulary_short_of_the_size_asked_for_warns_with_what_it_reached(kind):
    with pytest.warns(LmlabWarning, match=rf"asked for 8,000 but the {kind} tokenizer reached ([\d,]+), because"
                      ) as caught:
        tokenizer = train_tokenizer(tiny_documents(), TokenizerConfig(kind=kind, vocab_size=8000))
    reached = re.search(r"reached ([\d,]+)", str(caught[0].message)).group(1)
    assert int(reached.replace(",", "")) == tokenizer.vocab_size < 8000


def test_a_vocabulary_of_the_size_asked_for_says_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", LmlabWarning)
        tokenizer = train_tokenizer(tiny_documents(), TokenizerConfig(kind="bpe", vocab_size=300))
    assert tokenizer.vocab_size == 300


def _corpus(tmp_path, documents):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    return path


def test_prepare_warns_in_one_line_each_of_a_short_vocabulary_and_a_tiny_split(tmp_path, capsys):
    corpus = _corpus(tmp_path, tiny_documents(40))
    out = tmp_path / "data"
    assert main(["data", "prepare", str(corpus), "--out", str(out), "tokenizer.vocab_size=8000",
                 "val_fraction=0.01", "data.dedup=none", "--json", str(tmp_path / "p.json")]) == 0
    err = capsys.readouterr().err.splitlines()
    val = json.loads((tmp_path / "p.json").read_text())["splits"]["val"]
    assert val["documents"] < MIN_SPLIT_DOCUMENTS and val["tokens"] < MIN_SPLIT_TOKENS
    assert len(err) == 2 and all(line.startswith("warning: ") for line in err)
    assert "tokenizer.vocab_size: asked for 8,000" in err[0]
    assert err[1] == (f"warning: {out / 'meta.json'}: the val split holds {val['documents']} document and "
                      f"{val['tokens']:,} tokens, too few for its figures to mean much (at least "
                      f"{MIN_SPLIT_DOCUMENTS} documents and {MIN_SPLIT_TOKENS:,} tokens); give it more text, "
                      "or a larger val_fraction")
    assert (out / "meta.json").exists()  # a warning, not a refusal: the folder is written


def test_prepare_of_enough_text_warns_of_nothing(tmp_path, capsys):
    corpus = _corpus(tmp_path, tiny_documents(60) * 3)
    assert main(["data", "prepare", str(corpus), "--out", str(tmp_path / "data"), "tokenizer.kind=char",
                 "tokenizer.vocab_size=50", "val_fraction=0.2", "data.dedup=none"]) == 0
    assert capsys.readouterr().err == ""


def test_data_prepare_takes_a_named_corpus(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path / "cache"))  # pydoc's topics: in the standard library
    out = tmp_path / "data"
    assert main(["data", "prepare", "pydoc", "--out", str(out), "tokenizer.vocab_size=1000",
                 "--json", str(tmp_path / "p.json")]) == 0
    report = json.loads((tmp_path / "p.json").read_text())["report"]
    assert report["documents_read"] == load_corpus("pydoc").card["size"]["documents"]
    assert f"wrote {out}/" in capsys.readouterr().out


def test_a_word_that_is_neither_a_file_nor_a_corpus_names_the_corpora(tmp_path, capsys):
    assert main(["data", "prepare", "shakespear", "--out", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: shakespear: no such file or directory, nor a named corpus (shakespeare, ")
    assert not (tmp_path / "data").exists()
