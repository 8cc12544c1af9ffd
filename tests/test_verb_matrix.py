"""Every verb that takes a run, on every kind of run: it works, or it refuses in one `error:` line (exit 2).

The runs are tiny ones of each kind lmlab trains (a GPT, a BERT, an LSTM, a Bengio MLP, an n-gram
model, word vectors, BERTs tuned for classification, tagging and QA) and a Hugging Face directory
exported from the GPT. `WORKS` names the cells that must succeed; each checks what it printed or
wrote. Every other cell must refuse: exit 2, exactly one line on stderr, starting `error:`, naming
the run, and no traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import tiny_documents
from png_checks import drawn_png

from lmlab.cli import main
from lmlab.data.packing import pack_corpus
from lmlab.runs import open_run
from lmlab.tokenizers import TokenizerConfig, train_tokenizer

STEPS = ["train.max_steps=4", "train.batch_size=4", "train.eval_every=2", "train.eval_tokens=128",
         "train.device=cpu", "train.log_every=1"]
TUNE = ["train.max_steps=2", "train.eval_every=2", "train.batch_size=8", "train.device=cpu", "block_size=32",
        "train.early_stopping=null"]
RUNS = ["gpt", "bert", "lstm", "mlp", "ngram", "vectors", "classifier", "tagger", "reader", "hf"]


def call(capsys, argv: list) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(word) for word in argv])
    out, err = capsys.readouterr()
    return code, out, err


NEURAL = ("gpt", "bert", "lstm", "mlp")


def neural_training(name: str, chars: Path, wordpieces: Path, run_dir: Path) -> list[str]:
    """`lmlab train` of a toy run of family `name`, on the packed char or WordPiece data."""
    models = {
        "gpt": "model={family: gpt, n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}",
        "bert": "model={family: bert, n_layer: 1, n_head: 2, hidden_size: 16, intermediate_size: 32, block_size: 32}",
        "lstm": "model={family: rnn, cell: lstm, n_layer: 1, n_embd: 16, hidden: 16, block_size: 16}",
        "mlp": "model={family: mlp, context: 3, n_embd: 8, hidden: 16, block_size: 16}",
    }
    data = wordpieces if name == "bert" else chars
    objective = ["objective=masked_lm"] if name == "bert" else []
    return ["train", f"data={data}", models[name], *objective, f"run_dir={run_dir}", *STEPS]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory, packed_dir) -> dict[str, Path]:
    """Every kind of run, trained at toy size through the command line, plus labelled data for `tune`."""
    root = tmp_path_factory.mktemp("matrix")
    docs = tiny_documents()
    wordpiece = train_tokenizer(docs, TokenizerConfig(kind="wordpiece", vocab_size=300))
    pack_corpus(docs, wordpiece, root / "wordpiece", val_fraction=0.2, seed=0)
    wordpiece.save(root / "wordpiece" / "tokenizer.json")
    (root / "corpus.txt").write_text("\n".join(docs), encoding="utf-8")
    words = ["good", "bad", "the", "film", "was", "a", "plot", "music"]
    write_jsonl(root / "reviews.jsonl", [{"text": f"{words[i % 8]} {words[(i * 3) % 8]} film {i}",
                                          "label": "pos" if i % 2 else "neg"} for i in range(60)])
    write_jsonl(root / "tags.jsonl", [{"tokens": ["alice", "was", "in", "paris"] if i % 2 else ["bob", "saw", "rome"],
                                       "tags": ["B-PER", "O", "O", "B-LOC"] if i % 2 else ["B-PER", "O", "B-LOC"]}
                                      for i in range(60)])
    write_jsonl(root / "qa.jsonl", [{"question": "which colour ?", "context": f"the {colour} film was good",
                                     "answers": {"text": [colour], "answer_start": [4]}}
                                    for colour in ("red", "blue", "green") * 20])
    runs = {name: root / name for name in RUNS}
    for name in NEURAL:
        assert main(neural_training(name, packed_dir, root / "wordpiece", runs[name])) == 0, name
    assert main(["train", f"data={packed_dir}", f"run_dir={runs['ngram']}", "model.family=ngram", "model.order=3",
                 "model.discount_fallback=true"]) == 0
    assert main(["vectors", "train", str(root / "corpus.txt"), "--out", str(runs["vectors"]), "min_count=1",
                 "epochs=2", "dim=8"]) == 0
    for name, task, data in (("classifier", "classification", "reviews"), ("tagger", "tagging", "tags"),
                             ("reader", "qa", "qa")):
        assert main(["tune", f"base={runs['bert']}", f"task={task}", f"data={root / data}.jsonl",
                     f"run_dir={runs[name]}", *TUNE, *(["doc_stride=8"] if task == "qa" else [])]) == 0, name
    assert main(["export", str(runs["gpt"]), str(runs["hf"])]) == 0
    return {**runs, "root": root, "data": packed_dir}


def cells(world: dict[str, Path], name: str) -> dict[str, list]:
    """Each verb's command line on run `name`; outputs go under root/out/<verb>-<run>."""
    run, out = world[name], world["root"] / "out"

    def pipe(task: str) -> list:
        return ["pipeline", task, "--model", run, "--device", "cpu"]

    return {
        "eval": ["eval", run],
        "eval compare": ["eval", "compare", run, "--data", world["data"], "--out", out / f"compare-{name}"],
        "eval compare, its data": ["eval", "compare", run, "--out", out / f"compare-own-{name}"],
        "eval --tasks": ["eval", run, "--tasks", "arc_easy_mini", "--limit", "2", "--out", out / f"tasks-{name}"],
        "generate": ["generate", run, "To be", "--max-new-tokens", "4", "--seed", "0"],
        "generate --stream": ["generate", run, "To be", "--max-new-tokens", "4", "--seed", "0", "--stream"],
        "sentiment-analysis": [*pipe("sentiment-analysis"), "good film"],
        "text-classification": [*pipe("text-classification"), "good film", "--all-labels"],
        "fill-mask": [*pipe("fill-mask"), "the [MASK] was good"],
        "feature-extraction": [*pipe("feature-extraction"), "the film", "--pooling", "mean"],
        "text-generation": [*pipe("text-generation"), "To be", "--max-new-tokens", "3", "--seed", "0"],
        "token-classification": [*pipe("token-classification"), "alice was in paris"],
        "question-answering": [*pipe("question-answering"), "--question", "which colour ?", "the red film was good"],
        "report": ["report", run],
        "export": ["export", run, out / f"export-{name}"],
        "train --resume": ["train", run, "--resume"],
        "tune": ["tune", f"base={run}", f"data={world['root'] / 'reviews.jsonl'}",
                 f"run_dir={out / f'tune-{name}'}", *TUNE],
        "tune compare": ["tune", "compare", f"base={run}", f"data={world['root'] / 'reviews.jsonl'}", *TUNE,
                         "--methods", "features", "--out", out / f"tune-compare-{name}"],
        "vectors similar": ["vectors", "similar", run, "the", "--topn", "3"],
    }


