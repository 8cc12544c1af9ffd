"""The LanguageModel adapter, perplexity, bits per byte, the unigram baseline, and the report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_documents

from lmlab.data.packing import TokenShards, split_documents
from lmlab.evaluate import score_texts, unigram_baseline
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.language_model import CausalLanguageModel, rolling_windows
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


def test_val_documents_score_and_unigram_baseline(tiny_model, packed_dir):
    model, tokenizer = tiny_model
    shards = TokenShards(packed_dir)
    texts = split_documents(shards, tokenizer, "val")
    assert len(texts) == shards.meta.splits["val"].documents and set(texts) <= set(tiny_documents())
    lm = CausalLanguageModel(model, tokenizer, predict_end=True)
    score = score_texts(lm, texts, lambda t: len(tokenizer.encode(t)) + 1)
    val = shards.tokens("val")
    assert score.tokens == len(val)  # every token of every document, and each document's end
    assert score.bytes == shards.meta.splits["val"].bytes
    assert score.nll == pytest.approx(-sum(lm.loglikelihood_rolling(texts)))
    assert score.bits_per_byte == pytest.approx(score.nll / math.log(2) / score.bytes)

    counts = np.bincount(shards.tokens("train"), minlength=shards.meta.vocab_size) + 1.0
    logprob = np.log(counts / counts.sum())
    baseline = unigram_baseline(shards, "val")
    assert baseline.tokens == score.tokens
    assert baseline.nll == pytest.approx(-logprob[val].sum(), rel=1e-9)
    assert baseline.perplexity == pytest.approx(math.exp(baseline.nll / score.tokens))
