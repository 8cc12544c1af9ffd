"""A user's own labelled examples: one JSONL or CSV file split here, or a directory of splits used as given.

Every row is checked as it is read, and an error names the file and line, since a learner's first
labelled file is rarely clean: a missing column, an empty text, labels that are numbers in one row
and words in the next.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lmlab.data.dedup import normalize_for_shingles
from lmlab.datasets.labelled.examples import DEFAULT_FRACTIONS, SPLITS, Example, LabelledDataset
from lmlab.datasets.labelled.splitting import clean_label_text, deduplicate_and_split, describe_splits
from lmlab.errors import LmlabError
from lmlab.files import read_jsonl, read_text

LABELLED_FORMATS = (".jsonl", ".csv")


def read_labelled(
    path: str | os.PathLike[str],
    text_field: str = "text",
    label_field: str = "label",
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> LabelledDataset:
    """A user's labelled examples: one .jsonl/.csv file, deduplicated and split (stratified, seeded),
    or a directory holding train and validation/test files (``train.jsonl``, ``test.csv``...) used as given.

    Given splits are only cleaned: exact duplicates within a split are dropped, and so are validation and
    test texts that also appear in train (or validation in test), which would otherwise be scored as seen.
    A row without the text or label, with an empty text, or with a label that is not a string or an
    integer (or of another type than the rows before it), is an `LmlabError` naming the file and line.
    """
    source = Path(path)
    if source.is_dir():
        splits, dedup = _read_given_splits(source, text_field, label_field)
        recipe: dict[str, Any] = {"given_splits": [split for split, rows in splits.items() if rows]}
    else:
        examples = read_labelled_file(source, text_field, label_field)
        splits, dedup = deduplicate_and_split(examples, fractions=fractions, seed=seed)
        empty = [split for split, rows in splits.items() if not rows and fractions[SPLITS.index(split)] > 0]
        if empty:
            raise LmlabError(
                f"{source}: {dedup['examples_kept']} distinct examples are too few to fill the "
                f"{', '.join(empty)} split(s); add examples or give the splits as files in a directory"
            )
        recipe = {"seed": seed, "fractions": dict(zip(SPLITS, fractions, strict=True))}
    labels = sorted({example.label for rows in splits.values() for example in rows}, key=str)
    card = {
        "name": source.stem,
        "source": {"path": str(source)},
        "recipe": recipe,
        **describe_splits(splits, labels, dedup),
    }
    return LabelledDataset(source.stem, splits, labels, card)


def read_labelled_file(
    path: str | os.PathLike[str], text_field: str = "text", label_field: str = "label"
) -> list[Example]:
    """Every row of one .jsonl or .csv file as an `Example`, each checked (errors name the file and line)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if not file.exists():
        raise LmlabError(f"{file}: no such file or directory")
    if suffix == ".jsonl":
        rows: Iterable[tuple[int, dict[str, Any]]] = read_jsonl(file, "labelled file")
    elif suffix == ".csv":
        rows = _csv_rows(file, text_field, label_field)
    else:
        raise LmlabError(f"{file}: unknown extension {file.suffix!r} for labelled data (known: .jsonl, .csv)")
    examples: list[Example] = []
    for number, record in rows:
        where = f"{file}:{number}"
        for name in (text_field, label_field):
            if name not in record:
                raise LmlabError(f"{where}: no field {name!r}")
        text, label = record[text_field], record[label_field]
        if not isinstance(text, str):
            kind = "null" if text is None else type(text).__name__
            raise LmlabError(f"{where}: field {text_field!r} is {kind}, not a string")
        if not text.strip():
            raise LmlabError(f"{where}: field {text_field!r} is empty")
        if isinstance(label, bool) or not isinstance(label, str | int) or label == "":
            raise LmlabError(
                f"{where}: field {label_field!r} is {label!r}; a label is a non-empty string or an integer"
            )
        if examples and type(label) is not type(examples[0].label):
            raise LmlabError(
                f"{where}: label {label!r} is a {type(label).__name__}, but earlier labels are "
                f"{type(examples[0].label).__name__}s"
            )
        examples.append(Example(text, label))
    if not examples:
        raise LmlabError(f"{file}: no labelled examples")
    return examples


def _csv_rows(file: Path, text_field: str, label_field: str) -> Iterable[tuple[int, dict[str, Any]]]:
    """Each CSV record as a dict of its columns, with the line where it starts."""
    rows = csv.reader(io.StringIO(read_text(file, "labelled file").removeprefix("\ufeff"), newline=""))
    try:
        header = next(rows, None)
        if header is None:
            return
        missing = [name for name in (text_field, label_field) if name not in header]
        if missing:
            raise LmlabError(f"{file}:1: no column {missing[0]!r} (columns: {', '.join(header)})")
        start = rows.line_num + 1
        for row in rows:
            if row:
                if len(row) != len(header):
                    raise LmlabError(f"{file}:{start}: row has {len(row)} fields, the header has {len(header)}")
                yield start, dict(zip(header, row, strict=True))
            start = rows.line_num + 1
    except csv.Error as error:
        raise LmlabError(f"{file}:{rows.line_num}: not valid CSV ({error})") from None


def _read_given_splits(
    directory: Path, text_field: str, label_field: str
) -> tuple[dict[str, list[Example]], dict[str, int]]:
    files = {}
    for split in SPLITS:
        found = [file for suffix in LABELLED_FORMATS if (file := directory / f"{split}{suffix}").is_file()]
        if len(found) > 1:
            raise LmlabError(f"{directory}: both {found[0].name} and {found[1].name}; keep one file per split")
        if found:
            files[split] = found[0]
    if "train" not in files or len(files) < 2:
        raise LmlabError(
            f"{directory}: expected train.jsonl (or .csv) and validation and/or test files beside it; "
            "to split one file, pass the file itself"
        )
    seen: set[str] = set()
    splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
    read = empty = repeated = 0
    for split, file in files.items():
        for example in read_labelled_file(file, text_field, label_field):
            read += 1
            text = clean_label_text(example.text)
            key = normalize_for_shingles(text)
            if not text:
                empty += 1
            elif key in seen:
                repeated += 1
            else:
                seen.add(key)
                splits[split].append(Example(text, example.label))
    kept = sum(map(len, splits.values()))
    return splits, {"examples_read": read, "empty_dropped": empty, "exact_duplicates_removed": repeated,
                    "examples_kept": kept}
