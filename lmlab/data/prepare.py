"""From raw files to a folder a model can train on, in one streaming pass per stage.

    raw files ──clean + dedup──> clean.jsonl ──train──> tokenizer.json ──encode + pack──> train.bin, val.bin, meta.json

The prepared folder keeps every intermediate product, so a learner can open each stage's output.
It is built under a temporary name and renamed when complete: an interrupted preparation leaves no
half folder behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from lmlab.config import Config
from lmlab.data.packing import PackMeta, pack_corpus
from lmlab.data.pipeline import DataConfig, PrepareReport, prepare_documents
from lmlab.data.readers import PathsLike, read_documents
from lmlab.files import atomic_path
from lmlab.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer


class PrepareConfig(Config):
    data: DataConfig = Field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    val_fraction: float = Field(0.05, gt=0.0, lt=1.0)
    seed: int = 0


@dataclass
class PreparedCorpus:
    path: Path
    report: PrepareReport
    tokenizer: Tokenizer
    meta: PackMeta


def prepare_corpus(
    paths: PathsLike,
    out_dir: str | os.PathLike[str],
    cfg: PrepareConfig | None = None,
    tokenizer: Tokenizer | None = None,
) -> PreparedCorpus:
    """Clean and deduplicate `paths`, train a tokenizer (unless one is given), and pack the shards."""
    cfg = cfg or PrepareConfig()
    report = PrepareReport()
    out = Path(out_dir)
    with atomic_path(out) as staging:
        staging.mkdir()
        clean_file = staging / "clean.jsonl"
        with clean_file.open("w", encoding="utf-8") as sink:
            for text in prepare_documents(paths, cfg.data, report):
                sink.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        if tokenizer is None:
            tokenizer = train_tokenizer(read_documents([clean_file]), cfg.tokenizer)
        tokenizer.save(staging / "tokenizer.json")
        packed = staging / "packed"
        meta = pack_corpus(
            read_documents([clean_file]), tokenizer, packed, val_fraction=cfg.val_fraction, seed=cfg.seed
        )
        for item in packed.iterdir():  # the shards sit beside the tokenizer, so `data: DIR` is all a run needs
            item.rename(staging / item.name)
        packed.rmdir()
    return PreparedCorpus(out, report, tokenizer, meta)
