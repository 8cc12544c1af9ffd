"""Reading a corpus: files of four formats in, a stream of documents out.

A *document* is one unit of text the model will see as a whole: a book, an article, a review.
Where documents live depends on the format:

    .txt       the whole file is one document, or (txt_mode="blocks") each blank-line-separated block
    .jsonl     one JSON object per line; the document is its `text_field`
    .csv       one row per record (with a header row); the document is the `text_field` column
    .parquet   one row per record; the document is the `text_field` column

Every reader is a generator that holds one line, row or batch at a time, so a corpus far larger than
memory streams through. A mistake in the data (bad UTF-8, a broken JSON line, a missing field) is an
`LmlabError` naming the file and the line, so it can be found and fixed in an editor.

Paths may be files, directories (searched recursively, in sorted order, for the four known
extensions) or glob patterns such as ``data/**/*.jsonl``. A file named explicitly must have a known
extension; directories and globs quietly pass over other files (a README beside the data).
"""

from __future__ import annotations

import csv
import glob
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from lmlab.errors import LmlabError
from lmlab.files import json_object

TxtMode = Literal["file", "blocks"]
PathsLike = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

KNOWN_EXTENSIONS = (".txt", ".jsonl", ".csv", ".parquet")

_GLOB_CHARS = re.compile(r"[*?\[]")
# json.loads accepts "\ud800" escapes and returns a lone surrogate, which no UTF-8 writer downstream accepts.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_PARQUET_BATCH_ROWS = 1024


@dataclass(frozen=True)
class Document:
    """One document and where it came from (for error messages and provenance)."""

    text: str
    source: Path
    line: int  # 1-based line where the document starts; the row number for Parquet


def iter_documents(paths: PathsLike, *, text_field: str = "text", txt_mode: TxtMode = "file") -> Iterator[Document]:
    """Stream every document of every file that `paths` names, in order.

    The paths are resolved now, so a missing file is reported at the call; the files are read lazily
    as the returned iterator is consumed.
    """
    if txt_mode not in ("file", "blocks"):
        raise LmlabError(f"txt_mode must be 'file' or 'blocks', not {txt_mode!r}")
    files = resolve_paths(paths)
    return _iter_files(files, text_field, txt_mode)


def read_documents(paths: PathsLike, *, text_field: str = "text", txt_mode: TxtMode = "file") -> Iterator[str]:
    """Stream the text of every document that `paths` names (see `iter_documents`)."""
    return (doc.text for doc in iter_documents(paths, text_field=text_field, txt_mode=txt_mode))


def resolve_paths(paths: PathsLike) -> list[Path]:
    """Expand files, directories and glob patterns into a list of corpus files (each listed once)."""
    entries = path_entries(paths)
    if not entries:
        raise LmlabError("no corpus paths were given")
    # Keyed by the resolved path so a file matched twice is read once; the value keeps the path as the
    # user wrote it, which is what error messages should show.
    files: dict[Path, Path] = {}
    for entry in entries:
        for file in _expand(str(entry)):
            files.setdefault(file.resolve(), file)
    return list(files.values())


def path_entries(paths: PathsLike) -> list[str | os.PathLike[str]]:
    """The entries of `paths` as a list; a single string is one path, not a sequence of characters."""
    return [paths] if isinstance(paths, str | os.PathLike) else list(paths)


def _expand(entry: str) -> list[Path]:
    # A file literally named "notes[1].txt" is that file, not a pattern.
    if _GLOB_CHARS.search(entry) and not os.path.exists(entry):
        matches = [Path(m) for m in sorted(glob.glob(entry, recursive=True))]
        found = [f for m in matches for f in (_corpus_files_in(m) if m.is_dir() else [m]) if _is_known(f)]
        if not found:
            raise LmlabError(f"{entry}: no {'/'.join(KNOWN_EXTENSIONS)} files matched")
        return found
    path = Path(entry)
    if path.is_dir():
        found = _corpus_files_in(path)
        if not found:
            raise LmlabError(f"{entry}: the directory holds no {'/'.join(KNOWN_EXTENSIONS)} files")
        return found
    if not path.exists():
        raise LmlabError(f"{entry}: no such file or directory")
    if not _is_known(path):
        raise LmlabError(f"{entry}: unknown extension {path.suffix!r} (known: {', '.join(KNOWN_EXTENSIONS)})")
    return [path]


