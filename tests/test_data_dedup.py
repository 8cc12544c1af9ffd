"""Deduplication (exact and MinHash LSH) and the read -> clean -> dedup pipeline with its report."""

import itertools
import json
import pydoc_data.topics
import random

import numpy as np
import pytest
from datasketch import MinHashLSH

from lmlab.data import (
    CleanConfig,
    DataConfig,
    ExactDeduplicator,
    MinHashDeduplicator,
    PrepareReport,
    clean_text,
    estimate_jaccard,
    format_report,
    jaccard,
    optimal_bands,
    prepare_documents,
)
from lmlab.data.dedup import _CompactSignatures, _inserted, _KeyTable, shingle_hashes, shingles
from lmlab.errors import LmlabError

# Python's own documentation: real prose, always installed. These topics overlap at most ~0.42.
UNRELATED = [text for _, text in sorted(pydoc_data.topics.topics.items()) if 1500 < len(text) < 6000][:19]

CHINESE = (
    "自然语言处理是计算机科学领域与人工智能领域中的一个重要方向。它研究能实现人与计算机之间用自然语言"
    "进行有效通信的各种理论和方法。自然语言处理是一门融语言学、计算机科学、数学于一体的科学。"
)


def change_words(text: str, count: int, seed: int) -> str:
    words = text.split(" ")
    rng = random.Random(seed)
    for i in rng.sample(range(len(words)), count):
        words[i] = f"changed{i}"
    return " ".join(words)


def random_documents(count: int, seed: int) -> list[str]:
    """Unrelated documents, alternately English-like words and Chinese characters, ~200 characters each."""
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(3000)]
    hanzi = [chr(code) for code in range(0x4E00, 0x4E00 + 3000)]
    return [" ".join(rng.choices(words, k=35)) if i % 2 else "".join(rng.choices(hanzi, k=200)) for i in range(count)]


def edit(text: str, seed: int) -> str:
    """A near copy: one word replaced, or two characters of a text without spaces."""
    if " " in text:
        return change_words(text, 1, seed)
    chars = list(text)
    for i in random.Random(seed).sample(range(len(chars)), 2):
        chars[i] = "改"
    return "".join(chars)


def test_exact_duplicates():
    dedup = ExactDeduplicator()
    flags = [dedup.is_duplicate(t) for t in ["a", "b", "a", "中文", "中文 ", "中文", "b"]]
    assert flags == [False, False, True, False, False, True, True]
    assert len(dedup) == 4


def test_exact_duplicates_found_in_merged_and_recent_digests():
    texts = [f"文档 {i}" for i in range(6000)]  # more than one merge of recent digests into sorted ones
    dedup = ExactDeduplicator()
    assert not any(dedup.is_duplicate(text) for text in texts)
    assert all(dedup.is_duplicate(text) for text in reversed(texts))
    assert len(dedup) == len(texts)


def test_sorted_insertion_matches_numpy():
    array = np.array([10, 20, 30, 2**64 - 1], dtype=np.uint64)
    items = np.array([0, 15, 16, 30, 40], dtype=np.uint64)
    at = np.searchsorted(array, items)
    np.testing.assert_array_equal(_inserted(array, at, items), np.insert(array, at, items))
    np.testing.assert_array_equal(_inserted(array[:0], at[:0], items[:0]), array[:0])


def test_key_table_keeps_first_values_across_merges():
    # Distinct 64-bit keys, the first two at the edges of the first and the last partition.
    rng = random.Random(0)
    keys = list(dict.fromkeys([0, 2**64 - 1, *(rng.getrandbits(64) for _ in range(20_000))]))
    table = _KeyTable()
    for start in range(0, len(keys), 9):
        batch = keys[start : start + 9]
        assert table.get(batch) == [-1] * len(batch)
        table.add(batch, start)
    assert table._merged > 0 and table._recent  # some keys are in the sorted arrays, some still recent
    assert len(table) == len(keys)
    assert table.get(keys) == [9 * (i // 9) for i in range(len(keys))]
    assert table.get([12345, 2**63 + 7]) == [-1, -1]


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.5, 64), (0.7, 128), (0.8, 128), (0.9, 256)])
def test_band_choice_matches_datasketch(threshold, num_perm):
    reference = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert optimal_bands(threshold, num_perm) == (reference.b, reference.r)


