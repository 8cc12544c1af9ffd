"""Writing files so that a crash never leaves half an output behind.

Every output is written under a temporary name in the same directory and renamed into place when
complete; `os.replace` is atomic on one filesystem, so readers see the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from lmlab.errors import LmlabError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories alike: whatever the block creates at the temporary path
    replaces `path` (an existing directory at `path` is removed first).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.rmdir()  # only the unique name is wanted; the block creates a file or directory there
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """Read a UTF-8 file; a missing file or broken UTF-8 is a `LmlabError` naming the path."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LmlabError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise LmlabError(f"{path}: is a directory, not a {what}") from None
    except UnicodeDecodeError as exc:
        raise LmlabError(f"{path}: not valid UTF-8 at byte {exc.start}") from None


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Read a JSON file; every defect is a `LmlabError` naming the path (and the line, for bad JSON)."""
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as exc:
        raise LmlabError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def json_object(line: str, where: str) -> dict[str, Any]:
    """One JSONL line, which must hold a JSON object; `where` ("file:line") names it in the error."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LmlabError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise LmlabError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def read_jsonl(path: str | os.PathLike[str], what: str = "JSONL file") -> list[tuple[int, dict[str, Any]]]:
    """Each non-blank line's JSON object with its line number (small files: read whole)."""
    lines = enumerate(read_text(path, what).splitlines(), start=1)
    return [(number, json_object(line, f"{path}:{number}")) for number, line in lines if line.strip()]


@contextlib.contextmanager
def safetensors_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a missing, truncated or corrupt safetensors file into a LmlabError naming it."""
    try:
        yield
    except FileNotFoundError:
        raise LmlabError(f"{path}: no such file") from None
    except (SafetensorError, OSError) as exc:
        raise LmlabError(f"{path}: not a readable safetensors file, truncated or corrupt ({exc})") from None


def write_arrays(path: str | os.PathLike[str], arrays: dict[str, Any]) -> None:
    """Write NumPy arrays as a safetensors file, atomically (the weights of the non-neural models)."""
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp))


def read_arrays(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The NumPy arrays of a safetensors file; a missing or damaged file is a LmlabError naming it."""
    with safetensors_errors(path):
        return load_file(str(path))
