"""int8 weights (`lmlab.models.quantize`): the rounding bound, the decoders' outputs, `lmlab generate --quantize`."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lmlab.cli import main
from lmlab.generate import GenerationParams, generate_ids, generate_text
from lmlab.models import model_from_config
from lmlab.models.quantize import Int8Linear, quantize
from lmlab.runs import open_run


def test_int8_rows_are_within_half_a_step_of_the_weights_and_the_product_is_close():
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    int8 = Int8Linear(linear)
    assert int8.weight_int8.dtype == torch.int8 and int8.weight_int8.abs().max() == 127  # each row's largest
    restored = int8.weight_int8.float() * int8.scale[:, None]
    assert ((restored - linear.weight).abs() <= int8.scale[:, None] / 2 + 1e-7).all()
    x = torch.randn(3, 5, 96)  # any leading shape, as nn.Linear takes
    with torch.no_grad():
        expected, got = linear(x), int8(x)
    assert got.shape == expected.shape
    error = (got - expected).norm() / expected.norm()
    assert 0 < error < 0.03  # rounded (activations too), not exact, and not far
    # activations are quantized per row: a row's result does not depend on the rows beside it, and one row
    # alone (fbgemm's kernel) agrees with the same row among others (int8 matmul) to float rounding
    rows = x.reshape(-1, 96) * torch.linspace(0.01, 100, 15)[:, None]  # ranges far apart
    with torch.no_grad():
        together = int8(rows)
        alone = torch.cat([int8(row[None]) for row in rows])
        shuffled = int8(rows.flip(0)).flip(0)
    assert torch.allclose(together, alone, rtol=1e-5, atol=1e-5 * together.abs().max().item())
    assert torch.equal(together, shuffled)


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_a_quantized_decoder_keeps_its_logits_close_and_generates_with_its_cache(family):
    torch.manual_seed(0)
    shape = {"llama": {"n_kv_head": 1}}.get(family, {})
    model = model_from_config(family, {"vocab_size": 300, "block_size": 64, "n_layer": 2, "n_head": 2,
                                       "n_embd": 64, **shape}).eval()
    ids = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        expected = model(ids).logits
        small = quantize(model, "int8")
        got = small(ids).logits
    assert not any(isinstance(m, nn.Linear) for m in small.modules())
    assert sum(isinstance(m, Int8Linear) for m in small.modules()) > 2
    assert (got - expected).norm() / expected.norm() < 0.03
    # decoding with the KV cache gives the tokens a full forward over the grown sequence would choose
    params = GenerationParams(max_new_tokens=6, temperature=0)
    new = generate_ids(small, [ids[0].tolist()], params, None)[0]
    grown = ids[0].tolist()
    with torch.no_grad():
        for _ in range(6):
            grown.append(int(small(torch.tensor([grown])).logits[0, -1].argmax()))
    assert new == grown[20:]
    assert quantize(small, "int8") is small  # twice is once


def test_lmlab_generate_quantize_int8_writes_what_the_int8_model_generates(chat_run, tmp_path):
    run, records = chat_run
    prompt = records[0]["messages"][0]["content"]
    out = tmp_path / "out.json"
    assert main(["generate", str(run), prompt, "--quantize", "int8", "--temperature", "0", "--max-new-tokens", "8",
                 "--json", str(out)]) == 0
    model = open_run(run).model("cpu", quantization="int8")
    expected = generate_text(model, open_run(run).tokenizer(), [prompt], GenerationParams(max_new_tokens=8,
                                                                                           temperature=0))
    assert [r["text"] for r in json.loads(out.read_text())] == expected
    # the int8 model scores the conversations it learned nearly as the float one does
    texts = [m["content"] for r in records for m in r["messages"]]
    full = sum(open_run(run).language_model().loglikelihood_rolling(texts))
    small = sum(open_run(run).language_model(quantization="int8").loglikelihood_rolling(texts))
    assert small != full and abs(small / full - 1) < 0.02


def test_quantize_refuses_what_it_cannot_quantize(chat_run, capsys):
    run, _ = chat_run
    with pytest.raises(Exception, match="not a quantization"):
        quantize(open_run(run).model("cpu"), "int4")
    with pytest.raises(SystemExit) as refused:
        main(["generate", str(run), "hi", "--quantize", "int4"])
    assert refused.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err


def test_quantizing_a_hugging_face_directory_s_model_leaves_the_run_s_own_copy_as_it_was(chat_run, tmp_path):
    run, _ = chat_run
    assert main(["export", str(run), str(tmp_path / "hf")]) == 0
    opened = open_run(tmp_path / "hf")
    small = opened.model("cpu", quantization="int8")
    assert any(isinstance(m, Int8Linear) for m in small.modules())
    assert not any(isinstance(m, Int8Linear) for m in opened.model("cpu").modules())
