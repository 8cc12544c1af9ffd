"""The command line itself: lazy verbs, one override syntax, and `--json PATH`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_documents

from lmlab.cli import VERBS, main
from lmlab.cli.common import config_and_overrides, corpus_and_overrides, split_overrides
from lmlab.errors import LmlabError


def test_help_lists_every_verb_without_importing_torch():
    script = ("import sys\nfrom lmlab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    *help_lines, torch_loaded = done.stdout.splitlines()
    assert torch_loaded == "False"
    listed = {line.split()[0] for line in help_lines if line.startswith("    ") and line.split()}
    assert set(VERBS) <= listed


def test_python_m_lmlab_cli_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "lmlab.cli", "--help"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("usage: lmlab") and all(verb in done.stdout for verb in VERBS)
    done = subprocess.run([sys.executable, "-m", "lmlab.cli", "train", "--help"], capture_output=True, text=True,
                          check=True)
    assert "--resume" in done.stdout


# One argument of each verb, which its `--help` must show.
OWN_ARGUMENT = {"data": "prepare", "tokenizer": "train", "datasets": "get", "train": "--resume", "eval": "--tasks",
                "tune": "--methods", "generate": "--max-new-tokens", "pipeline": "fill-mask", "vectors": "analogy",
                "export": "run", "import": "hf_dir", "report": "run", "quickstart": "--steps", "chat": "--system",
                "serve": "--api-key"}


def test_every_verb_is_checked():
    assert sorted(OWN_ARGUMENT) == sorted(VERBS)


@pytest.mark.parametrize(("verb", "argument"), sorted(OWN_ARGUMENT.items()))
def test_each_verb_shows_its_own_arguments(verb, argument, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0
    usage, *rest = capsys.readouterr().out.split("\n\n")
    assert usage.startswith(f"usage: lmlab {verb} ") and argument in "\n\n".join(rest)


def test_a_word_with_equals_is_an_override_unless_it_is_an_existing_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a=b.txt").write_text("a corpus whose name holds =\n")
    words = ["corpus/", "a=b.txt", "tokenizer.kind=wordpiece", "model={family: gpt, n_layer: 2}", "missing.txt"]
    assert split_overrides(words) == (["corpus/", "a=b.txt", "missing.txt"],
                                      ["tokenizer.kind=wordpiece", "model={family: gpt, n_layer: 2}"])
    assert config_and_overrides(["lr=1", "train.yaml", "x.y=2"], "train") == ("train.yaml", ["lr=1", "x.y=2"])
    assert config_and_overrides(["lr=1"], "train") == (None, ["lr=1"])
    with pytest.raises(LmlabError, match="train: one config file at a time, got a.yaml, b.yaml"):
        config_and_overrides(["a.yaml", "b.yaml"], "train")
    with pytest.raises(LmlabError, match="data prepare: give at least one corpus"):
        corpus_and_overrides(["tokenizer.kind=bpe"], "data prepare")


def test_overrides_may_follow_options_but_unknown_options_may_not(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny_documents(20)), encoding="utf-8")
    out, figures = tmp_path / "tokenizer.json", tmp_path / "tokenizer-figures.json"
    assert main(["tokenizer", "train", str(corpus), "--out", str(out), "kind=char", "vocab_size=200",
                 "--json", str(figures)]) == 0
    written = json.loads(figures.read_text())
    assert written == {"kind": "char", "vocab_size": written["vocab_size"], "path": str(out)}
    assert f"trained a char tokenizer of {written['vocab_size']:,} tokens; wrote {out}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["tokenizer", "train", str(corpus), "--out", str(out), "kind=char", "--bogus"])
    assert "unrecognized arguments: --bogus\n" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "runs/x", "--out", "y", "stray"])
    assert "unrecognized arguments: --out y stray\n" in capsys.readouterr().err


def test_datasets_list_and_get_write_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path / "cache"))
    assert main(["datasets", "list", "--json", str(tmp_path / "list.json")]) == 0
    listed = json.loads((tmp_path / "list.json").read_text())
    printed = capsys.readouterr().out.splitlines()
    assert [row["name"] for row in listed] == [line.split()[0] for line in printed]
    assert {"pydoc", "sentiment-zh"} <= {row["name"] for row in listed}
    kinds = {row["name"]: row["kind"] for row in listed}
    assert kinds["sentiment-zh"] == "labelled" and kinds["pydoc"] == "corpus"
    assert kinds["chatterbot"] == kinds["tasks-lookup"] == "conversations"
    assert kinds["preferences-chatterbot"] == "preferences"
    assert main(["datasets", "get", "pydoc", "--json", str(tmp_path / "get.json")]) == 0
    card = json.loads((tmp_path / "get.json").read_text())
    assert card["name"] == "pydoc" and Path(card["path"]).is_file()
    assert f"{card['card']['size']['documents']:,} documents" in capsys.readouterr().out
    assert main(["datasets", "get", "tasks-zh", "--json", str(tmp_path / "tasks.json")]) == 0
    counts = json.loads((tmp_path / "tasks.json").read_text())["counts"]
    assert capsys.readouterr().out == f"tasks-zh: train {counts['train']:,}, validation {counts['validation']}, " \
                                      f"test {counts['test']}\n" and counts["train"] > 2000


def test_eval_sheet_writes_json(tmp_path, capsys):
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("".join(json.dumps({"id": f"p{i}", "system": system, "prompt": "Once", "output": "upon"}) + "\n"
                               for i in range(3) for system in ("gpt", "lstm")), encoding="utf-8")
    sheet = tmp_path / "sheet.csv"
    assert main(["eval", "sheet", str(outputs), "--out", str(sheet), "--json", str(tmp_path / "sheet.json")]) == 0
    written = json.loads((tmp_path / "sheet.json").read_text())
    assert written == {"sheet": str(sheet), "key": str(sheet) + ".key.json", "outputs": 6}
    assert os.path.exists(written["key"]) and f"wrote {sheet} (6 outputs" in capsys.readouterr().out


def test_version(capsys):
    import lmlab

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"lmlab {lmlab.__version__}\n"
