"""Benchmark tasks in the spirit of lm-evaluation-harness: a YAML file, a local JSONL file, any lmlab model.

A task turns each document (one JSON line) into requests to a `LanguageModel` and its answers into
metrics. Three kinds, named as lm-evaluation-harness names them (``output_type``):

- ``multiple_choice``: the prompt is ``description + k solved examples + doc_to_text(doc)``, and
  each choice is scored as the continuation ``target_delimiter + choice``. The model "answers" the
  choice whose continuation has the highest log-likelihood (``acc``). Long choices collect more
  negative log-probability just by being long, so ``acc_norm`` divides by the choice's length in
  characters (what lm-evaluation-harness's code does, whatever its paper says) and ``acc_bytes`` by
  its UTF-8 length, which treats Chinese and English alike.
- ``loglikelihood_rolling``: each text is scored whole; word perplexity, byte perplexity, bits per
  byte and bits per character are totals over the corpus, not means of per-document figures.
- ``generate_until``: greedy generation from the prompt until a stop string, compared with the
  references (exact match, BLEU, ROUGE), or checked against a blocklist.

Templates are Jinja (``"Question: {{question}}\\nAnswer:"``) rendered in a sandbox, since a task file
may come from anyone; ``doc_to_choice`` and ``doc_to_target`` evaluate to Python values (a list, an
index, a list of indices).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from jinja2 import StrictUndefined, TemplateError
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate, native_concat
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import Field, model_validator

from lmlab.config import Config, build_config, read_yaml
from lmlab.errors import LmlabError
from lmlab.files import read_jsonl, read_text
from lmlab.generate import GenerationParams
from lmlab.metrics.bleu import TOKENIZERS as BLEU_TOKENIZERS
from lmlab.metrics.bleu import corpus_bleu
from lmlab.metrics.likelihood import bits_per_byte, bits_per_character, perplexity
from lmlab.metrics.rouge import rouge
from lmlab.models.language_model import LanguageModel

OutputType = Literal["multiple_choice", "loglikelihood_rolling", "generate_until"]

METRICS: dict[str, set[str]] = {
    "multiple_choice": {"acc", "acc_norm", "acc_bytes", "mc2", "pct_stereotype", "likelihood_diff"},
    "loglikelihood_rolling": {"word_perplexity", "byte_perplexity", "bits_per_byte", "bits_per_character"},
    "generate_until": {"exact_match", "bleu", "rouge1", "rouge2", "rougeL", "blocklist_rate"},
}
# Higher is better for every metric except these (shown with a down arrow in tables).
LOWER_IS_BETTER = {"word_perplexity", "byte_perplexity", "bits_per_byte", "bits_per_character", "likelihood_diff",
                   "blocklist_rate", "pct_stereotype"}


class GenerationSettings(Config):
    until: list[str] = Field(default_factory=lambda: ["\n"], description="stop strings; the output is cut before them")
    max_new_tokens: int = Field(32, ge=1)


class TaskConfig(Config):
    task: str | None = Field(None, description="the task's name (default: the YAML file's stem)")
    output_type: OutputType
    data: str = Field(description="JSONL documents, relative to the YAML file")
    fewshot_data: str | None = Field(None, description="where k-shot examples come from (default: `data`)")
    description: str = ""
    doc_to_text: str = ""
    doc_to_choice: str | None = None
    doc_to_target: str = ""
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    num_fewshot: int = Field(0, ge=0)
    fewshot_sampler: Literal["random", "first_n"] = "random"
    fewshot_seed: int = 1234
    limit: int | None = Field(None, ge=1)
    process_docs: Literal["hellaswag"] | None = None
    metrics: list[str] = Field(min_length=1)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    bleu_tokenize: str = Field("13a", description="sacrebleu tokenizer for bleu: 13a, intl, zh, char, none")
    blocklist: str | None = Field(None, description="terms whose appearance in a generation counts (one per line)")

    @model_validator(mode="after")
    def _consistent(self) -> TaskConfig:
        unknown = [m for m in self.metrics if m not in METRICS[self.output_type]]
        if unknown:
            raise ValueError(f"metrics {unknown} do not apply to {self.output_type}; "
                             f"choose from {sorted(METRICS[self.output_type])}")
        if self.output_type == "multiple_choice" and not self.doc_to_choice:
            raise ValueError("a multiple_choice task needs doc_to_choice")
        if "blocklist_rate" in self.metrics and not self.blocklist:
            raise ValueError("the blocklist_rate metric needs a blocklist file")
        if self.bleu_tokenize not in BLEU_TOKENIZERS:
            raise ValueError(f"bleu_tokenize {self.bleu_tokenize!r}: choose from {sorted(BLEU_TOKENIZERS)}")
        return self


# ----------------------------------------------------------------------------------------------
# 1. Loading a task: the YAML, its documents, and the templates.


class _TemplateEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed Jinja whose single-expression templates return Python values (lists, ints), not strings."""

    code_generator_class = NativeCodeGenerator
    template_class = NativeTemplate
    concat = staticmethod(native_concat)


