"""Corpus statistics: counts agree with a per-character reference built from Unicode names."""

import json
import unicodedata

import pytest

from lmlab.data import corpus_stats, format_stats

TEXTS = [
    "Hello, world! Ça va? naïve façade",
    "你好，世界。今天天气很好😀",
    "Hello, world! Ça va? naïve façade",
    "混合 mixed 文本 with ＡＢＣ full-width, 12345, ｶﾀｶﾅ and 한국어, "
    "compatibility \uf900\U0002f800 and extension B \U00020000 ideographs",
    "",
]


def is_cjk(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def is_latin_letter(ch: str) -> bool:
    return ch.isalpha() and "LATIN" in unicodedata.name(ch, "")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS), encoding="utf-8")
    return path


def test_counts_match_a_per_character_reference(corpus):
    stats = corpus_stats(corpus)
    visible = [ch for text in TEXTS for ch in text if not ch.isspace()]
    assert stats.documents == 5
    assert stats.characters == sum(len(t) for t in TEXTS)
    assert stats.bytes == sum(len(t.encode("utf-8")) for t in TEXTS)
    assert stats.exact_duplicates == 1 and stats.exact_duplicate_rate == pytest.approx(0.2)
    assert stats.non_space_characters == len(visible)
    assert stats.cjk_characters == sum(map(is_cjk, visible))
    assert stats.latin_characters == sum(map(is_latin_letter, visible))
    assert stats.cjk_share == pytest.approx(stats.cjk_characters / len(visible))
    assert (stats.shortest_document, stats.longest_document) == (0, max(len(t) for t in TEXTS))
    assert stats.mean_document_chars == pytest.approx(stats.characters / 5)


def test_dict_and_table(corpus):
    stats = corpus_stats(corpus)
    as_dict = stats.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["latin_share"] == stats.latin_share and as_dict["documents"] == 5
    table = format_stats(stats).splitlines()
    assert len({len(line) for line in table}) == 1  # aligned columns
    assert any(line.startswith("exact duplicates") and line.endswith("1 (20.0%)") for line in table)


def test_a_corpus_without_documents_has_zero_rates(tmp_path):
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    stats = corpus_stats(tmp_path / "empty.jsonl")
    assert stats.documents == 0
    assert stats.cjk_share == stats.exact_duplicate_rate == stats.bytes_per_char == 0.0
    assert "documents" in format_stats(stats)


def test_txt_blocks_are_counted_as_documents(tmp_path):
    (tmp_path / "a.txt").write_text("一\n\n二\n\n三", encoding="utf-8")
    assert corpus_stats(tmp_path, txt_mode="blocks").documents == 3
    assert corpus_stats(tmp_path).documents == 1
