"""Human evaluation: kappas against scikit-learn and statsmodels run here, and the sheet round trip."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from lmlab.errors import LmlabError
from lmlab.evaluate.human import (
    cohen_kappa,
    export_rating_sheet,
    fleiss_kappa,
    key_path,
    rating_markdown,
    rating_report,
    read_rating_items,
    read_rating_sheets,
)

WEIGHTS = [None, "linear", "quadratic"]


def same(ours: float, theirs: float) -> bool:
    """Equal to 1e-12, NaN equal to NaN."""
    return (math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) <= 1e-12


def sklearn_kappa(a, b, weights, labels=None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its UndefinedMetricWarning on the degenerate cases
        return cohen_kappa_score(a, b, weights=weights, labels=labels)


def statsmodels_fleiss(table) -> float:
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        return float(sm_fleiss_kappa(table))


# kappas against the reference libraries -----------------------------------------------------------


@pytest.mark.parametrize("seed", range(60))
def test_cohen_kappa_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    scale = np.arange(1, k + 1)
    n = int(rng.integers(2, 40))
    a = rng.choice(scale[: max(1, k - 1)], size=n)  # rater a never uses the top category
    b = np.where(rng.random(n) < 0.5, a, rng.choice(scale, size=n))
    if seed % 3 == 0:
        b[int(rng.integers(n))] = k  # a category only rater b uses, exactly once
    for weights in WEIGHTS:
        assert same(cohen_kappa(a, b, weights), sklearn_kappa(a, b, weights)), weights
        # the whole scale as labels, some of it unused by both: weighted distances change, still equal
        assert same(cohen_kappa(a, b, weights, labels=scale), sklearn_kappa(a, b, weights, labels=scale)), weights


@pytest.mark.parametrize("seed", range(10))
def test_cohen_kappa_string_labels_match_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    names = np.array(["差", "中", "好", "bad", "ok"])
    a, b = rng.choice(names[:3], size=15), rng.choice(names, size=15)
    for weights in WEIGHTS:
        assert same(cohen_kappa(a, b, weights), sklearn_kappa(a, b, weights))


@pytest.mark.parametrize("weights", WEIGHTS)
def test_cohen_kappa_single_category_is_undefined_like_sklearn(weights):
    a = b = [3, 3, 3, 3]
    assert math.isnan(sklearn_kappa(a, b, weights))
    assert math.isnan(cohen_kappa(a, b, weights))
    assert math.isnan(cohen_kappa(a, b, weights, labels=[1, 2, 3, 4, 5]))
    assert math.isnan(sklearn_kappa(a, b, weights, labels=[1, 2, 3, 4, 5]))


def test_cohen_kappa_perfect_and_chance_agreement():
    assert cohen_kappa([1, 2, 3, 1], [1, 2, 3, 1]) == 1.0
    assert cohen_kappa([1, 1, 2, 2], [1, 2, 1, 2]) == 0.0


def test_cohen_kappa_rejects_bad_input():
    with pytest.raises(LmlabError, match="weights"):
        cohen_kappa([1, 2], [1, 2], weights="cubic")
    with pytest.raises(LmlabError, match="pair up"):
        cohen_kappa([1, 2, 3], [1, 2])
    with pytest.raises(LmlabError, match="label 7 is not one of labels"):
        cohen_kappa([1, 7], [1, 2], labels=[1, 2, 3])


@pytest.mark.parametrize("seed", range(60))
def test_fleiss_kappa_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    items, categories, raters = int(rng.integers(1, 30)), int(rng.integers(2, 7)), int(rng.integers(2, 9))
    # skewed category probabilities, so some columns are empty and agreement varies
    p = rng.dirichlet(np.full(categories, 0.5))
    table = np.stack([rng.multinomial(raters, p) for _ in range(items)])
    assert same(fleiss_kappa(table), statsmodels_fleiss(table))


def test_fleiss_kappa_single_category_is_undefined_like_statsmodels():
    table = np.array([[0, 4, 0], [0, 4, 0], [0, 4, 0]])
    assert math.isnan(statsmodels_fleiss(table))
    assert math.isnan(fleiss_kappa(table))


def test_fleiss_kappa_rejects_uneven_and_single_raters():
    with pytest.raises(LmlabError, match="item 1 has 2 ratings but item 0 has 3"):
        fleiss_kappa([[1, 2], [2, 0]])
    with pytest.raises(LmlabError, match="at least two raters"):
        fleiss_kappa([[1, 0], [0, 1]])
    with pytest.raises(LmlabError, match="counts"):
        fleiss_kappa([[1.5, 0.5], [1, 1]])


# the sheet round trip -----------------------------------------------------------------------------

SYSTEMS = ["gpt", "lstm", "ngram"]
PROMPTS = ["从前有座山，", "Once upon a time", "The weather today", "春天来了"]


def make_items() -> list[dict[str, str]]:
    return [{"id": f"p{i}", "system": system, "prompt": prompt, "output": f"回答 {i}{j}:\n{prompt}, \"quoted\""}
            for i, prompt in enumerate(PROMPTS) for j, system in enumerate(SYSTEMS)]


def read_sheet(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def write_sheet(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def fill(sheet: Path, out: Path, key: dict, score) -> None:
    """A rater filling the sheet: `score(system, id, criterion)` for every cell."""
    rows = read_sheet(sheet)
    for row in rows:
        entry = key["items"][row["item"]]
        for criterion in key["criteria"]:
            row[criterion] = str(score(entry["system"], entry["id"], criterion))
    write_sheet(out, rows)


def test_export_is_blind_shuffled_excel_friendly_and_atomic(tmp_path):
    sheet = tmp_path / "sheet.csv"
    key_file = export_rating_sheet(make_items(), sheet, seed=3)
    assert key_file == key_path(sheet) == tmp_path / "sheet.csv.key.json"
    assert sheet.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    rows = read_sheet(sheet)
    assert list(rows[0]) == ["item", "prompt", "output", "fluency", "coherence", "relevance", "comment"]
    text = sheet.read_text(encoding="utf-8-sig")
    assert not any(system in text for system in SYSTEMS)
    key = json.loads(key_file.read_text(encoding="utf-8"))
    assert [row["item"] for row in rows] == [str(n) for n in range(1, 13)]
    # the key decodes every row back to the record it came from, outputs with newlines and quotes intact
    records = {(r["system"], r["id"]): r for r in make_items()}
    decoded = [records[key["items"][row["item"]]["system"], key["items"][row["item"]]["id"]] for row in rows]
    assert [row["output"] for row in rows] == [r["output"] for r in decoded]
    assert [row["prompt"] for row in rows] == [r["prompt"] for r in decoded]
    # shuffled, reproducibly by seed
    order = [(r["system"], r["id"]) for r in decoded]
    assert order != [(r["system"], r["id"]) for r in make_items()]
    again = tmp_path / "again.csv"
    export_rating_sheet(make_items(), again, seed=3)
    assert again.read_bytes() == sheet.read_bytes()
    export_rating_sheet(make_items(), again, seed=4)
    assert again.read_bytes() != sheet.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.csv", "again.csv.key.json", "sheet.csv",
                                                          "sheet.csv.key.json"]  # no temporary files left


def test_export_not_blind_shows_systems_and_reads_without_key(tmp_path):
    sheet = tmp_path / "open.csv"
    export_rating_sheet(make_items(), sheet, criteria=("流畅度", "relevance"), scale=(0, 3), blind=False)
    rows = read_sheet(sheet)
    assert list(rows[0]) == ["item", "system", "id", "prompt", "output", "流畅度", "relevance", "comment"]
    for row in rows:
        row["流畅度"], row["relevance"] = "3", "0"
    write_sheet(tmp_path / "ann.csv", rows)
    ratings = read_rating_sheets([tmp_path / "ann.csv"], scale=(0, 3))
    assert ratings.criteria == ("流畅度", "relevance")
    assert ratings.raters == ["ann"] and ratings.systems == sorted(SYSTEMS)
    report = rating_report(ratings)
    assert {(s.criterion, s.mean) for s in report.scores} == {("流畅度", 3.0), ("relevance", 0.0)}
    assert report.pairs == [] and report.fleiss == {}  # one rater: nobody to agree with


def test_round_trip_three_raters(tmp_path):
    sheet = tmp_path / "sheet.csv"
    key_file = export_rating_sheet(make_items(), sheet, seed=1)
    key = json.loads(key_file.read_text(encoding="utf-8"))
    base = {"gpt": 5, "lstm": 3, "ngram": 1}
    shifts = {"alice": 0, "bob": -1, "carol": 0}
    for rater, shift in shifts.items():
        def score(system, prompt_id, criterion, shift=shift, rater=rater):
            wobble = int(prompt_id[1]) % 2 if rater == "carol" and criterion == "coherence" else 0
            return min(5, max(1, base[system] + shift - wobble))
        fill(sheet, tmp_path / f"{rater}.csv", key, score)
    ratings = read_rating_sheets([tmp_path / f"{r}.csv" for r in shifts], key=key_file)
    assert ratings.raters == ["alice", "bob", "carol"]
    report = rating_report(ratings)
    filled = {}
    for r in ratings.ratings:
        filled.setdefault((r.system, r.criterion), []).append(r.score)
    assert len(report.scores) == 9
    for s in report.scores:
        expected = [min(5, max(1, base[s.system] + shift - (int(p[1]) % 2 if rater == "carol"
                                                            and s.criterion == "coherence" else 0)))
                    for rater, shift in shifts.items() for p in ["p0", "p1", "p2", "p3"]]
        assert s.n == 12
        assert s.mean == pytest.approx(np.mean(expected))
        assert s.std == pytest.approx(np.std(expected, ddof=1))
        assert sorted(filled[s.system, s.criterion]) == sorted(expected)
    # alice and carol agree exactly on fluency; agreement figures equal the references on the same arrays
    pairs = {(p.criterion, p.rater_a, p.rater_b): p for p in report.pairs}
    assert pairs["fluency", "alice", "carol"].kappa == 1.0
    by = {(r.rater, r.criterion, r.item): r.score for r in ratings.ratings}
    items = sorted(key["items"])
    for (criterion, a, b), pair in pairs.items():
        x, y = [by[a, criterion, i] for i in items], [by[b, criterion, i] for i in items]
        assert pair.n == 12
        assert same(pair.kappa_quadratic, sklearn_kappa(x, y, "quadratic", labels=[1, 2, 3, 4, 5]))
    table = np.zeros((12, 5), dtype=int)
    for (_rater, criterion, item), score in by.items():
        if criterion == "coherence":
            table[items.index(item), score - 1] += 1
    assert same(report.fleiss["coherence"], statsmodels_fleiss(table))
    markdown = rating_markdown(report)
    assert "| gpt | 4.67 ± 0.49 | 4.50 ± 0.52 | 4.67 ± 0.49 | 12 |" in markdown
    assert "Fleiss' κ" in markdown and "| fluency | alice / carol | 12 | 1.000 |" in markdown
    json.dumps(report.to_dict(), allow_nan=False)  # strict JSON


def test_unanimous_single_category_reports_undefined(tmp_path):
    sheet = tmp_path / "sheet.csv"
    key_file = export_rating_sheet(make_items()[:3], sheet)
    key = json.loads(key_file.read_text(encoding="utf-8"))
    for rater in ("a", "b"):
        fill(sheet, tmp_path / f"{rater}.csv", key, lambda *_: 4)
    report = rating_report(read_rating_sheets([tmp_path / "a.csv", tmp_path / "b.csv"], key=key_file))
    assert all(math.isnan(k) for k in report.fleiss.values())
    assert all(math.isnan(p.kappa) and math.isnan(p.kappa_quadratic) for p in report.pairs)
    assert "| fluency | undefined |" in rating_markdown(report)
    assert report.to_dict()["fleiss"]["fluency"] is None


def test_uneven_raters_stop_fleiss_with_a_clear_error(tmp_path):
    sheet = tmp_path / "sheet.csv"
    key_file = export_rating_sheet(make_items(), sheet)
    key = json.loads(key_file.read_text(encoding="utf-8"))
    fill(sheet, tmp_path / "a.csv", key, lambda *_: 2)
    fill(sheet, tmp_path / "b.csv", key, lambda *_: 3)
    write_sheet(tmp_path / "b.csv", read_sheet(tmp_path / "b.csv")[:5])  # bob rated only five items
    ratings = read_rating_sheets([tmp_path / "a.csv", tmp_path / "b.csv"], key=key_file)
    with pytest.raises(LmlabError, match="same number of raters: item .* has 1 rating"):
        rating_report(ratings)


@pytest.mark.parametrize(("cell", "problem"), [("", "is empty"), ("4.5", "not a whole number"),
                                               ("good", "not a whole number"), ("6", "outside the scale 1 to 5"),
                                               ("0", "outside the scale")])
def test_bad_cells_name_file_row_and_column(tmp_path, cell, problem):
    sheet = tmp_path / "sheet.csv"
    key_file = export_rating_sheet(make_items(), sheet)
    key = json.loads(key_file.read_text(encoding="utf-8"))
    fill(sheet, tmp_path / "dan.csv", key, lambda *_: 3)
    rows = read_sheet(tmp_path / "dan.csv")
    rows[6]["coherence"] = cell  # spreadsheet row 8: the header is row 1
    write_sheet(tmp_path / "dan.csv", rows)
    with pytest.raises(LmlabError, match=rf"dan\.csv: row 8, column 'coherence': .*{problem}"):
        read_rating_sheets([tmp_path / "dan.csv"], key=key_file)


def test_sheet_defects_are_errors(tmp_path):
    sheet = tmp_path / "sheet.csv"
    key_file = export_rating_sheet(make_items(), sheet)
    key = json.loads(key_file.read_text(encoding="utf-8"))
    fill(sheet, tmp_path / "eve.csv", key, lambda *_: 3)
    with pytest.raises(LmlabError, match="is blind, pass its key"):
        read_rating_sheets([tmp_path / "eve.csv"])
    rows = read_sheet(tmp_path / "eve.csv")
    rows[2]["item"] = "99"
    write_sheet(tmp_path / "bad.csv", rows)
    with pytest.raises(LmlabError, match=r"bad\.csv: row 4, column 'item': '99' is not an item"):
        read_rating_sheets([tmp_path / "bad.csv"], key=key_file)
    with pytest.raises(LmlabError, match=r"eve\.csv: row 2: rater 'eve' rated item '1' already"):
        read_rating_sheets([tmp_path / "eve.csv", tmp_path / "eve.csv"], key=key_file)
    (tmp_path / "gbk.csv").write_bytes("item,prompt\n1,春天\n".encode("gbk"))
    with pytest.raises(LmlabError, match=r"gbk\.csv: not valid UTF-8 .* 'CSV UTF-8'"):
        read_rating_sheets([tmp_path / "gbk.csv"], key=key_file)
    with pytest.raises(LmlabError, match="criterion column 'fluency' is missing"):
        write_sheet(tmp_path / "cut.csv", [{k: v for k, v in row.items() if k != "fluency"} for row in rows])
        read_rating_sheets([tmp_path / "cut.csv"], key=key_file)


def test_rater_column_splits_one_file(tmp_path):
    sheet = tmp_path / "sheet.csv"
    key_file = export_rating_sheet(make_items()[:4], sheet)
    key = json.loads(key_file.read_text(encoding="utf-8"))
    fill(sheet, tmp_path / "x.csv", key, lambda *_: 2)
    rows = read_sheet(tmp_path / "x.csv")
    merged = [{"rater": name, **row} for name in ("li", "wang") for row in rows]
    write_sheet(tmp_path / "merged.csv", merged)
    ratings = read_rating_sheets([tmp_path / "merged.csv"], key=key_file)
    assert ratings.raters == ["li", "wang"]
    merged[1]["rater"] = ""
    write_sheet(tmp_path / "merged.csv", merged)
    with pytest.raises(LmlabError, match=r"merged\.csv: row 3, column 'rater': is empty"):
        read_rating_sheets([tmp_path / "merged.csv"], key=key_file)


def test_export_rejects_bad_arguments(tmp_path):
    with pytest.raises(LmlabError, match=r"items\[1\]: field 'output'"):
        export_rating_sheet([make_items()[0], {"id": "x", "system": "s", "prompt": "p"}], tmp_path / "s.csv")
    with pytest.raises(LmlabError, match="has two outputs"):
        export_rating_sheet([make_items()[0]] * 2, tmp_path / "s.csv")
    with pytest.raises(LmlabError, match="scale"):
        export_rating_sheet(make_items(), tmp_path / "s.csv", scale=(5, 1))
    with pytest.raises(LmlabError, match="criteria"):
        export_rating_sheet(make_items(), tmp_path / "s.csv", criteria=("output",))
    assert not list(tmp_path.iterdir())


def test_read_rating_items_names_the_line(tmp_path):
    good = tmp_path / "outputs.jsonl"
    good.write_text("\n".join(json.dumps(item, ensure_ascii=False) for item in make_items()) + "\n\n", encoding="utf-8")
    assert read_rating_items(good) == make_items()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(make_items()[0]) + "\n" + json.dumps({"id": "p9", "system": "gpt", "prompt": "x"}) + "\n")
    with pytest.raises(LmlabError, match=r"bad\.jsonl:2: field 'output' must be a string"):
        read_rating_items(bad)
    bad.write_text("[1, 2]\n")
    with pytest.raises(LmlabError, match=r"bad\.jsonl:1: expected a JSON object"):
        read_rating_items(bad)