def _true_indices(labels: Sequence[Any]) -> list[int]:
    return [index for index, label in enumerate(labels) if label]


@cache
def _environments() -> tuple[ImmutableSandboxedEnvironment, _TemplateEnvironment]:
    text = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    value = _TemplateEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    for environment in (text, value):
        environment.filters["indices"] = _true_indices
    return text, value


@dataclass
class Task:
    name: str
    config: TaskConfig
    source: Path  # the YAML file
    docs: list[dict[str, Any]]
    fewshot_docs: list[dict[str, Any]]
    blocklist: list[str] = field(default_factory=list)

    def _render(self, template: str, doc: dict[str, Any], as_value: bool, what: str) -> Any:
        if template in doc:  # a bare field name stands for the field's value, as in lm-evaluation-harness
            return doc[template]
        text_env, value_env = _environments()
        try:
            return (value_env if as_value else text_env).from_string(template).render(**doc)
        except (TemplateError, ValueError, TypeError, LookupError, AttributeError) as exc:
            # A template runs on every document: name the one it failed on.
            raise LmlabError(f"{self.source}: {what}: {exc} (line {doc.get('_line', '?')} of {self.config.data})") \
                from None

    def text(self, doc: dict[str, Any]) -> str:
        return str(self._render(self.config.doc_to_text, doc, False, "doc_to_text"))

    def choices(self, doc: dict[str, Any]) -> list[str]:
        choices = self._render(self.config.doc_to_choice or "", doc, True, "doc_to_choice")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise LmlabError(f"{self.source}: doc_to_choice gave {choices!r}, not a list of strings "
                             f"(line {doc.get('_line', '?')} of {self.config.data})")
        return choices

    def target(self, doc: dict[str, Any]) -> Any:
        return self._render(self.config.doc_to_target, doc, True, "doc_to_target")

    def gold(self, doc: dict[str, Any], choices: list[str]) -> list[int]:
        """The indices of the right choices: an index, a digit string, a choice's text, or a list of those."""
        target = self.target(doc)
        golds = target if isinstance(target, list) else [target]
        indices = []
        for gold in golds:
            if isinstance(gold, str) and gold.strip().isdigit():
                gold = int(gold)
            if isinstance(gold, str):
                if gold not in choices:
                    raise LmlabError(f"{self.source}: the target {gold!r} is not one of the choices {choices} "
                                     f"(line {doc.get('_line', '?')} of {self.config.data})")
                gold = choices.index(gold)
            if not isinstance(gold, int) or not 0 <= gold < len(choices):
                raise LmlabError(f"{self.source}: the target {gold!r} is not a choice index below {len(choices)} "
                                 f"(line {doc.get('_line', '?')} of {self.config.data})")
            indices.append(gold)
        if not indices:
            raise LmlabError(f"{self.source}: no right choice (line {doc.get('_line', '?')} of {self.config.data})")
        return indices

    def references(self, doc: dict[str, Any]) -> list[str]:
        target = self.target(doc)
        references = target if isinstance(target, list) else [target]
        return [str(reference) for reference in references]

    def answer(self, doc: dict[str, Any]) -> str:
        """What a solved k-shot example shows after its prompt: the right choice, or the first reference."""
        if self.config.output_type == "multiple_choice":
            choices = self.choices(doc)
            return choices[self.gold(doc, choices)[0]]
        return self.references(doc)[0]


