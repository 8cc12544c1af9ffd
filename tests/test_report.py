"""`lmlab report`: curves as PNG and an HTML page that shows config, evaluation and samples."""

from __future__ import annotations

import json

import pytest

from lmlab.errors import LmlabError
from lmlab.report import write_report


def test_report_draws_curves_and_escapes_text(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": s, "loss": 5.0 / s, "lr": 1e-3, "tokens": s * 10, "tokens_per_s": 100.0} for s in range(1, 21)]
    lines += [{"step": 10, "val_loss": 0.9, "val_perplexity": 2.46}, {"step": 20, "val_loss": 0.5}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "config.yaml").write_text("model:\n  n_layer: 2\n")
    (run / "eval.json").write_text(json.dumps({"perplexity": 12.5, "bits_per_byte": 1.25}))
    (run / "samples.json").write_text(json.dumps([{"prompt": "中国<b>", "completion": "人民"}]), encoding="utf-8")
    page = write_report(run).read_text(encoding="utf-8")
    for png in ("loss.png", "lr.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png in page
    assert "中国&lt;b&gt;人民" in page and "n_layer: 2" in page and "1.25" in page


def test_report_of_a_folder_without_metrics(tmp_path):
    with pytest.raises(LmlabError, match="metrics.jsonl: missing"):
        write_report(tmp_path)
