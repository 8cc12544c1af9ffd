"""The OpenAI-compatible HTTP server: FastAPI routes over one `BatchEngine` per served decoder.

    GET  /                       the playground: a page to try the models in a browser
    GET  /health                 {"status": "ok"}, never behind the API key
    GET  /v1/models              the served runs, by name
    POST /v1/completions         prompt: text, texts, token ids or lists of them; n, stop, seed, logprobs, echo
    POST /v1/chat/completions    messages through the run's chat template, stopping at the end of the turn
    POST /v1/embeddings          an encoder's (or decoder's) pooled last hidden states
    POST /v1/pipelines/{task}    classification, tagging, question answering, fill-mask: lmlab.pipeline's answers
    GET  /metrics                Prometheus text: queue depth, running sequences, tokens, latencies

GPT and LLaMA runs are batched across clients; LSTM and MLP runs are decoded one sequence at a time;
n-gram runs write whole texts. All torch work runs on one `DeviceLoop` thread (see lmlab.serve.engine).

Streaming answers are server-sent events (``data: {chunk}``, then ``data: [DONE]``), as OpenAI sends
them. Every refusal is OpenAI's error JSON with a 4xx status: 400 for a request that does not parse or
asks for what the model cannot do, 401 without the API key, 404 for an unknown model or route, 405 for
a wrong method, 413 for a body or prompt over the limits, 429 with ``Retry-After`` when the queue is full.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hmac
import json
import math
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lmlab.config import Config
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, ReadyText, continuation_text
from lmlab.models.base import KVCache
from lmlab.models.language_model import LanguageModel
from lmlab.models.quantize import Quantization, quantize
from lmlab.pipelines import PIPELINES, Pipeline, pipeline
from lmlab.pipelines.chat import ChatModel
from lmlab.runs import Run, open_run
from lmlab.serve.engine import BatchEngine, DeviceLoop, EndEvent, Event, PromptEvent, Sequence, TokenEvent
from lmlab.serve.metrics import Metrics
from lmlab.serve.protocol import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    PipelineRequest,
    ServeError,
    parsed,
)
from lmlab.tokenizers import Tokenizer

PLAYGROUND = Path(__file__).with_name("playground.html")
STREAM_INTERVAL_MS = 5.0
EAGER_EVENTS = 8  # a request's first events, handed over one by one
# The pipelines served over HTTP; generation, chat and features have their OpenAI routes.
HTTP_PIPELINES = ("sentiment-analysis", "text-classification", "token-classification", "question-answering",
                  "fill-mask")


class ServeSettings(Config):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = None
    device: str = "auto"
    max_batch: int = Field(16, ge=1, description="sequences decoded together in one forward pass")
    max_waiting: int = Field(64, ge=1, description="sequences waiting for a place; more get 429")
    max_prompt_tokens: int | None = Field(None, ge=1, description="a longer prompt gets 413 (default: the context)")
    max_tokens: int = Field(1024, ge=1, description="the most tokens one choice may ask for")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="a larger request body gets 413")
    quantize: Quantization = Field("none", description="int8: the models' linear layers in int8")
    stream_interval_ms: float = Field(STREAM_INTERVAL_MS, ge=0, description="tokens reach a request at most this "
                                      "often, together (its first token and its end at once); 0: each at once")


@dataclass
class ServedModel:
    """A run the server answers for: its decoder and batch engine, its encoder for embeddings, or its
    count-based model, which writes whole texts (`text_model`; no tokenizer, no token log-probabilities)."""

    name: str
    path: Path
    tokenizer: Tokenizer | None
    block_size: int
    vocab_size: int
    engine: BatchEngine | None = None
    chat: ChatModel | None = None
    embedder: Any = None
    text_model: LanguageModel | None = None
    jobs_waiting: int = 0  # a text model's requests on the device loop; more than max_waiting get 429
    tasks: list[str] = field(default_factory=list)  # the pipelines it answers at /v1/pipelines/{task}
    pipelines: dict[str, Pipeline] = field(default_factory=dict)  # loaded at its first request of each
    created: int = field(default_factory=lambda: int(time.time()))


def pipeline_tasks(run: Run) -> list[str]:
    """The HTTP pipeline tasks `run`'s model can do (asked before any is loaded)."""
    tasks = []
    for task in HTTP_PIPELINES:
        kind = PIPELINES[task]
        if run.family_class.kind in kind.kinds:
            try:
                kind.check_model(task, run)
            except LmlabError:
                continue
            tasks.append(task)
    return tasks


