"""Continuous batching: the sequences of every client share each forward pass of one decoder.

    request ──> Sequence ──> waiting ──(a step boundary, room in the batch)──> prefill alone ──┐
                                                                                              v
     running batch: one KV cache, every row right-aligned, left padding masked out  <──── join
       each step:  forward(every row's last token) ──> each row picks with its own sampling
                   parameters and generator ──> token events to its client
       a row that ends (end of text, max_tokens, its client gone) leaves at once

A decoding step costs nearly the same for one row as for sixteen on a small model: what a step
spends is mostly reading the weights and launching operations, so sixteen clients batched get
close to sixteen times the tokens per second of one client served after another.

Why right-aligned: all rows append their new token in the same cache column, so one forward
extends them all. A row that joins with a prompt shorter than the batch's width is left-padded;
one with a longer prompt pads the others. A row's positions are counted from its first real
token (from the attention mask, as in a left-padded batch of `lmlab.generate`), so padding
changes no row's result: its tokens are those it gets alone (tests check it, greedy).

A joining prompt is read alone (batch of one) so that its first token, its prompt log-probabilities
and its place in the batch never depend on who else is being served.

A decoder whose state is not a KV cache (an LSTM's, an MLP's token window) is served by an engine of
one row: a sequence keeps its prompt's state and the next one waits.

Engines do not run threads of their own: one `DeviceLoop` steps every engine and runs every other
piece of torch work the server has (embeddings, pipelines), on one thread. Events go to each
sequence's callback, which the server turns into an asyncio queue.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lmlab.generate import GenerationParams, pick_next_tokens
from lmlab.models.base import KVCache
from lmlab.modes import evaluating


@dataclass
class TokenEvent:
    """One new token of a sequence, with its log-probability and the `top` alternatives asked for."""

    token: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass
class PromptEvent:
    """An echoed prompt's log-probabilities: None for its first token, then log p(token | the ones before)."""

    logprobs: list[float | None]
    top: list[list[tuple[int, float]] | None]


@dataclass
class EndEvent:
    reason: str  # "stop" (an end token), "length" (max_tokens reached), "cancelled" or "error"
    message: str = ""


Event = TokenEvent | PromptEvent | EndEvent


@dataclass
class Sequence:
    """One choice to generate: a prompt, how to sample, and where its events go."""

    prompt: list[int]
    params: GenerationParams
    on_event: Callable[[Event], None]
    end_ids: frozenset[int] = frozenset()
    top_logprobs: int | None = None  # None: no log-probabilities; 0: the chosen token's; k: and the k best
    echo: bool = False  # the prompt's own log-probabilities first
    generator: torch.Generator | None = None
    generated: int = 0
    cancelled: bool = False
    ended: bool = False
    next_token: int = -1  # the token the next step feeds in

    def cancel(self) -> None:
        """Stop generating (the client went away, or a stop string appeared); the row leaves at the next step."""
        self.cancelled = True

    def end(self, reason: str, message: str = "") -> None:
        """Tell the client the sequence is over, once."""
        if not self.ended:
            self.ended = True
            self.on_event(EndEvent(reason, message))


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    return generator


def _log_probs(logits: Tensor, chosen: Tensor, top: int | None) -> tuple[list[float], list[list[tuple[int, float]]]]:
    """Per row of float32 (N, V) logits: the log-probability of `chosen` (N,) and the `top` best (id, log-prob)."""
    log_probs = logits.log_softmax(dim=-1)
    picked = log_probs.gather(1, chosen[:, None])[:, 0].tolist()
    if not top:
        return picked, [[] for _ in picked]
    values, ids = log_probs.topk(min(top, log_probs.size(-1)), dim=-1)
    return picked, [list(zip(i, v, strict=True)) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]