LANGUAGE_MODELS = {"gpt", "lstm", "mlp", "ngram", "hf"}
NEURAL_DECODERS = {"gpt", "lstm", "mlp", "hf"}
TRANSFORMERS = {"gpt", "bert", "hf"}
TUNED = {"classifier", "tagger", "reader"}
# verb -> the runs it must work on; on every other run it must refuse.
WORKS = {
    "eval": LANGUAGE_MODELS - {"hf"},  # a Hugging Face directory has no validation split of its own
    "eval compare": LANGUAGE_MODELS,
    "eval compare, its data": LANGUAGE_MODELS - {"hf"},
    "eval --tasks": LANGUAGE_MODELS,
    "generate": LANGUAGE_MODELS,
    "generate --stream": NEURAL_DECODERS,
    "sentiment-analysis": {"classifier"},
    "text-classification": {"classifier"},
    "fill-mask": {"bert"},
    "feature-extraction": TRANSFORMERS,
    "text-generation": LANGUAGE_MODELS,
    "token-classification": {"tagger"},
    "question-answering": {"reader"},
    "report": set(RUNS),
    "export": TRANSFORMERS | TUNED,  # a tuned run: its backbone (full tuning) or a PEFT adapter
    "train --resume": set(),  # every run here is finished; a longer resume is tested below
    "tune": TRANSFORMERS,
    "tune compare": TRANSFORMERS,
    "vectors similar": {"vectors"},
}


def check_output(verb: str, name: str, world: dict[str, Path], out: str) -> None:
    """What a working cell must have printed or written."""
    run, written = world[name], world["root"] / "out"
    if verb == "eval":
        assert "perplexity" in out and "bits per byte" in out
    elif verb == "eval compare":
        rows = json.loads((written / f"compare-{name}" / "compare.json").read_text())
        assert len(rows) == 1 and rows[0]["bits_per_byte"] > 0
    elif verb == "eval compare, its data":
        rows = json.loads((written / f"compare-own-{name}" / "compare.json").read_text())
        assert len(rows) == 1 and rows[0]["bits_per_byte"] > 0
    elif verb == "tune compare":
        rows = json.loads((written / f"tune-compare-{name}" / "compare.json").read_text())
        assert [row["name"] for row in rows] == ["features"] and 0 <= rows[0]["test_accuracy"] <= 1
    elif verb == "eval --tasks":
        assert "arc_easy_mini" in (written / f"tasks-{name}" / "results.md").read_text()
    elif verb.startswith("generate") or verb == "text-generation":
        assert out.startswith("To be") and len(out.strip()) > len("To be")
    elif verb in ("sentiment-analysis", "text-classification"):
        assert out.startswith("good film\t") and ("pos" in out or "neg" in out)
        assert ("pos" in out and "neg" in out) == (verb == "text-classification")  # --all-labels lists both
    elif verb == "fill-mask":
        assert out.startswith("the [MASK] was good\t[MASK] 1: ")
    elif verb == "feature-extraction":
        assert out.startswith("the film\ta vector of 16: [")
    elif verb == "token-classification":
        assert out.startswith("alice was in paris\t")
    elif verb == "question-answering":
        assert out.startswith("the red film was good\t")
    elif verb == "report":
        assert "parameters" in out and (run / "report.html").exists()
    elif verb == "export":
        assert (written / f"export-{name}" / "config.json").exists()
    elif verb == "tune":
        assert "test: loss" in out and (written / f"tune-{name}" / "summary.json").exists()
    elif verb == "vectors similar":
        assert out.startswith("the: ") and out.count(",") == 2


