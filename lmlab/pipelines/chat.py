"""chat: a chat run (one tuned with `lmlab tune task=sft`, dpo or grpo) answers conversations.

    [{role, content}, ...] ──the run's chat template──> ids up to "<|im_start|>assistant\\n"
                           ──decoder, until the end-of-turn token──> the assistant's reply

As in transformers, a conversation in gives it back with the reply appended:

    >>> chat = lmlab.pipeline("chat", model="runs/chat")
    >>> chat([{"role": "user", "content": "What is 17 + 25?"}])
    [{'generated_text': [{'role': 'user', 'content': 'What is 17 + 25?'}, {'role': 'assistant', 'content': '42'}]}]

`text-generation` takes conversations too, on a chat run, and answers them the same way. `Conversation`
keeps a dialogue going (a system prompt, the turns so far, streaming), for `lmlab chat`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmlab.datasets.chat import check_reply
from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams, generate_ids, ready_pieces, stream_tokens
from lmlab.metrics.paired import mcnemar
from lmlab.modes import evaluating
from lmlab.pipelines.base import Pipeline
from lmlab.runs import Run, open_run
from lmlab.tokenizers import Tokenizer
from lmlab.tokenizers.chat import ChatTemplate, check_messages

Messages = list[dict[str, str]]


class ChatModel:
    """A decoder, its tokenizer and its chat template: conversations in, the assistant's replies out."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, template: ChatTemplate):
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.end_id = template.end_of_turn_id(tokenizer)

    @classmethod
    def from_run(cls, run: Run, device: torch.device | str | None = None) -> ChatModel:
        template = run.chat_template()
        if run.family_class.kind != "decoder" or template is None:
            raise run.refusal("chat needs a chat run: a decoder tuned with lmlab tune task=sft (then dpo or grpo), "
                              "which keeps its chat template")
        return cls(run.model(device), run.tokenizer(), template)

    def prompt_ids(self, messages: Messages) -> list[int]:
        check_messages(messages, "conversation")
        if messages and messages[-1]["role"] == "assistant":
            raise LmlabError("conversation: it ends with the assistant's turn; the last message must be the user's")
        return self.template.encode(self.tokenizer, messages, add_generation_prompt=True).ids

    def fitted(self, prompts: Sequence[list[int]], params: GenerationParams) -> GenerationParams:
        """`params` with a reply no longer than the room the longest prompt leaves in the model's context
        (a conversation is never cut from the left: its first turn opens the template)."""
        block, longest = self.model.config.block_size, max(map(len, prompts))
        if longest >= block:
            raise LmlabError(f"conversation: {longest} tokens fill the model's context of {block}; start over "
                             "(/reset in lmlab chat) or send a shorter message")
        return params.model_copy(update={"max_new_tokens": min(params.max_new_tokens, block - longest)})

    def replies(self, conversations: Sequence[Messages], params: GenerationParams) -> list[str]:
        """The reply to each conversation, generated as one batch."""
        prompts = [self.prompt_ids(messages) for messages in conversations]
        with evaluating(self.model):
            ids = generate_ids(self.model, prompts, self.fitted(prompts, params), eos_id=self.end_id)
        return [self.tokenizer.decode(reply, skip_special_tokens=True) for reply in ids]

    def stream(self, messages: Messages, params: GenerationParams) -> Iterator[str]:
        """The reply to `messages`, piece by piece as it is generated."""
        prompt, reply = self.prompt_ids(messages), []
        params = self.fitted([prompt], params)

        def versions() -> Iterator[str]:
            for token in stream_tokens(self.model, prompt, params, eos_id=self.end_id):
                reply.append(token)
                yield self.tokenizer.decode(reply, skip_special_tokens=True)

        yield from ready_pieces(versions(), params.stop)


class Conversation:
    """A dialogue with a chat model: an optional system prompt, then the user's and the assistant's turns."""

    def __init__(self, chat: ChatModel, system: str | None = None, params: GenerationParams | None = None):
        self.chat, self.system = chat, system
        self.params = params or GenerationParams(max_new_tokens=128, temperature=0.7)
        self.turns: Messages = []

    @property
    def messages(self) -> Messages:
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.turns

    def reset(self) -> None:
        """Forget the turns so far (the system prompt stays)."""
        self.turns = []

    def send(self, text: str) -> Iterator[str]:
        """The reply to `text`, streamed; it joins the conversation once complete."""
        self.turns.append({"role": "user", "content": text})
        pieces = []
        try:
            for piece in self.chat.stream(self.messages, self.params):
                pieces.append(piece)
                yield piece
        except BaseException:
            self.turns.pop()  # an interrupted turn leaves no half a reply behind
            raise
        self.turns.append({"role": "assistant", "content": "".join(pieces)})


