"""text-generation: a GPT, LLaMA, RNN, MLP or n-gram run continues each prompt; a chat run also answers
conversations (lists of {role, content}), as the chat pipeline does."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams
from lmlab.models.language_model import CausalLanguageModel, LanguageModel
from lmlab.pipelines.base import Pipeline
from lmlab.pipelines.chat import ChatModel, answer_conversations
from lmlab.runs import Run


class TextGenerationPipeline(Pipeline):
    """Continue each prompt; the options are `GenerationParams`' (max_new_tokens, temperature, top_k, ...)."""

    kinds = ("decoder", "count-based")
    chat: ChatModel | None = None  # a chat run's, for conversations
    needs_head = True
    options = tuple(GenerationParams.model_fields)

    @classmethod
    def from_run(cls, task: str, run: Run, device: torch.device, batch_size: int) -> TextGenerationPipeline:
        """Any model behind the `LanguageModel` interface: a count-based run's own, or a causal network's."""
        folder = run.path
        try:
            run.family_class.check_scores_text()
        except LmlabError:
            raise run.refusal(f"text-generation needs a causal language model, not a {run.family} model "
                              f"({run.family_class.kind})") from None
        if not issubclass(run.family_class, nn.Module):
            return cls(task, run.language_model(), None, device, batch_size, folder)
        net, tokenizer = run.model(device), run.tokenizer()
        template = run.chat_template()
        if tokenizer.eos_id is None and template is None:
            raise LmlabError(f"{folder}/tokenizer.json: no end-of-text token for generation to stop at")
        pipeline = cls(task, CausalLanguageModel(net, tokenizer), tokenizer, device, batch_size, folder)
        pipeline.chat = None if template is None else ChatModel(net, tokenizer, template)
        return pipeline

    def __call__(self, inputs: Any, **options: Any) -> Any:
        """Texts are continued; conversations, on a chat run, answered (the chat pipeline's answers)."""
        if isinstance(inputs, list) and inputs and not all(isinstance(text, str) for text in inputs):
            if self.chat is None:
                raise LmlabError(f"{self.task}: {self.source} has no chat template, so it continues texts only; "
                                 "tune it with task=sft to answer conversations")
            return answer_conversations(self.chat, inputs, options, self.task, self.batch_size)
        return super().__call__(inputs, **options)

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        return "\n".join(a["generated_text"] for a in answer)

    def _check(self, options: dict[str, Any]) -> None:
        GenerationParams(**options)

    def _run(self, texts: list[str], first_index: int, **options: Any) -> list[Any]:
        lm: LanguageModel = self.model
        continuations = lm.generate(texts, GenerationParams(**options))
        return [[{"generated_text": text + new}] for text, new in zip(texts, continuations, strict=True)]