def served_model(source: str, settings: ServeSettings) -> ServedModel:
    """Open `source` for serving. A decoder generates: batched when its cache is a KV cache (GPT, LLaMA),
    one sequence at a time otherwise (LSTM, Bengio MLP); an n-gram model writes whole texts, one request
    at a time; an encoder gives embeddings and fills masks; a tuned model labels text (pipelines)."""
    run = open_run(source)
    name = Path(source).name or str(source)
    kind = run.family_class.kind
    tasks = pipeline_tasks(run)
    if kind == "decoder":
        model = run.model(settings.device, settings.quantize)
        batched = isinstance(model.new_cache(1, 1), KVCache)  # rows the engine can move and join
        engine = BatchEngine(model, settings.max_batch if batched else 1, settings.max_waiting)
        template = run.chat_template()
        tokenizer = run.tokenizer()
        chat = ChatModel(model, tokenizer, template) if template is not None else None
        return ServedModel(name, run.path, tokenizer, model.config.block_size, model.config.vocab_size, engine, chat,
                           tasks=tasks)
    if kind == "encoder":
        embedder = pipeline("feature-extraction", run.path, device=settings.device)
        quantize(embedder.model, settings.quantize)
        return ServedModel(name, run.path, embedder.tokenizer, embedder.max_length, embedder.model.config.vocab_size,
                           embedder=embedder, tasks=tasks)
    if kind == "count-based":
        text_model = run.language_model(quantization=settings.quantize)
        return ServedModel(name, run.path, None, 0, 0, text_model=text_model)
    if tasks:
        return ServedModel(name, run.path, None, 0, 0, tasks=tasks)
    raise run.refusal(f"lmlab serve needs a model that generates text, gives embeddings or labels text; a "
                      f"{run.family} model ({kind}) is not served")


# ---- one choice's text, as its tokens arrive -----------------------------------------------------------

class ChoiceText:
    """The text of one choice: decoded as a whole each time a token arrives, handed out in ready pieces,
    cut before the first stop string (the client then stops the sequence)."""

    def __init__(self, tokenizer: Tokenizer, prompt: list[int], stops: list[str], chat: bool):
        self.tokenizer, self.prompt, self.chat = tokenizer, prompt, chat
        self.head = "" if chat else tokenizer.decode(prompt)
        self.ids: list[int] = []
        self.ready = ReadyText(stops)
        self.text = ""  # what was handed out so far
        self.tokens: list[TokenEvent] = []
        self.prompt_event: PromptEvent | None = None
        self.finish_reason: str | None = None

    def add(self, event: TokenEvent) -> str:
        self.ids.append(event.token)
        self.tokens.append(event)
        whole = (self.tokenizer.decode(self.ids, skip_special_tokens=True) if self.chat
                 else continuation_text(self.tokenizer, self.prompt, self.head, self.ids))
        piece = self.ready.update(whole)
        self.text += piece
        return piece

    def finish(self, reason: str) -> str:
        self.finish_reason = "stop" if reason == "stop" or self.ready.stopped else "length"
        piece = "" if self.ready.stopped else self.ready.rest()
        self.text += piece
        return piece

    @property
    def stopped(self) -> bool:
        return self.ready.stopped


def token_string(tokenizer: Tokenizer, token: int) -> str:
    return tokenizer.decode([token])


