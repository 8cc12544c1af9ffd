"""Bad input to the chat tasks: one `error:` line naming the file, line and field, exit status 2, and no run left."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import chat_tune_words, tiny_decoder_base

from lmlab.cli import main

USER = {"role": "user", "content": "What is 2 + 3?"}
ASSISTANT = {"role": "assistant", "content": "5"}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return tiny_decoder_base(tmp_path_factory.mktemp("errors"))


def write_lines(path, records) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def refused(capsys, words, *named) -> str:
    assert main(["tune", *words]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in named:
        assert part in err, (part, err)
    return err


GOOD = {"messages": [USER, ASSISTANT]}


@pytest.mark.parametrize("bad,named", [
    ({"messages": [{"role": "robot", "content": "hi"}, ASSISTANT]}, "messages[0].role"),
    ({"messages": []}, "messages must be a non-empty list"),
    ({"messages": [USER, {"role": "assistant", "content": "x " * 200}]}, "more than block_size=96"),
])
def test_a_bad_conversation_is_named_by_file_line_and_field(base_run, tmp_path, capsys, bad, named):
    data = tmp_path / "chat.jsonl"
    write_lines(data, [GOOD] * 5 + [bad] + [GOOD] * 14)
    refused(capsys, chat_tune_words(base_run, "sft", str(data), tmp_path / "run", 2), f"{data}:6", named)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("task", ["dpo", "reward"])
def test_a_preference_record_missing_rejected_is_named(base_run, tmp_path, capsys, task):
    data = tmp_path / "pairs.jsonl"
    pair = {"prompt": "What is 2 + 3?", "chosen": "5", "rejected": "6"}
    write_lines(data, [pair] * 3 + [{"prompt": "hi", "chosen": "hello"}] + [pair] * 16)
    refused(capsys, chat_tune_words(base_run, task, str(data), tmp_path / "run", 2), f"{data}:4", '"rejected"')
    assert not (tmp_path / "run").exists()


def test_a_grpo_prompt_leaving_no_room_for_a_reply_is_named(base_run, tmp_path, capsys):
    data = tmp_path / "tasks.jsonl"
    long = {"messages": [{"role": "user", "content": "count " * 40}, ASSISTANT], "answer": "5"}
    write_lines(data, [{**GOOD, "answer": "5"}] * 2 + [long] + [{**GOOD, "answer": "5"}] * 17)
    refused(capsys, chat_tune_words(base_run, "grpo", str(data), tmp_path / "run", 2, "limit_train=20"),
            f"{data}:3", "a reply of up to 24")
    assert not (tmp_path / "run").exists()


def test_a_template_that_cannot_render_is_named(base_run, tmp_path, capsys):
    base = tmp_path / "base"
    shutil.copytree(base_run, base)
    (base / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content.nope() }}{% endfor %}",
                                              encoding="utf-8")
    refused(capsys, chat_tune_words(base, "sft", "tasks-en", tmp_path / "run", 2),
            str(base / "chat_template.jinja"), "rendering failed")
    assert not (tmp_path / "run").exists()
