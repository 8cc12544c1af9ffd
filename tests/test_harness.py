"""The task harness: requests built as lm-evaluation-harness builds them, metrics, k-shot, errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import torch
from rouge_score import rouge_scorer

from lmlab.errors import LmlabError
from lmlab.evaluate.harness import blocklist_hits, evaluate_task, load_task
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.language_model import CausalLanguageModel
from lmlab.models.mlp import BengioMLP, MLPConfig
from lmlab.models.rnn import RNNConfig, RNNLanguageModel
from lmlab.tokenizers import TokenizerConfig, train_tokenizer


class RecordingLM:
    """A fake model whose log-likelihoods are a fixed function of the request, recording every request."""

    def __init__(self, outputs: dict[str, str] | None = None):
        self.requests: list[tuple[str, str]] = []
        self.texts: list[str] = []
        self.prompts: list[str] = []
        self.outputs = outputs or {}

    @staticmethod
    def score(context: str, continuation: str) -> float:
        return -float(sum(ord(c) % 7 for c in continuation)) - 0.01 * len(context)

    def loglikelihood(self, requests):
        self.requests.extend(requests)
        return [(self.score(c, x), False) for c, x in requests]

    def loglikelihood_rolling(self, texts):
        self.texts.extend(texts)
        return [-1.5 * len(text) - 2.0 for text in texts]

    def generate(self, prompts, params):
        self.prompts.extend(prompts)
        return [self.outputs.get(prompt.rsplit("Q: ", 1)[-1].split("\n")[0], "") + "\nQ: more" for prompt in prompts]


def write_task(tmp_path: Path, config: str, docs: list[dict], name: str = "task") -> Path:
    (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs),
                                            encoding="utf-8")
    (tmp_path / f"{name}.yaml").write_text(config.replace("DATA", f"{name}.jsonl"), encoding="utf-8")
    return tmp_path / f"{name}.yaml"


ARC_DOCS = [
    {"question": f"What is {i} + {i}?", "choices": {"text": [str(2 * i), "seven", str(i), "一二三"][: 3 + i % 2],
                                                   "label": ["A", "B", "C", "D"][: 3 + i % 2]},
     "answerKey": "A" if i % 3 else "B"}
    for i in range(12)
]
ARC_YAML = """
task: arc_like
output_type: multiple_choice
data: DATA
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: "{{choices.text}}"
doc_to_target: "{{choices.label.index(answerKey)}}"
metrics: [acc, acc_norm, acc_bytes]
"""


def test_multiple_choice_requests_and_metrics_follow_lm_eval(tmp_path):
    task = load_task(write_task(tmp_path, ARC_YAML, ARC_DOCS))
    lm = RecordingLM()
    result = evaluate_task(lm, task)
    expected_requests = [(f"Question: {d['question']}\nAnswer:", " " + c)
                         for d in ARC_DOCS for c in d["choices"]["text"]]
    assert lm.requests == expected_requests
    acc, acc_norm, acc_bytes = [], [], []
    for doc in ARC_DOCS:
        choices = doc["choices"]["text"]
        gold = doc["choices"]["label"].index(doc["answerKey"])
        lls = [RecordingLM.score(f"Question: {doc['question']}\nAnswer:", " " + c) for c in choices]
        acc.append(int(np.argmax(lls)) == gold)
        acc_norm.append(int(np.argmax([ll / len(c) for ll, c in zip(lls, choices, strict=True)])) == gold)
        acc_bytes.append(int(np.argmax([ll / len(c.encode()) for ll, c in zip(lls, choices, strict=True)])) == gold)
    assert result.metrics == {"acc": np.mean(acc), "acc_norm": np.mean(acc_norm), "acc_bytes": np.mean(acc_bytes)}
    assert result.stderr["acc"] == pytest.approx(np.std(acc, ddof=1) / math.sqrt(len(acc)))
    assert result.documents == 12 and len(result.samples) == 12
    # the normalisations must disagree somewhere, or this test would not tell them apart
    assert len({result.metrics["acc"], result.metrics["acc_norm"], result.metrics["acc_bytes"]}) > 1


def test_mc2_stereotype_and_list_golds(tmp_path):
    docs = [{"q": "x", "choices": ["aa", "bbbb", "c", "dd"], "labels": [1, 1, 0, 0]},
            {"q": "y", "choices": ["e", "ffff"], "labels": [1, 0]}]
    config = """
