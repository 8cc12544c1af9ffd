"""Task heads: word/subword alignment, QA windows and spans, post-processing, entity F1 (against seqeval),
each head learning a small synthetic task, and the token-classification and question-answering pipelines."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.cli import main
from lmlab.errors import LmlabError
from lmlab.metrics.entities import bio_chunks, entity_scores
from lmlab.models import load_model, save_model
from lmlab.models.bert import BERT, BertConfig
from lmlab.pipelines import format_answer, pipeline
from lmlab.pipelines.token_classification import group_entities
from lmlab.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from lmlab.tune.runner import read_tune_config, tune
from lmlab.tune.tasks.base import IGNORE
from lmlab.tune.tasks.qa import QAFeatures, char_span_to_tokens, postprocess_qa, qa_windows
from lmlab.tune.tasks.tagging import align_words, encode_tagged

FILLER = ["the", "a", "man", "went", "to", "and", "saw", "on", "day", "with", "some", "friends", "later", "then"]
PEOPLE = ["alice", "bob", "carol", "dave"]
PLACES = [["paris"], ["london"], ["new", "york"], ["hong", "kong"]]
COLOURS = ["red", "green", "blue", "yellow", "purple"]


def tagged_records(count: int, seed: int) -> list[dict]:
    """Filler sentences naming a person (PER) and a place (LOC, some of two words)."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        words, tags = [], []
        parts = [[w] for w in rng.sample(FILLER, 6)] + [[rng.choice(PEOPLE)], rng.choice(PLACES)]
        rng.shuffle(parts)
        for part in parts:
            kind = "PER" if part[0] in PEOPLE else "LOC" if part in PLACES else None
            words += part
            tags += ["O"] * len(part) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(part) - 1)
        records.append({"tokens": words, "tags": tags})
    return records