@pytest.mark.parametrize("name", RUNS)
def test_every_verb_works_or_refuses_in_one_line(world, name, capsys):
    failures = []
    for verb, argv in cells(world, name).items():
        code, out, err = call(capsys, argv)
        if name in WORKS[verb]:
            if code != 0:
                failures.append(f"{verb}: exit {code}: {err.strip()[-300:]}")
                continue
            try:
                check_output(verb, name, world, out)
            except AssertionError:
                failures.append(f"{verb}: unexpected output {out[:200]!r}")
        else:
            lines = err.strip().splitlines()
            if code != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or "Traceback" in err:
                failures.append(f"{verb}: expected a one-line refusal, got exit {code}: {err.strip()[-300:]!r}")
            elif str(world[name]) not in lines[0]:
                failures.append(f"{verb}: the refusal does not name the run: {lines[0]}")
    assert not failures, "\n".join(failures)


def test_refusals_say_what_the_run_is_and_what_to_try(world, capsys):
    code, _, err = call(capsys, ["generate", world["bert"], "hello"])
    assert code == 2 and f"{world['bert']}: " in err
    assert "it is an encoder (BERT 1x16) that fills masks and gives features: try lmlab pipeline fill-mask" in err
    code, _, err = call(capsys, ["eval", world["classifier"]])
    assert code == 2 and "unknown key" not in err
    assert (f"it is a fine-tuned model (bert tuned for classification) that labels texts: try lmlab pipeline "
            f"sentiment-analysis --model {world['classifier']}") in err
    code, _, err = call(capsys, ["train", world["tagger"], "--resume"])
    assert code == 2 and "unknown key" not in err and "`lmlab tune` trained it" in err
    assert f"try lmlab pipeline token-classification --model {world['tagger']}" in err
    code, _, err = call(capsys, ["vectors", "similar", world["gpt"], "the"])
    assert code == 2 and f"try lmlab generate {world['gpt']}" in err
    code, _, err = call(capsys, ["generate", world["vectors"], "the"])
    assert code == 2 and f"try lmlab vectors similar {world['vectors']} WORD" in err


@pytest.mark.parametrize("name", NEURAL)
def test_a_finished_neural_run_resumes_longer(world, name, tmp_path, capsys):
    run = tmp_path / name
    assert main(neural_training(name, world["data"], world["root"] / "wordpiece", run)) == 0
    code, out, err = call(capsys, ["train", run, "--resume", "train.max_steps=6"])
    assert code == 0, err
    assert out.startswith("trained 6 steps")
    assert json.loads((run / "summary.json").read_text())["steps"] == 6


def figure_lines(out: str) -> dict[str, str]:
    """`lmlab report`'s figures as printed: one `name   value` line each, before `wrote ...`."""
    lines = out.split("\nwrote ")[0].splitlines()
    return {line[:24].strip(): line[24:].strip() for line in lines}


@pytest.mark.parametrize("name", ["gpt", "bert", "lstm", "ngram", "vectors", "classifier", "hf"])
def test_report_shows_what_each_kind_of_run_has(world, name, capsys):
    run = world[name]
    code, out, err = call(capsys, ["report", run])
    assert code == 0, err
    figures, page = figure_lines(out), (run / "report.html").read_text(encoding="utf-8")
    opened = open_run(run)
    assert figures["model"] == opened.describe() and figures["parameters"] == f"{opened.parameters():,}"
    summary = opened.summary
    if name == "hf":  # a directory of weights alone: no training to report
        assert "steps" not in figures and "wall time" not in figures
    else:
        assert figures["epochs" if name == "vectors" else "steps"] == f"{summary.get('steps', summary.get('epochs'))}"
        assert figures["wall time"] == f"{summary.get('wall_seconds', summary['train_seconds']):.3g} s"
    if name in ("gpt", "bert", "lstm"):
        assert figures["val loss"] == f"{summary['val_loss']:.4g}"
        assert figures["val perplexity"] == f"{math.exp(summary['val_loss']):.4g}"
    if name == "classifier":
        assert figures["test accuracy"] == f"{summary['test_accuracy']:.4g}"
        assert figures["test macro-F1"] == f"{summary['test_macro_f1']:.4g}"
        assert "val perplexity" not in figures  # a classifier's loss is no perplexity of text
    for value in figures.values():
        assert value in page
    assert out.rstrip().endswith(opened.family_class.uses(opened.model_config)[1].format(run=run))
    curves = {"loss.png", "lr.png"} & {p.name for p in run.iterdir()}
    assert (curves == set()) == (name in ("ngram", "hf"))
    for png in curves:
        drawn_png(run / png)
    attention = run / "attention.png"
    assert attention.exists() == (name in ("gpt", "bert", "hf"))
    if attention.exists():
        drawn_png(attention)
        assert "attention.png" in page