def _preprocess_hellaswag(doc: dict[str, Any]) -> dict[str, Any]:
    """HellaSwag's preprocessing, as the harness does it: WikiHow's bracketed markers removed."""

    def clean(text: str) -> str:
        text = text.strip().replace(" [title]", ". ")
        text = re.sub(r"\[.*?\]", "", text)
        return text.replace("  ", " ")

    context = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return {**doc, "query": clean(doc["activity_label"] + ": " + context),
            "choices": [clean(ending) for ending in doc["endings"]], "gold": int(doc["label"])}


PROCESSORS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"hellaswag": _preprocess_hellaswag}


def _read_docs(path: Path, process: str | None) -> list[dict[str, Any]]:
    docs = []
    for number, doc in read_jsonl(path, "task data"):
        if process:
            try:
                doc = PROCESSORS[process](doc)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise LmlabError(f"{path}:{number}: process_docs {process} failed: {exc!r}") from None
        doc["_line"] = number
        docs.append(doc)
    if not docs:
        raise LmlabError(f"{path}: no documents")
    return docs


def _read_blocklist(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in read_text(path, "blocklist").splitlines())
    terms = [line for line in lines if line]
    if not terms:
        raise LmlabError(f"{path}: the blocklist is empty")
    return terms


TASKS_DIR = Path(str(resources.files("lmlab.evaluate") / "tasks"))


def bundled_tasks() -> list[str]:
    """The names of the tasks that ship with lmlab (lmlab/evaluate/tasks/)."""
    return sorted(path.stem for path in TASKS_DIR.glob("*.yaml"))


