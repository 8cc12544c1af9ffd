"""text-generation: a GPT, RNN, MLP or n-gram run continues each prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lmlab.errors import LmlabError
from lmlab.generate import GenerationParams
from lmlab.models.language_model import CausalLanguageModel, LanguageModel
from lmlab.pipelines.base import Pipeline
from lmlab.pipelines.loading import load_network
from lmlab.runs import load_language_model


class TextGenerationPipeline(Pipeline):
    """Continue each prompt; the options are `GenerationParams`' (max_new_tokens, temperature, top_k, ...)."""

    options = tuple(GenerationParams.model_fields)

    @classmethod
    def from_folder(cls, task: str, folder: Path, family: str, device: torch.device,
                    batch_size: int) -> TextGenerationPipeline:
        """Any model behind the `LanguageModel` interface: an n-gram run's own, or a causal network's."""
        if family == "ngram":
            return cls(task, load_language_model(folder), None, device, batch_size, folder)
        net, tokenizer = load_network(folder, family, device)
        if not hasattr(net, "new_cache"):
            raise LmlabError(f"{folder}: text-generation needs a causal language model (gpt, rnn, mlp or ngram), "
                             f"not a {family} model")
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