class BatchEngine:
    """A decoder serving sequences as they come, `max_batch` rows at a time. Rows are joined and moved in a
    KV cache; a decoder with another state (recurrent, a token window) is served with `max_batch` 1, one
    sequence after another, its state never moved."""

    def __init__(self, model: nn.Module, max_batch: int = 16, max_waiting: int = 64):
        self.model, self.max_batch, self.max_waiting = model, max_batch, max_waiting
        self.block_size: int = model.config.block_size
        self.device = next(model.parameters()).device
        self.waiting: queue.Queue[Sequence] = queue.Queue()
        self.rows: list[Sequence] = []
        self.deferred: Sequence | None = None  # the first in line, waiting until the batch has room for it
        self.cache: Any = None  # a KVCache; any model's own state when one row at a time
        self.mask: Tensor | None = None  # (B, block_size) long: 1 over each row's real positions so far
        self.lengths: list[int] = []  # each row's real positions in the cache
        self._buffers: list[KVCache] = []  # see _realign
        self._in_use: int | None = None  # the buffer the batch's cache views; None: a prompt's own cache
        self.tokens_generated = 0
        self.largest_batch = 0  # the most rows one forward has decoded together
        self.wake: Callable[[], None] = lambda: None  # set by the DeviceLoop that steps this engine

    # ---- what the server calls --------------------------------------------------------------------

    def has_room(self, count: int = 1) -> bool:
        """Whether `count` more sequences may wait (the server answers 429 when not)."""
        return self.waiting.qsize() + count <= self.max_waiting

    def submit(self, sequence: Sequence) -> None:
        if sequence.generator is None and sequence.params.temperature > 0:
            sequence.generator = _generator(sequence.params.seed, self.device)
        self.waiting.put(sequence)
        self.wake()

    @property
    def running(self) -> int:
        return len(self.rows)

    # ---- what the DeviceLoop calls -------------------------------------------------------------------

    def work(self) -> bool:
        """Admit what waits and fits, then one decoding step; whether there was anything to do."""
        admitted = self._admit()
        if self.rows:
            self._step()
        return admitted or bool(self.rows)

    def _admit(self) -> bool:
        """Move waiting sequences into the batch while they fit; whether any was taken."""
        taken = False
        while len(self.rows) < self.max_batch:
            sequence, self.deferred = self.deferred, None
            if sequence is None:
                try:
                    sequence = self.waiting.get_nowait()
                except queue.Empty:
                    return taken
            taken = True
            if sequence.cancelled:
                sequence.end("cancelled")
                continue
            if not self._fits(sequence):
                self.deferred = sequence  # first in line: it waits for rows to leave, and nobody overtakes it
                return taken
            self._join(sequence)
        return taken

    def _fits(self, sequence: Sequence) -> bool:
        width = max([len(sequence.prompt), *self.lengths])
        remaining = [s.params.max_new_tokens - s.generated for s in self.rows] + [sequence.params.max_new_tokens]
        return not self.rows or width + max(remaining) <= self.block_size

    def _join(self, sequence: Sequence) -> None:
        """Read the prompt alone, give its first token, and place its keys and values in the batch."""
        try:
            prompt = torch.tensor([sequence.prompt], device=self.device)
            cache = self.model.new_cache(1, self.block_size)
            out = self.model(prompt, cache=cache, last_token_only=not sequence.echo)
            logits = out.logits[0].float()  # (P or 1, V)
            if sequence.echo:
                self._echo(sequence, logits)
            if sequence.params.max_new_tokens == 0:
                sequence.end("length")
                return
            self._place(sequence, cache)
            self._emit(sequence, logits[-1:])
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the engine serving the others
            sequence.end("error", f"{type(exc).__name__}: {exc}")
            if sequence in self.rows:
                self._leave([sequence])
            return
        self._leave([s for s in self.rows if self._finished(s)])

    def _echo(self, sequence: Sequence, logits: Tensor) -> None:
        prompt = torch.tensor(sequence.prompt[1:], device=self.device)
        picked, top = _log_probs(logits[:-1], prompt, sequence.top_logprobs) if len(prompt) else ([], [])
        sequence.on_event(PromptEvent([None, *picked], [None, *top]))

    def _place(self, sequence: Sequence, cache: Any) -> None:
        """Rebuild the batch's cache with `sequence` as its last row, every row right-aligned; a first row
        keeps the cache its prompt filled (the only way for a state without rows to move, `max_batch` 1)."""
        length = len(sequence.prompt)
        if not self.rows:
            self.cache, self.mask, self.rows, self.lengths, self._in_use = cache, None, [sequence], [length], None
            return
        self._realign(self.rows + [sequence], self.lengths + [length], extra=(cache, length))

    def _realign(self, rows: list[Sequence], lengths: list[int], extra: tuple[KVCache, int] | None = None) -> None:
        """New cache and mask for `rows` (the current ones, kept in order, then `extra`'s single row)."""
        width = max(lengths)
        old, old_lengths = self.cache, self.lengths
        keep = [self.rows.index(s) for s in rows[: len(rows) - (extra is not None)]]
        # Two caches of max_batch rows, made once: a batch's cache is a view of one, rebuilt into the other.
        # A new cache at every join and leave left the allocator fragmented, resident memory growing by 6%.
        if not self._buffers:
            self._buffers = [self.model.new_cache(self.max_batch, self.block_size) for _ in range(2)]
        into = 1 if self._in_use == 0 else 0
        cache = self._buffers[into].first_rows(len(rows))
        mask = torch.ones(len(rows), self.block_size, dtype=torch.long, device=self.device)
        sources = [(old, index, old_lengths[index]) for index in keep]
        if extra is not None:
            sources.append((extra[0], 0, extra[1]))
        for row, (source, index, length) in enumerate(sources):
            start = source.length - length  # a batch row ends at the old width; a prompt's cache holds it alone
            mask[row, : width - length] = 0
            for target, origin in zip((*cache.keys, *cache.values), (*source.keys, *source.values), strict=True):
                target[row, :, : width - length].zero_()  # masked out, but never an old NaN times a zero weight
                target[row, :, width - length: width] = origin[index, :, start: start + length]
        cache.length = width
        self.cache, self.mask, self.rows, self.lengths, self._in_use = cache, mask, rows, lengths, into

    def _step(self) -> None:
        """One forward for every row, then each row's next token."""
        cache, mask = self.cache, self.mask
        assert cache is not None
        tokens = torch.tensor([[s.next_token] for s in self.rows], device=self.device)
        self.largest_batch = max(self.largest_batch, len(self.rows))
        padded = mask is not None and any(length < cache.length for length in self.lengths)
        try:
            out = self.model(tokens, attention_mask=mask[:, : cache.length + 1] if padded else None, cache=cache,
                             last_token_only=True)
        except Exception as exc:  # noqa: BLE001 - end every row with the reason rather than hang them
            for sequence in self.rows:
                sequence.end("error", f"{type(exc).__name__}: {exc}")
            self.rows, self.lengths, self.cache, self.mask = [], [], None, None
            return
        self.lengths = [length + 1 for length in self.lengths]
        logits = out.logits[:, -1].float()  # (B, V)
        for row, sequence in enumerate(self.rows):
            if not sequence.cancelled:
                self._emit(sequence, logits[row: row + 1])
        self._leave([s for s in self.rows if self._finished(s)])

    def _emit(self, sequence: Sequence, logits: Tensor) -> None:
        """Pick `sequence`'s next token from its (1, V) logits and tell its client."""
        token = pick_next_tokens(logits, sequence.params, None, sequence.generator)
        sequence.next_token = int(token)
        sequence.generated += 1
        self.tokens_generated += 1
        if sequence.next_token in sequence.end_ids:
            sequence.end("stop")
            return
        logprob, top = 0.0, []
        if sequence.top_logprobs is not None:
            picked, tops = _log_probs(logits, token, sequence.top_logprobs)
            logprob, top = picked[0], tops[0]
        sequence.on_event(TokenEvent(sequence.next_token, logprob, top))
        if sequence.generated >= sequence.params.max_new_tokens:
            sequence.end("length")

    def _finished(self, sequence: Sequence) -> bool:
        return sequence.cancelled or sequence.ended

    def _leave(self, done: list[Sequence]) -> None:
        if not done:
            return
        for sequence in done:
            sequence.end("cancelled")  # a no-op for one that has ended already
        keep = [s for s in self.rows if s not in done]
        if not keep:
            self.rows, self.lengths, self.cache, self.mask = [], [], None, None
            return
        self._realign(keep, [self.lengths[self.rows.index(s)] for s in keep])


