"""Instruction and preference data: readers that name each defect, and the verifiable tasks with their checkers."""

from __future__ import annotations

import datetime
import json
import random
import re

import pytest

from lmlab.datasets.chat import (
    check_reply,
    conversation_splits,
    partial_credit,
    plausible_wrong,
    preference_splits,
    read_conversations,
    read_preferences,
)
from lmlab.datasets.chat.tasks import KINDS, generate_tasks
from lmlab.errors import LmlabError

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write_lines(path, lines: list[str | bytes]) -> None:
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines))


@pytest.mark.parametrize(("line", "named"), [
    (b"\xff\xfe broken", r"data.jsonl:2: not UTF-8"),
    ("{not json", r"data.jsonl:2: not JSON"),
    ("[1, 2]", r"data.jsonl:2: a record must be a JSON object"),
    ('{"text": "hi"}', r'data.jsonl:2: an instruction record needs "messages"'),
    ('{"messages": [{"role": "user", "content": "hi"}]}', r"data.jsonl:2: messages hold no assistant turn"),
    ('{"messages": [{"role": "robot", "content": "hi"}]}', r"data.jsonl:2: messages\[0\].role"),
])
def test_conversation_file_defects_name_file_line_and_field(tmp_path, line, named):
    path = tmp_path / "data.jsonl"
    write_lines(path, [json.dumps(CHAT), line])
    with pytest.raises(LmlabError, match=named):
        read_conversations(path)


@pytest.mark.parametrize(("record", "named"), [
    ({"prompt": "q", "chosen": "a"}, 'needs "rejected"'),
    ({"prompt": "q", "chosen": "", "rejected": "b"}, "chosen must be a non-empty string"),
    ({"prompt": [{"role": "user", "content": 1}], "chosen": "a", "rejected": "b"}, r"prompt: messages\[0\].content"),
    ({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "chosen": "a",
      "rejected": "b"}, "ends with an assistant turn"),
])
def test_preference_file_defects_are_named(tmp_path, record, named):
    path = tmp_path / "pairs.jsonl"
    write_lines(path, [json.dumps(record)])
    with pytest.raises(LmlabError, match=f"pairs.jsonl:1: .*{named}"):
        read_preferences(path)