def completion_logprobs(tokenizer: Tokenizer, entries: list[tuple[int, float | None, Any]],
                        offset: int = 0) -> dict[str, Any]:
    """OpenAI's legacy ``logprobs`` object for (token, log-probability, top alternatives) `entries` whose text
    starts at character `offset`: tokens, their log-probabilities, the top ones as {text: log-prob}, offsets."""
    tokens, logprobs, tops, offsets = [], [], [], []
    for token, logprob, top in entries:
        text = token_string(tokenizer, token)
        tokens.append(text)
        logprobs.append(logprob)
        tops.append(None if top is None else {token_string(tokenizer, i): v for i, v in top})
        offsets.append(offset)
        offset += len(text)
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}


def choice_entries(choice: ChoiceText) -> list[tuple[int, float | None, Any]]:
    """A completion choice's tokens for `completion_logprobs`: the echoed prompt's first, then the generated."""
    echoed = choice.prompt_event
    prompt = [] if echoed is None else list(zip(choice.prompt, echoed.logprobs, echoed.top, strict=True))
    return prompt + [(e.token, e.logprob, e.top) for e in choice.tokens]


def chat_logprobs(tokenizer: Tokenizer, events: list[TokenEvent]) -> dict[str, Any]:
    """The chat ``logprobs`` object: per token its text, log-probability, UTF-8 bytes and top alternatives."""
    def entry(token: int, logprob: float) -> dict[str, Any]:
        text = token_string(tokenizer, token)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return {"content": [{**entry(e.token, e.logprob), "top_logprobs": [entry(i, v) for i, v in e.top]}
                        for e in events]}


class Guard:
    """The API key, then the body's size, before any route reads the request; then its latency, once answered.

    The key comes as ``Authorization: Bearer KEY`` from API clients, or as the password of HTTP Basic from a
    browser opening the playground (which then sends it with the page's own requests).

    Plain ASGI rather than FastAPI's ``@app.middleware``, whose wrapping of the request hides a client's
    disconnection from the route (so a gone client's sequence would run on to its end).
    """

    def __init__(self, app: Any, settings: ServeSettings, metrics: Metrics):
        self.app, self.settings, self.metrics = app, settings, metrics

    def authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme == "Basic":
            try:
                credentials = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")[2]
            except ValueError:
                return False
        elif scheme != "Bearer":
            return False
        return hmac.compare_digest(credentials.encode(), str(self.settings.api_key).encode())

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        refusal = None
        if self.settings.api_key is not None and scope["path"] != "/health" and not self.authorized(headers):
            # A browser asks its user for the key (as the password) when told Basic; API clients send Bearer.
            challenge = {"WWW-Authenticate": 'Basic realm="lmlab"'} if scope["path"] == "/" else {}
            refusal = ServeError(401, "a valid API key is needed: Authorization: Bearer KEY",
                                 kind="authentication_error", code="invalid_api_key", headers=challenge)
        length = headers.get("content-length")
        if refusal is None and length is not None and (not length.isdigit()
                                                       or int(length) > self.settings.max_body_bytes):
            refusal = ServeError(413, f"the request body is over {self.settings.max_body_bytes} bytes")
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe_request(scope["path"], status[0], time.perf_counter() - started)


def queue_full() -> ServeError:
    return ServeError(429, "the queue is full; try again shortly", kind="rate_limit_error",
                      headers={"Retry-After": "1"})


