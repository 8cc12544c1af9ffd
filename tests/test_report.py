"""`lmlab report`: curves as PNG and an HTML page that shows config, evaluation and samples."""

from __future__ import annotations

import json

import pytest
import torch
from png_checks import drawn_png

from lmlab import report
from lmlab.errors import LmlabError
from lmlab.models.bert import BERT, BertConfig
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.hf import export_gpt2
from lmlab.models.hf_bert import export_bert
from lmlab.report import plot_attention, write_report


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
        drawn_png(run / png)
        assert png in page
    assert "中国&lt;b&gt;人民" in page and "n_layer: 2" in page and "1.25" in page


def test_curves_draw_one_line_per_series(tmp_path, monkeypatch):
    drawn = {}
    save = report._save_figure

    def keep(figure, path):
        axes = figure.axes[0]
        drawn[path.name] = ([len(line.get_xdata()) for line in axes.lines], axes.get_legend_handles_labels()[1])
        save(figure, path)

    monkeypatch.setattr(report, "_save_figure", keep)
    records = [{"step": s, "loss": 1.0 / s, "lr": 0.1 * s} for s in range(1, 9)] + [{"step": 8, "val_loss": 0.3}]
    assert [p.name for p in report.plot_curves(records, tmp_path)] == ["loss.png", "lr.png"]
    assert drawn == {"loss.png": ([8, 1], ["train loss", "validation loss"]), "lr.png": ([8], [])}
    drawn.clear()
    assert report.plot_curves([{"step": 1, "val_loss": 2.0}], tmp_path) == [tmp_path / "loss.png"]  # no lr logged
    assert drawn == {"loss.png": ([1], ["validation loss"])}
    assert report.plot_curves([], tmp_path) == [] and len(drawn) == 1  # nothing to draw, nothing drawn


def test_report_of_a_folder_without_metrics(tmp_path):
    with pytest.raises(LmlabError, match="metrics.jsonl: missing"):
        write_report(tmp_path)


# attention maps --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers_pair(tmp_path_factory):
    """A tiny GPT and a tiny BERT with weights far from initialisation, and their Hugging Face exports."""
    root = tmp_path_factory.mktemp("attention")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    bert = BERT(BertConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, hidden_size=16,
                           intermediate_size=32)).eval()
    with torch.no_grad():
        for model in (gpt, bert):
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.5)  # peaked attention, so a wrong weight shows
    export_gpt2(gpt, root / "gpt2")
    export_bert(bert, root / "bert")
    return gpt, bert, root


def test_attention_maps_are_the_weights_transformers_returns(transformers_pair):
    from transformers import BertModel, GPT2LMHeadModel

    gpt, bert, root = transformers_pair
    ids = torch.tensor([3, 17, 5, 42, 8, 8, 21])
    theirs_gpt = GPT2LMHeadModel.from_pretrained(root / "gpt2", attn_implementation="eager").eval()
    theirs_bert = BertModel.from_pretrained(root / "bert", attn_implementation="eager").eval()
    for ours, theirs in ((gpt, theirs_gpt), (bert, theirs_bert)):
        maps = ours.attention_maps(ids)
        with torch.no_grad():
            expected = torch.stack(theirs(ids[None], output_attentions=True).attentions)[:, 0]  # (L, nh, T, T)
        assert maps.shape == expected.shape == (2, ours.config.n_head, len(ids), len(ids))
        assert torch.allclose(maps, expected, atol=1e-5)
        assert torch.allclose(maps.sum(dim=-1), torch.ones(maps.shape[:-1]), atol=1e-5)
        assert maps.amax() > 0.5  # not uniform: the check above would pass on uniform weights too
    causal = gpt.attention_maps(ids)
    assert torch.all(causal.triu(diagonal=1) == 0) and torch.all(causal.diagonal(dim1=-2, dim2=-1) > 0)
    future = torch.ones(len(ids), len(ids), dtype=torch.bool).triu(diagonal=1)
    assert torch.all(bert.attention_maps(ids)[..., future] > 0)  # an encoder attends both ways


def test_attention_maps_leave_the_forward_as_it_was(transformers_pair):
    gpt, bert, _ = transformers_pair
    ids = torch.tensor([[3, 17, 5, 42]])
    with torch.no_grad():
        before = gpt(ids).logits, bert.features(ids)
        gpt.attention_maps(ids[0]), bert.attention_maps(ids[0])
        after = gpt(ids).logits, bert.features(ids)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not any(module._forward_pre_hooks for module in [*gpt.modules(), *bert.modules()])  # hooks removed


def test_attention_plot_has_one_panel_per_layer(transformers_pair, tmp_path):
    gpt, _, _ = transformers_pair
    maps = gpt.attention_maps(torch.tensor([3, 17, 5, 42, 8]))
    tokens = ["a", "b", "c", "d", "e"]
    plot_attention(maps[:1], tokens, tmp_path / "one.png", "one layer")
    plot_attention(maps, tokens, tmp_path / "two.png", "two layers")
    one, two = drawn_png(tmp_path / "one.png"), drawn_png(tmp_path / "two.png")
    assert two.shape[1] > one.shape[1] * 1.5  # a second panel beside the first
    assert abs(two.shape[0] - one.shape[0]) < 0.2 * one.shape[0]
