"""Pipelines: a trained model put to work on raw text in one line, as in transformers.

    >>> import lmlab
    >>> classify = lmlab.pipeline("sentiment-analysis", model="runs/tune")
    >>> classify("What a lovely film")
    [{'label': 'pos', 'score': 0.97}]

    text ──tokenizer──> ids ──model, batch_size texts at a time──> logits / hidden states ──> plain Python answers

    task                  model                                          answer per text
    sentiment-analysis,   a run of `lmlab tune` (family "tuned")         [{label, score}], best first
      text-classification
    fill-mask             a BERT: lmlab run or Hugging Face directory    [{score, token, token_str, sequence}]
                                                                         for each [MASK]
    feature-extraction    a BERT or GPT: run, directory, or named        hidden states (T, H), or one pooled
                          weights such as all-MiniLM-L6-v2               vector (H,)
    text-generation       a GPT, LLaMA, RNN, MLP or n-gram run           [{generated_text}]; on a chat run
                                                                         conversations too, as chat answers
    chat                  a chat run (lmlab tune task=sft, dpo, grpo)    [{generated_text: the conversation
                          called with [{role, content}, ...]             with the assistant's reply appended}]
    token-classification  a run of `lmlab tune task=tagging`             [{entity_group, score, word, start, end}]
    question-answering    a run of `lmlab tune task=qa`; call it with    {answer, score, start, end}
                          question=..., context=...

`model` is a run or model directory (model.json), a Hugging Face BERT directory (config.json), or
the name of pretrained weights (`lmlab.datasets.weights`). A string in gives one text's answer; a
list in gives a list of answers, in order. Each task reads text the way its model was trained to:
a classifier frames and cuts texts exactly as `lmlab tune` did, a BERT gets ``[CLS] ... [SEP]``.

Each task is one module here, one class in `PIPELINES`; the class checks and loads its model
(`Pipeline.from_run`), so `pipeline` itself knows no task.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from lmlab.errors import LmlabError
from lmlab.pipelines.base import Pipeline
from lmlab.pipelines.chat import ChatPipeline
from lmlab.pipelines.feature_extraction import FeatureExtractionPipeline
from lmlab.pipelines.fill_mask import FillMaskPipeline
from lmlab.pipelines.question_answering import QuestionAnsweringPipeline
from lmlab.pipelines.text_classification import TextClassificationPipeline
from lmlab.pipelines.text_generation import TextGenerationPipeline
from lmlab.pipelines.token_classification import TokenClassificationPipeline
from lmlab.runs import open_run

__all__ = ["PIPELINES", "Pipeline", "format_answer", "json_line", "pipeline"]

PIPELINES: dict[str, type[Pipeline]] = {
    "sentiment-analysis": TextClassificationPipeline,
    "text-classification": TextClassificationPipeline,
    "fill-mask": FillMaskPipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "text-generation": TextGenerationPipeline,
    "chat": ChatPipeline,
    "token-classification": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
}


def pipeline(task: str, model: str | os.PathLike[str], device: str | torch.device | None = None,
             batch_size: int = 16) -> Pipeline:
    """A callable that runs `task` with `model` (a run or model directory, a Hugging Face BERT directory,
    or named pretrained weights) on `device` (default: CUDA when there is one), `batch_size` texts at a time."""
    if task not in PIPELINES:
        raise LmlabError(f"unknown pipeline task {task!r}; known: {', '.join(PIPELINES)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LmlabError(f"pipeline: batch_size must be a whole number >= 1, got {batch_size!r}")
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    return PIPELINES[task].from_run(task, open_run(model), device, batch_size)


# ---- answers as text, for the command line ----------------------------------------------------------

def format_answer(task: str, text: str, answer: Any) -> str:
    """One text's answer as a line or two a person reads (`lmlab pipeline` without --json)."""
    return PIPELINES[task].format_answer(text, answer)


def json_line(text: str, answer: Any) -> str:
    return json.dumps({"input": text, "output": answer}, ensure_ascii=False)
