"""Atomic outputs: a failure inside the block leaves the old output (or nothing) in place."""

import pytest

from lmlab.files import atomic_path, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "shard.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_directory_replaced_whole(tmp_path):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_write_json_keeps_chinese_readable(tmp_path):
    write_json(tmp_path / "m.json", {"名字": "莎士比亚"})
    assert "莎士比亚" in (tmp_path / "m.json").read_text(encoding="utf-8")