def test_hashed_shingles_are_the_shingle_set():
    for text in ["", "短", "abcde", "The  Quick\nbrown fox, the quick brown fox", CHINESE]:
        assert shingle_hashes(text).size == len(shingles(text))
    assert shingles("Ab  C", size=3) == {"ab ", "b c"}


def test_estimated_jaccard_is_close_to_true_jaccard():
    minhash = MinHashDeduplicator(num_perm=256)
    pairs = [(UNRELATED[0], change_words(UNRELATED[0], n, seed=n)) for n in (5, 40, 120, 300)]
    pairs += [(UNRELATED[1], UNRELATED[2]), (CHINESE, CHINESE.replace("计算机", "电脑"))]
    for a, b in pairs:
        estimate = estimate_jaccard(minhash.signature(a), minhash.signature(b))
        assert abs(estimate - jaccard(a, b)) < 0.1
    similarities = [jaccard(a, b) for a, b in pairs]
    assert min(similarities) < 0.2 and max(similarities) > 0.9  # a spread of similarities is covered


def test_stored_low_bits_estimate_jaccard_without_bias():
    minhash = MinHashDeduplicator(num_perm=256)
    stored = _CompactSignatures(num_perm=256)
    pairs = [(UNRELATED[0], change_words(UNRELATED[0], n, seed=n)) for n in (5, 40, 120)]
    pairs += [(CHINESE, CHINESE.replace("计算机", "电脑")), *itertools.combinations(UNRELATED[:6], 2)]
    errors = []
    for index, (a, b) in enumerate(pairs):
        stored.append(minhash.signature(a))
        errors.append(stored.estimate_jaccard(index, minhash.signature(b)) - jaccard(a, b))
        assert stored.estimate_jaccard(index, minhash.signature(a)) == 1.0
    assert max(map(abs, errors)) < 0.1
    # Without removing chance agreements the estimates would run ~(1 - J) / 16 high, ~0.05 here.
    assert abs(np.mean(errors)) < 0.025


def test_long_documents_are_hashed_in_full():
    # Past 8192 shingles the signature is computed in blocks; an edit in the last block must count.
    text = " ".join(UNRELATED[:12])
    edited = text[:-3000] + change_words(text[-3000:], 200, seed=0)
    minhash = MinHashDeduplicator(num_perm=256)
    assert shingle_hashes(text).size > 8192
    estimate = estimate_jaccard(minhash.signature(text), minhash.signature(edited))
    assert abs(estimate - jaccard(text, edited)) < 0.1 and estimate < 0.95


def test_near_duplicates_caught_and_unrelated_kept():
    dedup = MinHashDeduplicator(threshold=0.7)
    assert max(jaccard(a, b) for a, b in itertools.combinations(UNRELATED, 2)) < 0.5
    assert not any(dedup.is_duplicate(text) for text in UNRELATED)
    edited = [change_words(text, 3, seed=i) for i, text in enumerate(UNRELATED)]
    assert min(jaccard(a, b) for a, b in zip(UNRELATED, edited, strict=True)) > 0.85
    assert all(dedup.is_duplicate(text) for text in edited)
    assert len(dedup) == len(UNRELATED)


