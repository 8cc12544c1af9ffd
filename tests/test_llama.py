"""The LLaMA family against transformers' LlamaForCausalLM and Qwen2ForCausalLM, both ways, on tiny random models."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_train_overrides
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig as HFLlamaConfig
from transformers import LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from lmlab.cli import main
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, generate_ids
from lmlab.models import load_model
from lmlab.models.hf_llama import export_llama, import_llama
from lmlab.models.llama import Llama, LlamaConfig

VOCAB = 301  # odd sizes throughout: a transposed or mis-split matrix cannot hide behind a square shape
HF_CLASSES = {"llama": LlamaForCausalLM, "qwen2": Qwen2ForCausalLM}


def hf_model(layout: str, tie: bool = False, vocab: int = VOCAB) -> torch.nn.Module:
    """A transformers model with random weights: GQA (6 query heads over 2 key/value heads), theta 50000."""
    torch.manual_seed(0)
    settings = dict(vocab_size=vocab, hidden_size=48, intermediate_size=77, num_hidden_layers=3,
                    num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
                    rope_theta=50000.0, rms_norm_eps=1e-5, tie_word_embeddings=tie)
    config = HFLlamaConfig(**settings) if layout == "llama" else Qwen2Config(**settings)
    model = HF_CLASSES[layout](config).eval()
    with torch.no_grad():  # norm scales and biases away from their initial 1 and 0, so a slip would show
        for name, param in model.named_parameters():
            if name.endswith(("norm.weight", "bias")):
                param.add_(torch.randn_like(param) * 0.3)
    return model


def lmlab_llama(**overrides) -> Llama:
    torch.manual_seed(1)
    settings = dict(vocab_size=VOCAB, block_size=64, n_layer=2, n_head=6, n_kv_head=3, n_embd=36,
                    intermediate_size=50, rope_theta=20000.0)
    model = Llama(LlamaConfig(**{**settings, **overrides})).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("norm.weight", "bias")):
                param.add_(torch.randn_like(param) * 0.3)
    return model


def left_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def hf_logits(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Positions counted from each row's first token, as transformers' generate counts them.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=positions).logits


def hf_greedy(model: torch.nn.Module, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
    ids, mask = left_padded(prompts)
    out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, eos_token_id=None, pad_token_id=0)
    return out[:, ids.size(1):].tolist()


PROMPTS = [[5, 9, 2, 33, 7, 300], [1, 2], [60, 61, 62, 63, 64, 65, 66, 67, 68]]


@pytest.mark.parametrize("layout,tie", [("llama", False), ("llama", True), ("qwen2", False), ("qwen2", True)])
def test_transformers_models_import_with_equal_logits_under_left_padding(tmp_path, layout, tie):
    hf = hf_model(layout, tie)
    hf.save_pretrained(tmp_path / "hf")
    model = import_llama(tmp_path / "hf")
    c = model.config
    assert (c.n_head, c.n_kv_head, c.rope_theta) == (6, 2, 50000.0)
    assert (c.qkv_bias, c.tie_embeddings) == (layout == "qwen2", tie)
    ids, mask = left_padded(PROMPTS)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).logits
        alone = [model(torch.tensor([p])).logits[0] for p in PROMPTS]
    real = mask.bool()
    assert (ours - hf_logits(hf, ids, mask))[real].abs().max() <= 1e-5
    for row, prompt in enumerate(PROMPTS):  # padding changes nothing for the real tokens
        assert (ours[row, -len(prompt):] - alone[row]).abs().max() <= 1e-5


@pytest.mark.parametrize("overrides", [{}, {"qkv_bias": True}, {"tie_embeddings": True, "n_kv_head": 1}])
def test_exported_runs_load_in_transformers_with_no_missing_keys_and_equal_logits(tmp_path, overrides):
    model = lmlab_llama(**overrides)
    export_llama(model, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    layout = "qwen2" if overrides.get("qkv_bias") else "llama"
    assert config["model_type"] == layout and config["rope_parameters"]["rope_theta"] == 20000.0
    hf, info = HF_CLASSES[layout].from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    hf.eval()
    ids, mask = left_padded(PROMPTS)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).logits
    assert (ours - hf_logits(hf, ids, mask))[mask.bool()].abs().max() <= 1e-5
    back = import_llama(tmp_path / "hf")
    assert back.config == model.config


@pytest.mark.parametrize("layout", ["llama", "qwen2"])
def test_greedy_generation_gives_the_tokens_of_transformers_generate(tmp_path, layout):
    hf = hf_model(layout)
    hf.save_pretrained(tmp_path / "hf")
    model = import_llama(tmp_path / "hf")
    params = GenerationParams(max_new_tokens=30, temperature=0)
    assert generate_ids(model, PROMPTS, params) == hf_greedy(hf, PROMPTS, 30)


def test_import_then_generate_on_the_command_line_writes_the_text_transformers_writes(tmp_path, capsys):
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(["Hello world, the cat sat on the mat.</s>"] * 10, trainers.BpeTrainer(
        vocab_size=290, special_tokens=["</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = hf_model("qwen2", vocab=backend.get_vocab_size())
    hf.save_pretrained(tmp_path / "hf")
    backend.save(str(tmp_path / "hf" / "tokenizer.json"))
    assert main(["import", str(tmp_path / "hf"), str(tmp_path / "run")]) == 0
    assert "LLaMA 3x48" in capsys.readouterr().out
    prompt = "Hello world, the"
    assert main(["generate", str(tmp_path / "run"), prompt, "--temperature", "0", "--max-new-tokens", "20"]) == 0
    written = capsys.readouterr().out
    ids = torch.tensor([backend.encode(prompt).ids])
    out = hf.generate(ids, do_sample=False, max_new_tokens=20, min_new_tokens=20, eos_token_id=None, pad_token_id=0)
    expected = backend.decode(out[0, ids.size(1):].tolist())
    assert expected.strip() and expected in written


def test_packed_documents_give_the_logits_each_has_alone():
    model = lmlab_llama()
    texts = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16]]
    ids = torch.tensor([sum(texts, [])])
    documents = torch.tensor([[0] * 5 + [1] * 3 + [2] * 4])
    with torch.no_grad():
        packed = model(ids, document_ids=documents).logits[0]
        alone = torch.cat([model(torch.tensor([t])).logits[0] for t in texts])
        unpacked = model(ids).logits[0]
    assert (packed - alone).abs().max() <= 1e-5
    assert (unpacked - alone).abs().max() > 1e-3  # without document_ids the texts would read each other


def test_answers_packed_after_their_prompt_give_the_logits_each_has_alone():
    model = lmlab_llama()
    prompt, answers = [5, 6, 7, 8], [[9, 10, 11], [12, 13]]
    ids = torch.tensor([prompt + answers[0] + answers[1] + [0]])
    branches = torch.tensor([[0] * 4 + [1] * 3 + [2] * 2 + [-1]])  # and a padding token
    with torch.no_grad():
        packed = model(ids, branch_ids=branches).logits[0]
        alone = [model(torch.tensor([prompt + answer])).logits[0] for answer in answers]
    assert (packed[:7] - alone[0]).abs().max() <= 1e-5
    assert (packed[7:9] - alone[1][4:]).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="pass one"):
        model(ids, branch_ids=branches, document_ids=branches)
    # the row is longer than the context, but each prompt + answer fits in it
    long_prompt = torch.randint(0, VOCAB, (1, 60))
    row = torch.cat([long_prompt, torch.tensor([[9, 10, 11, 12, 13]])], dim=1)
    branched = torch.tensor([[0] * 60 + [1, 1, 2, 2, 2]])
    with torch.no_grad():
        assert model(row, branch_ids=branched).logits.shape == (1, 65, VOCAB)
        with pytest.raises(LmlabError, match="65 tokens exceed the model's context of 64"):
            model(row, branch_ids=torch.tensor([[0] * 60 + [1] * 5]))


def test_cached_decoding_equals_one_full_forward():
    model = lmlab_llama(n_kv_head=2)
    ids = torch.randint(0, VOCAB, (2, 20))
    cache = model.new_cache(2, 20)
    assert cache.keys[0].shape == (2, 2, 20, 6)  # key/value heads only: the memory GQA saves
    with torch.no_grad():
        full = model(ids).logits
        steps = [model(ids[:, :8], cache=cache).logits] + [model(ids[:, t:t + 1], cache=cache).logits
                                                            for t in range(8, 20)]
    assert (torch.cat(steps, dim=1) - full).abs().max() <= 1e-5


def test_logits_at_gives_the_chosen_positions_logits_under_padding():
    model = lmlab_llama()
    ids, mask = left_padded([[3, 4, 5, 6, 7, 8], [9, 2, 11]])
    chosen = mask.bool() & (torch.arange(6) % 2 == 1)
    with torch.no_grad():
        assert (model(ids, attention_mask=mask, logits_at=chosen).logits
                - model(ids, attention_mask=mask).logits[chosen]).abs().max() <= 1e-5


def test_config_is_validated_and_unsupported_transformers_settings_are_refused(tmp_path):
    with pytest.raises(LmlabError, match="n_head"):
        LlamaConfig(n_head=6, n_kv_head=4, n_embd=48)
    assert LlamaConfig(n_embd=96, n_head=4).intermediate_size == 256  # 8/3 * 96, rounded up to 32
    hf = hf_model("llama")
    hf.config.rope_parameters = {"rope_theta": 10000.0, "rope_type": "linear", "factor": 2.0}
    hf.save_pretrained(tmp_path / "hf")
    with pytest.raises(LmlabError, match="rope_type"):
        import_llama(tmp_path / "hf")


def test_a_llama_run_trains_through_the_one_loop_with_causal_lm(tmp_path, packed_dir):
    words = [w for w in tiny_train_overrides(packed_dir, tmp_path / "run", steps=16) if not w.startswith("model=")]
    model = "model={family: llama, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, block_size: 32, dropout: 0.1}"
    assert main(["train", *words, model]) == 0
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert len(losses) == 16 and losses[-1] < losses[0] * 0.8
    run = load_model(tmp_path / "run")
    assert isinstance(run, Llama) and run.config.n_kv_head == 2
