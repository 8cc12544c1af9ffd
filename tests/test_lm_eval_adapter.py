"""lmlab runs inside the real lm-evaluation-harness: its CLI, its Python API, and the startup hook.

Whatever lm-eval records per sample must be exactly what lmlab's own `LanguageModel` computes on
the same requests, and lm-eval's acc and word_perplexity must follow from those numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CHINESE, ENGLISH, tiny_train_overrides
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from lmlab.config import load_config
from lmlab.errors import LmlabError
from lmlab.evaluate.lm_eval_adapter import PTH_LINE, LmlabLM, generation_params, install_hook, uninstall_hook
from lmlab.generate import GenerationParams
from lmlab.models.language_model import CausalLanguageModel
from lmlab.runs import open_run
from lmlab.train import TrainConfig, read_train_config, train_run

MC_DOCS = [
    {"question": "To be, or not to", "choices": ["be", "fortune", "中国"], "label": 0},
    {"question": "the slings and arrows of outrageous", "choices": ["sea", "fortune"], "label": 1},
    {"question": "中国人民在新的一年里继续努力", "choices": ["工作", "question", "arms"], "label": 0},
    {"question": "whether 'tis nobler in the mind to", "choices": ["suffer", "鸟儿", "take"], "label": 0},
]
PPL_DOCS = [
    {"text": ENGLISH},
    {"text": CHINESE},
    {"text": " to be or not to be "},  # edge whitespace counts as extra "words" in lm-eval
    {"text": "春天来了 question"},
]
TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: {output_type}
test_split: test
{body}
metadata: {{version: 1.0}}
"""
MC_BODY = """doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: label
doc_to_choice: "{{choices}}"
metric_list: [{metric: acc}, {metric: acc_norm}]"""
PPL_BODY = """doc_to_text: ""
doc_to_target: "{{text}}"
metric_list: [{metric: word_perplexity}, {metric: byte_perplexity}, {metric: bits_per_byte}]"""
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def runs(packed_dir, tmp_path_factory) -> dict[str, Path]:
    """A tiny GPT run and a token trigram run on the same packed data."""
    root = tmp_path_factory.mktemp("lm_eval_runs")
    gpt = train_run(load_config(TrainConfig, None, tiny_train_overrides(packed_dir, root / "gpt", steps=4)))
    ngram = train_run(read_train_config(None, [f"data={packed_dir}", f"run_dir={root / 'ngram'}", "model.family=ngram",
                                               "model.unit=token", "model.order=3", "model.discount_fallback=true"]))
    return {"gpt": gpt.run_dir, "ngram": ngram.run_dir}


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory) -> Path:
    """demo_mc (multiple_choice) and demo_ppl (loglikelihood_rolling) over local JSONL files."""
    root = tmp_path_factory.mktemp("lm_eval_tasks")
    for name, docs, output_type, body in [("demo_mc", MC_DOCS, "multiple_choice", MC_BODY),
                                           ("demo_ppl", PPL_DOCS, "loglikelihood_rolling", PPL_BODY)]:
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        (root / f"{name}.yaml").write_text(TASK.format(name=name, data=data, output_type=output_type, body=body),
                                           encoding="utf-8")
    return root


def _arguments(sample: dict) -> list[tuple]:
    """A sample's request arguments, from the samples file or from `simple_evaluate`'s result."""
    args = sample["arguments"]
    if isinstance(args, dict):  # the samples file: {"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}
        return [tuple(a.values()) for a in args.values()]
    return [tuple(a) for a in args]


def _scored(value: object) -> float | bool:
    """A recorded response value: the samples file holds them as strings ("-3.25", "False")."""
    if isinstance(value, str) and value in ("True", "False"):
        return value == "True"
    return value if isinstance(value, bool) else float(value)


