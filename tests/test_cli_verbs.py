"""The verbs no other test runs through the command line: quickstart (on a corpus of your own), data
stats, eval ratings, vectors evaluate, and what each pipeline's --help offers. Each checks what the verb
printed and wrote, not only its exit."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from conftest import CHINESE, ENGLISH
from png_checks import drawn_png

from lmlab.cli import main
from lmlab.data import corpus_stats
from lmlab.datasets.weights import WEIGHTS
from lmlab.evaluate.human import rating_report, read_rating_sheets
from lmlab.runs import open_run


def varied_corpus(path: Path, documents: int = 40) -> Path:
    """Documents of shuffled English words and Chinese characters, none a near duplicate of another."""
    rng = random.Random(0)
    units = ENGLISH.split() + list(CHINESE)
    path.write_text("".join(json.dumps({"text": " ".join(rng.choice(units) for _ in range(60))}, ensure_ascii=False)
                            + "\n" for _ in range(documents)), encoding="utf-8")
    return path


def test_quickstart_on_your_own_corpus_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--steps", "2", "--corpus",
                 str(varied_corpus(tmp_path / "corpus.jsonl"))]) == 0
    printed = capsys.readouterr().out
    stages = [line.split(".")[0] for line in printed.splitlines() if line[:2] in {f"{n}." for n in range(1, 8)}]
    assert stages == ["1", "2", "3", "4", "5", "6", "7"]
    assert "read 40 documents" in printed and "Done in" in printed
    assert json.loads((out / "gpt" / "summary.json").read_text())["steps"] == 2
    rows = json.loads((out / "compare" / "compare.json").read_text())
    assert sorted(row["run"] for row in rows) == ["gpt", "kn5", "lstm"]
    assert all(open_run(out / row["run"]).describe() == row["model"] for row in rows)
    samples = json.loads((out / "gpt" / "samples.json").read_text(encoding="utf-8"))
    assert len(samples) == 3 and all(sample["completion"] for sample in samples)
    assert all(sample["prompt"].split("\n")[0] in printed for sample in samples)
    drawn_png(out / "gpt" / "loss.png")
    assert (out / "gpt" / "report.html").exists()
    # Run again (make demo twice): the earlier quickstart is replaced, a file of the user's beside it stays.
    (out / "notes.txt").write_text("mine")
    assert main(["quickstart", "--out", str(out), "--steps", "3", "--corpus", str(tmp_path / "corpus.jsonl")]) == 0
    assert "replacing the previous quickstart" in capsys.readouterr().out
    assert json.loads((out / "gpt" / "summary.json").read_text())["steps"] == 3
    assert (out / "notes.txt").read_text() == "mine"


def test_data_stats_prints_and_writes_the_corpus_figures(tmp_path, capsys):
    corpus = varied_corpus(tmp_path / "corpus.jsonl", documents=12)
    assert main(["data", "stats", str(corpus), "--json", str(tmp_path / "stats.json")]) == 0
    printed = capsys.readouterr().out
    written = json.loads((tmp_path / "stats.json").read_text())
    assert written == corpus_stats([str(corpus)]).to_dict()
    assert written["documents"] == 12 and "12" in printed and "documents" in printed


def test_eval_ratings_reports_each_system_from_filled_sheets(tmp_path, capsys):
    outputs = tmp_path / "outputs.jsonl"
    records = [{"id": f"p{i}", "system": system, "prompt": "Once", "output": f"{system} {i}"}
               for i in range(4) for system in ("gpt", "lstm")]
    outputs.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    sheet = tmp_path / "sheet.csv"
    assert main(["eval", "sheet", str(outputs), "--out", str(sheet), "--criteria", "fluency"]) == 0
    key = json.loads((tmp_path / "sheet.csv.key.json").read_text())
    filled = []
    for rater, bonus in (("alice", 0), ("bob", 1)):  # gpt is rated higher than lstm by both
        rows = list(csv.DictReader(sheet.open(encoding="utf-8-sig")))
        for row in rows:
            row["fluency"] = str((4 if key["items"][row["item"]]["system"] == "gpt" else 2) + bonus)
        path = tmp_path / f"{rater}.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        filled.append(str(path))
    capsys.readouterr()
    assert main(["eval", "ratings", *filled, "--key", str(sheet) + ".key.json", "--out", str(tmp_path / "r.md"),
                 "--json", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "| gpt | 4.50 ± 0.53 | 8 |" in printed and "| lstm | 2.50 ± 0.53 | 8 |" in printed
    assert "## Ratings (2 raters, 8 items, scale 1-5)" in printed
    assert (tmp_path / "r.md").read_text() in printed
    expected = rating_report(read_rating_sheets(filled, key=str(sheet) + ".key.json")).to_dict()
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(expected))


def test_vectors_analogy_and_evaluate_print_the_library_figures(tmp_path, capsys):
    rng = random.Random(0)
    topics = [["cat", "dog", "pet", "fur"], ["stock", "bank", "money", "loan"]]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(topics[i % 2]) for _ in range(8)) for i in range(300)) + "\n",
                      encoding="utf-8")
    run = tmp_path / "vectors"
    assert main(["vectors", "train", str(corpus), "--out", str(run), "min_count=1", "epochs=3", "dim=8"]) == 0
    analogies = tmp_path / "questions-words.txt"
    analogies.write_text(": topics\ncat dog stock bank\npet fur money loan\ncat dog unicorn bank\n", encoding="utf-8")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("cat\tdog\t9.0\nbank\tmoney\t8.5\ncat\tloan\t1.0\npet\tstock\t1.5\ncat\tunicorn\t5.0\n",
                     encoding="utf-8")
    capsys.readouterr()
    assert main(["vectors", "evaluate", str(run), "--analogies", str(analogies), "--pairs", str(pairs),
                 "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    vectors = open_run(run).model()
    expected_analogies, expected_pairs = vectors.analogies(analogies), vectors.word_pairs(pairs)
    answered = sum(n for _, n in expected_analogies.sections.values())
    assert f"analogies {analogies}: accuracy {expected_analogies.accuracy:.3f} on {answered} questions " \
           "(1 skipped: a word outside the vocabulary)" in printed
    assert f"word pairs {pairs}: Spearman {expected_pairs.spearman:.3f}, Pearson {expected_pairs.pearson:.3f} " \
           "(4 pairs, 1 skipped: a word outside the vocabulary)" in printed
    written = json.loads((tmp_path / "e.json").read_text())
    assert written["analogies"][str(analogies)]["accuracy"] == expected_analogies.accuracy
    assert (written["pairs"][str(pairs)]["spearman"], written["pairs"][str(pairs)]["pearson"]) == (
        expected_pairs.spearman, expected_pairs.pearson)
    assert main(["vectors", "analogy", str(run), "dog", "cat", "stock", "--topn", "2"]) == 0
    answers = vectors.analogy("dog", "cat", "stock", topn=2)
    assert capsys.readouterr().out == "dog - cat + stock = " + ", ".join(f"{w} {s:.3f}" for w, s in answers) + "\n"
    # With no set named, the bundled ones of the vocabulary's languages; this vocabulary is English.
    assert main(["vectors", "evaluate", str(run)]) == 0
    assert "analogies en: accuracy" in capsys.readouterr().out


def test_each_pipeline_offers_only_weights_that_can_do_its_task(capsys):
    offered = {}
    for task in ("text-generation", "fill-mask", "feature-extraction", "sentiment-analysis", "question-answering"):
        with pytest.raises(SystemExit):
            main(["pipeline", task, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        offered[task] = {name for name in WEIGHTS if name in text}
    # all-MiniLM-L6-v2 is a BERT encoder without a masked-LM head: it gives features, and nothing else
    assert offered == {"text-generation": set(), "fill-mask": set(), "feature-extraction": {"all-MiniLM-L6-v2"},
                       "sentiment-analysis": set(), "question-answering": set()}


def test_quickstart_chat_runs_every_stage_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "qc"
    assert main(["quickstart", "chat", "--out", str(out), "--steps", "2", "--held-out", "8", "--corpus",
                 str(varied_corpus(tmp_path / "corpus.jsonl"))]) == 0
    printed = capsys.readouterr().out
    stages = [line.split(".")[0].strip("─ ") for line in printed.splitlines() if ". " in line and "─" in line]
    assert stages == [str(n) for n in range(1, 10)]
    for stage in ("llama", "sft", "reward", "dpo", "grpo"):
        assert json.loads((out / stage / "summary.json").read_text())["steps"] == 2
        assert (out / stage / "report.html").exists()
    assert all(name in printed for name in ("pretrained", "SFT + DPO", "SFT + GRPO", "[zh] you>", "Done in"))
    assert open_run(out / "grpo").family == "llama"