def error_response(error: ServeError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


# ---- the application ---------------------------------------------------------------------------------

def create_app(models: list[ServedModel], settings: ServeSettings, device: DeviceLoop | None = None) -> FastAPI:
    """The FastAPI application serving `models`. Their torch work runs on `device`, a loop the caller
    runs (as `serve` does, on its main thread); without one, the app starts and stops a loop of its own."""
    by_name = {m.name: m for m in models}
    metrics = Metrics()
    own_device = device is None
    loop = device or DeviceLoop([m.engine for m in models if m.engine is not None])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if own_device:
            loop.start()
        yield
        if own_device:
            loop.stop()

    # No redirects for a trailing slash: a client gets the error JSON of an unknown route, not an empty 307.
    app = FastAPI(title="lmlab", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  redirect_slashes=False)

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return error_response(ServeError(exc.status_code, message.get(exc.status_code, str(exc.detail)), kind=kind,
                                         headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(ServeError(400, str(exc.errors()[0].get("msg", "invalid request"))))

    app.add_middleware(Guard, settings=settings, metrics=metrics)

    async def read_json(request: Request) -> Any:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                raise ServeError(413, f"the request body is over {settings.max_body_bytes} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ServeError(400, f"the request body is not UTF-8 (byte {exc.start})") from None
        try:
            return json.loads(text)
        except RecursionError:
            raise ServeError(400, "the request body nests too deeply") from None
        except json.JSONDecodeError as exc:
            raise ServeError(400, f"the request body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                             ) from None

    def find_model(name: str, need: str) -> ServedModel:
        served = by_name.get(name)
        if served is None:
            raise ServeError(404, f"model {name!r} is not served here; GET /v1/models lists {', '.join(by_name)}",
                             "model", code="model_not_found")
        if need == "generate" and served.engine is None and served.text_model is None:
            does = "an encoder: it gives embeddings" if served.embedder is not None else "a fine-tuned model"
            raise ServeError(400, f"model {name!r} is {does}, not text; its pipelines: "
                             f"{', '.join(served.tasks) or 'none'}", "model")
        if need == "chat" and served.chat is None:
            raise ServeError(400, f"model {name!r} has no chat template (tune it with task=sft); use /v1/completions",
                             "model")
        if need == "embed" and served.embedder is None:
            raise ServeError(400, f"model {name!r} gives no embeddings", "model")
        return served

    def prompt_ids(served: ServedModel, prompt: Any) -> list[list[int]]:
        """The prompts of a completion request, as token ids."""
        if isinstance(prompt, str):
            prompts = [served.tokenizer.encode(prompt)]
        elif prompt and all(isinstance(p, int) for p in prompt):
            prompts = [list(prompt)]
        elif prompt and all(isinstance(p, str) for p in prompt):
            prompts = [served.tokenizer.encode(p) for p in prompt]
        elif prompt and all(isinstance(p, list) for p in prompt):
            prompts = [list(p) for p in prompt]
        else:
            raise ServeError(400, "prompt: a string, a list of strings, a list of token ids or a list of such lists",
                             "prompt")
        if len(prompts) > settings.max_waiting:
            raise ServeError(400, f"prompt: at most {settings.max_waiting} prompts per request", "prompt")
        eos = served.tokenizer.eos_id
        checked = []
        for index, ids in enumerate(prompts):
            if not ids:
                if eos is None:
                    raise ServeError(400, f"prompt {index} is empty and the model has no end-of-text token to start "
                                     "from", "prompt")
                ids = [eos]
            if any(not 0 <= i < served.vocab_size for i in ids):
                raise ServeError(400, f"prompt {index}: token ids must lie in [0, {served.vocab_size})", "prompt")
            checked.append(ids)
        return checked

    def check_room(served: ServedModel, prompts: list[list[int]], max_tokens: int, field_name: str) -> None:
        limit = settings.max_prompt_tokens or served.block_size
        for index, ids in enumerate(prompts):
            if len(ids) > limit:
                raise ServeError(413, f"prompt {index} has {len(ids)} tokens; the limit is {limit}", "prompt",
                                 code="context_length_exceeded")
            if len(ids) + max_tokens > served.block_size:
                raise ServeError(400, f"prompt {index} has {len(ids)} tokens and {field_name} is {max_tokens}: "
                                 f"more than the model's context of {served.block_size}", field_name,
                                 code="context_length_exceeded")
        if max_tokens > settings.max_tokens:
            raise ServeError(400, f"{field_name}: at most {settings.max_tokens}", field_name)

    def sequences(served: ServedModel, request: Any, prompts: list[list[int]], max_tokens: int,
                  end_ids: frozenset[int], top: int | None, echo: bool,
                  put: Callable[[int, Event], None]) -> list[Sequence]:
        engine = served.engine
        assert engine is not None
        if not engine.has_room(len(prompts) * request.n):
            raise queue_full()
        made = []
        for p, ids in enumerate(prompts):
            for j in range(request.n):
                seed = None if request.seed is None else request.seed + j
                params = GenerationParams(max_new_tokens=max_tokens, temperature=request.temperature,
                                          top_p=request.top_p if request.top_p < 1 else None, top_k=request.top_k,
                                          seed=seed)
                index = p * request.n + j
                made.append(Sequence(ids, params, lambda event, index=index: put(index, event), end_ids, top, echo))
        return made

    def event_queue() -> tuple[asyncio.Queue[tuple[int, Event]], Callable[[int, Event], None]]:
        """A request's events, from the device thread to its coroutine. After the first few, tokens are handed
        over at most every `stream_interval_ms`, several together: each hand-off wakes the event loop, whose
        thread then contends with the decoding thread for the GIL, and a token a millisecond woke it for every
        token. The first tokens go at once, since they may be pieces of a character that shows no text yet;
        an end goes at once."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        pending: collections.deque[tuple[int, Event]] = collections.deque()  # appends and pops are atomic
        interval = settings.stream_interval_ms / 1000
        last, count = [-math.inf], [0]

        def hand_over() -> None:
            while pending:
                events.put_nowait(pending.popleft())

        def put(index: int, event: Event) -> None:
            pending.append((index, event))
            count[0] += 1
            now = time.perf_counter()
            if count[0] <= EAGER_EVENTS or now - last[0] >= interval or not isinstance(event, TokenEvent):
                last[0] = now
                loop.call_soon_threadsafe(hand_over)

        return events, put

    async def cancel_when_gone(request: Request, seqs: list[Sequence]) -> None:
        """Cancel `seqs` once the client has disconnected (a stream learns it from Starlette, which cancels it)."""
        while not await request.is_disconnected():
            await asyncio.sleep(0.25)
        for sequence in seqs:
            sequence.cancel()

    async def run_choices(request: Request, engine: BatchEngine, seqs: list[Sequence], choices: list[ChoiceText],
                          events: asyncio.Queue[tuple[int, Event]], streaming: bool,
                          ) -> AsyncIterator[tuple[int, str, Event]]:
        """Submit `seqs` and yield (choice, new text, event) until every choice has ended; stopping a choice at a
        stop string, and cancelling all of them if the client goes away or the caller stops listening."""
        started = time.perf_counter()
        first = True
        watcher = None if streaming else asyncio.create_task(cancel_when_gone(request, seqs))
        for sequence in seqs:
            engine.submit(sequence)
        open_choices = set(range(len(seqs)))
        try:
            while open_choices:
                index, event = await events.get()
                if index not in open_choices:
                    continue
                choice = choices[index]
                if isinstance(event, PromptEvent):
                    choice.prompt_event = event
                    yield index, "", event
                elif isinstance(event, TokenEvent):
                    if first:
                        metrics.observe_first_token(time.perf_counter() - started)
                        first = False
                    piece = choice.add(event)
                    if choice.stopped:
                        seqs[index].cancel()
                        open_choices.discard(index)
                        choice.finish("stop")
                        yield index, piece, EndEvent("stop")
                    else:
                        yield index, piece, event
                else:
                    if event.reason == "error":
                        raise ServeError(500, f"generation failed: {event.message}", kind="server_error")
                    open_choices.discard(index)
                    yield index, choice.finish(event.reason), event
        finally:
            if watcher is not None:
                watcher.cancel()
            for sequence in seqs:
                sequence.cancel()

    def usage(prompts: list[list[int]], choices: list[ChoiceText]) -> dict[str, int]:
        prompt_tokens = sum(len(ids) for ids in prompts)
        completion = sum(len(c.ids) for c in choices)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion}

    def sse(payload: Any) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def stream_end(include_usage: bool, header: dict[str, Any], counts: dict[str, int]) -> list[str]:
        """A stream's last events: the usage chunk when asked for (no choices), then OpenAI's [DONE]."""
        return ([sse({**header, "choices": [], "usage": counts})] if include_usage else []) + ["data: [DONE]\n\n"]

    # ---- routes ---------------------------------------------------------------------------------------

    page = PLAYGROUND.read_text(encoding="utf-8")

    @app.get("/")
    async def playground() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m.name, "object": "model", "created": m.created,
                                            "owned_by": "lmlab"} for m in models]}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render({m.name: m.engine for m in models if m.engine is not None}),
                                 media_type="text/plain; version=0.0.4")

    async def text_completions(served: ServedModel, body: CompletionRequest) -> Response:
        """A count-based model's completions: whole texts written on the device loop, one request at a time.
        It reads and writes its own units (words or characters), so token ids, log-probabilities and echo
        are refused, and a stream carries each choice's text in one piece."""
        text_model = served.text_model
        assert text_model is not None
        for field_name, asked in (("logprobs", body.logprobs is not None), ("echo", body.echo)):
            if asked:
                raise ServeError(400, f"{field_name}: model {served.name!r} is an n-gram model, which writes texts "
                                 "word by word; it gives no token log-probabilities", field_name)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ServeError(400, f"prompt: model {served.name!r} is an n-gram model; it reads text (a string or "
                             "a list of strings), not token ids", "prompt")
        if body.max_tokens > settings.max_tokens:
            raise ServeError(400, f"max_tokens: at most {settings.max_tokens}", "max_tokens")
        if len(prompts) * body.n > settings.max_waiting:
            raise ServeError(400, f"prompt: at most {settings.max_waiting} choices per request", "prompt")
        if served.jobs_waiting >= settings.max_waiting:
            raise queue_full()
        stops = body.stops
        asks = [(prompt, GenerationParams(max_new_tokens=body.max_tokens, temperature=body.temperature,
                                          top_p=body.top_p if body.top_p < 1 else None, top_k=body.top_k, stop=stops,
                                          seed=None if body.seed is None else body.seed + j))
                for prompt in prompts for j in range(body.n)]
        served.jobs_waiting += 1  # only the event loop's thread counts, so no lock
        try:
            texts = await asyncio.wrap_future(loop.call(
                lambda: [text_model.generate([prompt], params)[0] for prompt, params in asks]))
        finally:
            served.jobs_waiting -= 1
        units = [text_model.predicted_units(text) - 1 for text in texts]  # its units, not the end after them
        reasons = ["length" if count >= body.max_tokens else "stop" for count in units]
        prompt_units = sum(text_model.predicted_units(prompt) - 1 for prompt in prompts)
        counts = {"prompt_tokens": prompt_units, "completion_tokens": sum(units),
                  "total_tokens": prompt_units + sum(units)}
        header = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                  "model": served.name}
        choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                   for i, (text, reason) in enumerate(zip(texts, reasons, strict=True))]
        if not body.stream:
            return JSONResponse({**header, "choices": choices, "usage": counts})

        async def stream() -> AsyncIterator[str]:
            for choice in choices:
                yield sse({**header, "choices": [{**choice, "finish_reason": None}]})
                yield sse({**header, "choices": [{**choice, "text": ""}]})
            for line in stream_end(body.include_usage, header, counts):
                yield line

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = parsed(CompletionRequest, await read_json(request))
        served = find_model(body.model, "generate")
        if served.text_model is not None:
            return await text_completions(served, body)
        prompts = await asyncio.to_thread(prompt_ids, served, body.prompt)  # a long prompt must not stall the loop
        check_room(served, prompts, body.max_tokens, "max_tokens")
        stops = body.stops
        eos = served.tokenizer.eos_id
        end_ids = frozenset() if eos is None else frozenset({eos})
        events, put = event_queue()
        seqs = sequences(served, body, prompts, body.max_tokens, end_ids, body.logprobs, body.echo, put)
        choices = [ChoiceText(served.tokenizer, s.prompt, stops, chat=False) for s in seqs]
        engine = served.engine
        assert engine is not None
        ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        heads = [served.tokenizer.decode(s.prompt) for s in seqs] if body.echo else None

        def logprobs_of(index: int) -> dict[str, Any] | None:
            if body.logprobs is None:
                return None
            return completion_logprobs(served.tokenizer, choice_entries(choices[index]))

        if not body.stream:
            async for _ in run_choices(request, engine, seqs, choices, events, streaming=False):
                pass
            return JSONResponse({
                "id": ident, "object": "text_completion", "created": created, "model": served.name,
                "choices": [{"index": i, "text": (heads[i] if heads else "") + c.text, "logprobs": logprobs_of(i),
                             "finish_reason": c.finish_reason} for i, c in enumerate(choices)],
                "usage": usage(prompts, choices),
            })

        async def stream() -> AsyncIterator[str]:
            def chunk(index: int, text: str, logprobs: Any, finish: str | None) -> str:
                return sse({"id": ident, "object": "text_completion", "created": created, "model": served.name,
                            "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}]})

            async for index, piece, event in run_choices(request, engine, seqs, choices, events, streaming=True):
                if isinstance(event, PromptEvent):
                    if heads:
                        yield chunk(index, heads[index], None, None)
                elif isinstance(event, TokenEvent):
                    logprobs = None
                    if body.logprobs is not None:
                        logprobs = completion_logprobs(served.tokenizer, [(event.token, event.logprob, event.top)],
                                                       len(choices[index].text) - len(piece))
                    if piece or logprobs:
                        yield chunk(index, piece, logprobs, None)
                else:
                    yield chunk(index, piece, None, choices[index].finish_reason)
            for line in stream_end(body.include_usage, {"id": ident, "object": "text_completion", "created": created,
                                                        "model": served.name}, usage(prompts, choices)):
                yield line

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = parsed(ChatRequest, await read_json(request))
        served = find_model(body.model, "chat")
        chat = served.chat
        assert chat is not None
        try:
            prompt = await asyncio.to_thread(chat.prompt_ids, [m.model_dump(exclude={"name"}) for m in body.messages])
        except LmlabError as exc:
            raise ServeError(400, str(exc), "messages") from None
        # Unasked, a reply may fill the context; asked for, too many tokens is refused as in completions.
        max_tokens = body.reply_limit or max(1, min(served.block_size - len(prompt), settings.max_tokens))
        field_name = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        check_room(served, [prompt], max_tokens, field_name)
        eos = served.tokenizer.eos_id
        end_ids = frozenset({chat.end_id} if eos is None else {chat.end_id, eos})
        top = (body.top_logprobs or 0) if body.logprobs else None
        events, put = event_queue()
        seqs = sequences(served, body, [prompt], max_tokens, end_ids, top, False, put)
        choices = [ChoiceText(served.tokenizer, prompt, body.stops, chat=True) for _ in seqs]
        engine = served.engine
        assert engine is not None
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        if not body.stream:
            async for _ in run_choices(request, engine, seqs, choices, events, streaming=False):
                pass
            return JSONResponse({
                "id": ident, "object": "chat.completion", "created": created, "model": served.name,
                "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                             "logprobs": chat_logprobs(served.tokenizer, c.tokens) if body.logprobs else None,
                             "finish_reason": c.finish_reason} for i, c in enumerate(choices)],
                "usage": usage([prompt], choices),
            })

        async def stream() -> AsyncIterator[str]:
            def chunk(index: int, delta: dict[str, Any], logprobs: Any, finish: str | None) -> str:
                return sse({"id": ident, "object": "chat.completion.chunk", "created": created, "model": served.name,
                            "choices": [{"index": index, "delta": delta, "logprobs": logprobs,
                                         "finish_reason": finish}]})

            for index in range(len(seqs)):
                yield chunk(index, {"role": "assistant", "content": ""}, None, None)
            async for index, piece, event in run_choices(request, engine, seqs, choices, events, streaming=True):
                if isinstance(event, TokenEvent):
                    logprobs = chat_logprobs(served.tokenizer, [event]) if body.logprobs else None
                    if piece or logprobs:
                        yield chunk(index, {"content": piece}, logprobs, None)
                elif isinstance(event, EndEvent):
                    yield chunk(index, {"content": piece} if piece else {}, None, choices[index].finish_reason)
            for line in stream_end(body.include_usage, {"id": ident, "object": "chat.completion.chunk",
                                                        "created": created, "model": served.name},
                                   usage([prompt], choices)):
                yield line

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = parsed(EmbeddingRequest, await read_json(request))
        served = find_model(body.model, "embed")
        inputs = body.input
        if isinstance(inputs, str):
            texts = [inputs]
        elif inputs and all(isinstance(t, str) for t in inputs):
            texts = list(inputs)
        elif inputs and all(isinstance(t, int) for t in inputs):
            texts = [served.tokenizer.decode(list(inputs))]
        elif inputs and all(isinstance(t, list) for t in inputs):
            texts = [served.tokenizer.decode(list(t)) for t in inputs]
        else:
            raise ServeError(400, "input: a string, a list of strings, token ids or lists of token ids", "input")
        if len(texts) > 2048 or any(not t for t in texts):
            raise ServeError(400, "input: 1 to 2048 non-empty texts", "input")
        if body.dimensions is not None:
            raise ServeError(400, "dimensions: lmlab's embeddings keep the model's width", "dimensions")
        embedder = served.embedder

        def embed() -> tuple[list[Any], int]:
            return embedder(texts, pooling="mean"), sum(len(served.tokenizer.encode(t)) for t in texts)

        try:
            vectors, tokens = await asyncio.wrap_future(loop.call(embed))
        except LmlabError as exc:
            raise ServeError(400, str(exc), "input") from None
        if body.encoding_format == "base64":
            vectors = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return JSONResponse({"object": "list", "model": served.name, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/v1/pipelines/{task}")
    async def pipelines(task: str, request: Request) -> Response:
        if task not in HTTP_PIPELINES:
            raise ServeError(404, f"no pipeline {task!r} here; these are served: {', '.join(HTTP_PIPELINES)}",
                             code="pipeline_not_found", kind="not_found_error")
        body = parsed(PipelineRequest, await read_json(request))
        served = find_model(body.model, "pipeline")
        if task not in served.tasks:
            does = ", ".join(served.tasks) or "none"
            raise ServeError(400, f"model {served.name!r} does not do {task}; its pipelines: {does}", "model")
        count = len(body.inputs) if isinstance(body.inputs, list) else 1
        if count > 2048:
            raise ServeError(400, "inputs: at most 2048 per request", "inputs")

        def answer() -> Any:
            if task not in served.pipelines:
                served.pipelines[task] = pipeline(task, served.path, device=settings.device)
                quantize(served.pipelines[task].model, settings.quantize)
            return served.pipelines[task](body.inputs, **body.options)

        try:
            outputs = await asyncio.wrap_future(loop.call(answer))
        except (LmlabError, TypeError, ValueError) as exc:  # what the inputs or options asked for was wrong
            raise ServeError(400, f"{task}: {exc}", "inputs") from None
        return JSONResponse({"object": "pipeline.result", "model": served.name, "task": task, "outputs": outputs})

    return app


def serve(sources: list[str], settings: ServeSettings) -> None:
    """Serve `sources` until interrupted: the HTTP server on a thread, the torch work on this one.

    SIGTERM or Ctrl-C lets streams in flight finish (up to a minute; a second Ctrl-C cuts them), then
    the process ends by the signal it got, as a service manager expects.
    """
    import uvicorn

    models = [served_model(source, settings) for source in sources]
    if len({m.name for m in models}) < len(models):
        raise LmlabError("serve: two runs have the same folder name; serve them from differently named folders")
    device = DeviceLoop([m.engine for m in models if m.engine is not None])
    server = uvicorn.Server(uvicorn.Config(create_app(models, settings, device), host=settings.host,
                                           port=settings.port, log_level="warning", timeout_graceful_shutdown=60))
    received: list[int] = []

    def on_signal(number: int, frame: object) -> None:
        server.force_exit = bool(received) and number == signal.SIGINT
        received.append(number)
        server.should_exit = True

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, on_signal)
    http = threading.Thread(target=server.run, name="lmlab-http")
    http.start()
    device.run(until=lambda: not http.is_alive())
    http.join()
    if not server.started:
        raise LmlabError(f"serve: could not listen on {settings.host}:{settings.port} (is the port taken?)")
    if received:
        signal.signal(received[0], signal.SIG_DFL)
        signal.raise_signal(received[0])