def test_a_string_prompt_becomes_one_user_turn_and_other_fields_ride_along(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_lines(path, [json.dumps({"prompt": "q", "chosen": "a", "rejected": "b", "answer": "a"})])
    (record,) = read_preferences(path)
    assert record["prompt"] == [{"role": "user", "content": "q"}] and record["answer"] == "a"


def test_user_files_split_80_10_10_and_a_directory_keeps_its_splits(tmp_path):
    path = tmp_path / "chats.jsonl"
    write_lines(path, [json.dumps({**CHAT, "id": i}) for i in range(20)])
    splits = conversation_splits(path, seed=3)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    assert sorted(r["id"] for rows in splits.values() for r in rows) == list(range(20))
    assert splits == conversation_splits(path, seed=3) != conversation_splits(path, seed=4)
    with pytest.raises(LmlabError, match="no validation.jsonl"):
        (tmp_path / "dir").mkdir()
        (tmp_path / "dir" / "train.jsonl").write_text(json.dumps(CHAT))
        conversation_splits(tmp_path / "dir")


@pytest.mark.parametrize("name", ["tasks-en", "tasks-zh", "tasks", "tasks-large"])
def test_named_task_sets_have_disjoint_splits_of_every_kind(name):
    splits = conversation_splits(name)
    questions = {split: {r["messages"][0]["content"] for r in rows} for split, rows in splits.items()}
    assert not questions["train"] & questions["test"] and not questions["train"] & questions["validation"]
    assert {r["kind"] for r in splits["test"]} == set(KINDS)
    assert len(splits["train"]) > 2000


def test_tasks_large_holds_out_what_tasks_holds_out_and_trains_on_ten_times_the_questions():
    small, large = conversation_splits("tasks"), conversation_splits("tasks-large")
    assert large["validation"] == small["validation"] and large["test"] == small["test"]
    assert large["train"][:len(small["train"])] == small["train"]
    questions = [r["messages"][0]["content"] for r in large["train"]]
    assert len(set(questions)) == len(questions) > 10 * len(small["train"])
    assert {r["language"] for r in large["train"][len(small["train"]):][:2]} == {"en", "zh"}  # alternating


def test_tasks_are_the_same_for_the_same_seed_and_differ_for_another():
    assert generate_tasks("en", 20, seed=1) == generate_tasks("en", 20, seed=1) != generate_tasks("en", 20, seed=2)


def test_the_checker_accepts_the_answer_and_rejects_every_plausible_wrong_one():
    rng = random.Random(0)
    for language in ("en", "zh"):
        for record in generate_tasks(language, 60, seed=5):
            assert check_reply(record, record["answer"]), record
            assert check_reply(record, f"  {record['answer']}. "), record  # spacing and a full stop do not matter
            wrong = plausible_wrong(record, rng)
            assert wrong != record["answer"] and not check_reply(record, wrong), (record, wrong)


@pytest.mark.parametrize(("answer", "reply", "credit"), [
    ("632", "632.", 1.0), ("632", "631", 2 / 3), ("632", "532", 2 / 3),  # digits compared from the units up
    ("632", "32", 2 / 3), ("632", "6320", 0.0), ("632", "seven", 0.0),  # a missing digit costs one, a shift all
    ("2, 5, 9", "2, 9, 5", 1 / 3), ("2, 5, 9", "2、5", 2 / 3), ("2, 5, 9", "2, 5, 9, 9", 3 / 4),
    ("Friday", "Monday", 0.0), ("7", "8", 0.0),  # one part only: right or wrong, nothing in between
])
def test_partial_credit_is_the_share_of_parts_in_place(answer, reply, credit):
    record = {"answer": answer}
    assert partial_credit(record, reply) == pytest.approx(credit)
    assert check_reply(record, reply) == (credit == 1.0)


def test_partial_credit_is_one_for_right_answers_and_below_for_every_plausible_wrong_one():
    rng = random.Random(1)
    for record in generate_tasks("zh", 40, seed=3) + generate_tasks("en", 40, seed=3):
        assert partial_credit(record, record["answer"]) == 1.0
        assert 0.0 <= partial_credit(record, plausible_wrong(record, rng)) < 1.0


@pytest.mark.parametrize(("kind", "language"), [("add", "en"), ("subtract", "zh"), ("sort", "en"), ("weekday", "zh")])
def test_answers_are_right(kind, language):
    """The answers are recomputed here from the question text, independently of the generator."""
    for record in (r for r in generate_tasks(language, 30, seed=9) if r["kind"] == kind):
        question = record["messages"][0]["content"]
        numbers = [int(n) for n in re.findall(r"\d+", question)]
        if kind == "add":
            assert int(record["answer"]) == numbers[0] + numbers[1]
        elif kind == "subtract":
            assert int(record["answer"]) == numbers[0] - numbers[1]
        elif kind == "sort":
            assert record["answer"] == ", ".join(map(str, sorted(numbers)))
        else:
            day = datetime.date(*numbers[:3])
            assert record["answer"] == "星期" + "一二三四五六日"[day.weekday()]


def test_preference_pairs_keep_the_conversation_splits():
    conversations, pairs = conversation_splits("tasks"), preference_splits("preferences-tasks")
    for split in ("train", "validation", "test"):
        assert [p["prompt"] for p in pairs[split]] == [r["messages"][:-1] for r in conversations[split]]
        assert all(p["chosen"] == p["answer"] != p["rejected"] for p in pairs[split])


def test_mixed_pairs_reject_a_plausible_wrong_answer_or_another_questions_answer_in_each_language():
    conversations, pairs = conversation_splits("tasks"), preference_splits("preferences-tasks-mixed")
    for split in ("train", "test"):
        assert [p["prompt"] for p in pairs[split]] == [r["messages"][:-1] for r in conversations[split]]
        assert all(p["chosen"] == p["answer"] != p["rejected"] for p in pairs[split])
        answers = {(r["language"], r["kind"], r["answer"]) for r in conversations[split]}
        off_topic = [p for p in pairs[split] if p["rejected_by"] == "another question"]
        # another question's answer, of another kind, in the same language, from the same split
        assert all(any((p["language"], kind, p["rejected"]) in answers for kind in KINDS if kind != p["kind"])
                   for p in off_topic)
        for language in ("en", "zh"):
            share = sum(p["language"] == language for p in off_topic) / sum(p["language"] == language
                                                                           for p in pairs[split])
            assert 0.45 < share < 0.55
