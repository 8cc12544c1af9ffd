"""Human evaluation: rating sheets for people, and how far those people agree.

Automatic metrics stop short of what a reader cares about: is the text fluent, does it hang together,
does it answer the prompt? The honest way to find out is to ask people, and this chapter runs that
study end to end::

    outputs of several systems ──> export_rating_sheet ──> sheet.csv  +  sheet.csv.key.json
                                                              │ (copied, one per rater, filled in Excel)
                                          alice.csv, bob.csv, ...
                                                              │
                     read_rating_sheets ──> Ratings ──> rating_report ──> rating_markdown

1. The sheet. Every output is one row, and the rows are shuffled so that neither the order nor the
   neighbours give a system away. When the sheet is *blind* the system names live only in a key file
   beside it, so a rater cannot favour the model they expect to win. The CSV is written with a byte
   order mark (``utf-8-sig``) because without one Excel opens UTF-8 as the local code page and
   Chinese turns into mojibake. Items are numbered 1, 2, 3 rather than 001, since Excel would strip
   the zeros on saving and the numbers would no longer match the key.

2. Reading it back. Every cell is checked: a rating that is empty, not a whole number or outside the
   scale stops the reading with the file, the spreadsheet row (the header is row 1) and the column.
   The rater is the file's stem (``alice.csv`` is ``alice``) unless the sheet has a ``rater`` column.

3. The report. Per system and criterion the mean, the sample standard deviation (ddof 1; undefined
   for a single rating) and the count. Then agreement, since a mean from raters who disagree with one
   another is noise. Two raters ``a`` and ``b`` who rate the same ``N`` items on ``k`` categories give
   a k×k table of observed counts ``O`` (row: a's rating, column: b's); were they rating
   independently, with the same habits, they would fill it as ``E = outer(rows of O, columns of O) / N``.
   Cohen's kappa (1960; weighted, 1968) compares the disagreement actually seen with the disagreement
   chance would give::

       κ = 1 − Σ w_ij·O_ij / Σ w_ij·E_ij

   with disagreement weights ``w_ij``: ``1`` off the diagonal and ``0`` on it (unweighted; then
   κ = (p_o − p_e) / (1 − p_e)), ``|i − j|`` (linear) or ``(i − j)²`` (quadratic). The weighted
   forms suit a rating scale, where 4 against 5 is a smaller disagreement than 1 against 5.
   κ is 1 for perfect agreement, 0 for what chance gives, and negative below it.

   Fleiss' kappa (1971) takes any number ``n`` of raters per item at once. With ``n_ij`` the raters
   who put item ``i`` in category ``j`` (``N`` items)::

       P_i = (Σ_j n_ij² − n) / (n·(n − 1))      how often two raters of item i agree
       p_j = Σ_i n_ij / (N·n)                     how often category j is used
       κ   = (mean P_i − Σ_j p_j²) / (1 − Σ_j p_j²)

   It needs every item rated by the same number of raters.

When every rating falls in one single category, chance agreement is already perfect and both kappas
are 0/0: undefined. lmlab then returns NaN, as scikit-learn's ``cohen_kappa_score`` (its default
``replace_undefined_by=nan``) and statsmodels' ``fleiss_kappa`` do; they also warn, lmlab stays quiet
and the markdown table shows "undefined". The tests hold both kappas to those two libraries.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, read_jsonl, write_json

Weights = Literal["linear", "quadratic"] | None
PathLike = str | os.PathLike[str]

FIXED_COLUMNS = ("item", "rater", "system", "id", "prompt", "output", "comment")
DEFAULT_CRITERIA = ("fluency", "coherence", "relevance")


# 1. The sheet -------------------------------------------------------------------------------------


def key_path(sheet: PathLike) -> Path:
    """Where the key of a sheet lives: beside it, ``sheet.csv`` -> ``sheet.csv.key.json``."""
    return Path(f"{os.fspath(sheet)}.key.json")


def _check_scale(scale: Sequence[int]) -> tuple[int, int]:
    if len(scale) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in scale):
        raise LmlabError(f"scale: expected two whole numbers (lowest, highest), got {scale!r}")
    low, high = scale
    if low >= high:
        raise LmlabError(f"scale: the lowest rating {low} must be below the highest {high}")
    return low, high


def _check_criteria(criteria: Sequence[str]) -> tuple[str, ...]:
    if isinstance(criteria, str) or not criteria:
        raise LmlabError(f"criteria: expected a list of names such as {list(DEFAULT_CRITERIA)}, got {criteria!r}")
    for name in criteria:
        if not isinstance(name, str) or not name.strip() or name in FIXED_COLUMNS:
            raise LmlabError(f"criteria: {name!r} cannot be a column; names must be non-empty and not one of "
                             f"{', '.join(FIXED_COLUMNS)}")
    if len(set(criteria)) != len(criteria):
        raise LmlabError(f"criteria: {list(criteria)} names a criterion twice")
    return tuple(criteria)


def _check_items(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    checked, seen = [], set()
    for i, item in enumerate(items):
        for name in ("id", "system", "prompt", "output"):
            if not isinstance(item.get(name), str):
                raise LmlabError(f"items[{i}]: field {name!r} must be a string, got {item.get(name)!r}")
        if (item["id"], item["system"]) in seen:
            raise LmlabError(f"items[{i}]: system {item['system']!r} has two outputs for id {item['id']!r}")
        seen.add((item["id"], item["system"]))
        checked.append(item)
    if not checked:
        raise LmlabError("items: is empty; there is nothing to rate")
    return checked


def read_rating_items(path: PathLike) -> list[dict[str, Any]]:
    """The records to rate from a JSONL file, one {id, system, prompt, output} object a line."""
    items = []
    for number, record in read_jsonl(path):
        for name in ("id", "system", "prompt", "output"):
            if not isinstance(record.get(name), str):
                raise LmlabError(f"{path}:{number}: field {name!r} must be a string, got {record.get(name)!r}")
        items.append(record)
    return items


def export_rating_sheet(
    items: Iterable[Mapping[str, Any]],
    path: PathLike,
    criteria: Sequence[str] = DEFAULT_CRITERIA,
    scale: tuple[int, int] = (1, 5),
    seed: int = 0,
    blind: bool = True,
) -> Path:
    """Write a CSV rating sheet of `items` ({id, system, prompt, output}) in shuffled order; return its key's path.

    Columns: item, [system, id when not blind,] prompt, output, one empty column per criterion, comment.
    The key (``path + ".key.json"``) maps each item number to its system and id, and records the
    criteria and the scale so that `read_rating_sheets` can check the filled copies against them.
    """
    records = _check_items(items)
    criteria, scale = _check_criteria(criteria), _check_scale(scale)
    random.Random(seed).shuffle(records)
    # numbered after shuffling, so the number says nothing about the system either
    numbered = {str(n): record for n, record in enumerate(records, start=1)}
    key = {
        "sheet": Path(path).name,
        "criteria": list(criteria),
        "scale": list(scale),
        "seed": seed,
        "blind": blind,
        "items": {n: {"system": r["system"], "id": r["id"]} for n, r in numbered.items()},
    }
    # the key first: a crash between the two leaves a key without a sheet, never a sheet nobody can decode
    write_json(key_path(path), key)
    header = ["item", *(() if blind else ("system", "id")), "prompt", "output", *criteria, "comment"]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for n, r in numbered.items():
            shown = () if blind else (r["system"], r["id"])
            writer.writerow([n, *shown, r["prompt"], r["output"], *([""] * len(criteria)), ""])
    return key_path(path)


# 2. Reading the filled sheets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    """One number one rater gave one item on one criterion."""

    rater: str
    item: str  # the sheet's item number
    system: str
    id: str  # the prompt's id in the exported records
    criterion: str
    score: int


@dataclass
class Ratings:
    """Every rating read from a set of sheets, with the criteria and the scale they were given on."""

    criteria: tuple[str, ...]
    scale: tuple[int, int]
    ratings: list[Rating] = field(default_factory=list)

    @property
    def raters(self) -> list[str]:
        return sorted({r.rater for r in self.ratings})

    @property
    def systems(self) -> list[str]:
        return sorted({r.system for r in self.ratings})


def _read_key(key: PathLike) -> dict[str, Any]:
    data = read_json(key, "rating-sheet key")
    if not isinstance(data, dict) or not isinstance(data.get("items"), dict):
        raise LmlabError(f"{key}: not a rating-sheet key (expected the .key.json that export_rating_sheet wrote)")
    for name in ("criteria", "scale"):
        if name not in data:
            raise LmlabError(f"{key}: field {name!r} is missing")
    return data


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of one CSV; a BOM is optional, since Excel writes one and other tools do not."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = [name.strip() for name in next(reader, [])]
            rows = [dict(zip(header, (cell.strip() for cell in row), strict=False)) for row in reader]
    except FileNotFoundError:
        raise LmlabError(f"{path}: no such rating sheet") from None
    except UnicodeDecodeError as exc:
        raise LmlabError(f"{path}: not valid UTF-8 at byte {exc.start}; in Excel save it as 'CSV UTF-8'") from None
    except csv.Error as exc:
        raise LmlabError(f"{path}: not a readable CSV ({exc})") from None
    if "item" not in header:
        raise LmlabError(f"{path}: has no 'item' column (header: {header}); is it a sheet from export_rating_sheet?")
    return header, rows


def _sheet_criteria(path: Path, header: list[str], wanted: Sequence[str] | None) -> tuple[str, ...]:
    """The criteria columns: those the key names, or without a key those between 'output' and 'comment'."""
    if wanted is not None:
        missing = [name for name in wanted if name not in header]
        if missing:
            raise LmlabError(f"{path}: criterion column {missing[0]!r} is missing (header: {header})")
        return tuple(wanted)
    if "output" not in header:
        raise LmlabError(f"{path}: has no 'output' column, so its criteria columns cannot be found; pass key=")
    start = header.index("output") + 1
    end = header.index("comment") if "comment" in header[start:] else len(header)
    return _check_criteria(header[start:end])


def _score(text: str, low: int, high: int, where: str) -> int:
    if not text:
        raise LmlabError(f"{where}: the rating is empty; give a whole number from {low} to {high}")
    try:
        score = int(text)
    except ValueError:
        raise LmlabError(f"{where}: {text!r} is not a whole number; give one from {low} to {high}") from None
    if not low <= score <= high:
        raise LmlabError(f"{where}: {score} is outside the scale {low} to {high}")
    return score


def read_rating_sheets(
    paths: Sequence[PathLike], key: PathLike | None = None, *, scale: tuple[int, int] = (1, 5)
) -> Ratings:
    """Read filled rating sheets, checking every cell; systems come from `key` or from a `system` column.

    With a key, the criteria and the scale are the key's; without one (only for sheets exported with
    ``blind=False``) the criteria are the columns between 'output' and 'comment', on `scale`.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise LmlabError("read_rating_sheets: no sheets given")
    known: dict[str, dict[str, str]] | None = None
    criteria: tuple[str, ...] | None = None
    if key is not None:
        data = _read_key(key)
        known, criteria = data["items"], _check_criteria(data["criteria"])
        scale = tuple(data["scale"])  # type: ignore[assignment]
    low, high = _check_scale(scale)
    ratings: list[Rating] = []
    first_seen: dict[tuple[str, str], str] = {}  # (rater, item) -> where it was rated, to catch a double
    for path in map(Path, paths):
        header, rows = _read_rows(path)
        sheet_criteria = _sheet_criteria(path, header, criteria)
        criteria = criteria or sheet_criteria
        if sheet_criteria != criteria:
            raise LmlabError(f"{path}: criteria {list(sheet_criteria)} differ from the other sheets' {list(criteria)}")
        for number, row in enumerate(rows, start=2):  # the header is spreadsheet row 1
            where = f"{path}: row {number}"
            if not any(row.values()):
                continue  # a blank line, e.g. left at the end by a spreadsheet
            item = row.get("item", "")
            if not item:
                raise LmlabError(f"{where}, column 'item': is empty; keep the item numbers the sheet came with")
            rater = row.get("rater", "") if "rater" in header else path.stem
            if not rater:
                raise LmlabError(f"{where}, column 'rater': is empty; name the rater or drop the column")
            system, prompt_id = row.get("system", ""), row.get("id", "")
            if known is not None:
                if item not in known:
                    raise LmlabError(f"{where}, column 'item': {item!r} is not an item of the key {key}")
                if system and system != known[item]["system"]:
                    raise LmlabError(f"{where}, column 'system': {system!r} but the key {key} says "
                                     f"{known[item]['system']!r}; is this the key of this sheet?")
                system, prompt_id = known[item]["system"], known[item]["id"]
            elif not system:
                raise LmlabError(f"{where}, column 'system': no system named; the sheet is blind, pass its key")
            if (rater, item) in first_seen:
                raise LmlabError(f"{where}: rater {rater!r} rated item {item!r} already in {first_seen[rater, item]}")
            first_seen[rater, item] = where
            for criterion in criteria:
                score = _score(row.get(criterion, ""), low, high, f"{where}, column {criterion!r}")
                ratings.append(Rating(rater, item, system, prompt_id, criterion, score))
    return Ratings(criteria=criteria, scale=(low, high), ratings=ratings)


