"""Bad input: one `error:` line naming the file, line or field; exit status 2; nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_train_overrides

from lmlab.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def assert_one_error(code: int, lines: list[str], *needles: str) -> None:
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("broken.txt", b"good text\n\xff\xfe bad bytes", ("broken.txt", "UTF-8")),
        ("broken.jsonl", b'{"text": "fine"}\n{"text": "unterminated\n', ("broken.jsonl:2", "JSON")),
        ("fieldless.jsonl", b'{"text": "fine"}\n{"body": "no text field"}\n', ("fieldless.jsonl:2", "text")),
        ("empty.jsonl", b"", ("empty",)),
    ],
)
def test_bad_corpus_when_preparing(capsys, tmp_path, name, content, needles):
    corpus = tmp_path / name
    corpus.write_bytes(content)
    out = tmp_path / "prepared"
    code, lines = run_cli(capsys, "data", "prepare", corpus, "--out", out)
    assert_one_error(code, lines, *needles)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_unknown_config_key(capsys, tmp_path, packed_dir):
    run = tmp_path / "run"
    code, lines = run_cli(capsys, "train", *tiny_train_overrides(packed_dir, run), "train.max_stepz=3")
    assert_one_error(code, lines, "unknown key 'train.max_stepz'")
    assert not run.exists()


def test_wrong_type_in_a_yaml_config(capsys, tmp_path, packed_dir):
    config = tmp_path / "train.yaml"
    config.write_text(f"data: {packed_dir}\nrun_dir: {tmp_path / 'run'}\ntrain:\n  batch_size: many\n")
    code, lines = run_cli(capsys, "train", config)
    assert_one_error(code, lines, "train.yaml", "train.batch_size", "'many'")
    assert not (tmp_path / "run").exists()


def test_unknown_model_field(capsys, tmp_path, packed_dir):
    code, lines = run_cli(capsys, "train", *tiny_train_overrides(packed_dir, tmp_path / "run"), "model.n_layers=3")
    assert_one_error(code, lines, "n_layers")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_checkpoint_on_resume_and_truncated_model_on_generate(capsys, tmp_path, packed_dir):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", *tiny_train_overrides(packed_dir, run, steps=3))[0] == 0
    checkpoint = run / "checkpoints" / "step-3" / "model.safetensors"
    _truncate(checkpoint)
    code, lines = run_cli(capsys, "train", run, "--resume", "train.max_steps=4")  # the run finished: extend it
    assert_one_error(code, lines, str(checkpoint))

    _truncate(run / "model.safetensors")
    code, lines = run_cli(capsys, "generate", run, "hello")
    assert_one_error(code, lines, str(run / "model.safetensors"))