def checked_replies(chat: ChatModel, records: Sequence[dict[str, Any]], max_new_tokens: int = 24,
                    ) -> tuple[list[str], list[bool]]:
    """Greedy replies to each record's prompt (its messages before the last) and whether each is right by
    the record's exact checker (`lmlab.datasets.chat.check_reply`)."""
    replies = chat.replies([record["messages"][:-1] for record in records],
                           GenerationParams(temperature=0, max_new_tokens=max_new_tokens))
    return replies, [check_reply(record, reply) for record, reply in zip(records, replies, strict=True)]


def compare_answers(runs: Sequence[str | Path], records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each chat run's greedy exact match on `records`, overall and per kind, and its questions gained and
    lost against the first run's with McNemar's exact p (`lmlab.metrics.paired`)."""
    kinds = sorted({str(record.get("kind", "")) for record in records} - {""})
    results: list[dict[str, Any]] = []
    first: list[bool] | None = None
    for run in runs:
        _, right = checked_replies(ChatModel.from_run(open_run(run), "cpu"), records)
        first = right if first is None else first
        by_kind = {kind: [ok for record, ok in zip(records, right, strict=True) if record.get("kind") == kind]
                   for kind in kinds}
        results.append({"run": str(run), "exact_match": sum(right) / len(right),
                        "kinds": {kind: sum(oks) / len(oks) for kind, oks in by_kind.items()},
                        **mcnemar(first, right).to_dict()})
    return results


def is_conversation(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(message, dict) for message in value)


def answered(conversations: Sequence[Messages], replies: Sequence[str]) -> list[Any]:
    """transformers' answer shape: each conversation with the assistant's reply appended."""
    return [[{"generated_text": [*messages, {"role": "assistant", "content": reply}]}]
            for messages, reply in zip(conversations, replies, strict=True)]


def is_conversations(value: Any) -> bool:
    """A conversation, or a non-empty list of them."""
    return is_conversation(value) and bool(value) or (
        isinstance(value, list) and bool(value) and all(map(is_conversation, value)) and all(value))


def answer_conversations(chat: ChatModel, inputs: Any, options: dict[str, Any], task: str,
                         batch_size: int) -> Any:
    """The answers of a chat call: one conversation gives one answer, a list of conversations a list."""
    if not is_conversations(inputs):
        raise LmlabError(f"{task}: give a conversation, a list of {{role, content}} messages, or a list of them")
    single = is_conversation(inputs)
    conversations = [inputs] if single else inputs
    unknown = sorted(set(options) - set(GenerationParams.model_fields))
    if unknown:
        raise LmlabError(f"{task}: unknown option {unknown[0]!r} (it takes {', '.join(GenerationParams.model_fields)})")
    params = GenerationParams(**options)
    answers: list[Any] = []
    with torch.inference_mode():
        for start in range(0, len(conversations), batch_size):
            part = conversations[start:start + batch_size]
            answers += answered(part, chat.replies(part, params))
    return answers[0] if single else answers


class ChatPipeline(Pipeline):
    """Answer conversations (lists of {role, content}); the options are `GenerationParams`'."""

    kinds = ("decoder",)
    needs_head = True
    options = tuple(GenerationParams.model_fields)

    @classmethod
    def from_run(cls, task: str, run: Run, device: torch.device, batch_size: int) -> ChatPipeline:
        chat = ChatModel.from_run(run, device)
        return cls(task, chat, chat.tokenizer, device, batch_size, run.path)

    def __call__(self, inputs: Any, **options: Any) -> Any:
        """One conversation (a list of messages) gives one answer; a list of conversations, a list of answers."""
        return answer_conversations(self.model, inputs, options, self.task, self.batch_size)

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        return "\n".join(a["generated_text"][-1]["content"] for a in answer)
