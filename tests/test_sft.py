"""Supervised fine-tuning: loss on the assistant's tokens only, padded and packed batches alike, and whole runs
that write a decoder run again, resumable after SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import chat_tune_words, kill_after_logged_steps, tiny_decoder_base

from lmlab.cli import main
from lmlab.models import load_model, save_model
from lmlab.runs import open_run
from lmlab.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from lmlab.tokenizers.chat import CHAT_TOKENS, ChatTemplate, with_chat_tokens
from lmlab.train.checkpoint import list_checkpoints
from lmlab.tune.tasks.base import IGNORE
from lmlab.tune.tasks.sft import next_token_labels, pack_first_fit, packed_batch, padded_batch

CONVERSATION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 2 + 3?"},
                {"role": "assistant", "content": "5"}, {"role": "user", "content": "反过来：猫、狗"},
                {"role": "assistant", "content": "狗、猫"}]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    return tiny_decoder_base(tmp_path_factory.mktemp("sft"))


@pytest.fixture(scope="module")
def llama_base(tmp_path_factory) -> Path:
    return tiny_decoder_base(tmp_path_factory.mktemp("sft"), "llama")


def test_only_the_assistants_tokens_carry_loss(base_run):
    tokenizer = with_chat_tokens(Tokenizer.load(base_run / "tokenizer.json"))
    encoding = ChatTemplate().encode(tokenizer, CONVERSATION)
    labels = next_token_labels(encoding.ids, encoding.assistant_mask)
    predicted = [label for label in labels if label != IGNORE]
    assert tokenizer.decode(predicted) == f"5{CHAT_TOKENS[1]}狗、猫{CHAT_TOKENS[1]}"
    # each label is the token after its position, and exactly where that token is the assistant's
    for position, label in enumerate(labels[:-1]):
        expected = encoding.ids[position + 1] if encoding.assistant_mask[position + 1] else IGNORE
        assert label == expected
    batch = padded_batch([encoding.ids, encoding.ids[:20]], [encoding.assistant_mask, encoding.assistant_mask[:20]], 0)
    assert (batch["labels"][1, 19:] == IGNORE).all() and (batch["attention_mask"][1, 20:] == 0).all()


def test_first_fit_packing_keeps_every_conversation_whole_within_the_block():
    lengths = [30, 10, 25, 40, 5, 33]
    rows = pack_first_fit(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(6))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert rows == [[0, 1, 4], [2, 5], [3]]  # 30 + 10 + 25 would overflow: 25 opens row 2, 5 fits in row 1


def test_packed_conversations_give_the_losses_they_have_one_by_one(llama_base):
    tokenizer = with_chat_tokens(Tokenizer.load(llama_base / "tokenizer.json"))
    model = load_model(llama_base)
    model.grow_vocabulary(tokenizer.vocab_size)
    conversations = [CONVERSATION[1:3], CONVERSATION[3:5], CONVERSATION[:3], CONVERSATION[1:3], CONVERSATION[3:]]
    encodings = [ChatTemplate().encode(tokenizer, messages) for messages in conversations]
    rows, masks = [e.ids for e in encodings], [e.assistant_mask for e in encodings]
    packed = packed_batch(rows, masks, 0, block_size=64)
    assert packed["input_ids"].size(0) < len(rows)  # some conversations do share a row
    with torch.no_grad():
        alone = [model(torch.tensor([ids]), labels=padded_batch([ids], [mask], 0)["labels"]).loss
                 for ids, mask in zip(rows, masks, strict=True)]
        counts = [sum(next_token_labels(ids, mask)[i] != IGNORE for i in range(len(ids)))
                  for ids, mask in zip(rows, masks, strict=True)]
        expected = sum(loss * n for loss, n in zip(alone, counts, strict=True)) / sum(counts)
        assert abs(float(model(**packed).loss) - float(expected)) <= 1e-5
        assert abs(float(model(**padded_batch(rows, masks, 0)).loss) - float(expected)) <= 1e-5


def sft_words(base: Path, run_dir: Path, steps: int = 6, *extra: str) -> list[str]:
    return chat_tune_words(base, "sft", "tasks-en", run_dir, steps, *extra)


@pytest.mark.parametrize("family,method", [("gpt", "full"), ("gpt", "lora"), ("llama", "lora")])
def test_an_sft_run_is_a_decoder_run_with_the_chat_format(base_run, llama_base, tmp_path, family, method):
    run_dir = tmp_path / "sft"
    base = {"gpt": base_run, "llama": llama_base}[family]
    assert main(["tune", *sft_words(base, run_dir, 4, f"method.method={method}")]) == 0
    run = open_run(run_dir)
    assert run.family_class.kind == "decoder" and run.chat_template() is not None
    assert run.tokenizer().token_to_id(CHAT_TOKENS[1]) is not None
    model = load_model(run_dir)  # plain weights: a LoRA run is merged
    assert model.family == family
    assert model.config.vocab_size == run.tokenizer().vocab_size
    summary = json.loads((run_dir / "summary.json").read_text())
    for name in ("test_loss", "test_exact_match", "base_test_loss", "base_test_exact_match"):
        assert 0 <= summary[name] < 100, name
    assert summary["test_loss"] < summary["base_test_loss"]  # the base never saw the chat format
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_exact_match" in r] == [3, 4]


def test_sft_resumes_bit_exactly_after_sigkill(base_run, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    words = sft_words(base_run, straight, 8, "method.method=lora")
    assert main(["tune", *words]) == 0
    kill_after_logged_steps([sys.executable, "-m", "lmlab.cli", "tune", *sft_words(base_run, killed, 8,
                                                                                     "method.method=lora")],
                            killed, 4, {**os.environ, "PYTHONHASHSEED": "0"})
    assert list_checkpoints(killed) and not (killed / "summary.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "lmlab.cli", "tune", str(killed), "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    final, expected = load_model(killed).state_dict(), load_model(straight).state_dict()
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[name], expected[name]) for name in expected)


def test_a_base_that_is_no_decoder_is_refused_in_one_line(tmp_path, capsys):
    from lmlab.models.bert import BERT, BertConfig

    tokenizer = train_tokenizer(["hello world"] * 20, TokenizerConfig(kind="wordpiece", vocab_size=60,
                                                                       min_frequency=1))
    save_model(BERT(BertConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, hidden_size=16,
                               intermediate_size=32)), tmp_path / "bert")
    tokenizer.save(tmp_path / "bert" / "tokenizer.json")
    assert main(["tune", *sft_words(tmp_path / "bert", tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "decoder" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