def qa_records(count: int, seed: int) -> list[dict]:
    """Which colour is in a filler passage; some passages are longer than the block, so windows are needed."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        words = [rng.choice(FILLER) for _ in range(rng.randint(6, 30))]
        colour = rng.choice(COLOURS)
        position = rng.randint(0, len(words))
        context = " ".join(words[:position] + [colour] + words[position:])
        start = len(" ".join(words[:position])) + (1 if position else 0)
        records.append({"question": "which colour ?", "context": context,
                        "answers": {"text": [colour], "answer_start": [start]}})
    return records


def choice_records(count: int, seed: int) -> list[dict]:
    """Which of four words is a colour."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        choices = rng.sample(FILLER, 3)
        answer = rng.randint(0, 3)
        choices.insert(answer, rng.choice(COLOURS))
        records.append({"question": "which is a colour ?", "choices": choices, "answer": answer})
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A tiny BERT (2 layers x 32) with a WordPiece tokenizer trained on the test data, and the three data sets."""
    root = tmp_path_factory.mktemp("heads")
    texts = [" ".join(r["tokens"]) for r in tagged_records(200, 0)] + [r["context"] for r in qa_records(200, 0)]
    texts += ["which colour ? which is a colour ?"] * 5 + ["washington visited"] * 3
    tokenizer = train_tokenizer(texts, TokenizerConfig(kind="wordpiece", vocab_size=90, min_frequency=1))
    torch.manual_seed(0)
    save_model(BERT(BertConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=2, hidden_size=32,
                               intermediate_size=64)), root / "bert")
    tokenizer.save(root / "bert" / "tokenizer.json")
    write_jsonl(root / "tags.jsonl", tagged_records(400, 1))
    write_jsonl(root / "qa.jsonl", qa_records(400, 2))
    write_jsonl(root / "choices.jsonl", choice_records(400, 3))
    return root


def overrides(workspace: Path, run_dir: Path, task: str, data: str, steps: int = 60) -> list[str]:
    return [f"task={task}", f"base={workspace / 'bert'}", f"data={workspace / data}", f"run_dir={run_dir}",
            f"train.max_steps={steps}", f"train.eval_every={steps // 2}", "train.batch_size=16", "train.device=cpu",
            "optimizer.lr=3e-3", "block_size=32", "doc_stride=8", "train.early_stopping=null",
            "schedule.warmup_steps=10"]


# ---- tagging --------------------------------------------------------------------------------------

def test_only_the_first_subword_of_each_word_carries_its_tag(workspace):
    tokenizer = Tokenizer.load(workspace / "bert" / "tokenizer.json")
    words, tags = ["Washington", "visited", "new", "york", "purple"], ["B-PER", "O", "B-LOC", "I-LOC", "O"]
    names = ["O", "B-LOC", "I-LOC", "B-PER"]
    # What the alignment must give, built word by word from the tokenizer alone: [CLS], then each word's
    # pieces with the tag on the first, then [SEP].
    expected_ids, expected_labels = [tokenizer.token_to_id("[CLS]")], [IGNORE]
    for word, tag in zip(words, tags, strict=True):
        pieces = tokenizer.encode(word)
        expected_ids += pieces
        expected_labels += [names.index(tag)] + [IGNORE] * (len(pieces) - 1)
    expected_ids.append(tokenizer.token_to_id("[SEP]"))
    expected_labels.append(IGNORE)
    assert max(len(tokenizer.encode(w)) for w in words) > 1  # some word really is split into subwords
    encoded = encode_tagged([{"tokens": words, "tags": tags}], names, tokenizer, 64)
    assert encoded.ids[0] == expected_ids and encoded.labels[0] == expected_labels
    # a block too short keeps [SEP] last and drops the cut words' tags
    ids, word_ids = align_words(tokenizer, words, 4)
    assert len(ids) == 4 and ids[-1] == tokenizer.token_to_id("[SEP]") and word_ids[-1] is None
    with pytest.raises(LmlabError, match="tag 'B-ORG' is not among"):
        encode_tagged([{"tokens": ["x"], "tags": ["B-ORG"]}], names, tokenizer, 64)


@pytest.mark.parametrize("tags, strict, conlleval", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)], [("PER", 0, 1), ("LOC", 3, 3)]),
    (["I-PER", "I-PER", "O"], [], [("PER", 0, 1)]),
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 0)], [("PER", 0, 0), ("LOC", 1, 2)]),
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 2)], [("PER", 0, 0), ("PER", 1, 2)]),
    (["O", "O"], [], []),
])
def test_bio_chunks_by_hand(tags, strict, conlleval):
    assert bio_chunks(tags, "strict") == strict
    assert bio_chunks(tags, "conlleval") == conlleval


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-PER"]]  # 2 of 3 found, 2 of 3 predicted right
    scores = entity_scores(gold, predicted)
    assert (scores.precision, scores.recall) == pytest.approx((2 / 3, 2 / 3))
    assert scores.f1 == pytest.approx(2 / 3) and scores.accuracy == pytest.approx(4 / 6)
    assert entity_scores([["O"]], [["O"]]).f1 == 0.0


def test_entity_scores_equal_seqeval_on_random_sequences():
    from seqeval import metrics as seqeval  # a dev dependency: the reference runs, it never skips
    from seqeval.scheme import IOB2

    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(30):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(6)]
        predicted = [[t if rng.random() < 0.6 else rng.choice(tags) for t in row] for row in gold]
        ours = entity_scores(gold, predicted, "conlleval")
        assert ours.f1 == pytest.approx(seqeval.f1_score(gold, predicted, zero_division=0))
        assert ours.precision == pytest.approx(seqeval.precision_score(gold, predicted, zero_division=0))
        assert ours.recall == pytest.approx(seqeval.recall_score(gold, predicted, zero_division=0))
        assert ours.accuracy == pytest.approx(seqeval.accuracy_score(gold, predicted))
        strict = entity_scores(gold, predicted, "strict")
        assert strict.f1 == pytest.approx(seqeval.f1_score(gold, predicted, mode="strict", scheme=IOB2,
                                                           zero_division=0))


def test_tagging_learns_and_the_pipeline_groups_entities(workspace, tmp_path, capsys):
    run = tmp_path / "tagging"
    assert main(["tune", *overrides(workspace, run, "tagging", "tags.jsonl")]) == 0  # the command line
    assert f"next: lmlab pipeline token-classification --model {run} " in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "tagging" and summary["labels"][0] == "O"
    assert summary["test_f1"] >= 0.9 and summary["test_accuracy"] >= 0.95
    tag = pipeline("token-classification", model=run, device="cpu")
    text = "then alice went to new york with some friends"
    entities = tag(text)
    assert [(e["entity_group"], e["word"]) for e in entities] == [("PER", "alice"), ("LOC", "new york")]
    assert all(text[e["start"] : e["end"]] == e["word"] and 0 < e["score"] <= 1 for e in entities)
    batched = tag([text, "bob"])
    assert [[(e["word"], e["start"], pytest.approx(e["score"], abs=1e-5)) for e in row] for row in batched] == [
        [(e["word"], e["start"], e["score"]) for e in row] for row in (entities, tag("bob"))]
    with pytest.raises(LmlabError, match="task=qa.*not a tuned tagging model"):
        pipeline("question-answering", model=run, device="cpu")


def test_group_entities_as_the_simple_strategy_does():
    text = "ab cd ef gh ij"
    words = [("B-PER", 0.9, 0, 2), ("I-PER", 0.7, 3, 5), ("B-PER", 0.5, 6, 8), ("O", 0.9, 9, 11),
             ("I-LOC", 0.4, 12, 14)]
    assert group_entities(text, words) == [
        {"entity_group": "PER", "score": pytest.approx(0.8), "word": "ab cd", "start": 0, "end": 5},
        {"entity_group": "PER", "score": 0.5, "word": "ef", "start": 6, "end": 8},
        {"entity_group": "LOC", "score": 0.4, "word": "ij", "start": 12, "end": 14}]


# ---- extractive question answering ----------------------------------------------------------------

def test_qa_windows_match_the_tokenizers_own_stride_and_spans_round_trip(workspace):
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer.load(workspace / "bert" / "tokenizer.json")
    reference = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend, pad_token="[PAD]")
    windows_seen = 0
    for record in qa_records(40, 7):
        question, context = record["question"], record["context"]
        ids, types, offsets = qa_windows(tokenizer, question, context, 24, 6)
        hf = reference(question, context, truncation="only_second", max_length=24, stride=6,
                       return_overflowing_tokens=True, return_offsets_mapping=True, return_token_type_ids=True)
        assert ids == hf["input_ids"] and types == hf["token_type_ids"]
        for ours, theirs, sequence in zip(offsets, hf["offset_mapping"], range(len(ids)), strict=True):
            context_ids = [s == 1 for s in hf.sequence_ids(sequence)]
            assert ours == [tuple(o) if inside else None for o, inside in zip(theirs, context_ids, strict=True)]
        windows_seen += len(ids)
        start = record["answers"]["answer_start"][0]
        end = start + len(record["answers"]["text"][0])
        holding = 0
        for window in offsets:
            first, last = char_span_to_tokens(window, start, end)
            if (first, last) == (0, 0):  # this window does not hold the whole answer
                inside = [o for o in window if o is not None]
                assert inside[0][0] > start or inside[-1][1] < end
                continue
            holding += 1
            assert context[window[first][0] : window[last][1]] == record["answers"]["text"][0]
        assert holding >= 1
    assert windows_seen > 40  # some contexts needed more than one window


def test_postprocessing_picks_the_best_legal_span():
    context = "aa bb cc dd ee ff"
    # [CLS] q [SEP] aa bb cc dd ee ff [SEP]: the question and the markers are no part of any answer
    offsets = [None, None, None, (0, 2), (3, 5), (6, 8), (9, 11), (12, 14), (15, 17), None]
    features = QAFeatures(ids=[[0] * 10], token_types=[[0] * 10], offsets=[offsets], example=[0], spans=[(0, 0)])
    logits = np.full((10, 2), -5.0)
    logits[1] = [20.0, 20.0]  # the question token: the highest, but illegal
    logits[7, 0], logits[4, 1] = 9.0, 9.0  # start after end: illegal
    logits[5, 0], logits[6, 1] = 7.0, 7.0  # "cc dd": the best legal span
    answer = postprocess_qa([context], features, [logits])[0]
    assert (answer.text, answer.start, answer.end, answer.score) == ("cc dd", 6, 11, 14.0)
    long = np.full((10, 2), -5.0)
    long[3, 0], long[8, 1] = 8.0, 8.0  # "aa .. ff": six tokens
    long[5] = [5.0, 5.0]  # "cc"
    assert postprocess_qa([context], features, [long])[0].text == context
    assert postprocess_qa([context], features, [long], max_answer_length=1)[0].text == "cc"
    # random logits: the answer is the best of every legal pair, found by brute force
    rng = np.random.default_rng(0)
    for _ in range(20):
        noise = rng.normal(size=(10, 2))
        legal = [(noise[s, 0] + noise[e, 1], s, e) for s in range(10) for e in range(10)
                 if offsets[s] is not None and offsets[e] is not None and 0 <= e - s < 3]
        _, s, e = max(legal)
        assert postprocess_qa([context], features, [noise], max_answer_length=3)[0].text == context[
            offsets[s][0] : offsets[e][1]]
    # across windows of one example, the higher-scoring window wins
    second = np.full((10, 2), -5.0)
    second[8] = [7.5, 7.5]
    features = QAFeatures(ids=[[0] * 10] * 2, token_types=[[0] * 10] * 2, offsets=[offsets] * 2, example=[0, 0],
                          spans=[(0, 0)] * 2)
    assert postprocess_qa([context], features, [logits, second])[0].text == "ff"


def test_qa_learns_and_the_pipeline_answers(workspace, tmp_path, capsys):
    run = tmp_path / "qa"
    summary = tune(read_tune_config(None, overrides(workspace, run, "qa", "qa.jsonl")))
    assert summary["test_exact_match"] >= 80 and summary["test_f1"] >= 80  # chance is under 10
    answer = pipeline("question-answering", model=run, device="cpu")
    context = "the man went to paris with some green friends"
    found = answer(question="which colour ?", context=context)
    assert found["answer"] == "green" and context[found["start"] : found["end"]] == "green"
    assert 0 < found["score"] <= 1
    long = " ".join(["then the man went"] * 10) + " purple day"  # more than one window
    assert answer([{"question": "which colour ?", "context": long}])[0]["answer"] == "purple"
    with pytest.raises(LmlabError, match="task=tagging.*not a tuned qa model"):
        pipeline("token-classification", model=run, device="cpu")
    with pytest.raises(LmlabError, match="question= and context="):
        answer(question="which colour ?")
    # the command line: each text is a context for the one question
    assert main(["pipeline", "question-answering", "--model", str(run), "--device", "cpu", "--question",
                 "which colour ?", context, "--json", str(tmp_path / "answers.json")]) == 0
    [record] = json.loads((tmp_path / "answers.json").read_text())
    assert record["input"] == context and record["output"]["answer"] == "green"
    assert capsys.readouterr().out.splitlines()[-1] == format_answer("question-answering", context, record["output"])


# ---- multiple choice ------------------------------------------------------------------------------

def test_multiple_choice_learns(workspace, tmp_path):
    run = tmp_path / "choice"
    summary = tune(read_tune_config(None, overrides(workspace, run, "multiple_choice", "choices.jsonl")))
    assert summary["test_accuracy"] >= 0.8  # chance is 0.25
    model = load_model(run)
    assert model.config.task == "multiple_choice" and model.head.scorer.out_features == 1


def test_mistakes_are_named(workspace, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"tokens": ["a"], "tags": []}] * 12)
    with pytest.raises(LmlabError, match="bad.jsonl:1: tokens and tags"):
        tune(read_tune_config(None, overrides(workspace, tmp_path / "r", "tagging", str(bad))))
    wrong = dict(qa_records(1, 0)[0], answers={"text": ["nothing"], "answer_start": [0]})
    write_jsonl(tmp_path / "wrong.jsonl", [wrong] * 12)
    with pytest.raises(LmlabError, match="wrong.jsonl:1: the context at answer_start 0 does not read 'nothing'"):
        tune(read_tune_config(None, overrides(workspace, tmp_path / "r", "qa", str(tmp_path / "wrong.jsonl"))))
    with pytest.raises(LmlabError, match="token-classification needs a run of `lmlab tune task=tagging`, not a bert"):
        pipeline("token-classification", model=workspace / "bert", device="cpu")