# 3. Agreement: Cohen's and Fleiss' kappa ----------------------------------------------------------


def cohen_kappa(
    a: Sequence[Any] | np.ndarray,
    b: Sequence[Any] | np.ndarray,
    weights: Weights = None,
    labels: Sequence[Any] | np.ndarray | None = None,
) -> float:
    """Cohen's kappa between two raters' labels of the same items; NaN where it is undefined.

    `labels` fixes the categories and their order (the order the weights measure distance in); by
    default every label either rater used, sorted. A label outside `labels` is an error.
    """
    if weights not in (None, "linear", "quadratic"):
        raise LmlabError(f"weights: got {weights!r}; expected None, 'linear' or 'quadratic'")
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or a.shape != b.shape:
        raise LmlabError(f"cohen_kappa: the two raters' labels must be flat and pair up, got shapes {a.shape} "
                         f"and {b.shape}")
    if len(a) == 0:
        raise LmlabError("cohen_kappa: no items; there is no agreement to measure")
    categories = np.unique(np.concatenate([a, b])) if labels is None else np.asarray(labels)
    index = {label: i for i, label in enumerate(categories.tolist())}
    if len(index) != len(categories):
        raise LmlabError(f"labels: {categories.tolist()} names a label twice")
    unknown = [x for x in itertools.chain(a.tolist(), b.tolist()) if x not in index]
    if unknown:
        raise LmlabError(f"cohen_kappa: label {unknown[0]!r} is not one of labels {categories.tolist()}")
    k = len(categories)
    observed = np.zeros((k, k))  # row: a's label, column: b's
    np.add.at(observed, ([index[x] for x in a.tolist()], [index[x] for x in b.tolist()]), 1)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(a)
    i, j = np.indices((k, k))
    disagreement = {None: (i != j).astype(np.float64), "linear": np.abs(i - j).astype(np.float64),
                    "quadratic": ((i - j) ** 2).astype(np.float64)}[weights]
    chance = float(np.sum(disagreement * expected))
    if chance == 0:  # one category only: chance already agrees perfectly, 0/0
        return math.nan
    return 1.0 - float(np.sum(disagreement * observed)) / chance


