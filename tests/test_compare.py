"""Runs of every generation: n-gram run directories, the rolling scorer's variants, and `eval compare`."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_train_overrides
from png_checks import drawn_png, saved_figures

from lmlab.cli import main
from lmlab.config import load_config
from lmlab.evaluate.compare import compare_runs, count_notes, held_out_texts, write_comparison
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.language_model import CausalLanguageModel, rolling_windows
from lmlab.models.ngram import NgramModel
from lmlab.models.rnn import RNNConfig, RNNLanguageModel
from lmlab.runs import open_run
from lmlab.tokenizers import Tokenizer
from lmlab.train import TrainConfig, read_train_config, train_run


@pytest.fixture(scope="module")
def tokenizer(packed_dir):
    return Tokenizer.load(packed_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def runs(packed_dir, tmp_path_factory):
    """A tiny GPT run and two n-gram runs (over tokens and over characters) on the same packed data."""
    root = tmp_path_factory.mktemp("runs")
    gpt = train_run(load_config(TrainConfig, None, tiny_train_overrides(packed_dir, root / "gpt", steps=6)))
    ngram_runs = []
    for unit, order in [("token", 3), ("character", 4)]:
        cfg = read_train_config(None, [f"data={packed_dir}", f"run_dir={root / unit}", "model.family=ngram",
                                       f"model.unit={unit}", f"model.order={order}",
                                       "model.discount_fallback=true"])
        ngram_runs.append(train_run(cfg).run_dir)
    return [gpt.run_dir, *ngram_runs]


# the rolling scorer --------------------------------------------------------------------------------


def test_batched_windows_equal_one_window_at_a_time(tokenizer):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16))
    texts = ["to be or not to be, that is the question", "中国人民", "a"]
    batched = CausalLanguageModel(model, tokenizer, batch_size=4).loglikelihood_rolling(texts)
    for text, total in zip(texts, batched, strict=True):
        windows = rolling_windows(tokenizer.encode(text), tokenizer.eos_id, 8)
        one_by_one = 0.0
        for inputs, targets in windows:
            logits = model(torch.tensor([inputs])).logits[0, -len(targets):]
            one_by_one += F.log_softmax(logits.double(), -1).gather(1, torch.tensor(targets)[:, None]).sum().item()
        assert total == pytest.approx(one_by_one, abs=1e-4)


def test_recurrent_models_carry_their_state_across_windows(tokenizer):
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNConfig(cell="lstm", vocab_size=tokenizer.vocab_size, block_size=8, n_embd=16,
                                       hidden=16, n_layer=1)).eval()
    text = "to be or not to be, that is the question: whether 'tis nobler"
    ids = [tokenizer.eos_id, *tokenizer.encode(text)]
    assert len(ids) > 3 * 8  # several windows
    logits = model(torch.tensor([ids])).logits[0, :-1]
    whole = F.log_softmax(logits.double(), -1).gather(1, torch.tensor(ids[1:])[:, None]).sum().item()
    lm = CausalLanguageModel(model, tokenizer)
    assert lm.carries_state
    assert lm.loglikelihood_rolling([text])[0] == pytest.approx(whole, abs=1e-4)


def test_predict_end_adds_the_end_of_text_prediction(tokenizer):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16))
    text = "to be 中国"
    plain = CausalLanguageModel(model, tokenizer).loglikelihood_rolling([text])[0]
    with_end = CausalLanguageModel(model, tokenizer, predict_end=True).loglikelihood_rolling([text])[0]
    ids = [tokenizer.eos_id, *tokenizer.encode(text)]
    end = F.log_softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)[tokenizer.eos_id].item()
    assert with_end == pytest.approx(plain + end, abs=1e-4)


# n-gram runs ---------------------------------------------------------------------------------------


def test_ngram_run_directory_reloads_the_same_model(runs, packed_dir, tmp_path):
    token_run = runs[1]
    assert {"config.yaml", "tokenizer.json", "model.json", "model.safetensors", "summary.json"} <= {
        p.name for p in token_run.iterdir()}
    lm = open_run(token_run).language_model()
    texts = held_out_texts(packed_dir)
    # the binary format reloads exactly what an ARPA round trip (float32 text) keeps approximately
    lm.model.write_arpa(tmp_path / "model.arpa")
    from_arpa = NgramModel.read_arpa(tmp_path / "model.arpa")
    lm_arpa = type(lm)(from_arpa, lm.splitter)
    assert lm.loglikelihood_rolling(texts) == pytest.approx(lm_arpa.loglikelihood_rolling(texts), rel=1e-5)
    # and it was counted on the train split: every training document's units, plus one </s> each
    summary = json.loads((token_run / "summary.json").read_text())
    train_texts = held_out_texts(packed_dir, split="train")
    assert summary["tokens_seen"] == sum(len(lm.splitter.split(t)) + 1 for t in train_texts)


def test_ngram_runs_generate_and_refuse_resume(runs, capsys):
    assert main(["generate", str(runs[2]), "To be", "--max-new-tokens", "10", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("To be")
    assert main(["train", str(runs[2]), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["generate", str(runs[2]), "To be", "--quantize", "int8"]) == 2
    assert "--quantize int8 applies to neural models' weights" in capsys.readouterr().err


def test_corrupt_ngram_weights_are_an_error_naming_the_file(runs, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(runs[1], broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert main(["generate", str(broken), "To be"]) == 2
    assert "model.safetensors" in capsys.readouterr().err


def test_unknown_ngram_config_key_is_named(packed_dir, tmp_path, capsys):
    assert main(["train", f"data={packed_dir}", f"run_dir={tmp_path / 'x'}", "model.family=ngram",
                 "model.ordr=3"]) == 2
    assert "model.ordr" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# the table -----------------------------------------------------------------------------------------


def test_compare_scores_every_run_on_the_same_text(runs, packed_dir, tmp_path, monkeypatch):
    rows = compare_runs(runs)
    texts = held_out_texts(packed_dir)
    total_bytes = sum(len(t.encode()) for t in texts)
    assert [r.bits_per_byte for r in rows] == sorted(r.bits_per_byte for r in rows)
    by_run = {r.run: r for r in rows}
    assert set(by_run) == {"gpt", "token", "character"}
    for run in runs:
        row = by_run[run.name]
        lm = open_run(run).language_model(predict_end=True)
        assert row.bytes == total_bytes
        assert row.nll == pytest.approx(-sum(lm.loglikelihood_rolling(texts)))
        assert row.bits_per_byte == pytest.approx(row.nll / math.log(2) / total_bytes)
    tokenizer = Tokenizer.load(packed_dir / "tokenizer.json")
    # every model predicts the text and its end: tokens + 1 per document for both token models
    tokens = sum(len(tokenizer.encode(t)) + 1 for t in texts)
    assert by_run["gpt"].units == tokens and by_run["token"].units == tokens
    assert by_run["character"].units == sum(len(t) + 1 for t in texts)
    assert by_run["token"].parameters > 0 and by_run["gpt"].train_seconds is None or by_run["gpt"].parameters > 0

    saved = saved_figures(monkeypatch)
    out = write_comparison(rows, tmp_path / "cmp")
    markdown = (out / "compare.md").read_text().splitlines()
    # the table (header, rule, a row per run), a blank line, then a note per run on what ppl/unit counts
    assert len(markdown) == 2 + len(rows) + 1 + len(rows) and "bits/byte" in markdown[0]
    assert markdown[3 + len(rows):] == [f"- {note}" for note in count_notes(rows)]
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn_png(out / "compare.png")
    (figure,) = saved  # a bar per run, as long as its bits per byte, the best at the top
    widths = [bar.get_width() for bar in figure.axes[0].patches]
    assert widths == pytest.approx([row.bits_per_byte for row in rows][::-1])
    assert [r["run"] for r in json.loads((out / "compare.json").read_text())] == [r.run for r in rows]


def test_eval_compare_cli_prints_and_writes_the_table(runs, tmp_path, capsys):
    code = main(["eval", "compare", *map(str, runs), "--out", str(tmp_path / "cmp"), "--json",
                 str(tmp_path / "c.json"), "--max-documents", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "bits/byte" in out and "4-gram" in out and "ppl/unit" in out
    rows = json.loads((tmp_path / "c.json").read_text())
    assert len(rows) == 3 and all(np.isfinite(r["bits_per_byte"]) for r in rows)
    assert main(["eval", "compare"]) == 2


@pytest.mark.parametrize("estimator", ["modified-kneser-ney", "interpolation"])
def test_word_runs_equal_a_model_trained_on_the_train_texts(packed_dir, tmp_path, estimator):
    from lmlab.models.ngram import NgramConfig, NgramLanguageModel, Splitter

    cfg = read_train_config(None, [f"data={packed_dir}", f"run_dir={tmp_path / 'w'}", "model.family=ngram",
                                   "model.unit=word", "model.order=3", f"model.estimator={estimator}",
                                   "model.discount_fallback=true"])
    run = open_run(train_run(cfg).run_dir).language_model()
    train_texts = held_out_texts(packed_dir, split="train")
    texts = held_out_texts(packed_dir)
    if estimator == "interpolation":
        # the run fits its weights on every 20th training document and counts the rest
        assert len(train_texts) >= 20 and all(math.isfinite(x) for x in run.loglikelihood_rolling(texts))
        return
    direct = NgramLanguageModel.train(train_texts, NgramConfig(order=3, discount_fallback=True), Splitter("word"))
    assert run.loglikelihood_rolling(texts) == pytest.approx(direct.loglikelihood_rolling(texts), rel=1e-12)


def test_eval_of_an_ngram_run_counts_the_units_it_predicts(runs, packed_dir):
    from lmlab.evaluate import evaluate_run

    result = evaluate_run(runs[2])  # the character 4-gram: characters and one </s> per document
    texts = held_out_texts(packed_dir)
    assert result["units"] == sum(len(t) + 1 for t in texts)
    lm = open_run(runs[2]).language_model()
    assert result["perplexity"] == pytest.approx(math.exp(-sum(lm.loglikelihood_rolling(texts)) / result["units"]))


def test_a_count_based_model_without_summary_counts_its_own_numbers(runs, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(runs[1], bare)
    (bare / "summary.json").unlink()
    assert open_run(bare).parameters() == json.loads((runs[1] / "summary.json").read_text())["parameters"]


def test_count_based_config_yaml_records_every_resolved_setting(runs):
    """The run's config says exactly what was counted: defaults the command line left out are written too."""
    saved = (runs[1] / "config.yaml").read_text(encoding="utf-8")
    for key in ("estimator: modified-kneser-ney", "unit: token", "order: 3", "padding:", "family: ngram"):
        assert key in saved


def test_streaming_an_ngram_run_is_refused_in_one_line(runs, capsys):
    assert main(["generate", str(runs[1]), "To be", "--stream"]) == 2
    assert "leave --stream out" in capsys.readouterr().err
