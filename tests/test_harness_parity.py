"""lmlab's harness against lm-evaluation-harness `--model hf`: the same model, the same tasks, the same numbers.

A small GPT with a byte-level BPE tokenizer is trained for a few steps (so its log-likelihoods are
far from uniform), exported as a GPT-2 directory, and scored twice over the SAME JSONL files:

- by lm-eval 0.4.13 (`HFLM` on the exported directory, its own task YAML layout), and
- by lmlab (`CausalLanguageModel` on the lmlab model, lmlab's task YAML layout).

transformers' GPT-2 and lmlab's GPT are different code (attention kernels, summation order), so
float32 logits agree to rounding only. In float64 that rounding is ~1e-16 per operation and the
per-choice log-likelihoods must agree to 1e-9; in float32 to 1e-5 (a sum of a few log-probs of
size ~5, each carrying ~1e-7 relative error from the logits, is good to a few 1e-6 at worst).
The accuracies are then compared exactly: on these docs no two choices are close enough to flip.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import CHINESE, ENGLISH, tiny_documents

from lmlab.evaluate.harness import evaluate_tasks, load_task
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2
from lmlab.models.language_model import CausalLanguageModel
from lmlab.tokenizers import TokenizerConfig, train_tokenizer

BLOCK_SIZE = 32
MC_DOCS = [
    {"question": "Question: To be, or not to\nAnswer:", "choices": ["be", "fortune", "中国"], "label": 0},
    {"question": "the slings and arrows of outrageous ", "choices": ["fortune", "sea", "arms against"], "label": 0},
    {"question": "中国人民在新的一年里继续努力", "choices": ["工作", "question", "建设美好的家园"], "label": 0},
    {"question": "春天来了，花开了，", "choices": ["鸟儿在歌唱", "arrows", "花"], "label": 0},
    {"question": "Question: whether 'tis nobler in the mind to\nAnswer:", "choices": ["suffer", "鸟儿", "take arms"],
     "label": 0},
    {"question": "or to take arms against a sea of", "choices": ["troubles.", "the question", "人民"], "label": 2},
    # Longer than the model's context with its continuation: both harnesses cut from the left.
    {"question": ENGLISH, "choices": ["To be", "or not", "中国人民在新的一年"], "label": 1},
    {"question": "中国人民在新的一年里 ", "choices": ["继续努力工作", "outrageous fortune", "鸟"], "label": 0},
    # Trailing whitespace other than spaces: lm-eval moves all of it (str.rstrip()) into the continuation.
    {"question": "To be, or not to be, that is the\n", "choices": ["question", "sea of troubles", "家园"], "label": 0},
    {"question": "春天来了，花开了，\u3000", "choices": ["鸟儿在歌唱", "be", "arrows of outrageous"], "label": 0},
]
PPL_DOCS = [
    {"text": ENGLISH},  # longer than BLOCK_SIZE tokens: several rolling windows
    {"text": CHINESE},
    {"text": ENGLISH + "\n" + CHINESE + " " + ENGLISH},  # many windows, the last one partial
    {"text": " to be or not to be "},  # edge whitespace counts as extra "words" in lm-eval
    {"text": "春天来了 question"},
]

LM_EVAL_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
  cache_dir: {cache}
output_type: {output_type}
test_split: test
{body}
metadata: {{version: 1.0}}
"""
LM_EVAL_MC = """doc_to_text: "{{question}}"
doc_to_target: label
doc_to_choice: "{{choices}}"
metric_list: [{metric: acc}, {metric: acc_norm}, {metric: acc_bytes}]"""
LM_EVAL_PPL = """doc_to_text: ""
doc_to_target: "{{text}}"
metric_list: [{metric: word_perplexity}, {metric: byte_perplexity}, {metric: bits_per_byte}]"""