def test_near_duplicates_found_across_signature_blocks_and_merges():
    documents = random_documents(4500, seed=0)  # more than one block of stored signatures
    dedup = MinHashDeduplicator(threshold=0.7)
    assert not any(dedup.is_duplicate(text) for text in documents)
    for index in (0, 1, 2000, 4095, 4096, 4498, 4499):  # first and second block, merged and recent band keys
        near_copy = edit(documents[index], seed=index)
        assert jaccard(near_copy, documents[index]) > 0.85
        assert dedup.is_duplicate(near_copy)
    assert len(dedup) == len(documents)


def test_chinese_near_duplicates_caught():
    dedup = MinHashDeduplicator(threshold=0.7)
    assert not dedup.is_duplicate(CHINESE)
    assert dedup.is_duplicate(CHINESE.replace("重要", "关键").replace("方法", "技术"))
    assert not dedup.is_duplicate("床前明月光，疑是地上霜。举头望明月，低头思故乡。" * 3)


def test_signatures_are_seeded():
    text = UNRELATED[3]
    first, again = MinHashDeduplicator(seed=1), MinHashDeduplicator(seed=1)
    np.testing.assert_array_equal(first.signature(text), again.signature(text))
    assert not np.array_equal(first.signature(text), MinHashDeduplicator(seed=2).signature(text))


def test_bad_parameters():
    with pytest.raises(LmlabError, match="threshold"):
        MinHashDeduplicator(threshold=0.0)
    with pytest.raises(LmlabError, match="num_perm"):
        MinHashDeduplicator(num_perm=0)


def write_corpus(tmp_path, texts):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    return path


def test_pipeline_counts_every_fate(tmp_path):
    near = change_words(UNRELATED[0], 2, seed=0)
    texts = [UNRELATED[0], "  ", "hi", UNRELATED[0] + "\n\n\n", near, "中文文档，不算太短。", "x" * 9000, "spam spam"]
    (tmp_path / "extra.txt").write_text(UNRELATED[1], encoding="utf-8")
    report = PrepareReport()
    cfg = DataConfig(clean=CleanConfig(min_chars=5, max_chars=8000, blocklist=["spam"]), near_threshold=0.7)
    kept = list(prepare_documents([write_corpus(tmp_path, texts), tmp_path / "extra.txt"], cfg, report))
    assert kept == [clean_text(UNRELATED[0], cfg.clean), "中文文档,不算太短。", clean_text(UNRELATED[1], cfg.clean)]
    assert report.to_dict() == {
        "documents_read": 9,
        "dropped_empty": 1,
        "dropped_too_short": 1,
        "dropped_too_long": 1,
        "dropped_low_alpha": 0,
        "dropped_blocklist": 1,
        "exact_duplicates": 1,  # the copy with trailing newlines is exact once cleaned
        "near_duplicates": 1,
        "kept": 3,
        "chars_in": sum(map(len, texts)) + len(UNRELATED[1]),
        "chars_out": sum(map(len, kept)),
    }
    assert "near duplicates" in format_report(report) and "3 (33.3%)" in format_report(report)


def test_dedup_modes(tmp_path):
    near = change_words(UNRELATED[0], 2, seed=0)
    corpus = write_corpus(tmp_path, [UNRELATED[0], UNRELATED[0], near])
    assert len(list(prepare_documents(corpus, DataConfig(dedup="none")))) == 3
    first, edited = (clean_text(text, CleanConfig()) for text in (UNRELATED[0], near))
    assert list(prepare_documents(corpus, DataConfig(dedup="exact"))) == [first, edited]
    assert list(prepare_documents(corpus, DataConfig(dedup="near"))) == [first]


def test_empty_and_fully_dropped_corpora_are_distinct_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(LmlabError, match=r"empty\.jsonl: the corpus is empty"):
        list(prepare_documents(tmp_path / "empty.jsonl"))
    corpus = write_corpus(tmp_path, ["a", "b"])
    with pytest.raises(LmlabError, match=r"corpus\.jsonl: all 2 documents were dropped .*too short 2"):
        list(prepare_documents(corpus, DataConfig(clean=CleanConfig(min_chars=3))))