def _corpus_files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and _is_known(p))


def _is_known(path: Path) -> bool:
    return path.suffix.lower() in KNOWN_EXTENSIONS


def _iter_files(files: list[Path], text_field: str, txt_mode: TxtMode) -> Iterator[Document]:
    for file in files:
        suffix = file.suffix.lower()
        if suffix == ".txt":
            yield from (_read_txt_blocks(file) if txt_mode == "blocks" else _read_txt_file(file))
        else:
            yield from _FIELD_READERS[suffix](file, text_field)


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line with its line ending) and report bad UTF-8 precisely.

    Lines are read as bytes and decoded one by one, so the error can name the line and byte offset.
    """
    offset = 0
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LmlabError(f"{path}:{number}: not valid UTF-8 at byte {offset + exc.start}") from None
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]  # a byte-order mark, which Windows editors and Excel put at the start
            offset += len(raw)
            yield number, line


def _read_txt_file(path: Path) -> Iterator[Document]:
    yield Document("".join(line for _, line in _iter_lines(path)), path, 1)


def _read_txt_blocks(path: Path) -> Iterator[Document]:
    block: list[str] = []
    start = 1
    for number, line in _iter_lines(path):
        if line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            yield Document("".join(block).rstrip("\r\n"), path, start)
            block = []
    if block:
        yield Document("".join(block).rstrip("\r\n"), path, start)


def _checked_text(value: object, location: str, name: str) -> str:
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise LmlabError(f"{location}: {name} is {kind}, not a string")
    return value


def _read_jsonl(path: Path, text_field: str) -> Iterator[Document]:
    for number, line in _iter_lines(path):
        if not line.strip():
            continue  # blank lines (a trailing newline, a separator) hold no record
        record = json_object(line, f"{path}:{number}")
        if text_field not in record:
            raise LmlabError(f"{path}:{number}: no field {text_field!r}")
        text = _checked_text(record[text_field], f"{path}:{number}", f"field {text_field!r}")
        if _LONE_SURROGATE.search(text):
            raise LmlabError(f"{path}:{number}: field {text_field!r} holds a lone surrogate (\\ud800-\\udfff)")
        yield Document(text, path, number)


def _read_csv(path: Path, text_field: str) -> Iterator[Document]:
    # A long document can exceed csv's default 128 KiB field limit; a corpus reader must accept it.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    # csv.reader takes any iterable of lines, so it reads through the UTF-8 checks of _iter_lines.
    rows = csv.reader(line for _, line in _iter_lines(path))
    try:
        header = next(rows, None)
        if header is None:
            return
        if text_field not in header:
            raise LmlabError(f"{path}:1: no column {text_field!r} (columns: {', '.join(header)})")
        column = header.index(text_field)
        record_start = rows.line_num + 1
        for row in rows:
            if row:  # csv gives [] for a blank line
                if len(row) <= column:
                    raise LmlabError(f"{path}:{record_start}: row has {len(row)} fields, the header has {len(header)}")
                yield Document(row[column], path, record_start)
            record_start = rows.line_num + 1
    except csv.Error as exc:
        raise LmlabError(f"{path}:{rows.line_num}: not valid CSV ({exc})") from None


def _read_parquet(path: Path, text_field: str) -> Iterator[Document]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise LmlabError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = parquet.schema_arrow.names
    if text_field not in columns:
        raise LmlabError(f"{path}: no column {text_field!r} (columns: {', '.join(columns)})")
    row = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=[text_field]):
        for value in batch.column(0).to_pylist():
            row += 1
            yield Document(_checked_text(value, f"{path}: row {row}", f"column {text_field!r}"), path, row)


_FIELD_READERS: dict[str, Callable[[Path, str], Iterator[Document]]] = {
    ".jsonl": _read_jsonl,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
