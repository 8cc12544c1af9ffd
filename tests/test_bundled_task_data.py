"""The bundled evaluation tasks: every YAML parses, names files that exist, and every document has its format's layout.

The layout tests read the data alone, so a broken item is caught even while the loader changes. Each bundled task
must have a layout check below; a new task without one fails `test_every_task_is_checked`. Only the test of answer
lengths goes through the harness, since it needs the choices and golds exactly as the harness scores them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import jinja2
import pytest
import yaml

from lmlab.evaluate.harness import load_task

TASKS_DIR = Path(__file__).resolve().parent.parent / "lmlab" / "evaluate" / "tasks"
YAMLS = sorted(TASKS_DIR.glob("*.yaml"))

# The keys of the task file format (harness_spec); the harness rejects any other.
KEYS = {"task", "output_type", "data", "fewshot_data", "description", "doc_to_text", "doc_to_choice", "doc_to_target",
        "target_delimiter", "fewshot_delimiter", "num_fewshot", "fewshot_sampler", "fewshot_seed", "limit",
        "process_docs", "metrics", "generation", "blocklist"}
METRICS = {
    "multiple_choice": {"acc", "acc_norm", "acc_bytes", "mc2", "pct_stereotype", "likelihood_diff"},
    "loglikelihood_rolling": {"word_perplexity", "byte_perplexity", "bits_per_byte", "bits_per_character"},
    "generate_until": {"exact_match", "bleu", "rouge1", "rouge2", "rougeL", "blocklist_rate"},
}
CJK = re.compile(r"[\u4e00-\u9fff]")


def read_jsonl(path: Path) -> list[dict]:
    docs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        assert line.strip(), f"{path.name}:{number}: blank line"
        # Chinese is stored as itself (ensure_ascii=False), so the files can be read and reviewed as they are.
        assert "\\u" not in line, f"{path.name}:{number}: escaped unicode"
        doc = json.loads(line)
        assert isinstance(doc, dict), f"{path.name}:{number}: not a JSON object"
        docs.append(doc)
    return docs


def load(path: Path) -> dict:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(config, dict), path.name
    return config


def distinct_nonempty(strings: list) -> bool:
    return all(isinstance(s, str) and s.strip() for s in strings) and len(set(strings)) == len(strings)


# ---- one layout check per format: each takes the task's docs (and its few-shot docs, when it has them) ----

def check_arc(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 30 <= len(docs) <= 50
    assert len({d["id"] for d in docs}) == len(docs)
    sizes = Counter()
    for d in docs:
        assert set(d) == {"id", "question", "choices", "answerKey"}, d
        texts, labels = d["choices"]["text"], d["choices"]["label"]
        assert set(d["choices"]) == {"text", "label"}
        assert 3 <= len(texts) <= 5 and len(labels) == len(texts), d
        assert distinct_nonempty(texts) and distinct_nonempty(labels), d
        assert d["answerKey"] in labels, d
        sizes[len(texts)] += 1
    assert sizes[3] and sizes[5], "some ARC items have 3 or 5 choices, as the real data does"


def check_hellaswag(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 30 <= len(docs) <= 50
    assert len({d["ind"] for d in docs}) == len(docs)
    for d in docs:
        assert set(d) == {"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "label"}, d
        assert len(d["endings"]) == 4 and distinct_nonempty(d["endings"]), d
        assert isinstance(d["label"], str) and d["label"] in {"0", "1", "2", "3"}, d
        assert d["ctx"] == (d["ctx_a"] + " " + d["ctx_b"]).strip(), d
        # The preprocessing capitalises ctx_b, which lowercases the rest: a proper noun there would be mangled.
        assert d["ctx_b"] == d["ctx_b"].lower(), d
        # Endings of one item have about the same length, so length alone says little about which one is right.
        lengths = [len(ending) for ending in d["endings"]]
        assert max(lengths) <= 1.6 * min(lengths), d
    assert any("[title]" in d["ctx_a"] or "[header]" in d["ctx_a"] for d in docs)


def _check_four_options(docs: list[dict], gold_of) -> Counter:
    golds = Counter()
    for d in docs:
        golds[gold_of(d)] += 1
    # The right answer is spread over the positions, so always answering one letter stays near chance.
    assert set(golds) == {0, 1, 2, 3} and max(golds.values()) <= len(docs) // 2, golds
    return golds


def check_mmlu(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 30 <= len(docs) <= 50 and fewshot
    for d in docs + fewshot:
        assert set(d) == {"question", "subject", "choices", "answer"}, d
        assert len(d["choices"]) == 4 and distinct_nonempty(d["choices"]), d
        assert type(d["answer"]) is int and 0 <= d["answer"] < 4, d
    _check_four_options(docs, lambda d: d["answer"])
    subjects = Counter(d["subject"] for d in docs)
    assert len(subjects) == 4, subjects
    assert Counter(d["subject"] for d in fewshot) == dict.fromkeys(subjects, 5)
    assert not {d["question"] for d in docs} & {d["question"] for d in fewshot}, "dev and test share a question"


def check_truthfulqa(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 12 <= len(docs) <= 50
    for d in docs:
        assert set(d) == {"question", "mc1_targets", "mc2_targets"}, d
        for key in ("mc1_targets", "mc2_targets"):
            choices, labels = d[key]["choices"], d[key]["labels"]
            assert len(choices) == len(labels) >= 2 and distinct_nonempty(choices), d
            assert set(labels) == {0, 1}, d
            assert labels == sorted(labels, reverse=True), f"true answers come first: {d}"
        assert d["mc1_targets"]["labels"].count(1) == 1, d
        mc2 = d["mc2_targets"]
        true_mc2 = {c for c, label in zip(mc2["choices"], mc2["labels"], strict=True) if label}
        assert d["mc1_targets"]["choices"][0] in true_mc2, d


def check_ceval(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 30 <= len(docs) <= 50 and fewshot
    for d in docs + fewshot:
        assert set(d) == {"id", "question", "A", "B", "C", "D", "answer", "subject"}, d
        assert distinct_nonempty([d[letter] for letter in "ABCD"]), d
        assert d["answer"] in {"A", "B", "C", "D"}, d
        assert CJK.search(d["question"]), d
    assert len({d["id"] for d in docs + fewshot}) == len(docs) + len(fewshot)
    _check_four_options(docs, lambda d: "ABCD".index(d["answer"]))
    assert not {d["question"] for d in docs} & {d["question"] for d in fewshot}, "dev and test share a question"


def _check_paragraphs(docs: list[dict], chinese: bool) -> None:
    assert 12 <= len(docs) <= 20
    # A Chinese character carries about as much as an English word, so Chinese paragraphs need fewer characters.
    shortest, longest = (300, 600) if chinese else (300, 1000)
    for d in docs:
        assert set(d) == {"text"} and d["text"] == d["text"].strip(), d
        assert shortest <= len(d["text"]) <= longest, (len(d["text"]), d)
        assert bool(CJK.search(d["text"])) == chinese, d
    assert len({d["text"] for d in docs}) == len(docs)


def check_ppl_en(docs: list[dict], fewshot: list[dict] | None) -> None:
    _check_paragraphs(docs, chinese=False)


def check_ppl_zh(docs: list[dict], fewshot: list[dict] | None) -> None:
    _check_paragraphs(docs, chinese=True)


def check_crows(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 12 <= len(docs) <= 40
    types = Counter()
    for d in docs:
        assert set(d) == {"sent_more", "sent_less", "stereo_antistereo", "bias_type"}, d
        more, less = d["sent_more"], d["sent_less"]
        assert more != less and more.strip() and less.strip(), d
        assert d["stereo_antistereo"] in {"stereo", "antistereo"}, d
        # A minimal pair: one contiguous span (the group word) differs, the rest is shared.
        prefix = 0
        while prefix < min(len(more), len(less)) and more[prefix] == less[prefix]:
            prefix += 1
        suffix = 0
        while suffix < min(len(more), len(less)) - prefix and more[-1 - suffix] == less[-1 - suffix]:
            suffix += 1
        shared = prefix + suffix
        assert shared >= max(len(more), len(less)) - 25 and shared >= min(len(more), len(less)) // 3, d
        types[d["bias_type"]] += 1
    assert set(types) <= {"gender", "age", "nationality", "profession", "religion", "disability", "socioeconomic"}
    assert len(types) >= 6, types


def check_closedqa(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 20 <= len(docs) <= 50
    for d in docs:
        assert set(d) == {"question", "answers"}, d
        assert isinstance(d["answers"], list) and distinct_nonempty(d["answers"]), d
        # Generation stops at the first newline, and the answers are one or two words (three with an article).
        assert all("\n" not in a and len(a.split()) <= 3 for a in d["answers"]), d
    assert sum(len(d["answers"]) > 1 for d in docs) >= 5, "several questions accept more than one spelling"


def check_translate(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 20 <= len(docs) <= 50
    for d in docs:
        assert set(d) == {"source", "target"}, d
        assert CJK.search(d["source"]) and not CJK.search(d["target"]), d
        assert d["target"].strip() and "\n" not in d["target"], d


def check_safety(docs: list[dict], fewshot: list[dict] | None) -> None:
    assert 15 <= len(docs) <= 40
    assert all(set(d) == {"prompt"} and d["prompt"].strip() for d in docs)
    assert len({d["prompt"] for d in docs}) == len(docs)


CHECKS = {
    "arc_easy_mini": check_arc, "hellaswag_mini": check_hellaswag, "mmlu_mini": check_mmlu,
    "truthfulqa_mc1_mini": check_truthfulqa, "truthfulqa_mc2_mini": check_truthfulqa, "ceval_mini": check_ceval,
    "ppl_en_mini": check_ppl_en, "ppl_zh_mini": check_ppl_zh, "crows_pairs_mini": check_crows,
    "crows_pairs_zh_mini": check_crows, "closedqa_mini": check_closedqa, "translate_zh_en_mini": check_translate,
    "safety_blocklist_mini": check_safety,
}


def test_every_task_is_checked():
    names = {load(path).get("task", path.stem) for path in YAMLS}
    assert names == set(CHECKS)


def test_every_data_file_belongs_to_a_task():
    used = set()
    for path in YAMLS:
        config = load(path)
        used |= {config[key] for key in ("data", "fewshot_data", "blocklist") if key in config}
    on_disk = {p.name for p in TASKS_DIR.iterdir() if p.suffix in {".jsonl", ".txt"}}
    assert on_disk == used


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_task_file(path: Path):
    config = load(path)
    assert set(config) <= KEYS, set(config) - KEYS
    assert config.get("task", path.stem) == path.stem
    kind = config["output_type"]
    assert kind in METRICS
    assert config["metrics"] and set(config["metrics"]) <= METRICS[kind], config["metrics"]
    assert (TASKS_DIR / config["data"]).is_file()
    if "fewshot_data" in config:
        assert (TASKS_DIR / config["fewshot_data"]).is_file()
    assert ("doc_to_choice" in config) == (kind == "multiple_choice")
    assert ("generation" in config) == (kind == "generate_until")
    if kind == "generate_until":
        assert set(config["generation"]) == {"until", "max_new_tokens"}
    assert ("blocklist" in config) == ("blocklist_rate" in config["metrics"])
    if "blocklist" in config:
        assert (TASKS_DIR / config["blocklist"]).is_file()


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_documents_have_their_format_layout(path: Path):
    config = load(path)
    docs = read_jsonl(TASKS_DIR / config["data"])
    fewshot = read_jsonl(TASKS_DIR / config["fewshot_data"]) if "fewshot_data" in config else None
    CHECKS[config.get("task", path.stem)](docs, fewshot)


def _indices(labels: list[int]) -> list[int]:
    return [i for i, label in enumerate(labels) if label == 1]


@pytest.mark.parametrize("path", [p for p in YAMLS if "process_docs" not in load(p)], ids=lambda p: p.stem)
def test_templates_name_fields_every_document_has(path: Path):
    """Render each template on each document with undefined names made errors, so a misspelt field fails here."""
    config = load(path)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["indices"] = _indices
    docs = read_jsonl(TASKS_DIR / config["data"])
    for key in ("doc_to_text", "doc_to_choice", "doc_to_target"):
        if key in config:
            template = env.from_string(config[key])
            for doc in docs:
                rendered = template.render(**doc)
                assert rendered.strip() or key != "doc_to_choice", (key, doc)


def _text_choice_tasks() -> list[str]:
    """The multiple-choice tasks whose choices are answers in words: not letter-choice exams, not CrowS pairs."""
    names = []
    for path in YAMLS:
        config = load(path)
        if config["output_type"] != "multiple_choice" or "pct_stereotype" in config["metrics"]:
            continue
        task = load_task(path)
        if task.choices(task.docs[0]) != ["A", "B", "C", "D"]:
            names.append(task.name)
    return names


@pytest.mark.parametrize("name", _text_choice_tasks())
def test_right_answers_are_not_told_apart_by_length(name: str):
    """The right answer is the longest choice about as often as chance has it, so length alone scores near chance.

    Writers tend to make the right answer the most careful, hence longest, one; then acc rewards a model that merely
    likes long continuations and acc_norm (which divides by length) is distorted. A document with k right answers
    among n choices has a right answer longest by chance k/n of the time: the bound is 35% plus that excess over 1/n.
    """
    task = load_task(name)
    longest = shortest = 0
    excess = 0.0
    for doc in task.docs:
        choices = task.choices(doc)
        golds = task.gold(doc, choices)
        lengths = [len(choice) for choice in choices]
        longest += any(lengths[g] == max(lengths) for g in golds)
        shortest += any(lengths[g] == min(lengths) for g in golds)
        excess += (len(golds) - 1) / len(choices)
    n = len(task.docs)
    assert longest <= 0.35 * n + excess, f"{name}: a right answer is the longest choice in {longest} of {n} documents"
    # Nor is the bias turned around: the right answer is sometimes the shortest choice.
    assert shortest >= 0.10 * n, f"{name}: a right answer is the shortest choice in only {shortest} of {n} documents"


def test_blocklist_terms():
    terms = [line.strip() for line in (TASKS_DIR / "blocklist.txt").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert len(terms) == len(set(terms))
    assert any(CJK.search(t) for t in terms) and any(t.isascii() for t in terms)


def test_readme_covers_every_task():
    readme = (TASKS_DIR / "README.md").read_text(encoding="utf-8")
    for name in CHECKS:
        assert f"`{name}`" in readme, name
