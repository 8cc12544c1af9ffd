"""The language-model interface every generation of model implements, and its neural adapter.

Modelled on what lm-evaluation-harness asks of a model, so perplexity, bits per byte, benchmark
harnesses and (to come) a server's ``logprobs`` are written once for n-grams, RNNs and Transformers alike:

- ``loglikelihood([(context, continuation)])`` -> [(sum of log-probs of the continuation, whether
  greedy decoding would have produced it)]; the basis of multiple-choice scoring;
- ``loglikelihood_rolling([text])`` -> [total log-likelihood of the text], windowed when the text is
  longer than the model's context; the basis of perplexity and bits per byte;
- ``generate(prompts, params)`` -> continuations;
- ``predicted_units(text)`` -> how many predictions scoring `text` makes (tokens, words, characters,
  plus its end when scored), the denominator of perplexity per unit; ``unit`` names them and
  ``context_note()`` says how much each prediction sees, so a printed perplexity can say what it counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.generate import GenerationParams, generate_text
from lmlab.tokenizers import Tokenizer


class LanguageModel(Protocol):
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]: ...

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]: ...

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]: ...

    unit: str  # what `predicted_units` counts: "token", "character" or "word"

    def predicted_units(self, text: str) -> int:
        """How many predictions `loglikelihood_rolling` makes on `text`: its units (and its end, if scored)."""
        ...

    def context_note(self) -> str:
        """How much of the text before it each prediction of `loglikelihood_rolling` sees, in a few words."""
        ...


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


def _log_probs(logits: Tensor) -> Tensor:
    """Log-softmax in at least float32: half-precision logits widened, float64 kept (as lm-eval does)."""
    return F.log_softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


class CausalLanguageModel:
    """`LanguageModel` over any lmlab neural model (GPT, MLP, RNN/LSTM/GRU) and its tokenizer.

    ``predict_end`` makes `loglikelihood_rolling` also score the end-of-text token after each text,
    as an n-gram model scores ``</s>``: then every generation predicts the same units, the text and
    its end, and bits per byte compare fairly (`lmlab eval` and `lmlab eval compare` turn it on).
    """

    unit = "token"

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
        # A model that reads any length (an RNN, a sliding window) needs no request cut to fit.
        self.unbounded = getattr(model, "unbounded_context", False)

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of a (context, continuation) request, split as lm-evaluation-harness splits them."""
        # Trailing whitespace (spaces, newlines, U+3000) belongs to the continuation: "Answer: " +
        # "Paris" is scored as "Answer:" + " Paris", the way a BPE tokenizer sees the words.
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if not context:
            continuation_ids = self.tokenizer.encode(continuation)
            context_ids = [self.prefix_token]
        else:
            # Encode the whole text and cut at the context's length: a word that straddles the
            # boundary is tokenized as the model would see it in running text.
            context_ids = self.tokenizer.encode(context)
            continuation_ids = self.tokenizer.encode(context + continuation)[len(context_ids):]
        if not continuation_ids:
            raise ValueError(f"the continuation {continuation!r} encodes to no tokens")
        return context_ids, continuation_ids

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        encoded = [self._encode_pair(context, continuation) for context, continuation in requests]
        # The choices of a question share its context: each context is read once.
        by_context: dict[tuple[int, ...], list[int]] = {}
        for index, (context_ids, _) in enumerate(encoded):
            by_context.setdefault(tuple(context_ids), []).append(index)
        groups = [(list(context), members, [encoded[i][1] for i in members]) for context, members in by_context.items()]
        results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        fitting = []
        for context, members, continuations in groups:
            if self.unbounded or len(context) + max(map(len, continuations)) - 1 <= self.max_length:
                fitting.append((context, members, continuations))
            else:  # too long for the context window: each request is cut on its own, from the left
                for index, continuation in zip(members, continuations, strict=True):
                    results[index] = self._score_truncated(context, continuation)
        # Longest contexts first, so the contexts batched together have similar lengths.
        fitting.sort(key=lambda group: -len(group[0]))
        for batch in self._batches(fitting):
            scores = self._score_groups([(context, continuations) for context, _, continuations in batch])
            for index, score in zip([i for _, members, _ in batch for i in members], scores, strict=True):
                results[index] = score
        return results

    def _batches(self, groups: list[tuple[list[int], list[int], list[list[int]]]]) -> Iterator[list[Any]]:
        """Up to `batch_size` contexts at a time (sorted longest first), the padded width within the window."""
        batch: list[Any] = []
        for group in groups:
            candidate = [*batch, group]
            width = len(candidate[0][0]) + max(len(c) for _, _, continuations in candidate for c in continuations) - 1
            if batch and (len(candidate) > self.batch_size or (not self.unbounded and width > self.max_length)):
                yield batch
                candidate = [group]
            batch = candidate
        if batch:
            yield batch

    @torch.inference_mode()
    def _score_groups(self, groups: list[tuple[list[int], list[list[int]]]]) -> list[tuple[float, bool]]:
        """Log-probs of the continuations of several contexts in two forwards.

        The contexts run once, left-padded into one cache; each continuation then gets a copy of its
        context's cache row, and all of them run as one right-padded batch (a causal model's real
        positions never see the padding that follows them). The attention mask keeps the left
        padding out of sight and the positions counting from each row's first real token.
        """
        width = len(groups[0][0])
        longest = max(len(c) for _, continuations in groups for c in continuations)
        ids = torch.full((len(groups), width), self.prefix_token, dtype=torch.long)
        mask = torch.zeros((len(groups), width), dtype=torch.long)
        for row, (context, _) in enumerate(groups):
            ids[row, width - len(context):] = torch.tensor(context)
            mask[row, width - len(context):] = 1
        padded = bool((mask == 0).any())
        mask = mask.to(self.device)
        cache = self.model.new_cache(len(groups), width + longest - 1)
        output = self.model(ids.to(self.device), attention_mask=mask if padded else None, cache=cache,
                            last_token_only=True)
        first = _log_probs(output.logits[:, -1])  # (contexts, V): every continuation's first token
        owners = [row for row, (_, continuations) in enumerate(groups) for _ in continuations]
        continuations = [c for _, group_continuations in groups for c in group_continuations]
        rest = None
        if longest > 1:
            inputs = torch.full((len(continuations), longest - 1), self.prefix_token, dtype=torch.long)
            for row, continuation in enumerate(continuations):
                inputs[row, : len(continuation) - 1] = torch.tensor(continuation[:-1])
            owner_rows = torch.tensor(owners, device=self.device)
            full_mask = torch.cat([mask[owner_rows], mask.new_ones((len(continuations), longest - 1))], dim=1)
            output = self.model(inputs.to(self.device), attention_mask=full_mask if padded else None,
                                cache=cache.select_rows(owner_rows))
            rest = _log_probs(output.logits)  # (continuations, longest - 1, V)
        scores = []
        for row, (owner, continuation) in enumerate(zip(owners, continuations, strict=True)):
            wanted = torch.tensor(continuation, device=self.device)
            logprobs = first[owner, None] if rest is None else torch.cat([first[owner, None], rest[row]])
            logprobs = logprobs[: len(continuation)]
            total = logprobs.gather(1, wanted[:, None]).double().sum().item()
            scores.append((total, bool((logprobs.argmax(-1) == wanted).all())))
        return scores

    @torch.inference_mode()
    def _score_truncated(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """A request longer than the context window: each prediction sees the `max_length` tokens before it,
        the continuation taken in chunks of at most `max_length` (one chunk unless it is itself too long)."""
        sequence = context + continuation
        total, greedy = 0.0, True
        for start in range(len(context), len(sequence), self.max_length):
            end = min(start + self.max_length, len(sequence))
            inputs = sequence[max(0, end - 1 - self.max_length) : end - 1]
            logits = self.model(torch.tensor([inputs], device=self.device)).logits[0, -(end - start):]
            wanted = torch.tensor(sequence[start:end], device=self.device)
            total += _log_probs(logits).gather(1, wanted[:, None]).double().sum().item()
            greedy = greedy and bool((logits.argmax(-1) == wanted).all())
        return total, greedy

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
        logprobs = _log_probs(self.model(ids.to(self.device)).logits)
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
            logprobs = _log_probs(output.logits[0])
            total += logprobs.gather(1, targets[:, None]).double().sum().item()
        return total

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        return generate_text(self.model, self.tokenizer, list(prompts), params)

    def predicted_units(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) + int(self.predict_end)

    def context_note(self) -> str:
        if self.carries_state:
            return f"read in windows of {self.max_length} tokens, the state carried from one to the next"
        return (f"in windows of {self.max_length} tokens, stride {self.max_length}: the first prediction of a "
                "window sees one token, the last sees the window")
