"""Generation: turning a causal language model's next-token distributions into text.

One loop serves every family that follows `lmlab.models.base.CausalLM` (GPT now, LLaMA-style
later): ``forward(input_ids, attention_mask=None, labels=None, cache=None, last_token_only=False)``
returning ``.logits``, ``new_cache(batch_size, max_len)``, and ``config.block_size``.

    prompt ──> forward(whole prompt, empty cache) ──> logits of the last position
                 ┌──────────────────────────────────────────┘
                 └─> pick a token ──> forward(that one token, cache) ──> logits ──> pick ... (n times)

Picking a token, in the order transformers applies the same steps:
1. repetition penalty (CTRL, Keskar et al. 2019): every token already in the sequence has its
   logit divided by the penalty when positive, multiplied when negative (both make it less likely);
2. temperature 0 means greedy: take the most likely token and stop here;
3. otherwise divide the logits by the temperature (< 1 sharpens, > 1 flattens);
4. top-k keeps the k most likely tokens; top-p keeps the smallest set whose probability is >= p;
5. sample from what is left, with a `torch.Generator` seeded from ``params.seed``.

Batches are left-padded (every prompt ends at the same column, so one forward extends them all)
and an attention mask hides the padding. Prompts longer than the model's context minus
``max_new_tokens`` are cropped from the left: the model only sees the most recent tokens.
``compile=True`` runs the one-token steps through ``torch.compile`` (see `_compiled_step_model`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from pydantic import Field, ValidationError, field_validator
from torch import Tensor, nn

from lmlab.config import Config
from lmlab.errors import LmlabError
from lmlab.modes import evaluating


class GenerationParams(Config):
    max_new_tokens: int = Field(64, ge=0)
    temperature: float = Field(1.0, ge=0.0, description="0 means greedy")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0, description="1 means none; 1.1 to 1.3 is typical")
    stop: list[str] = Field(default_factory=list, description="cut the text before the first of these")
    seed: int | None = None
    compile: bool = Field(False, description="torch.compile the one-token step: seconds to start, then faster")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"])
            raise LmlabError(f"generation: {key}: {first['msg']} (got {first.get('input')!r})") from None

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, stop: list[str]) -> list[str]:
        if any(not s for s in stop):
            raise ValueError("an empty stop string would stop before the first token")
        return stop


class TextTokenizer(Protocol):
    """What generation needs of a tokenizer (`lmlab.tokenizers.Tokenizer` has it)."""

    eos_id: int | None

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


# ---- choosing the next token ---------------------------------------------------------------------

def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty on (B, V) logits for the tokens marked in the boolean (B, V) `seen`."""
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Set every logit below the k-th largest of its row to -inf (ties with the k-th survive)."""
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the nucleus: the most likely tokens whose probabilities first add up to at least `p`."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    # A token goes when the tokens more likely than it already reach p; the first one never goes.
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def pick_next_tokens(logits: Tensor, params: GenerationParams, seen: Tensor | None,
                     generator: torch.Generator | None) -> Tensor:
    """One token per row of float32 (B, V) logits, following `params` (see the module docstring)."""
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / params.temperature
    if params.top_k is not None:
        logits = top_k_filter(logits, params.top_k)
    if params.top_p is not None and params.top_p < 1.0:
        logits = top_p_filter(logits, params.top_p)
    return torch.multinomial(logits.softmax(dim=-1), num_samples=1, generator=generator).squeeze(1)


# ---- the decoding loop -----------------------------------------------------------------------------

def _fit_prompts(prompts_ids: Sequence[Sequence[int]], params: GenerationParams, model: nn.Module,
                 eos_id: int | None) -> list[list[int]]:
    """Each prompt cropped from the left to leave room for the new tokens; empty ones start at eos.

    A model that reads any length (a recurrent state, a sliding window) keeps its whole prompt: its
    block size is only the window it was trained on.
    """
    block_size, vocab_size = model.config.block_size, getattr(model.config, "vocab_size", None)
    room = None if getattr(model, "unbounded_context", False) else block_size - params.max_new_tokens
    if room is not None and room < 1:
        raise LmlabError(f"generation: max_new_tokens={params.max_new_tokens} leaves no room for a prompt "
                         f"in the model's context of {block_size} tokens")
    fitted = []
    for index, ids in enumerate(prompts_ids):
        if not ids:
            if eos_id is None:
                raise LmlabError(f"prompt {index} is empty and there is no end-of-text token to start from")
            ids = [eos_id]  # the token that precedes every document in training
        if vocab_size is not None and max(ids) >= vocab_size:
            raise LmlabError(f"prompt {index} has token id {max(ids)}, outside the model's vocabulary of "
                             f"{vocab_size}; was it encoded with this model's tokenizer?")
        fitted.append(list(ids) if room is None else list(ids)[-room:])
    return fitted


def _compiled_step_model(model: nn.Module) -> nn.Module:
    """`model` compiled for the one-token steps of decoding (the prompt still runs eagerly).

    A step of a small model is a hundred tiny operations whose Python and dispatch overhead costs
    more than their arithmetic; inductor fuses the element-wise ones into C++ loops and, with
    ``cpp_wrapper``, calls everything from one C++ function. ``dynamic=True`` makes the growing
    cache length a symbol, so one compilation serves every step instead of one per length.
    It costs seconds on first use (per model and batch size; inductor caches on disk), so it pays
    for long or repeated generations, not for a quick one.
    """
    return torch.compile(model, dynamic=True, options={"cpp_wrapper": True})


@torch.inference_mode()
def _decode_steps(model: nn.Module, prompts_ids: Sequence[Sequence[int]], params: GenerationParams,
                  eos_id: int | None) -> Iterator[list[int | None]]:
    """Yield, at each step, the new token of every sequence, or None once that sequence has ended."""
    if params.max_new_tokens == 0 or not prompts_ids:
        return
    prompts = _fit_prompts(prompts_ids, params, model, eos_id)
    device = next(model.parameters()).device
    batch, width = len(prompts), max(len(ids) for ids in prompts)
    input_ids = torch.tensor([[0] * (width - len(ids)) + ids for ids in prompts], device=device)  # (B, P)
    mask = None  # (B, P + new): 0 over the left padding; kept None when there is none (faster attention)
    if any(len(ids) < width for ids in prompts):
        mask = torch.ones(batch, width + params.max_new_tokens, dtype=torch.long, device=device)
        for row, ids in enumerate(prompts):
            mask[row, : width - len(ids)] = 0
    generator = None
    if params.seed is not None:
        generator = torch.Generator(device=device).manual_seed(params.seed)

    step_model = _compiled_step_model(model) if params.compile else model
    with evaluating(model):
        cache = model.new_cache(batch, width + params.max_new_tokens)
        out = model(input_ids, attention_mask=None if mask is None else mask[:, :width], cache=cache,
                    last_token_only=True)
        logits = out.logits[:, -1].float()  # (B, V)
        seen = None
        if params.repetition_penalty != 1.0:
            seen = torch.zeros_like(logits, dtype=torch.bool)
            for row, ids in enumerate(prompts):
                seen[row, ids] = True
        ended = [False] * batch
        for step in range(params.max_new_tokens):
            tokens = pick_next_tokens(logits, params, seen, generator)  # (B,)
            picked: list[int | None] = []
            for row, token in enumerate(tokens.tolist()):  # the step's one host-device sync
                ended[row] = ended[row] or token == eos_id
                picked.append(None if ended[row] else token)
            yield picked
            if all(ended) or step + 1 == params.max_new_tokens:
                return
            if seen is not None:
                seen[torch.arange(batch, device=device), tokens] = True
            step_mask = None if mask is None else mask[:, : width + step + 1]
            logits = step_model(tokens[:, None], attention_mask=step_mask, cache=cache,
                                last_token_only=True).logits[:, -1].float()


def stream_tokens(model: nn.Module, prompt_ids: list[int], params: GenerationParams,
                  eos_id: int | None = None) -> Iterator[int]:
    """New token ids one by one as they are generated (eos ends the stream and is not yielded)."""
    for (token,) in _decode_steps(model, [prompt_ids], params, eos_id):
        if token is None:
            return
        yield token


def generate_ids(model: nn.Module, prompts_ids: list[list[int]], params: GenerationParams,
                 eos_id: int | None = None) -> list[list[int]]:
    """The new token ids of each prompt, generated as one left-padded batch, each cut before its eos."""
    outputs: list[list[int]] = [[] for _ in prompts_ids]
    for step in _decode_steps(model, prompts_ids, params, eos_id):
        for output, token in zip(outputs, step, strict=True):
            if token is not None:
                output.append(token)
    return outputs


# ---- text in, text out -----------------------------------------------------------------------------

def continuation_text(tokenizer: TextTokenizer, prompt_ids: list[int], prompt_text: str,
                  new_ids: list[int]) -> str:
    # Decoding prompt and continuation together and removing the prompt's text keeps the
    # boundary right for decoders that treat a sequence's first token specially (leading spaces).
    full = tokenizer.decode(prompt_ids + new_ids)
    return full[len(prompt_text):] if full.startswith(prompt_text) else tokenizer.decode(new_ids)


def _cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """`text` up to the earliest stop string, and whether one was found."""
    hits = [index for index in (text.find(s) for s in stop) if index >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def generate_text(model: nn.Module, tokenizer: TextTokenizer, prompts: list[str],
                  params: GenerationParams) -> list[str]:
    """The continuation of each prompt (prompt not included), cut before the first stop string."""
    prompts_ids = [tokenizer.encode(prompt) for prompt in prompts]
    heads = [tokenizer.decode(ids) for ids in prompts_ids]
    outputs: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)  # ended at eos, or a stop string appeared: no need to go on
    for step in _decode_steps(model, prompts_ids, params, tokenizer.eos_id):
        for row, token in enumerate(step):
            if token is None:
                done[row] = True
            elif not done[row]:
                outputs[row].append(token)
                if params.stop:
                    text = continuation_text(tokenizer, prompts_ids[row], heads[row], outputs[row])
                    done[row] = _cut_at_stop(text, params.stop)[1]
        if all(done):
            break
    return [
        _cut_at_stop(continuation_text(tokenizer, ids, head, new), params.stop)[0]
        for ids, head, new in zip(prompts_ids, heads, outputs, strict=True)
    ]


def _held_back(text: str, stop: list[str]) -> int:
    """How many characters at the end of `text` may still change or turn out to start a stop string."""
    # Byte-level BPE can end a token in the middle of a UTF-8 character (a Chinese character is 3
    # bytes), which decodes as U+FFFD until the next token completes it.
    complete = text.rstrip("\ufffd")
    partial_stop = max((n for s in stop for n in range(1, len(s)) if complete.endswith(s[:n])), default=0)
    return len(text) - len(complete) + partial_stop


def stream_text(model: nn.Module, tokenizer: TextTokenizer, prompt: str,
                params: GenerationParams) -> Iterator[str]:
    """The continuation of `prompt` piece by piece; the pieces join to what `generate_text` returns."""
    prompt_ids = tokenizer.encode(prompt)
    head = tokenizer.decode(prompt_ids)
    new_ids: list[int] = []

    def continuations() -> Iterator[str]:
        for token in stream_tokens(model, prompt_ids, params, tokenizer.eos_id):
            new_ids.append(token)
            yield continuation_text(tokenizer, prompt_ids, head, new_ids)

    yield from ready_pieces(continuations(), params.stop)


class ReadyText:
    """A growing text handed out in pieces that will not change: half a character (byte-level BPE can end a
    token inside a UTF-8 character) and what may be the start of a stop string are held back, and the text
    ends before the first stop string. ``update`` takes each new version of the whole text."""

    def __init__(self, stop: Sequence[str]):
        self.stop, self.text, self.emitted, self.stopped = list(stop), "", 0, False

    def update(self, text: str) -> str:
        """The piece `text` makes ready ("" if none); `stopped` tells whether a stop string ended it."""
        self.text, self.stopped = _cut_at_stop(text, self.stop)
        ready = len(self.text) if self.stopped else len(self.text) - _held_back(self.text, self.stop)
        piece = self.text[self.emitted:ready]
        self.emitted = max(self.emitted, ready)
        return piece

    def rest(self) -> str:
        """What was held back, once the text is known to be complete."""
        piece, self.emitted = self.text[self.emitted:], len(self.text)
        return piece


def ready_pieces(texts: Iterator[str], stop: Sequence[str]) -> Iterator[str]:
    """Successive versions of a growing text as the pieces each adds (`ReadyText`), ending before the first
    stop string."""
    ready = ReadyText(stop)
    for text in texts:
        if piece := ready.update(text):
            yield piece
        if ready.stopped:
            return
    if rest := ready.rest():
        yield rest