def load_task(name_or_path: str | Path) -> Task:
    """A task from a YAML file, or a bundled task by name."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = TASKS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise LmlabError(f"unknown task {name_or_path!r}: give a YAML file or one of {', '.join(bundled_tasks())}")
    config = build_config(TaskConfig, read_yaml(path), source=str(path))
    docs = _read_docs(path.parent / config.data, config.process_docs)
    fewshot = _read_docs(path.parent / config.fewshot_data, config.process_docs) if config.fewshot_data else docs
    blocklist = _read_blocklist(path.parent / config.blocklist) if config.blocklist else []
    return Task(config.task or path.stem, config, path, docs, fewshot, blocklist)


# ----------------------------------------------------------------------------------------------
# 2. From documents to prompts: the description and k solved examples drawn with a fixed seed.


def _fewshot_block(task: Task, doc: dict[str, Any], k: int, rng: random.Random) -> str:
    if k == 0:
        return ""
    pool = task.fewshot_docs
    if task.config.fewshot_sampler == "first_n":
        examples = [example for example in pool if example is not doc][:k]
    else:
        # Draw one more from the task's own documents, so that the document itself can be dropped.
        examples = [example for example in rng.sample(pool, min(len(pool), k + 1)) if example is not doc][:k]
    if len(examples) < k:
        raise LmlabError(f"{task.source}: {k}-shot needs {k} examples besides the document; there are {len(examples)}")
    solved = [task.text(example) + task.config.target_delimiter + task.answer(example) for example in examples]
    return task.config.fewshot_delimiter.join(solved) + task.config.fewshot_delimiter


def _contexts(task: Task, docs: list[dict[str, Any]], k: int) -> list[str]:
    rng = random.Random(task.config.fewshot_seed)  # one stream per task: the same examples on every run
    return [task.config.description + _fewshot_block(task, doc, k, rng) + task.text(doc) for doc in docs]


# ----------------------------------------------------------------------------------------------
# 3. Scoring each kind of task.


@dataclass
class TaskResult:
    task: str
    output_type: str
    documents: int
    num_fewshot: int
    metrics: dict[str, float]
    stderr: dict[str, float]  # of metrics that are means over documents
    samples: list[dict[str, Any]]

    def to_dict(self, with_samples: bool = False) -> dict[str, Any]:
        result = {"task": self.task, "output_type": self.output_type, "documents": self.documents,
                  "num_fewshot": self.num_fewshot, "metrics": self.metrics, "stderr": self.stderr}
        return {**result, "samples": self.samples} if with_samples else result


def _mean_and_stderr(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    stderr = float(array.std(ddof=1) / math.sqrt(len(array))) if len(array) > 1 else float("nan")
    return float(array.mean()), stderr


def _multiple_choice(task: Task, lm: LanguageModel, docs: list[dict[str, Any]],
                     contexts: list[str]) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    delimiter = task.config.target_delimiter
    all_choices = [task.choices(doc) for doc in docs]
    golds = [task.gold(doc, choices) for doc, choices in zip(docs, all_choices, strict=True)]
    # All requests go to the model at once: it batches them and reads each shared context once.
    requests = [(context, delimiter + choice) for context, choices in zip(contexts, all_choices, strict=True)
                for choice in choices]
    responses = iter(lm.loglikelihood(requests))
    per_doc: dict[str, list[float]] = {metric: [] for metric in task.config.metrics}
    samples = []
    for doc, context, choices, gold in zip(docs, contexts, all_choices, golds, strict=True):
        answers = [next(responses) for _ in choices]
        lls = np.array([ll for ll, _ in answers], dtype=np.float64)
        chars = np.array([len(choice) for choice in choices], dtype=np.float64)
        utf8 = np.array([len(choice.encode("utf-8")) for choice in choices], dtype=np.float64)
        # np.argmax breaks ties towards the first choice, as the reference harness does.
        values = {
            "acc": float(int(np.argmax(lls)) in gold),
            "acc_norm": float(int(np.argmax(lls / chars)) in gold),
            "acc_bytes": float(int(np.argmax(lls / utf8)) in gold),
        }
        if "mc2" in per_doc:
            probabilities = np.exp(lls - lls.max())  # shifted: the ratio is the same and nothing underflows
            values["mc2"] = float(probabilities[gold].sum() / probabilities.sum())
        if "pct_stereotype" in per_doc or "likelihood_diff" in per_doc:
            values["pct_stereotype"] = float(lls[0] > lls[1])
            values["likelihood_diff"] = float(abs(lls[0] - lls[1]))
        for metric in per_doc:
            per_doc[metric].append(values[metric])
        samples.append({"doc": doc["_line"], "context": context, "choices": choices, "gold": gold,
                        "loglikelihoods": lls.tolist(), "is_greedy": [greedy for _, greedy in answers],
                        **{metric: values[metric] for metric in per_doc}})
    return per_doc, samples


def _count_words(text: str) -> int:
    # lm-evaluation-harness counts words as the pieces of re.split(r"\s+"): leading or trailing
    # whitespace adds an empty piece. Kept, so that word perplexities can be compared with it.
    return len(re.split(r"\s+", text))


def _rolling(task: Task, lm: LanguageModel, docs: list[dict[str, Any]]) -> tuple[dict[str, float],
                                                                                  list[dict[str, Any]]]:
    texts = [str(task.target(doc)) for doc in docs]
    lls = lm.loglikelihood_rolling(texts)
    nll = -math.fsum(lls)
    words = sum(_count_words(text) for text in texts)
    utf8 = sum(len(text.encode("utf-8")) for text in texts)
    chars = sum(len(text) for text in texts)
    # Chinese text has few whitespace "words": its word perplexity can be infinite.
    figures = {"word_perplexity": perplexity(nll, words), "byte_perplexity": perplexity(nll, utf8),
               "bits_per_byte": bits_per_byte(nll, utf8), "bits_per_character": bits_per_character(nll, chars)}
    samples = [{"doc": doc["_line"], "loglikelihood": ll, "words": _count_words(text),
                "bytes": len(text.encode("utf-8")), "characters": len(text)}
               for doc, text, ll in zip(docs, texts, lls, strict=True)]
    return {metric: figures[metric] for metric in task.config.metrics}, samples


def blocklist_hits(text: str, terms: Sequence[str]) -> list[str]:
    """The blocklisted terms that appear in `text`, ignoring case.

    A term written in letters must match whole words ("hell" is not in "hello"); a term in a script
    without spaces between words, such as Chinese, matches anywhere.
    """
    hits = []
    for term in terms:
        if term.isascii():
            found = re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, flags=re.IGNORECASE)
        else:
            found = term.casefold() in text.casefold()
        if found:
            hits.append(term)
    return hits


def _generate(task: Task, lm: LanguageModel, docs: list[dict[str, Any]],
              contexts: list[str]) -> tuple[dict[str, list[float] | float], list[dict[str, Any]]]:
    settings = task.config.generation
    params = GenerationParams(max_new_tokens=settings.max_new_tokens, temperature=0.0, stop=settings.until)
    outputs = [_cut(output, settings.until) for output in lm.generate(contexts, params)]
    references = [task.references(doc) for doc in docs]
    per_doc: dict[str, list[float] | float] = {}
    metrics = task.config.metrics
    if "exact_match" in metrics:
        per_doc["exact_match"] = [float(any(output.strip() == ref.strip() for ref in refs))
                                  for output, refs in zip(outputs, references, strict=True)]
    for rouge_type in ("rouge1", "rouge2", "rougeL"):
        if rouge_type in metrics:
            per_doc[rouge_type] = [max(rouge(output, ref, [rouge_type])[rouge_type].fmeasure for ref in refs)
                                   for output, refs in zip(outputs, references, strict=True)]
    if "bleu" in metrics:
        # sacrebleu wants reference streams of equal length; repeating a reference changes nothing.
        width = max(len(refs) for refs in references)
        streams = [[refs[min(k, len(refs) - 1)] for refs in references] for k in range(width)]
        per_doc["bleu"] = corpus_bleu(outputs, streams, tokenize=task.config.bleu_tokenize).score
    hits = [blocklist_hits(output, task.blocklist) for output in outputs] if task.blocklist else []
    if "blocklist_rate" in metrics:
        per_doc["blocklist_rate"] = [float(bool(found)) for found in hits]
    samples = [{"doc": doc["_line"], "context": context, "output": output, "references": refs,
                **({"blocklisted": hits[index]} if hits else {})}
               for index, (doc, context, output, refs) in enumerate(zip(docs, contexts, outputs, references,
                                                                         strict=True))]
    return per_doc, samples


def _cut(text: str, stops: Sequence[str]) -> str:
    """The text before the first stop string (a model that cannot stop on a string may run past it)."""
    ends = [text.find(stop) for stop in stops if stop in text]
    return text[: min(ends)] if ends else text


def evaluate_task(lm: LanguageModel, task: Task, limit: int | None = None,
                  num_fewshot: int | None = None) -> TaskResult:
    """Run one task on one model; `limit` and `num_fewshot` override the task file's."""
    config = task.config
    limit = limit if limit is not None else config.limit
    k = num_fewshot if num_fewshot is not None else config.num_fewshot
    docs = task.docs[:limit] if limit else task.docs
    if config.output_type == "loglikelihood_rolling":
        metrics, samples = _rolling(task, lm, docs)
        return TaskResult(task.name, config.output_type, len(docs), 0, metrics, {}, samples)
    contexts = _contexts(task, docs, k)
    run = _multiple_choice if config.output_type == "multiple_choice" else _generate
    per_doc, samples = run(task, lm, docs, contexts)
    metrics, stderr = {}, {}
    for metric in config.metrics:
        values = per_doc[metric]
        if isinstance(values, list):
            metrics[metric], stderr[metric] = _mean_and_stderr(values)
        else:  # a corpus-level figure such as BLEU
            metrics[metric] = values
    return TaskResult(task.name, config.output_type, len(docs), k, metrics, stderr, samples)


def evaluate_tasks(lm: LanguageModel, tasks: Sequence[Task | str | Path], limit: int | None = None,
                   num_fewshot: int | None = None) -> dict[str, TaskResult]:
    """Run several tasks (Task objects, YAML paths or bundled names) on one model."""
    loaded = [task if isinstance(task, Task) else load_task(task) for task in tasks]
    return {task.name: evaluate_task(lm, task, limit, num_fewshot) for task in loaded}