LMLAB_MC = """task: parity_mc
output_type: multiple_choice
data: {data}
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metrics: [acc, acc_norm, acc_bytes]
"""
LMLAB_PPL = """task: parity_ppl
output_type: loglikelihood_rolling
data: {data}
doc_to_target: "{{{{text}}}}"
metrics: [word_perplexity, byte_perplexity, bits_per_byte]
"""
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
RTOL = {"float64": 1e-9, "float32": 1e-5}
METRIC_RTOL = 1e-6


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A trained tiny GPT + BPE tokenizer, its GPT-2 export, one JSONL per task and both YAML layouts."""
    root = tmp_path_factory.mktemp("parity")
    docs = tiny_documents()
    tokenizer = train_tokenizer(docs, TokenizerConfig(kind="bpe", vocab_size=600))
    tokenizer.save(root / "tokenizer.json")

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=BLOCK_SIZE, n_layer=2, n_head=2, n_embd=32))
    stream = torch.tensor([t for doc in docs for t in [*tokenizer.encode(doc), tokenizer.eos_id]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        starts = torch.randint(0, len(stream) - BLOCK_SIZE - 1, (8,)).tolist()
        batch = torch.stack([stream[s : s + BLOCK_SIZE + 1] for s in starts])
        loss = model(batch[:, :-1], labels=batch[:, 1:]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    export_gpt2(model, root / "hf", root / "tokenizer.json")

    tasks = root / "tasks"
    tasks.mkdir()
    for name, docs_, output_type, body, lmlab_yaml in [
        ("parity_mc", MC_DOCS, "multiple_choice", LM_EVAL_MC, LMLAB_MC),
        ("parity_ppl", PPL_DOCS, "loglikelihood_rolling", LM_EVAL_PPL, LMLAB_PPL),
    ]:
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs_), encoding="utf-8")
        (tasks / f"{name}.yaml").write_text(LM_EVAL_TASK.format(name=name, data=data, cache=root / "datasets",
                                                                output_type=output_type, body=body), encoding="utf-8")
        (root / f"{name}.yaml").write_text(lmlab_yaml.format(data=data.name), encoding="utf-8")
    return {"root": root, "model": model, "tokenizer": tokenizer}


def run_lm_eval(setup: dict, dtype: str) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    root = setup["root"]
    lm = HFLM(pretrained=str(root / "hf"), dtype=dtype, device="cpu", batch_size=1)
    return simple_evaluate(model=lm, tasks=["parity_mc", "parity_ppl"], log_samples=True, bootstrap_iters=0,
                           task_manager=TaskManager(include_path=str(root / "tasks"), include_defaults=False))


def run_lmlab(setup: dict, dtype: str) -> dict:
    root, model = setup["root"], setup["model"]
    model = model.double() if dtype == "float64" else model.float()
    lm = CausalLanguageModel(model, setup["tokenizer"])
    return evaluate_tasks(lm, [load_task(root / "parity_mc.yaml"), load_task(root / "parity_ppl.yaml")])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lmlab_harness_gives_lm_evals_numbers(setup, dtype, tmp_path, monkeypatch):
    for key, value in (OFFLINE | {"HF_HOME": str(tmp_path / "hf_home")}).items():
        monkeypatch.setenv(key, value)
    theirs = run_lm_eval(setup, dtype)
    ours = run_lmlab(setup, dtype)
    rtol = RTOL[dtype]

    # Multiple choice: the same requests, per-choice log-likelihoods and greedy flags, the same accuracies.
    samples = sorted(theirs["samples"]["parity_mc"], key=lambda s: s["doc_id"])
    assert len(samples) == len(ours["parity_mc"].samples) == len(MC_DOCS)
    for sample, mine, doc in zip(samples, ours["parity_mc"].samples, MC_DOCS, strict=True):
        assert [tuple(a) for a in sample["arguments"]] == [(mine["context"], " " + c) for c in doc["choices"]]
        their_lls = [float(ll) for ll, _ in sample["filtered_resps"]]
        assert [float(resp[0][0]) for resp in sample["resps"]] == their_lls
        assert mine["loglikelihoods"] == pytest.approx(their_lls, rel=rtol, abs=0), doc["question"]
        assert mine["is_greedy"] == [bool(greedy) for _, greedy in sample["filtered_resps"]], doc["question"]
        for metric in ("acc", "acc_norm", "acc_bytes"):
            assert mine[metric] == sample[metric], (metric, doc["question"])
    for metric in ("acc", "acc_norm", "acc_bytes"):
        assert ours["parity_mc"].metrics[metric] == theirs["results"]["parity_mc"][f"{metric},none"], metric
    # Not a degenerate model: the docs do tell the normalisations apart somewhere.
    metrics = ("acc", "acc_norm", "acc_bytes")
    predictions = {metric: [s[metric] for s in ours["parity_mc"].samples] for metric in metrics}
    assert len({tuple(values) for values in predictions.values()}) > 1

    # Rolling log-likelihood: per-document totals, then corpus-weighted perplexities.
    rolling = sorted(theirs["samples"]["parity_ppl"], key=lambda s: s["doc_id"])
    their_totals = [float(sample["resps"][0][0]) for sample in rolling]
    assert [s["loglikelihood"] for s in ours["parity_ppl"].samples] == pytest.approx(their_totals, rel=rtol, abs=0)
    assert any(len(setup["tokenizer"].encode(doc["text"])) > 2 * BLOCK_SIZE for doc in PPL_DOCS)
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        expected = theirs["results"]["parity_ppl"][f"{metric},none"]
        assert math.isfinite(expected)
        assert ours["parity_ppl"].metrics[metric] == pytest.approx(expected, rel=METRIC_RTOL, abs=0), metric


def test_parity_docs_exercise_the_edge_cases(setup):
    """The cases the parity test is meant to cover are really in its data."""
    tokenizer = setup["tokenizer"]
    assert any(doc["question"].endswith(" ") for doc in MC_DOCS)
    assert any(doc["question"].endswith(("\n", "\u3000")) for doc in MC_DOCS)
    assert any(len(tokenizer.encode(doc["question"] + " " + max(doc["choices"], key=len))) > BLOCK_SIZE + 1
               for doc in MC_DOCS)
    assert Path(setup["root"] / "hf" / "tokenizer.json").exists()
