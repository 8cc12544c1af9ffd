"""The LanguageModel adapter, perplexity, bits per byte, the unigram baseline, and the report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmlab.data.packing import TokenShards
from lmlab.evaluate import CausalLanguageModel, rolling_windows, score_split, unigram_baseline
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.tokenizers import Tokenizer


@pytest.mark.parametrize("length", [1, 5, 8, 9, 23])
def test_rolling_windows_predict_every_token_once_with_full_context(length):
    tokens = list(range(100, 100 + length))
    windows = rolling_windows(tokens, prefix_token=0, max_len=8)
    predicted = [t for _, targets in windows for t in targets]
    assert predicted == tokens
    for inputs, targets in windows:
        assert len(inputs) <= 8
        stream = [0, *tokens]
        # the inputs are exactly the tokens preceding the targets' positions in [prefix, *tokens]
        end = stream.index(targets[-1])
        assert inputs == stream[end - len(inputs) : end]
    assert all(len(inputs) == 8 for inputs, _ in windows[1:])


@pytest.fixture(scope="module")
def tiny_model(packed_dir):
    torch.manual_seed(0)
    tokenizer = Tokenizer.load(packed_dir / "tokenizer.json")
    return GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)), tokenizer


def _direct_logprob(model, ids: list[int]) -> float:
    """Sum of log p(ids[i] | ids[:i]) for i >= 1, by one plain forward."""
    logits = model(torch.tensor([ids])).logits[0, :-1]
    return F.log_softmax(logits.double(), -1).gather(1, torch.tensor(ids[1:])[:, None]).sum().item()


def test_loglikelihood_rolling_equals_direct_sum_when_text_fits(tiny_model):
    model, tokenizer = tiny_model
    lm = CausalLanguageModel(model, tokenizer)
    text = "to be 中国"
    ids = [tokenizer.eos_id, *tokenizer.encode(text)]
    assert len(ids) <= 16
    assert lm.loglikelihood_rolling([text])[0] == pytest.approx(_direct_logprob(model, ids), abs=1e-4)


def test_loglikelihood_splits_context_and_continuation(tiny_model):
    model, tokenizer = tiny_model
    lm = CausalLanguageModel(model, tokenizer)
    (score, greedy), = lm.loglikelihood([("to be ", "or not")])
    ids = tokenizer.encode("to be or not")
    context = len(tokenizer.encode("to be"))
    logits = model(torch.tensor([ids])).logits[0]
    expected = F.log_softmax(logits.double(), -1)[context - 1 : -1].gather(
        1, torch.tensor(ids[context:])[:, None]).sum().item()
    assert score == pytest.approx(expected, abs=1e-4)
    assert greedy == bool((logits[context - 1 : -1].argmax(-1) == torch.tensor(ids[context:])).all())


def test_score_split_and_unigram_baseline_by_hand(tiny_model, packed_dir):
    model, _ = tiny_model
    shards = TokenShards(packed_dir)
    tokens = torch.from_numpy(shards.tokens("val").astype(np.int64))
    score = score_split(model, shards, "val", block_size=16)
    nll = 0.0
    for start in range(0, len(tokens) - 1, 16):
        window = tokens[start : start + 17]
        logits = model(window[None, :-1]).logits[0]
        nll += F.cross_entropy(logits.double(), window[1:], reduction="sum").item()
    assert score.tokens == len(tokens) - 1
    assert score.nll == pytest.approx(nll, rel=1e-5)
    assert score.bits_per_byte == pytest.approx(nll / math.log(2) / shards.meta.splits["val"].bytes, rel=1e-5)

    train = np.bincount(shards.tokens("train"), minlength=shards.meta.vocab_size) + 1.0
    probs = train / train.sum()
    baseline = unigram_baseline(shards, "val")
    assert baseline.nll == pytest.approx(-np.log(probs[shards.tokens("val")[1:]]).sum(), rel=1e-9)
    assert baseline.perplexity == pytest.approx(math.exp(baseline.nll / (len(tokens) - 1)))
