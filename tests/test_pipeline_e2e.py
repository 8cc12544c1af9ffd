"""The whole path through the CLI on a small bilingual corpus: prepare, train, eval, generate, report, export."""

from __future__ import annotations

import json

import torch
from conftest import tiny_documents
from transformers import GPT2LMHeadModel

from lmlab.cli import main
from lmlab.models import load_model


def test_corpus_to_report_through_the_cli(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    docs = tiny_documents(80) + tiny_documents(10)  # ten exact duplicates to be removed
    corpus.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    data, run = tmp_path / "data", tmp_path / "run"

    assert main(["data", "prepare", str(corpus), "--out", str(data), "tokenizer.vocab_size=400",
                 "val_fraction=0.2", "data.dedup=exact", "--json", str(tmp_path / "prepare.json")]) == 0
    out = capsys.readouterr().out
    assert "exact duplicates" in out and sorted(p.name for p in data.iterdir()) == [
        "clean.jsonl", "meta.json", "tokenizer.json", "train.bin", "val.bin"]
    assert len((data / "clean.jsonl").read_text(encoding="utf-8").splitlines()) == 80
    prepared = json.loads((tmp_path / "prepare.json").read_text())
    assert prepared["path"] == str(data) and prepared["report"]["documents_read"] == 90
    assert prepared["splits"]["train"]["tokens"] > 0 and prepared["tokenizer"]["kind"] == "bpe"
    assert f"train {prepared['splits']['train']['tokens']:,} tokens" in out
    # The next: line is a command that runs as printed (here with fewer steps and a smaller model).
    suggested = next(line for line in out.splitlines() if line.startswith("next: ")).removeprefix("next: ")
    words = suggested.split("   ")[0].split()
    assert words[:2] == ["lmlab", "train"] and f"data={data}" in words
    assert main([*words[1:], f"run_dir={tmp_path / 'suggested'}", "train.max_steps=1", "model.n_layer=1",
                 "model.n_embd=16", "model.n_head=2", "model.block_size=16", "train.batch_size=2",
                 "train.eval_tokens=64", "train.device=cpu"]) == 0

    assert main(["train", f"data={data}", f"run_dir={run}", "model.n_layer=1", "model.n_head=2", "model.n_embd=32",
                 "model.block_size=64", "train.max_steps=30", "train.batch_size=8", "train.eval_every=10",
                 "train.device=cpu", "optimizer.lr=0.01", "--json", str(tmp_path / "train.json")]) == 0
    trained = json.loads((tmp_path / "train.json").read_text())
    assert trained["run_dir"] == str(run) and trained["steps"] == 30 and trained["val_loss"] is not None
    assert main(["eval", str(run), "--json", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["bits_per_byte"] < result["unigram_bits_per_byte"]

    capsys.readouterr()
    assert main(["generate", str(run), "To be", "中国", "--temperature", "0", "--max-new-tokens", "8",
                 "--json", str(tmp_path / "generate.json")]) == 0
    lines = capsys.readouterr().out
    assert "To be" in lines and "中国" in lines
    records = json.loads((tmp_path / "generate.json").read_text(encoding="utf-8"))
    assert [r["prompt"] for r in records] == ["To be", "中国"]
    assert all(r["prompt"] + r["text"] in lines for r in records)

    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    assert {"report.html", "loss.png", "lr.png"} <= {p.name for p in run.iterdir()}
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"next: open {run / 'report.html'} in a browser")

    hf_dir = tmp_path / "hf"
    assert main(["export", str(run), str(hf_dir)]) == 0
    ours, theirs = load_model(run), GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 20))
    with torch.no_grad():
        assert (ours(ids).logits - theirs(ids).logits).abs().max() <= 1e-4
