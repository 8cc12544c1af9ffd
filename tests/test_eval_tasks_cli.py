"""`lmlab eval RUN... --tasks`: runs of every generation on the bundled tasks, on one table."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_train_overrides
from png_checks import drawn_png, saved_figures

from lmlab.cli import main
from lmlab.config import load_config
from lmlab.evaluate.harness import bundled_tasks, evaluate_task, load_task
from lmlab.runs import open_run
from lmlab.train import TrainConfig, read_train_config, train_run


@pytest.fixture(scope="module")
def three_runs(packed_dir, tmp_path_factory):
    """A GPT, an LSTM and a character 4-gram, trained on the same tiny corpus."""
    root = tmp_path_factory.mktemp("generations")
    gpt = train_run(load_config(TrainConfig, None, tiny_train_overrides(packed_dir, root / "gpt", steps=4)))
    lstm_overrides = [o for o in tiny_train_overrides(packed_dir, root / "lstm", steps=4) if not o.startswith("model=")]
    lstm = train_run(load_config(TrainConfig, None, [
        *lstm_overrides, "model={family: rnn, cell: lstm, n_layer: 1, n_embd: 16, hidden: 32, block_size: 16}"]))
    ngram = train_run(read_train_config(None, [f"data={packed_dir}", f"run_dir={root / 'kn4'}", "model.family=ngram",
                                               "model.unit=character", "model.order=4",
                                               "model.discount_fallback=true"]))
    return [gpt.run_dir, lstm.run_dir, ngram.run_dir]


def test_eval_tasks_puts_every_generation_on_one_table(three_runs, tmp_path, capsys, monkeypatch):
    saved = saved_figures(monkeypatch)
    tasks = "arc_easy_mini,truthfulqa_mc2_mini,ppl_zh_mini,closedqa_mini"
    out = tmp_path / "eval"
    assert main(["eval", *map(str, three_runs), "--tasks", tasks, "--tasks", "crows_pairs_mini", "--limit", "5",
                 "--out", str(out), "--json", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "harness tasks" in printed and printed.count("arc_easy_mini") >= 1
    markdown = (out / "results.md").read_text()
    for name in ("GPT 2x32", "LSTM 1x32", "4-gram"):
        assert name in markdown.splitlines()[0]  # one column per run
    results = json.loads((out / "results.json").read_text())
    assert results == json.loads((tmp_path / "r.json").read_text())
    assert len(results) == 3
    for run_dir, (label, by_task) in zip(three_runs, results.items(), strict=True):
        assert label.startswith(run_dir.name)
        assert set(by_task) == {"arc_easy_mini", "truthfulqa_mc2_mini", "ppl_zh_mini", "closedqa_mini",
                                "crows_pairs_mini"}
        assert by_task["arc_easy_mini"]["documents"] == 5
        # the table holds what the library computes for that run
        direct = evaluate_task(open_run(run_dir).language_model(), load_task("arc_easy_mini"), limit=5)
        assert by_task["arc_easy_mini"]["metrics"] == direct.metrics
        assert 0 < by_task["ppl_zh_mini"]["metrics"]["bits_per_byte"] < 20
    assert (out / "results.png").stat().st_size > 0
    drawn_png(out / "results.png", min_width=600)
    (figure,) = saved  # a panel per task, a bar per run in each
    panels = [ax for ax in figure.axes if ax.patches]
    assert len(panels) == 5 and all(len(ax.patches) == len(three_runs) for ax in panels)
    assert "| arc_easy_mini (0-shot, 5) | acc ↑ |" in markdown
    # One run into the same folder: no chart, and the three runs' chart is not left behind as if it were its.
    assert main(["eval", str(three_runs[0]), "--tasks", "arc_easy_mini", "--limit", "2", "--out", str(out)]) == 0
    assert not (out / "results.png").exists() and len(json.loads((out / "results.json").read_text())) == 1


def test_every_bundled_task_loads_and_renders():
    names = bundled_tasks()
    assert {"arc_easy_mini", "hellaswag_mini", "mmlu_mini", "truthfulqa_mc1_mini", "truthfulqa_mc2_mini",
            "ceval_mini", "ppl_en_mini", "ppl_zh_mini", "crows_pairs_mini"} <= set(names)
    for name in names:
        task = load_task(name)
        for doc in task.docs:
            task.text(doc)
            if task.config.output_type == "multiple_choice":
                choices = task.choices(doc)
                assert task.gold(doc, choices)
            else:
                assert isinstance(task.target(doc), (str, list))


def test_eval_tasks_errors_are_one_line(three_runs, tmp_path, capsys):
    assert main(["eval", str(three_runs[0]), "--tasks", "no_such_task", "--out", str(tmp_path)]) == 2
    assert "error: unknown task 'no_such_task'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_type: multiple_choice\ndata: x.jsonl\ndoc_to_choice: c\nmetrics: [acc]\nshots: 3\n")
    assert main(["eval", str(three_runs[0]), "--tasks", str(bad), "--out", str(tmp_path)]) == 2
    assert "shots" in capsys.readouterr().err
