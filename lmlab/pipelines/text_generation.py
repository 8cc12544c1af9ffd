"""text-generation: a GPT, RNN, MLP or n-gram run continues each prompt."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams
from lmlab.models.language_model import CausalLanguageModel, LanguageModel
from lmlab.pipelines.base import Pipeline
from lmlab.runs import Run


class TextGenerationPipeline(Pipeline):
    """Continue each prompt; the options are `GenerationParams`' (max_new_tokens, temperature, top_k, ...)."""

    kinds = ("decoder", "count-based")
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
        if tokenizer.eos_id is None:
            raise LmlabError(f"{folder}/tokenizer.json: no end-of-text token for generation to stop at")
        return cls(task, CausalLanguageModel(net, tokenizer), tokenizer, device, batch_size, folder)

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        return "\n".join(a["generated_text"] for a in answer)

    def _check(self, options: dict[str, Any]) -> None:
        GenerationParams(**options)

    def _run(self, texts: list[str], first_index: int, **options: Any) -> list[Any]:
        lm: LanguageModel = self.model
        continuations = lm.generate(texts, GenerationParams(**options))
        return [[{"generated_text": text + new}] for text, new in zip(texts, continuations, strict=True)]
