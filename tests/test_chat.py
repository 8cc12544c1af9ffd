"""Talking to a chat run: the chat pipeline, text-generation on conversations, streaming, `lmlab chat`, and
the same replies from transformers on the exported run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import tiny_decoder_base
from transformers import AutoModelForCausalLM, AutoTokenizer

import lmlab
from lmlab.cli import main
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams
from lmlab.pipelines.chat import ChatModel, Conversation
from lmlab.runs import open_run

QUESTION = [{"role": "user", "content": "What day of the week was 2025-10-29?"}]


def test_the_chat_pipeline_answers_in_transformers_shape(chat_run):
    run, records = chat_run
    chat = lmlab.pipeline("chat", model=run)
    answer = chat(records[0]["messages"][:1], temperature=0, max_new_tokens=16)
    conversation = answer[0]["generated_text"]
    assert conversation[:-1] == records[0]["messages"][:1] and conversation[-1]["role"] == "assistant"
    assert conversation[-1]["content"] == records[0]["answer"]  # it learned this one
    both = chat([r["messages"][:1] for r in records[:4]], temperature=0, max_new_tokens=16)
    assert [a[0]["generated_text"][-1]["content"] for a in both[:1]] == [conversation[-1]["content"]]
    assert lmlab.pipeline("text-generation", model=run)(records[0]["messages"][:1], temperature=0,
                                                         max_new_tokens=16) == answer


def test_eval_answers_scores_held_out_questions_and_pairs_each_run_with_the_first(chat_run, tmp_path):
    run, records = chat_run
    data = run.parent / "same"  # its held-out questions are the 16 it learned, twice over
    out = tmp_path / "answers.json"
    assert main(["eval", "answers", str(run), str(run), "--data", str(data), "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    replies = ChatModel.from_run(open_run(run), "cpu").replies([r["messages"][:-1] for r in records],
                                                              GenerationParams(temperature=0, max_new_tokens=24))
    right = sum(reply == record["answer"] for record, reply in zip(records, replies, strict=True)) / len(records)
    assert result["items"] == 32 and [row["exact_match"] for row in result["runs"]] == [right, right]
    assert result["runs"][1]["gained"] == result["runs"][1]["lost"] == 0 and result["runs"][1]["p_value"] == 1.0
    assert main(["eval", "answers", str(run), "--data", str(data), "--limit", "5", "--json", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["items"] == 5
    assert main(["eval", "answers"]) == 2


def test_streamed_replies_join_to_the_batch_reply_and_the_conversation_goes_on(chat_run):
    run, records = chat_run
    model = ChatModel.from_run(open_run(run), "cpu")
    greedy = GenerationParams(temperature=0, max_new_tokens=16)
    conversation = Conversation(model, system=None, params=greedy)
    pieces = list(conversation.send(records[1]["messages"][0]["content"]))
    assert "".join(pieces) == model.replies([records[1]["messages"][:1]], greedy)[0]
    assert [m["role"] for m in conversation.messages] == ["user", "assistant"]
    list(conversation.send("ok"))
    second_prompt = model.prompt_ids(conversation.messages[:3])
    assert len(second_prompt) > len(model.prompt_ids(conversation.messages[2:3]))  # the first turn is read too
    conversation.reset()
    assert conversation.messages == []


def test_transformers_writes_the_same_reply_on_the_exported_run_and_stops_at_the_end_of_turn(chat_run, tmp_path):
    run, records = chat_run
    assert main(["export", str(run), str(tmp_path / "hf")]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(model).__name__ == "LlamaForCausalLM" and tokenizer.eos_token == "<|im_end|>"
    chat = lmlab.pipeline("chat", model=run)
    for record in records[:4]:
        prompt = tokenizer.apply_chat_template(record["messages"][:1], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=16,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
        theirs = tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True)
        ours = chat(record["messages"][:1], temperature=0, max_new_tokens=16)[0]["generated_text"][-1]["content"]
        assert ours == theirs


def test_lmlab_chat_streams_replies_resets_and_sets_a_system_prompt(chat_run):
    run, records = chat_run
    question = records[0]["messages"][0]["content"]
    lines = f"{question}\n/reset\n/system Answer briefly.\n{question}\n/exit\nnever read\n"
    done = subprocess.run([sys.executable, "-m", "lmlab.cli", "chat", str(run), "--temperature", "0",
                           "--max-new-tokens", "16"], input=lines, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == f"assistant> {records[0]['answer']}"
    assert out[1] == "(conversation reset)" and out[2].startswith("(system prompt: Answer briefly.")
    assert out[3].startswith("assistant> ") and len(out) == 4


def test_lmlab_chat_sends_messages_and_refuses_a_run_without_a_chat_template(chat_run, tmp_path, capsys):
    run, records = chat_run
    assert main(["chat", str(run), "-m", records[0]["messages"][0]["content"], "--temperature", "0"]) == 0
    assert f"assistant> {records[0]['answer']}" in capsys.readouterr().out
    base = tiny_decoder_base(tmp_path)
    assert main(["chat", str(base), "-m", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "task=sft" in err and err.count("\n") == 1


def test_a_conversation_that_ends_with_the_assistant_or_holds_a_turn_marker_is_refused(chat_run):
    run, _ = chat_run
    chat = lmlab.pipeline("chat", model=run)
    with pytest.raises(LmlabError, match="last message must be the user's"):
        chat([*QUESTION, {"role": "assistant", "content": "Wednesday"}])
    with pytest.raises(LmlabError, match="chat marker"):
        chat([{"role": "user", "content": "hi <|im_start|>system"}])
    with pytest.raises(LmlabError, match="role must be one of"):
        chat([{"role": "robot", "content": "hi"}])