output_type: multiple_choice
data: DATA
doc_to_text: "{{q}}"
doc_to_choice: choices
doc_to_target: "{{labels | indices}}"
metrics: [acc, mc2, pct_stereotype, likelihood_diff]
"""
    result = evaluate_task(RecordingLM(), load_task(write_task(tmp_path, config, docs)))
    mc2, acc, stereo, diff = [], [], [], []
    for doc in docs:
        lls = np.array([RecordingLM.score(doc["q"], " " + c) for c in doc["choices"]])
        gold = [i for i, label in enumerate(doc["labels"]) if label]
        probabilities = np.exp(lls) / np.exp(lls).sum()
        mc2.append(probabilities[gold].sum())
        acc.append(int(np.argmax(lls)) in gold)
        stereo.append(lls[0] > lls[1])
        diff.append(abs(lls[0] - lls[1]))
    assert result.metrics["mc2"] == pytest.approx(np.mean(mc2), rel=1e-12)
    assert result.metrics["acc"] == np.mean(acc)
    assert result.metrics["pct_stereotype"] == np.mean(stereo)
    assert result.metrics["likelihood_diff"] == pytest.approx(np.mean(diff))


def test_fewshot_is_seeded_never_shows_the_doc_itself_and_first_n(tmp_path):
    config = ARC_YAML + 'description: "Quiz.\\n\\n"\nnum_fewshot: 3\n'
    task = load_task(write_task(tmp_path, config, ARC_DOCS))
    first, second = RecordingLM(), RecordingLM()
    evaluate_task(first, task)
    evaluate_task(second, load_task(task.source))
    assert first.requests == second.requests  # the same examples on every run
    contexts = list(dict.fromkeys(context for context, _ in first.requests))
    assert len(contexts) == len(ARC_DOCS)
    for doc, context in zip(ARC_DOCS, contexts, strict=True):
        assert context.startswith("Quiz.\n\n")
        blocks = context[len("Quiz.\n\n"):].split("\n\n")
        assert len(blocks) == 4 and blocks[-1] == f"Question: {doc['question']}\nAnswer:"
        for block in blocks[:3]:
            assert f"Question: {doc['question']}\n" not in block  # never its own answer
            question = block.split("\n")[0][len("Question: "):]
            example = next(d for d in ARC_DOCS if d["question"] == question)
            right = example["choices"]["text"][example["choices"]["label"].index(example["answerKey"])]
            assert block.endswith("Answer: " + right)
    assert len({c.split("\n\n")[1] for c in contexts}) > 1  # drawn, not always the same
    third = RecordingLM()
    evaluate_task(third, load_task(write_task(tmp_path, config + "fewshot_sampler: first_n\n", ARC_DOCS, "first")),
                  limit=2, num_fewshot=2)
    contexts = list(dict.fromkeys(context for context, _ in third.requests))
    assert contexts[0].split("\n\n")[1:3] == ["Question: What is 1 + 1?\nAnswer: 2",
                                             "Question: What is 2 + 2?\nAnswer: 4"]
    assert contexts[1].split("\n\n")[1].startswith("Question: What is 0 + 0?")


def test_rolling_metrics_are_corpus_totals_with_lm_eval_word_count(tmp_path):
    docs = [{"text": " leading space and words"}, {"text": "中文没有空格。"}, {"text": "two\n\nlines  here "}]
    config = """
output_type: loglikelihood_rolling
data: DATA
doc_to_target: text
metrics: [word_perplexity, byte_perplexity, bits_per_byte, bits_per_character]
"""
    lm = RecordingLM()
    result = evaluate_task(lm, load_task(write_task(tmp_path, config, docs)))
    texts = [d["text"] for d in docs]
    assert lm.texts == texts
    nll = sum(1.5 * len(t) + 2.0 for t in texts)
    words = sum(len(re.split(r"\s+", t)) for t in texts)
    assert words == 5 + 1 + 4
    utf8 = sum(len(t.encode()) for t in texts)
    assert result.metrics["word_perplexity"] == pytest.approx(math.exp(nll / words), rel=1e-12)
    assert result.metrics["byte_perplexity"] == pytest.approx(math.exp(nll / utf8), rel=1e-12)
    assert result.metrics["bits_per_byte"] == pytest.approx(nll / utf8 / math.log(2), rel=1e-12)
    assert result.metrics["bits_per_character"] == pytest.approx(nll / sum(map(len, texts)) / math.log(2), rel=1e-12)


def test_generation_metrics_equal_the_references(tmp_path):
    docs = [{"question": "capital of France", "answers": ["Paris", "paris"]},
            {"question": "two plus two", "answers": ["four", "4"]},
            {"question": "colour of the sky", "answers": ["blue"]},
            {"question": "say something rude", "answers": ["no"]}]
    outputs = {"capital of France": " Paris", "two plus two": " five or four", "colour of the sky": " the blue sky",
               "say something rude": " you idiot, 笨蛋"}
    config = """
