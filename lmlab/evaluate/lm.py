"""The language-model interface every generation of model implements, and its neural adapter.

Modelled on what lm-evaluation-harness asks of a model, so perplexity, bits per byte, benchmark
harnesses and the server's ``logprobs`` are written once for n-grams, RNNs and Transformers alike:

- ``loglikelihood([(context, continuation)])`` -> [(sum of log-probs of the continuation, whether
  greedy decoding would have produced it)]; the basis of multiple-choice scoring;
- ``loglikelihood_rolling([text])`` -> [total log-likelihood of the text], windowed when the text is
  longer than the model's context; the basis of perplexity and bits per byte;
- ``generate(prompts, params)`` -> continuations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.generate import GenerationParams, generate_text
from lmlab.tokenizers import Tokenizer


class LanguageModel(Protocol):
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]: ...

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]: ...

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]: ...


def rolling_windows(tokens: list[int], prefix_token: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """Split `tokens` into (model input, predicted tokens) windows, each token predicted exactly once.

    The first window starts from `prefix_token` (so the first real token is predicted too); later
    windows are full `max_len` inputs whose last tokens are the new predictions, so every prediction
    sees as much context as fits. This is lm-evaluation-harness's rolling scheme with context_len 1.
    """
    windows: list[tuple[list[int], list[int]]] = []
    first = min(max_len, len(tokens))
    windows.append(([prefix_token, *tokens[: first - 1]], tokens[:first]))
    predicted = first
    while predicted < len(tokens):
        count = min(len(tokens) - predicted, max_len)
        end = predicted + count
        windows.append((tokens[max(0, end - max_len - 1) : end - 1], tokens[end - count : end]))
        predicted = end
    return windows


class CausalLanguageModel:
    """`LanguageModel` over any lmlab neural model (GPT, MLP, RNN/LSTM/GRU) and its tokenizer.

    ``predict_end`` makes `loglikelihood_rolling` also score the end-of-text token after each text,
    as an n-gram model scores ``</s>``: then every generation predicts the same units, the text and
    its end, and bits per byte compare fairly (`lmlab eval compare` turns it on).
    """

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, max_length: int | None = None,
                 predict_end: bool = False, batch_size: int = 16):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length = max_length or model.config.block_size
        if tokenizer.eos_id is None:
            raise ValueError("the tokenizer needs an end-of-text token to start scoring from")
        self.prefix_token = tokenizer.eos_id
        self.predict_end, self.batch_size = predict_end, batch_size
        self.device = next(model.parameters()).device
        # A recurrent state summarises the whole past, so windows can follow each other with the
        # state carried over instead of re-reading overlapping context.
        self.carries_state = getattr(model, "carries_state", False)

    @torch.inference_mode()
    def _score(self, inputs: list[int], targets: list[int]) -> tuple[float, bool]:
        """Log-prob of `targets`, the last len(targets) predictions of `inputs` (float64 sum)."""
        ids = torch.tensor([inputs], device=self.device)
        logits = self.model(ids).logits[0, -len(targets):].float()
        logprobs = F.log_softmax(logits, dim=-1)
        wanted = torch.tensor(targets, device=self.device)
        total = logprobs.gather(1, wanted[:, None]).double().sum().item()
        return total, bool((logits.argmax(-1) == wanted).all())

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        results = []
        for context, continuation in requests:
            # Trailing spaces belong to the continuation, as the harness does: "Answer: " + "Paris"
            # is scored as "Answer:" + " Paris", the way a BPE tokenizer sees the words.
            spaces = len(context) - len(context.rstrip(" "))
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            context_ids = self.tokenizer.encode(context) if context else [self.prefix_token]
            whole = self.tokenizer.encode(context + continuation) if context else self.tokenizer.encode(continuation)
            continuation_ids = whole[len(context_ids):] if context else whole
            if not continuation_ids:
                raise ValueError(f"the continuation {continuation!r} encodes to no tokens")
            sequence = (context_ids + continuation_ids)[-(self.max_length + 1):]
            results.append(self._score(sequence[:-1], continuation_ids))
        return results

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        documents = [self.tokenizer.encode(text) + ([self.prefix_token] if self.predict_end else []) for text in texts]
        if self.carries_state:
            return [self._score_stream(tokens) for tokens in documents]
        windows = [(index, window) for index, tokens in enumerate(documents) if tokens
                   for window in rolling_windows(tokens, self.prefix_token, self.max_length)]
        totals = [0.0] * len(documents)
        for start in range(0, len(windows), self.batch_size):
            chunk = windows[start : start + self.batch_size]
            for (index, _), score in zip(chunk, self._score_windows([w for _, w in chunk]), strict=True):
                totals[index] += score
        return totals

    @torch.inference_mode()
    def _score_windows(self, windows: list[tuple[list[int], list[int]]]) -> list[float]:
        """Score several rolling windows in one forward, right-padded: a causal model's earlier
        positions never see the padding after them."""
        width = max(len(inputs) for inputs, _ in windows)
        ids = torch.full((len(windows), width), self.prefix_token, dtype=torch.long)
        for row, (inputs, _) in enumerate(windows):
            ids[row, : len(inputs)] = torch.tensor(inputs)
        logprobs = F.log_softmax(self.model(ids.to(self.device)).logits.float(), dim=-1)
        scores = []
        for row, (inputs, targets) in enumerate(windows):
            positions = torch.arange(len(inputs) - len(targets), len(inputs), device=self.device)
            wanted = torch.tensor(targets, device=self.device)
            scores.append(logprobs[row, positions, wanted].double().sum().item())
        return scores

    @torch.inference_mode()
    def _score_stream(self, tokens: list[int]) -> float:
        """A recurrent model reads the text in consecutive windows, its state carried from one to the next."""
        stream = [self.prefix_token, *tokens]
        cache, total = None, 0.0
        for start in range(0, len(tokens), self.max_length):
            end = min(start + self.max_length, len(tokens))
            inputs = torch.tensor([stream[start:end]], device=self.device)
            targets = torch.tensor(stream[start + 1 : end + 1], device=self.device)
            output = self.model(inputs, cache=cache)
            cache = output.cache
            logprobs = F.log_softmax(output.logits[0].float(), dim=-1)
            total += logprobs.gather(1, targets[:, None]).double().sum().item()
        return total

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        return generate_text(self.model, self.tokenizer, list(prompts), params)
