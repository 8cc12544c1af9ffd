"""A run folder is self-contained and movable: trained with relative paths in one folder, moved with its data
to another, and used from a third working directory by every verb that reads it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from conftest import tiny_train_overrides

from lmlab.cli import main
from lmlab.tune.runner import read_tune_config


def _reviews(count: int) -> list[dict[str, str]]:
    return [{"text": f"{'a fine' if i % 2 else 'a dull'} film {i}", "label": "pos" if i % 2 else "neg"}
            for i in range(count)]


def _train_and_tune_in(origin: Path, packed_dir: Path, monkeypatch) -> None:
    """In `origin`, with paths relative to it: a tiny GPT run on `data/`, and a classifier tuned from it."""
    shutil.copytree(packed_dir, origin / "data")
    (origin / "reviews.jsonl").write_text("".join(json.dumps(row) + "\n" for row in _reviews(120)))
    monkeypatch.chdir(origin)
    overrides = tiny_train_overrides(Path("data"), Path("runs/gpt"), steps=4)
    assert main(["train", *overrides, "train.checkpoint_every=2"]) == 0
    assert main(["tune", "base=runs/gpt", "data=reviews.jsonl", "run_dir=runs/tuned", "train.max_steps=4",
                 "train.eval_every=2", "train.device=cpu", "block_size=32", "limit_eval=16"]) == 0


def test_a_run_moved_with_its_data_works_from_a_third_folder(tmp_path, packed_dir, monkeypatch, capsys):
    _train_and_tune_in(tmp_path / "origin", packed_dir, monkeypatch)
    saved = yaml.safe_load((tmp_path / "origin" / "runs" / "gpt" / "config.yaml").read_text())
    assert saved["data"] == "../../data"  # written relative to the run's own folder
    assert yaml.safe_load((tmp_path / "origin" / "runs" / "tuned" / "config.yaml").read_text())["base"] == "../gpt"

    shutil.move(tmp_path / "origin", tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run, tuned = tmp_path / "moved" / "runs" / "gpt", tmp_path / "moved" / "runs" / "tuned"
    capsys.readouterr()

    assert main(["eval", "../moved/runs/gpt"]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["eval", "compare", str(run), str(run)]) == 0
    assert main(["generate", str(run), "To be", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["report", str(run)]) == 0 and (run / "report.html").exists()
    assert main(["report", str(tuned)]) == 0
    assert main(["tune", f"base={run}", f"data={tmp_path / 'moved' / 'reviews.jsonl'}", "run_dir=tuned-again",
                 "train.max_steps=2", "train.eval_every=2", "train.device=cpu", "block_size=32", "limit_eval=8"]) == 0
    assert (elsewhere / "tuned-again" / "summary.json").exists()

    # Resuming goes on in the run's folder where it is now, from the data (or base) beside it.
    assert main(["tune", str(tuned), "--resume", "train.max_steps=6"]) == 0
    assert json.loads((tuned / "summary.json").read_text())["steps"] == 6
    assert main(["train", str(run), "--resume", "train.max_steps=6"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    assert not (elsewhere / "runs" / "gpt").exists()  # (eval compare wrote its table to runs/compare here)
    # The README's "train on from a run's config": the data is the one next to the config file.
    assert main(["train", str(run / "config.yaml"), "run_dir=longer", "train.max_steps=2"]) == 0
    longer = yaml.safe_load((elsewhere / "longer" / "config.yaml").read_text())
    assert (elsewhere / "longer" / longer["data"]).resolve() == (tmp_path / "moved" / "data").resolve()


def test_a_path_on_the_command_line_is_relative_to_the_working_directory(tmp_path, packed_dir, monkeypatch):
    """A config file's relative path names what is beside the file; an override's, what is beside the user."""
    shutil.copytree(packed_dir, tmp_path / "data")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "gpt.yaml").write_text("data: ../data\n")
    monkeypatch.chdir(tmp_path)
    overrides = [o for o in tiny_train_overrides(Path("data"), Path("r1"), steps=1) if not o.startswith("data=")]
    assert main(["train", "configs/gpt.yaml", *overrides]) == 0
    # data=data, from here, over the file's ../data: the same folder either way
    assert main(["train", "configs/gpt.yaml", *tiny_train_overrides(Path("data"), Path("r2"), steps=1)]) == 0
    for name in ("r1", "r2"):
        assert yaml.safe_load((tmp_path / name / "config.yaml").read_text())["data"] == "../data"


def test_a_name_in_a_config_file_stays_a_name(tmp_path, monkeypatch):
    """A tune config's data may be a named labelled set, not a path: nothing beside the file, left as it is."""
    (tmp_path / "tune.yaml").write_text("base: all-MiniLM-L6-v2\ndata: sentiment-en-binary\n")
    cfg = read_tune_config(tmp_path / "tune.yaml", [])
    assert (cfg.base, cfg.data) == ("all-MiniLM-L6-v2", "sentiment-en-binary")


def test_a_run_moved_without_its_data_says_so_and_an_old_runs_data_is_found_with_a_warning(
        tmp_path, packed_dir, monkeypatch, capsys):
    shutil.copytree(packed_dir, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert main(["train", *tiny_train_overrides(Path("data"), Path("runs/gpt"), steps=1)]) == 0
    (tmp_path / "moved" / "deeper").mkdir(parents=True)
    shutil.move(tmp_path / "runs" / "gpt", tmp_path / "moved" / "deeper" / "gpt")
    capsys.readouterr()
    # Moved without its data: named, with where it was looked for, even though ./data is right here
    # (the run's ../../data is not this folder's data, and no other corpus is taken in its place).
    assert main(["eval", "moved/deeper/gpt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: moved/deeper/gpt: its data ../../data") and err.count("\n") == 1
    assert "move it with the run, or give --data" in err
    # A run trained before paths were relative to the run: its cwd-relative path still works, and says so.
    saved = tmp_path / "moved" / "deeper" / "gpt" / "config.yaml"
    saved.write_text(yaml.safe_dump({**yaml.safe_load(saved.read_text()), "data": "data"}))
    assert main(["eval", "moved/deeper/gpt"]) == 0
    captured = capsys.readouterr()
    assert "perplexity" in captured.out
    assert captured.err.startswith("warning: moved/deeper/gpt: its data data is not beside the run")