def fleiss_kappa(table: Sequence[Sequence[int]] | np.ndarray) -> float:
    """Fleiss' kappa of an items × categories table of counts (how many raters put item i in category j).

    Every row must add up to the same number of raters, at least two. NaN when all ratings share one category.
    """
    counts = np.asarray(table)
    if counts.ndim != 2 or counts.size == 0:
        raise LmlabError(f"fleiss_kappa: expected an items x categories table of counts, got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise LmlabError("fleiss_kappa: the table must hold counts, whole numbers from 0 up")
    counts = counts.astype(np.float64)
    per_item = counts.sum(axis=1)
    n = per_item[0]
    uneven = np.flatnonzero(per_item != n)
    if len(uneven):
        raise LmlabError(f"fleiss_kappa: item {uneven[0]} has {per_item[uneven[0]]:g} ratings but item 0 has {n:g}; "
                         "Fleiss' kappa needs the same number of raters for every item")
    if n < 2:
        raise LmlabError(f"fleiss_kappa: each item has {n:g} rating(s); agreement needs at least two raters")
    agreement = (np.sum(counts * counts, axis=1) - n) / (n * (n - 1))  # P_i
    share = counts.sum(axis=0) / counts.sum()  # p_j
    chance = float(np.sum(share * share))
    if chance == 1:  # one category only: 0/0
        return math.nan
    return (float(np.mean(agreement)) - chance) / (1 - chance)


# 4. The report ------------------------------------------------------------------------------------


@dataclass
class SystemScore:
    system: str
    criterion: str
    mean: float
    std: float  # sample standard deviation (ddof 1); NaN for a single rating
    n: int


@dataclass
class PairAgreement:
    """Cohen's kappa of two raters on one criterion, over the items both rated."""

    criterion: str
    rater_a: str
    rater_b: str
    n: int
    kappa: float
    kappa_linear: float
    kappa_quadratic: float


@dataclass
class RatingReport:
    criteria: tuple[str, ...]
    scale: tuple[int, int]
    raters: list[str]
    items: int
    scores: list[SystemScore]
    pairs: list[PairAgreement]
    fleiss: dict[str, float]  # criterion -> Fleiss' kappa; empty with a single rater

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; an undefined figure (NaN) becomes null, which strict JSON can hold."""
        def clean(value: Any) -> Any:
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value

        return clean(asdict(self))


def rating_report(ratings: Ratings) -> RatingReport:
    """Means per system and criterion, Cohen's kappa for every pair of raters, and Fleiss' kappa over all."""
    if not ratings.ratings:
        raise LmlabError("rating_report: no ratings were read; are the sheets empty?")
    low, high = ratings.scale
    labels = np.arange(low, high + 1)  # the whole scale, so weights measure distance in scale points
    scores = []
    for system, criterion in itertools.product(ratings.systems, ratings.criteria):
        values = np.array([r.score for r in ratings.ratings if r.system == system and r.criterion == criterion],
                          dtype=np.float64)
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        scores.append(SystemScore(system, criterion, float(np.mean(values)), std, len(values)))

    by_rater: dict[tuple[str, str], dict[str, int]] = {}  # (criterion, rater) -> item -> score
    for r in ratings.ratings:
        by_rater.setdefault((r.criterion, r.rater), {})[r.item] = r.score
    pairs, fleiss = [], {}
    for criterion in ratings.criteria:
        for rater_a, rater_b in itertools.combinations(ratings.raters, 2):
            a, b = by_rater.get((criterion, rater_a), {}), by_rater.get((criterion, rater_b), {})
            shared = sorted(a.keys() & b.keys())
            if not shared:
                continue  # raters who split the items between them have nothing to agree on
            x, y = [a[i] for i in shared], [b[i] for i in shared]
            pairs.append(PairAgreement(criterion, rater_a, rater_b, len(shared),
                                       *(cohen_kappa(x, y, w, labels) for w in (None, "linear", "quadratic"))))
        if len(ratings.raters) > 1:
            fleiss[criterion] = _fleiss_of(ratings, criterion, labels)
    items = len({r.item for r in ratings.ratings})
    return RatingReport(ratings.criteria, ratings.scale, ratings.raters, items, scores, pairs, fleiss)


def _fleiss_of(ratings: Ratings, criterion: str, labels: np.ndarray) -> float:
    rows: dict[str, np.ndarray] = {}
    for r in ratings.ratings:
        if r.criterion == criterion:
            rows.setdefault(r.item, np.zeros(len(labels), dtype=np.int64))[r.score - labels[0]] += 1
    sizes = {item: int(row.sum()) for item, row in rows.items()}
    if len(set(sizes.values())) > 1:
        fewest = min(sizes, key=sizes.__getitem__)
        most = max(sizes, key=sizes.__getitem__)
        raise LmlabError(f"Fleiss' kappa needs every item rated by the same number of raters: item {fewest} has "
                         f"{sizes[fewest]} rating(s) of {criterion!r}, item {most} has {sizes[most]}; "
                         "give every rater the whole sheet, or drop the extra ratings")
    return fleiss_kappa(np.stack(list(rows.values())))


def _figure(value: float, digits: int = 3) -> str:
    return "undefined" if math.isnan(value) else f"{value:.{digits}f}"


def rating_markdown(report: RatingReport) -> str:
    """The report as markdown: mean ± std per system and criterion, then agreement."""
    low, high = report.scale
    lines = [f"## Ratings ({len(report.raters)} raters, {report.items} items, scale {low}-{high})", "",
             "| system | " + " | ".join(report.criteria) + " | ratings |",
             "|---|" + "---:|" * (len(report.criteria) + 1)]
    cells = {(s.system, s.criterion): s for s in report.scores}
    for system in sorted({s.system for s in report.scores}):
        row = [cells[system, c] for c in report.criteria]
        shown = [f"{s.mean:.2f}" + ("" if math.isnan(s.std) else f" ± {s.std:.2f}") for s in row]
        lines.append(f"| {system} | " + " | ".join(shown) + f" | {row[0].n} |")
    if report.fleiss:
        lines += ["", "## Agreement (Fleiss' κ over all raters)", "", "| criterion | Fleiss' κ |", "|---|---:|"]
        lines += [f"| {c} | {_figure(report.fleiss[c])} |" for c in report.criteria]
    if report.pairs:
        lines += ["", "## Agreement (Cohen's κ per pair of raters)", "",
                  "| criterion | raters | items | κ | κ linear | κ quadratic |", "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {p.criterion} | {p.rater_a} / {p.rater_b} | {p.n} | {_figure(p.kappa)} | "
                  f"{_figure(p.kappa_linear)} | {_figure(p.kappa_quadratic)} |" for p in report.pairs]
    return "\n".join(lines) + "\n"