class DeviceLoop:
    """The one thread that does the server's torch work: every engine's decoding steps, and the jobs
    handed to it with `call` (embeddings, pipelines, n-gram texts).

    One thread, because PyTorch's CPU thread pool (OpenMP) belongs to the thread that calls it: a second
    thread running operations gets a second pool, and once the pools hold more threads than there are
    cores, libgomp stops spinning between operations and puts its threads to sleep. A decoding step is
    hundreds of small operations, so on 2 cores one token of a small LLaMA took 3.5 ms from a second
    thread against 0.85 ms from the thread that owned the pool. `lmlab serve` runs this loop on its main
    thread (the one that loaded the models) and the HTTP server on another.
    """

    def __init__(self, engines: list[BatchEngine]):
        self.engines = engines
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self.wakeup = threading.Event()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        for engine in engines:
            engine.wake = self.wakeup.set

    def call(self, job: Callable[[], Any]) -> Future[Any]:
        """Run `job` on the loop's thread; its result (or exception) arrives in the future."""
        future: Future[Any] = Future()
        self.jobs.put((job, future))
        self.wakeup.set()
        return future

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Step the engines and run jobs until `stop` is called or `until()` is true."""
        with torch.inference_mode(), contextlib.ExitStack() as modes:
            for engine in self.engines:
                modes.enter_context(evaluating(engine.model))
            while not self.stopped.is_set() and not until():
                self.wakeup.clear()  # before looking for work: a submit after the look sets it again
                busy = self._run_jobs()
                for engine in self.engines:
                    busy = engine.work() or busy
                if not busy and not until():
                    self.wakeup.wait(timeout=0.25)

    def _run_jobs(self) -> bool:
        ran = False
        while True:
            try:
                job, future = self.jobs.get_nowait()
            except queue.Empty:
                return ran
            ran = True
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(job())
                except Exception as exc:  # noqa: BLE001 - the caller gets it; the loop serves on
                    future.set_exception(exc)

    def start(self) -> None:
        """Run the loop on a thread of its own (a server embedded in another program, or a test)."""
        self.thread = threading.Thread(target=self.run, name="lmlab-device-loop", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.wakeup.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
