"""The OpenAI wire format: request bodies as pydantic models, errors in OpenAI's JSON shape.

A field OpenAI defines but lmlab does not implement (``logit_bias``, penalties, ``best_of`` other
than ``n``, ``suffix``) is accepted at its neutral value and refused otherwise, so a client never
believes it got what it did not; a field OpenAI does not define is refused, naming it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_LOGPROBS = 20  # OpenAI allows 5 alternatives on completions and 20 on chat; lm-eval asks for 1


class ServeError(Exception):
    """A request the server refuses: an HTTP status and OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1, description="an extension, as vLLM and transformers serve have it")
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, lt=2**63)
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    @model_validator(mode="after")
    def _neutral_unsupported(self) -> Request:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) != 0:
                raise ValueError(f"{name} is not supported; leave it at 0")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported")
        if self.stream_options and not self.stream:
            raise ValueError("stream_options needs stream: true")
        if self.stream_options and set(self.stream_options) - {"include_usage"}:
            raise ValueError("stream_options takes include_usage only")
        return self

    @property
    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ServeError(400, "stop: up to 4 non-empty strings", "stop")
        return stops

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(Request):
    prompt: Prompt
    max_tokens: int = Field(16, ge=0)
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None

    @model_validator(mode="after")
    def _neutral_completion_fields(self) -> CompletionRequest:
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError("best_of is not supported other than equal to n")
        if self.suffix:
            raise ValueError("suffix (insertion) is not supported")
        return self


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str
    name: str | None = None


class ChatRequest(Request):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)

    @model_validator(mode="after")
    def _top_logprobs_needs_logprobs(self) -> ChatRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    @property
    def reply_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    input: Prompt
    encoding_format: Literal["float", "base64"] = "float"  # base64: little-endian float32, what the openai client asks
    dimensions: int | None = None
    user: str | None = None


def parsed(kind: type[BaseModel], body: Any) -> Any:
    """`body` (decoded JSON) as a `kind` request, or a 400 naming the first field at fault."""
    if not isinstance(body, dict):
        raise ServeError(400, f"the request body must be a JSON object, not {type(body).__name__}")
    try:
        return kind.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field (not part of the OpenAI API, or not served by lmlab)"
        raise ServeError(400, f"{where}: {message}" if where else message, where or None) from None


QuestionAndContext = dict[Literal["question", "context"], str]


class PipelineRequest(BaseModel):
    """POST /v1/pipelines/{task}: a served run's pipeline on `inputs`, with the task's own options."""

    model_config = ConfigDict(extra="forbid")

    model: str
    inputs: str | list[str] | QuestionAndContext | list[QuestionAndContext]
    options: dict[str, Any] = Field(default_factory=dict, description="the task's keyword arguments, e.g. top_k")