def check_against_lmlab(run: Path, batch_size: int, samples: dict[str, list[dict]], results: dict[str, dict]) -> None:
    """Every log-likelihood lm-eval recorded is lmlab's own, and acc / perplexities follow from them."""
    lm = open_run(run).language_model()
    if isinstance(lm, CausalLanguageModel):
        lm.batch_size = batch_size  # the same windows in one forward, hence the same float32 sums

    mc = sorted(samples["demo_mc"], key=lambda s: s["doc_id"])
    assert len(mc) == len(MC_DOCS)
    accs = []
    for sample, doc in zip(mc, MC_DOCS, strict=True):
        pairs = _arguments(sample)
        assert pairs == [(f"Question: {doc['question']}\nAnswer:", " " + c) for c in doc["choices"]]
        ours = [(ll, greedy) for ll, greedy in lm.loglikelihood(pairs)]
        assert [tuple(_scored(v) for v in resp[0]) for resp in sample["resps"]] == ours
        assert [tuple(_scored(v) for v in resp) for resp in sample["filtered_resps"]] == ours
        lls = np.array([ll for ll, _ in ours])
        acc = float(np.argmax(lls) == doc["label"])
        acc_norm = float(np.argmax(lls / np.array([len(c) for c in doc["choices"]])) == doc["label"])
        assert (sample["acc"], sample["acc_norm"]) == (acc, acc_norm)
        accs.append(acc)
    assert results["demo_mc"]["acc,none"] == pytest.approx(np.mean(accs), abs=1e-12)

    ppl = sorted(samples["demo_ppl"], key=lambda s: s["doc_id"])
    texts = [doc["text"] for doc in PPL_DOCS]
    assert [_arguments(sample) for sample in ppl] == [[(text,)] for text in texts]
    ours_rolling = lm.loglikelihood_rolling(texts)
    assert [_scored(sample["resps"][0][0]) for sample in ppl] == ours_rolling
    assert [_scored(sample["filtered_resps"][0]) for sample in ppl] == ours_rolling
    words = sum(len(re.split(r"\s+", text)) for text in texts)
    nbytes = sum(len(text.encode("utf-8")) for text in texts)
    total = sum(ours_rolling)
    assert results["demo_ppl"]["word_perplexity,none"] == pytest.approx(math.exp(-total / words), rel=1e-9)
    assert results["demo_ppl"]["byte_perplexity,none"] == pytest.approx(math.exp(-total / nbytes), rel=1e-9)
    assert results["demo_ppl"]["bits_per_byte,none"] == pytest.approx(-total / nbytes / math.log(2), rel=1e-9)


@pytest.mark.slow
def test_the_lm_eval_cli_scores_a_gpt_run_with_lmlabs_numbers(runs, tasks_dir, tmp_path):
    out = tmp_path / "out"
    # The hook imported by hand, as the .pth file install_hook writes would do in every interpreter.
    command = [sys.executable, "-c",
               "import lmlab._lm_eval_hook; from lm_eval.__main__ import cli_evaluate; cli_evaluate()",
               "--model", "lmlab", "--model_args", f"path={runs['gpt']},batch_size=8",
               "--tasks", "demo_mc,demo_ppl", "--include_path", str(tasks_dir),
               "--output_path", str(out), "--log_samples"]
    env = os.environ | OFFLINE | {"HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    [results_file] = out.rglob("results_*.json")
    report = json.loads(results_file.read_text(encoding="utf-8"))
    assert report["config"]["model"] == "lmlab"
    samples = {task: [json.loads(line) for line in next(out.rglob(f"samples_{task}_*.jsonl")).read_text(
        encoding="utf-8").splitlines()] for task in ("demo_mc", "demo_ppl")}
    check_against_lmlab(runs["gpt"], 8, samples, report["results"])


def test_the_python_api_scores_an_ngram_run_with_lmlabs_numbers(runs, tasks_dir, tmp_path, monkeypatch):
    for key, value in (OFFLINE | {"HF_HOME": str(tmp_path / "hf")}).items():
        monkeypatch.setenv(key, value)
    model = LmlabLM.create_from_arg_string(f"path={runs['ngram']},batch_size=2", {"batch_size": 1, "device": None})
    assert model.batch_size == 2  # the model's own arguments win over lm-eval's run-wide defaults
    report = simple_evaluate(model=model, tasks=["demo_mc", "demo_ppl"], bootstrap_iters=0, log_samples=True,
                             task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False))
    check_against_lmlab(runs["ngram"], 2, report["samples"], report["results"])