output_type: generate_until
data: DATA
doc_to_text: "Q: {{question}}\\nA:"
doc_to_target: answers
generation: {until: ["\\n"], max_new_tokens: 8}
blocklist: block.txt
metrics: [exact_match, bleu, rouge1, rouge2, rougeL, blocklist_rate]
"""
    (tmp_path / "block.txt").write_text("# insults\nidiot\n笨蛋\nhell\n", encoding="utf-8")
    lm = RecordingLM(outputs)
    result = evaluate_task(lm, load_task(write_task(tmp_path, config, docs)))
    assert lm.prompts == [f"Q: {d['question']}\nA:" for d in docs]
    predictions = [outputs[d["question"]] for d in docs]  # cut at the first "\n"
    assert [s["output"] for s in result.samples] == predictions
    assert result.metrics["exact_match"] == 0.25
    refs = [d["answers"] for d in docs]
    streams = [[r[min(k, len(r) - 1)] for r in refs] for k in range(2)]
    assert result.metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, streams).score, abs=1e-9)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for kind in ("rouge1", "rouge2", "rougeL"):
        expected = np.mean([max(scorer.score(r, p)[kind].fmeasure for r in rs)
                            for p, rs in zip(predictions, refs, strict=True)])
        assert result.metrics[kind] == pytest.approx(expected, abs=1e-12)
    assert result.metrics["blocklist_rate"] == 0.25
    assert result.samples[3]["blocklisted"] == ["idiot", "笨蛋"]


def test_blocklist_matches_whole_words_and_chinese_anywhere():
    assert blocklist_hits("Hello there, shell", ["hell"]) == []
    assert blocklist_hits("What the HELL.", ["hell"]) == ["hell"]
    assert blocklist_hits("你这个笨蛋啊", ["笨蛋", "坏人"]) == ["笨蛋"]


@pytest.mark.parametrize("bad, message", [
    ("output_type: multiple_choice\ndata: DATA\ndoc_to_choice: c\nmetrics: [acc]\nnum_fewshots: 2\n", "num_fewshots"),
    ("output_type: multiple_choice\ndata: DATA\ndoc_to_choice: c\nmetrics: [bleu]\n", "do not apply"),
    ("output_type: multiple_choice\ndata: DATA\nmetrics: [acc]\n", "doc_to_choice"),
    ("output_type: generate_until\ndata: DATA\nmetrics: [blocklist_rate]\n", "blocklist"),
])
def test_task_file_mistakes_name_the_field(tmp_path, bad, message):
    with pytest.raises(LmlabError, match=message):
        load_task(write_task(tmp_path, bad, [{"c": ["a"]}]))


def test_document_mistakes_name_the_file_and_line(tmp_path):
    path = write_task(tmp_path, ARC_YAML, ARC_DOCS[:2])
    with open(tmp_path / "task.jsonl", "a", encoding="utf-8") as f:
        f.write("{broken\n")
    with pytest.raises(LmlabError, match=r"task.jsonl:3: not valid JSON"):
        load_task(path)
    wrong = [{**ARC_DOCS[0], "answerKey": "Z"}]
    with pytest.raises(LmlabError, match=r"line 1 of .*task.jsonl"):
        evaluate_task(RecordingLM(), load_task(write_task(tmp_path, ARC_YAML, wrong)))
    sneaky = ARC_YAML.replace("{{question}}", "{{ question.__class__.__mro__ }}")
    with pytest.raises(LmlabError, match="unsafe"):
        evaluate_task(RecordingLM(), load_task(write_task(tmp_path, sneaky, ARC_DOCS)))


@pytest.fixture(scope="module")
def char_tokenizer():
    return train_tokenizer(["hello world the cat sat on the mat 中国人民 quiz"] * 3,
                           TokenizerConfig(kind="char", vocab_size=100))


@pytest.mark.parametrize("family", ["gpt", "lstm", "mlp"])
def test_shared_context_scoring_equals_scoring_each_request_alone(family, char_tokenizer):
    torch.manual_seed(0)
    vocab = char_tokenizer.vocab_size
    model = {
        "gpt": lambda: GPT(GPTConfig(vocab_size=vocab, block_size=24, n_layer=2, n_head=2, n_embd=16)),
        "lstm": lambda: RNNLanguageModel(RNNConfig(vocab_size=vocab, cell="lstm", n_layer=2, hidden=16, n_embd=16,
                                                   block_size=24)),
        "mlp": lambda: BengioMLP(MLPConfig(vocab_size=vocab, context=4, n_embd=8, hidden=16, block_size=24)),
    }[family]()
    lm = CausalLanguageModel(model, char_tokenizer)
    requests = [("the cat ", choice) for choice in ["sat", "on the mat", "中国", "h"]]
    requests += [("", "hello world"), ("hello world the cat sat on", " the mat")]  # the last one is truncated
    batched = lm.loglikelihood(requests)
    with torch.inference_mode():
        for (context, continuation), (score, greedy) in zip(requests, batched, strict=True):
            context_ids, continuation_ids = lm._encode_pair(context, continuation)
            sequence = (context_ids + continuation_ids)[-(24 + 1):]
            logits = model(torch.tensor([sequence[:-1]])).logits[0, -len(continuation_ids):].double()
            wanted = torch.tensor(continuation_ids)
            expected = torch.log_softmax(logits, -1).gather(1, wanted[:, None]).sum().item()
            assert score == pytest.approx(expected, abs=1e-4)
            assert greedy == bool((logits.argmax(-1) == wanted).all())


def test_language_model_figures():
    from lmlab.metrics.likelihood import bits_per_byte, bits_per_character, perplexity

    text = "中文 text"
    nll = 12.5
    assert perplexity(nll, 5) == pytest.approx(math.exp(2.5))
    assert perplexity(1e6, 1) == math.inf
    assert bits_per_byte(nll, len(text.encode())) == pytest.approx(nll / math.log(2) / 11)
    assert bits_per_character(nll, len(text)) == pytest.approx(nll / math.log(2) / 7)
