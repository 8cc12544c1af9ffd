"""Generation: the cached loop, the sampling filters (against transformers), text, streaming, stops."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper

import lmlab.generate as generation
from lmlab.errors import LmlabError
from lmlab.generate import (
    GenerationParams,
    apply_repetition_penalty,
    generate_ids,
    generate_text,
    stream_text,
    stream_tokens,
    top_k_filter,
    top_p_filter,
)
from lmlab.models import KVCache, LMOutput
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer

EOT = "<|endoftext|>"
CORPUS = ["Once upon a time there was a little model.", "它学会了说话：你好，世界！", "The end."] * 30


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(CORPUS, TokenizerConfig(kind="bpe", vocab_size=320, special_tokens=[EOT]))


def tiny_gpt(vocab_size: int = 97, block_size: int = 64, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=32)).eval()


GREEDY = GenerationParams(max_new_tokens=16, temperature=0)


def test_cached_generation_equals_uncached_recomputation(monkeypatch):
    model = tiny_gpt()
    seen_logits = []
    real_pick = generation.pick_next_tokens

    def recording_pick(logits, *args):
        seen_logits.append(logits.clone())
        return real_pick(logits, *args)

    monkeypatch.setattr(generation, "pick_next_tokens", recording_pick)
    prompt = [4, 8, 15, 16, 23, 42]
    new = generate_ids(model, [prompt], GREEDY)[0]
    assert len(new) == len(seen_logits) == 16

    sequence = list(prompt)
    with torch.no_grad():
        for step, cached in enumerate(seen_logits):
            full = model(torch.tensor([sequence])).logits[0, -1]  # recompute the whole prefix, no cache
            assert torch.allclose(cached[0], full, atol=1e-5)
            assert int(full.argmax()) == new[step]
            sequence.append(new[step])


def test_greedy_is_deterministic_and_batch_equals_one_by_one():
    model = tiny_gpt()
    prompts = [[1, 2, 3], [9, 8, 7, 6, 5, 4, 3], [50]]
    batch = generate_ids(model, prompts, GREEDY)
    assert batch == generate_ids(model, prompts, GREEDY)
    assert batch == [generate_ids(model, [p], GREEDY)[0] for p in prompts]
    assert batch[0] == list(stream_tokens(model, prompts[0], GREEDY))


def test_compiled_steps_give_the_same_tokens_with_one_compilation():
    model = tiny_gpt()
    prompts = [[1, 2, 3], [9, 8, 7, 6, 5, 4, 3]]  # left padding: the attention mask grows every step too
    eager = generate_ids(model, prompts, GREEDY)
    torch._dynamo.reset()
    # A recompilation would mean a step whose shape the symbolic cache length failed to cover.
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled = generate_ids(model, prompts, GREEDY.model_copy(update={"compile": True}))
    assert compiled == eager


def test_seeded_sampling_is_reproducible():
    model = tiny_gpt()
    params = GenerationParams(max_new_tokens=20, temperature=1.5, top_p=0.95, seed=7)
    first = generate_ids(model, [[1, 2], [3, 4, 5]], params)
    assert first == generate_ids(model, [[1, 2], [3, 4, 5]], params)
    other = generate_ids(model, [[1, 2], [3, 4, 5]], params.model_copy(update={"seed": 8}))
    assert first != other


def test_top_k_one_is_greedy():
    model = tiny_gpt()
    sampled = GenerationParams(max_new_tokens=16, temperature=0.8, top_k=1, seed=3)
    assert generate_ids(model, [[5, 6, 7]], sampled) == generate_ids(model, [[5, 6, 7]], GREEDY)


def test_top_p_keeps_the_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = lambda p: torch.isfinite(top_p_filter(logits, p))[0].tolist()  # noqa: E731
    assert kept(0.5) == [True, False, False, False]
    assert kept(0.7) == [True, True, False, False]
    assert kept(0.9) == [True, True, True, False]
    assert kept(1.0) == [True, True, True, True]
    shuffled = logits[:, [2, 0, 3, 1]]  # vocabulary order must not matter
    assert torch.isfinite(top_p_filter(shuffled, 0.7))[0].tolist() == [False, True, False, True]


def test_filters_match_transformers_on_the_same_logits():
    torch.manual_seed(0)
    logits = torch.randn(4, 50) * 3
    input_ids = torch.randint(0, 50, (4, 12))
    for p in (0.1, 0.5, 0.9, 0.99):
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(input_ids, logits.clone()))
    for k in (1, 5, 50, 80):
        assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(input_ids, logits.clone()))
    seen = torch.zeros(4, 50, dtype=torch.bool).scatter(1, input_ids, True)
    for penalty in (1.3, 0.7):
        expected = RepetitionPenaltyLogitsProcessor(penalty)(input_ids, logits.clone())
        assert torch.allclose(apply_repetition_penalty(logits, seen, penalty), expected)


def test_repetition_penalty_changes_greedy_output():
    model = tiny_gpt()
    plain = generate_ids(model, [[1, 2, 3]], GREEDY)[0]
    assert len(set(plain)) < len(plain)  # a random tiny model repeats itself
    penalised = generate_ids(model, [[1, 2, 3]], GREEDY.model_copy(update={"repetition_penalty": 100.0}))[0]
    assert len(set(penalised)) == len(penalised)


def test_eos_ends_each_sequence_on_its_own():
    model = tiny_gpt()
    prompts = [[1, 2, 3], [40, 41]]
    params = GenerationParams(max_new_tokens=16, seed=5)  # sampling: a varied sequence to pick an eos from
    free = generate_ids(model, prompts, params)
    eos = next(t for i, t in enumerate(free[0]) if i >= 2 and t not in free[0][:i])
    stopped = generate_ids(model, prompts, params, eos_id=eos)
    assert stopped[0] == free[0][: free[0].index(eos)]
    cut = free[1].index(eos) if eos in free[1] else len(free[1])
    assert stopped[1] == free[1][:cut]


def test_long_prompts_are_cropped_from_the_left():
    model = tiny_gpt(block_size=24)
    long_prompt = list(range(1, 31))
    params = GenerationParams(max_new_tokens=10, temperature=0)
    assert generate_ids(model, [long_prompt], params) == generate_ids(model, [long_prompt[-14:]], params)
    with pytest.raises(LmlabError, match="leaves no room"):
        generate_ids(model, [[1]], GenerationParams(max_new_tokens=24))
    with pytest.raises(LmlabError, match="prompt 1 has token id 97, outside the model's vocabulary"):
        generate_ids(model, [[1], [2, 97]], params)
    with pytest.raises(LmlabError, match="prompt 0 is empty"):
        generate_ids(model, [[]], params)


def test_generation_restores_training_mode_and_leaks_no_inference_mode():
    model = tiny_gpt().train()
    stream = stream_tokens(model, [1, 2], GREEDY)
    next(stream)
    assert not torch.is_inference_mode_enabled()
    stream.close()
    assert model.training
    generate_ids(model, [[1, 2]], GREEDY)
    assert model.training


def test_params_mistakes_are_lmlab_errors():
    with pytest.raises(LmlabError, match="temperature"):
        GenerationParams(temperature=-0.5)
    with pytest.raises(LmlabError, match="top_p"):
        GenerationParams(top_p=1.5)
    with pytest.raises(LmlabError, match="stop"):
        GenerationParams(stop=[""])
    with pytest.raises(LmlabError, match="top_kk"):
        GenerationParams(top_kk=3)


def test_text_generation_cuts_at_the_first_stop_string(tokenizer):
    model = tiny_gpt(vocab_size=320, seed=1)
    params = GenerationParams(max_new_tokens=30, temperature=0)
    [free] = generate_text(model, tokenizer, ["Once upon"], params)
    assert len(free) > 8
    stop_a, stop_b = free[6:8], free[3:5]
    with_stops = params.model_copy(update={"stop": [stop_a, stop_b]})
    [cut] = generate_text(model, tokenizer, ["Once upon"], with_stops)
    assert cut == free[: min(free.find(stop_a), free.find(stop_b))]
    assert "".join(stream_text(model, tokenizer, "Once upon", with_stops)) == cut


def test_stream_text_joins_to_generate_text(tokenizer):
    model = tiny_gpt(vocab_size=320, seed=2)
    params = GenerationParams(max_new_tokens=40, temperature=1.0, seed=11)
    prompts = ["你好", ""]  # an empty prompt starts from the end-of-text token
    for prompt in prompts:  # one at a time: a batch draws its random numbers in another order
        [text] = generate_text(model, tokenizer, [prompt], params)
        assert len(text) > 10
        assert "".join(stream_text(model, tokenizer, prompt, params)) == text


class ScriptedLM(nn.Module):
    """A causal LM by protocol only: it always predicts the next token of `script`, whatever the input.

    It shows generation needs nothing of a family beyond forward(..., cache=), new_cache and block_size.
    """

    def __init__(self, script: list[int], vocab_size: int):
        super().__init__()
        self.script, self.vocab_size = script, vocab_size
        self.config = SimpleNamespace(block_size=256)
        self.anchor = nn.Parameter(torch.zeros(1))  # so that generation can find the device

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        return KVCache(0, (batch_size, 1, max_len, 1), torch.float32, torch.device("cpu"))

    def forward(self, input_ids, attention_mask=None, labels=None, cache=None, last_token_only=False):
        if cache.length == 0:
            self.prompt_length = input_ids.size(1)
        cache.advance(input_ids.size(1))
        produced = cache.length - self.prompt_length
        logits = torch.zeros(input_ids.size(0), 1, self.vocab_size)
        logits[:, :, self.script[min(produced, len(self.script) - 1)]] = 1.0
        return LMOutput(logits=logits)


def byte_tokenizer() -> Tokenizer:
    """Byte-level BPE with no merges: a Chinese character is three tokens, one per UTF-8 byte."""
    return train_tokenizer(["a"], TokenizerConfig(kind="bpe", vocab_size=257, special_tokens=[EOT]))


def test_streaming_never_splits_a_character_or_shows_part_of_a_stop():
    tokenizer = byte_tokenizer()
    story = "你好，世界。再见！"
    script = tokenizer.encode(story) + [tokenizer.eos_id]
    assert len(script) == 3 * len(story) + 1  # every character is split across tokens
    model = ScriptedLM(script, vocab_size=257)
    params = GenerationParams(max_new_tokens=60, temperature=0)

    pieces = list(stream_text(model, tokenizer, "", params))
    assert "".join(pieces) == story == generate_text(model, tokenizer, [""], params)[0]
    assert len(pieces) == len(story) and not any("\ufffd" in piece for piece in pieces)

    stopping = params.model_copy(update={"stop": ["世界", "不在"]})
    pieces = list(stream_text(model, tokenizer, "", stopping))
    assert "".join(pieces) == "你好，" == generate_text(model, tokenizer, [""], stopping)[0]
    assert generate_ids(model, [[5]], params, eos_id=tokenizer.eos_id) == [script[:-1]]