def test_generate_until_delegates_to_lmlab_generation(runs):
    model = LmlabLM(path=str(runs["gpt"]), batch_size=2)
    prompts = ["To be, or not", "中国人民", "the slings"]
    greedy = {"until": ["question"], "max_gen_toks": 12}
    requests = [Instance("generate_until", {}, (prompt, greedy), index) for index, prompt in enumerate(prompts)]
    expected = model.lm.generate(prompts, GenerationParams(max_new_tokens=12, temperature=0.0, stop=["question"]))
    assert model.generate_until(requests) == expected
    assert all("question" not in text for text in expected)


def test_gen_kwargs_follow_lm_evals_conventions():
    assert generation_params({}).temperature == 0.0  # greedy unless asked
    params = generation_params({"until": "\n\n", "max_gen_toks": 5, "temperature": 0.7, "top_k": 3})
    assert (params.stop, params.max_new_tokens, params.temperature, params.top_k) == (["\n\n"], 5, 0.7, 3)
    assert generation_params({"do_sample": False, "temperature": 0.9}).temperature == 0.0
    assert generation_params({"do_sample": True}).temperature == 1.0
    with pytest.raises(LmlabError, match="num_beams"):
        generation_params({"num_beams": 4})


def test_model_args_are_checked(runs):
    with pytest.raises(LmlabError, match="dtype"):
        LmlabLM.create_from_arg_string(f"path={runs['gpt']},dtype=float32")
    with pytest.raises(LmlabError, match="path=RUN_DIR"):
        LmlabLM.create_from_arg_string("batch_size=8")
    with pytest.raises(LmlabError, match="n-gram"):
        LmlabLM.create_from_arg_string(f"path={runs['ngram']},max_length=16")
    with pytest.raises(LmlabError, match="block size 32"):
        LmlabLM.create_from_arg_string(f"path={runs['gpt']},max_length=64")
    model = LmlabLM.create_from_arg_string(f"path={runs['gpt']},max_length=8,batch_size=auto")
    assert (model.lm.max_length, model.batch_size) == (8, 16)


# The probe a fresh interpreter runs: drop any hook this environment already loads, then see
# whether lm-eval knows "lmlab" with (argv[1] == "site") or without the site dir holding our .pth.
PROBE = """
import site, sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "LmEvalModelsFinder"]
sys.modules.pop("lmlab._lm_eval_hook", None)
assert "lm_eval" not in sys.modules
if sys.argv[1] == "site":
    site.addsitedir(sys.argv[2])
from lm_eval.api.registry import get_model, model_registry
try:
    model = get_model("lmlab")
except ValueError:
    print("unknown")
else:
    print(f"{model.__module__}:{model.__name__}", "hf" in model_registry)
"""


def test_the_pth_hook_makes_lm_eval_find_lmlab(tmp_path):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    # Run as `python -m`, as the Makefile will: the module then runs as __main__ beside its real self.
    done = subprocess.run([sys.executable, "-m", "lmlab.evaluate.lm_eval_adapter", "install", "--dir", str(site_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pth = site_dir / "lmlab_lm_eval.pth"
    assert pth.read_text(encoding="utf-8") == PTH_LINE == "import lmlab._lm_eval_hook\n"
    stamp = pth.stat().st_mtime_ns
    assert install_hook(site_dir) == pth and pth.stat().st_mtime_ns == stamp  # idempotent: not rewritten

    def probe(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", PROBE, mode, str(site_dir)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert probe("site") == "lmlab.evaluate.lm_eval_adapter:LmlabLM True"  # built-ins still there
    assert probe("bare") == "unknown"  # so it is the .pth that taught lm-eval the name
    assert uninstall_hook(site_dir) == pth and not pth.exists()
    assert uninstall_hook(site_dir) is None
