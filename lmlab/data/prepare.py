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
from lmlab.errors import warn
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
    for name, split in meta.splits.items():
        if split.documents < MIN_SPLIT_DOCUMENTS or split.tokens < MIN_SPLIT_TOKENS:
            warn(f"{out / 'meta.json'}: the {name} split holds {split.documents:,} document"
                 f"{'' if split.documents == 1 else 's'} and {split.tokens:,} tokens, too few for its figures "
                 f"to mean much (at least {MIN_SPLIT_DOCUMENTS} documents and {MIN_SPLIT_TOKENS:,} tokens); "
                 "give it more text" + (", or a larger val_fraction" if name == "val" else ""))
    return PreparedCorpus(out, report, tokenizer, meta)


# A split below either floor gets a warning. One document is one text's style and subject, so a
# split needs two at least to say anything of the corpus. A token's loss spreads by about 2 nats,
# so over N tokens the mean loss is known to about 2/sqrt(N) nats, fewer if the tokens are
# correlated, as neighbours are: 2,000 tokens pin the perplexity to about ±5%, and fewer make it noise.
MIN_SPLIT_DOCUMENTS = 2
MIN_SPLIT_TOKENS = 2_000
