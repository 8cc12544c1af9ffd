"""Every printed perplexity says what it counts, and two that say they count the same thing are equal.

Training's validation, `lmlab eval`, `eval compare` and the quickstart's stages 4 and 5 each print a
perplexity; the issue was three different figures for one model with nothing saying why.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re

import pytest
from conftest import tiny_train_overrides
from rich.console import Console

from lmlab.cli import main
from lmlab.data.packing import TokenShards
from lmlab.evaluate import compare_runs, evaluate_run, perplexity
from lmlab.quickstart import show_comparison, show_evaluation
from lmlab.runs import open_run


@pytest.fixture(scope="module")
def trained(packed_dir, tmp_path_factory):
    """A tiny GPT trained through the CLI on the whole val split (no eval_tokens sample), and its output."""
    run = tmp_path_factory.mktemp("counts") / "gpt"
    overrides = [o for o in tiny_train_overrides(packed_dir, run, steps=4) if not o.startswith("train.eval_tokens")]
    out = tmp_path_factory.mktemp("out") / "train.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["train", *overrides, "--json", str(out)]) == 0
    return run, buffer.getvalue(), json.loads(out.read_text())


def test_train_final_line_says_what_val_perplexity_counts(trained, packed_dir):
    run, out, result = trained
    final = next(line for line in out.splitlines() if line.startswith("trained "))
    targets = TokenShards(packed_dir).num_tokens("val") - 1
    printed = float(re.search(r"val perplexity ([\d.]+)", final).group(1))
    assert printed == pytest.approx(math.exp(result["val_loss"]), abs=0.006)
    assert f"per token: {targets:,} targets of the packed val split, document ends included" in final
    assert "windows of 32 tokens" in final and "sample" not in final  # the whole split was read
    assert result["val_counts"] in final


def test_a_sampled_training_validation_says_it_is_a_sample(packed_dir, tmp_path, capsys):
    assert main(["train", *tiny_train_overrides(packed_dir, tmp_path / "run", steps=2)]) == 0
    final = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("trained "))
    whole = TokenShards(packed_dir).num_tokens("val") - 1
    assert f"(a sample spread over its {whole:,}: train.eval_tokens)" in final


def test_eval_and_compare_print_the_same_figure_with_the_same_description(trained, packed_dir, tmp_path, capsys):
    run, _, _ = trained
    capsys.readouterr()
    assert main(["eval", str(run), "--json", str(tmp_path / "eval.json")]) == 0
    eval_out = capsys.readouterr().out
    result = json.loads((tmp_path / "eval.json").read_text())
    shards = TokenShards(packed_dir)
    documents = shards.meta.splits["val"].documents
    # a char tokenizer re-encodes the decoded documents to the packed tokens, each end included
    assert result["units"] == shards.num_tokens("val") and result["documents"] == documents
    counts = (f"per token: {result['units']:,} tokens incl. {documents:,} document ends, {documents:,} val documents "
              "each scored from its start, in windows of 32 tokens, stride 32")
    assert result["counts"].startswith(counts)
    assert f"val: perplexity {result['perplexity']:.2f} {result['counts']}" in eval_out

    assert main(["eval", "compare", str(run), "--out", str(tmp_path / "compare"),
                 "--json", str(tmp_path / "compare.json")]) == 0
    compare_out = capsys.readouterr().out
    row, = json.loads((tmp_path / "compare.json").read_text())
    assert row["counts"] == result["counts"]
    assert row["perplexity"] == pytest.approx(result["perplexity"], rel=1e-9)
    assert f"ppl/unit {row['perplexity']:,.2f} {row['counts']}" in compare_out
    markdown = (tmp_path / "compare" / "compare.md").read_text()
    assert f"- gpt: ppl/unit {row['perplexity']:,.2f} {row['counts']}" in markdown
    assert perplexity(run) == pytest.approx(result["perplexity"], rel=1e-9)


def test_a_sampled_compare_says_so_in_its_description(trained):
    run, _, _ = trained
    row, = compare_runs([run], max_documents=3)
    assert row.counts.startswith(f"per token: {row.units:,} tokens incl. 3 document ends, 3 val documents")
    assert row.counts != evaluate_run(run)["counts"]


def test_quickstart_stages_show_one_figure_per_model(trained, tmp_path):
    """Stage 4's figure and stage 5's row for the same run are one figure, printed with one description."""
    run, _, _ = trained
    console = Console(record=True, width=400)
    figures = evaluate_run(run)
    show_evaluation(console, open_run(run).describe(), figures)
    rows = compare_runs([run])
    show_comparison(console, rows, tmp_path / "compare", run.name)
    text = console.export_text()
    assert f"perplexity {figures['perplexity']:.1f} {figures['counts']}" in text
    assert f"ppl/unit {rows[0].perplexity:,.2f} {figures['counts']}" in text
    assert f"{rows[0].perplexity:,.2f}" == f"{figures['perplexity']:,.2f}"
    assert "training's val perplexity counts other predictions" in text


def test_a_streamed_validation_says_it_carries_the_state(packed_dir, tmp_path, capsys):
    """The quickstart's LSTM recipe evaluates as streams; its final line says so, and how many it read."""
    lstm = "model={family: rnn, cell: lstm, n_embd: 16, hidden: 16, n_layer: 1, block_size: 32}"
    base = [o for o in tiny_train_overrides(packed_dir, tmp_path / "lstm", 2)
            if not o.startswith(("model=", "train.eval_tokens", "train.grad_accum"))]
    assert main(["train", *base, lstm, "objective=causal_lm_stream", "train.batch_size=4"]) == 0
    final = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("trained "))
    length = (TokenShards(packed_dir).num_tokens("val") - 1) // 4
    assert f"per token: {4 * length:,} targets of the packed val split, document ends" in final
    assert "4 streams in windows of 32 tokens, the state carried from one window to the next" in final
