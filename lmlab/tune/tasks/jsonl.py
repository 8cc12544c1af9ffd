"""Tasks whose data is JSONL records of their own fields (tagging, qa, multiple choice): reading and checking them.

`data` is a directory of train.jsonl, validation.jsonl and test.jsonl, or one .jsonl file cut
80/10/10 with the run's seed. Every record is checked as it is read, so a mistake names its file
and line instead of surfacing later as a shape error.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmlab.errors import LmlabError
from lmlab.tune.tasks.base import FineTuningTask, TaskData, TaskSettings, limited

SPLITS = ("train", "validation", "test")


class JsonlTask(FineTuningTask):
    """A task read from JSONL records that carry `fields`; a subclass checks what those fields hold."""

    fields: ClassVar[tuple[str, ...]]

    def read(self, settings: TaskSettings) -> TaskData:
        splits = limited(self.read_splits(settings.data, settings.train.seed), settings)
        return TaskData(splits, self.labels_of(splits["train"]))

    def labels_of(self, train: list[dict[str, Any]]) -> list[str]:
        """The label set, found in the training records; none by default."""
        return []

    @abstractmethod
    def check(self, record: dict[str, Any], where: str) -> None:
        """Raise an LmlabError naming `where` if the record's fields do not make an example of this task."""

    def read_splits(self, path: str | Path, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
        """train/validation/test records: a directory of the three .jsonl files, or one .jsonl cut 80/10/10 (seeded)."""
        path = Path(path)
        if path.is_dir():
            missing = [split for split in SPLITS if not (path / f"{split}.jsonl").exists()]
            if missing:
                raise LmlabError(f"{path}: no {missing[0]}.jsonl (a {self.name} directory holds train, validation "
                                 "and test)")
            return {split: self.read_file(path / f"{split}.jsonl") for split in SPLITS}
        if path.suffix != ".jsonl":
            raise LmlabError(f"{path}: {self.name} data is JSONL (DESIGN's labelled formats)")
        records = self.read_file(path)
        if len(records) < 10:
            raise LmlabError(f"{path}: {len(records)} records are too few to split 80/10/10")
        order = np.random.default_rng(seed).permutation(len(records))
        cut1, cut2 = int(0.8 * len(records)), int(0.9 * len(records))
        return {"train": [records[i] for i in order[:cut1]], "validation": [records[i] for i in order[cut1:cut2]],
                "test": [records[i] for i in order[cut2:]]}

    def read_file(self, path: Path) -> list[dict[str, Any]]:
        records = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise LmlabError(f"{path}:{number}: not JSON ({exc.msg})") from None
                    records.append(self._checked(record, f"{path}:{number}"))
        if not records:
            raise LmlabError(f"{path}: no records")
        return records

    def _checked(self, record: Any, where: str) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise LmlabError(f"{where}: a record must be a JSON object")
        missing = [name for name in self.fields if name not in record]
        if missing:
            raise LmlabError(f"{where}: a {self.name} record needs the field {missing[0]!r} "
                             f"(fields: {', '.join(self.fields)})")
        self.check(record, where)
        return record
