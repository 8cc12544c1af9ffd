"""The chat format: turn markers added to any tokenizer, and a Jinja template that lays turns out as text.

A conversation is a list of messages ``{role, content}`` (roles: system, user, assistant). A
language model reads one stream of tokens, so the turns are written into it with markers the
tokenizer keeps whole (ChatML, the layout of Qwen and of OpenAI's early chat models):

    <|im_start|>system\\nYou are helpful.<|im_end|>\\n
    <|im_start|>user\\nWhat is 2 + 3?<|im_end|>\\n
    <|im_start|>assistant\\n5<|im_end|>\\n          the model learns to write "5<|im_end|>"

To ask for a reply, the prompt ends with ``<|im_start|>assistant\\n`` (the generation prompt) and
generation stops at ``<|im_end|>``, the end of the assistant's turn.

The template is Jinja, as in transformers, and a run keeps it in ``chat_template.jinja``; an export
writes it into ``tokenizer_config.json``, so ``apply_chat_template`` in transformers renders the very
ids lmlab trains on (tests/test_chat_template.py checks both languages). ``{% generation %}`` marks
what the assistant writes: lmlab's assistant mask, and transformers' ``return_assistant_tokens_mask``.

Templates are rendered in Jinja's immutable sandbox: a template comes with a run someone handed
you, and must not reach Python's internals.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizers
from jinja2 import TemplateError, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lmlab.errors import LmlabError
from lmlab.files import atomic_path
from lmlab.tokenizers.tokenizer import Tokenizer

START, END = CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
ROLES = ("system", "user", "assistant")
TEMPLATE_FILE = "chat_template.jinja"

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ message['content'] + '<|im_end|>' + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Private-use characters bracket what {% generation %} renders, found and removed after rendering:
# the only way to learn where in the text a block's output landed. A message may not contain them.
_OPEN, _CLOSE = "\ue000", "\ue001"


class _Generation(Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body, bracketed for `ChatTemplate.render_spans`."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_bracket"), [], [], body).set_lineno(lineno)

    def _bracket(self, caller: Any) -> str:
        return _OPEN + caller() + _CLOSE


def with_chat_tokens(tokenizer: Tokenizer) -> Tokenizer:
    """`tokenizer` with the chat markers as special tokens, after its vocabulary (a trained model's ids stay
    where they were; it needs one new embedding row per marker); unchanged if it has them already."""
    missing = [token for token in CHAT_TOKENS if tokenizer.token_to_id(token) is None]
    if not missing:
        return tokenizer
    backend = tokenizers.Tokenizer.from_str(tokenizer.backend.to_str())
    backend.add_special_tokens([tokenizers.AddedToken(token, special=True, normalized=False) for token in missing])
    return Tokenizer(backend)


def check_messages(messages: Any, source: str) -> list[dict[str, str]]:
    """A conversation in DESIGN's instruction format, or an LmlabError naming `source` and the message at fault."""
    if not isinstance(messages, list) or not messages:
        raise LmlabError(f"{source}: messages must be a non-empty list of {{role, content}} objects")
    for index, message in enumerate(messages):
        where = f"{source}: messages[{index}]"
        if not isinstance(message, dict):
            raise LmlabError(f"{where} must be an object with role and content")
        unknown = sorted(set(message) - {"role", "content"})
        if unknown:
            raise LmlabError(f"{where}: unknown field {unknown[0]!r} (a message has role and content)")
        if message.get("role") not in ROLES:
            raise LmlabError(f"{where}.role must be one of {', '.join(ROLES)}, got {message.get('role')!r}")
        if message["role"] == "system" and index > 0:
            raise LmlabError(f"{where}.role: a system message may only come first")
        content = message.get("content")
        if not isinstance(content, str):
            raise LmlabError(f"{where}.content must be a string, got {type(content).__name__}")
        if _OPEN in content or _CLOSE in content or any(token in content for token in CHAT_TOKENS):
            raise LmlabError(f"{where}.content holds a chat marker ({' or '.join(CHAT_TOKENS)}), which would "
                             "forge a turn")
    return messages


@dataclass
class ChatEncoding:
    ids: list[int]
    assistant_mask: list[int]  # 1 on the tokens the assistant writes (inside {% generation %})


@dataclass
class ChatTemplate:
    """A chat template (Jinja source) and how lmlab renders and encodes conversations with it."""

    source: str = CHATML
    origin: str = field(default="chat template", compare=False)  # where it was read, for errors

    def __post_init__(self) -> None:
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_Generation])
        try:
            self._template = environment.from_string(self.source)
        except TemplateError as exc:
            raise LmlabError(f"{self.origin}: not a Jinja template ({exc})") from None

    def render_spans(self, messages: Sequence[dict[str, str]],
                     add_generation_prompt: bool = False) -> tuple[str, list[tuple[int, int]]]:
        """The conversation as text, and the (start, end) characters of each assistant-written span."""
        check_messages(list(messages), "chat")
        try:
            bracketed = self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt)
        except Exception as exc:  # a template is code of its own: any failure of it is the template's defect
            raise LmlabError(f"{self.origin}: rendering failed ({type(exc).__name__}: {exc})") from None
        text: list[str] = []
        spans: list[tuple[int, int]] = []
        length, rest = 0, bracketed
        while (opened := rest.find(_OPEN)) >= 0:
            closed = rest.find(_CLOSE, opened)
            if closed < 0 or _OPEN in rest[opened + 1:closed]:
                raise LmlabError(f"{self.origin}: {{% generation %}} blocks must close and must not nest")
            before, body = rest[:opened], rest[opened + 1:closed]
            spans.append((length + len(before), length + len(before) + len(body)))
            text += [before, body]
            length += len(before) + len(body)
            rest = rest[closed + 1:]
        text.append(rest)
        return "".join(text), spans

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return self.render_spans(messages, add_generation_prompt)[0]

    def encode(self, tokenizer: Tokenizer, messages: Sequence[dict[str, str]],
               add_generation_prompt: bool = False) -> ChatEncoding:
        """The ids of the rendered conversation (the whole text encoded at once, as transformers does), and
        the assistant mask: 1 on each token that starts inside a generation span."""
        text, spans = self.render_spans(messages, add_generation_prompt)
        encoding = tokenizer.backend.encode(text, add_special_tokens=False)
        mask = [int(any(start <= begin < end for start, end in spans)) for begin, _ in encoding.offsets]
        return ChatEncoding(list(encoding.ids), mask)

    @staticmethod
    def end_of_turn_id(tokenizer: Tokenizer) -> int:
        """The id that ends a turn: where a reply stops."""
        token_id = tokenizer.token_to_id(END)
        if token_id is None:
            raise LmlabError(f"the tokenizer has no {END} token; add the chat tokens (with_chat_tokens) first")
        return token_id

    def save(self, run_dir: str | os.PathLike[str]) -> None:
        with atomic_path(Path(run_dir) / TEMPLATE_FILE) as tmp:
            tmp.write_text(self.source, encoding="utf-8")

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> ChatTemplate | None:
        """The template a run keeps, or None if it has none."""
        path = Path(run_dir) / TEMPLATE_FILE
        if not path.exists():
            return None
        try:
            return cls(path.read_text(encoding="utf-8"), origin=str(path))
        except UnicodeDecodeError:
            raise LmlabError(f"{path}: not UTF-8 text") from None
