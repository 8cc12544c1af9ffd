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
    text-generation       a GPT, RNN, MLP or n-gram run                  [{generated_text}]
    token-classification  a run of `lmlab tune task=tagging`             [{entity_group, score, word, start, end}]
    question-answering    a run of `lmlab tune task=qa`; call it with    {answer, score, start, end}
                          question=..., context=...

`model` is a run or model directory (model.json), a Hugging Face BERT directory (config.json), or
the name of pretrained weights (`lmlab.datasets.weights`). A string in gives one text's answer; a
list in gives a list of answers, in order. Each task reads text the way its model was trained to:
a classifier frames and cuts texts exactly as `lmlab tune` did, a BERT gets ``[CLS] ... [SEP]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmlab.datasets.weights import WEIGHTS, pretrained_directory
from lmlab.errors import LmlabError
from lmlab.evaluate import CausalLanguageModel, LanguageModel
from lmlab.generate import GenerationParams
from lmlab.models import load_model, read_model_json
from lmlab.models.hf_bert import load_bert_directory
from lmlab.tokenizers import Tokenizer
from lmlab.tune.model import Pooling, pool
from lmlab.tune.tasks import frame_text, pad_batch

# Tasks whose pipelines live beside their heads (lmlab.tune.heads), for runs of `lmlab tune task=qa|tagging`.
HEAD_TASKS = ("question-answering", "token-classification")

POOLINGS = ("mean", "first", "last")


class Pipeline:
    """Text in, answers out. A subclass names its `options` and writes `_run` for one batch of texts."""

    options: tuple[str, ...] = ()  # the keyword arguments a call accepts

    def __init__(self, task: str, model: Any, tokenizer: Tokenizer | None, device: torch.device, batch_size: int,
                 source: Path):
        self.task, self.model, self.tokenizer, self.device, self.batch_size, self.source = (
            task, model, tokenizer, device, batch_size, source)

    def __call__(self, inputs: str | Sequence[str], **options: Any) -> Any:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            takes = ", ".join(self.options) or "no options"
            raise LmlabError(f"{self.task}: unknown option {unknown[0]!r} (it takes {takes})")
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise LmlabError(f"{self.task}: input {index} is a {type(text).__name__}, not a text")
        self._check(options)
        answers: list[Any] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                answers += self._run(texts[start : start + self.batch_size], start, **options)
        return answers[0] if single else answers

    def _check(self, options: dict[str, Any]) -> None:
        """Validate a call's options once, before any text is computed."""

    def _run(self, texts: list[str], first_index: int, **options: Any) -> list[Any]:
        raise NotImplementedError

    def _padded(self, rows: list[list[int]]) -> tuple[Tensor, Tensor]:
        pad_id = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        ids, mask = pad_batch(rows, pad_id)
        return ids.to(self.device), mask.to(self.device)


def _top_k(top_k: Any, task: str) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise LmlabError(f"{task}: top_k must be a whole number >= 1 (or None), got {top_k!r}")


class TextClassificationPipeline(Pipeline):
    """A fine-tuned classifier: the probability of each label, from a softmax over the head's logits."""

    options = ("top_k",)

    def _check(self, options: dict[str, Any]) -> None:
        _top_k(options.get("top_k", 1), self.task)

    def _run(self, texts: list[str], first_index: int, top_k: int | None = 1) -> list[Any]:
        labels = self.model.config.labels
        # The very framing and cut the model was tuned on.
        rows = [frame_text(text, self.tokenizer, self.model.config.block_size) for text in texts]
        ids, mask = self._padded(rows)
        probs = self.model(ids, attention_mask=mask).logits.float().softmax(dim=-1).cpu()  # (B, K)
        answers = []
        for row in probs:
            order = row.argsort(descending=True)[:top_k]
            answers.append([{"label": labels[i], "score": float(row[i])} for i in order.tolist()])
        return answers


class FillMaskPipeline(Pipeline):
    """A BERT's masked-LM head: the likeliest tokens for each ``[MASK]``, as transformers' fill-mask reports them."""

    options = ("top_k",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mask_id = self.tokenizer.token_to_id("[MASK]")
        if self.mask_id is None:
            raise LmlabError(f"{self.source}: the tokenizer has no [MASK] token to fill")

    def _check(self, options: dict[str, Any]) -> None:
        _top_k(options.get("top_k", 5), self.task)

    def _run(self, texts: list[str], first_index: int, top_k: int | None = 5) -> list[Any]:
        rows = [self.tokenizer.encode(text, add_special_tokens=True) for text in texts]
        for index, row in enumerate(rows, start=first_index):
            if self.mask_id not in row:
                raise LmlabError(f"{self.task}: text {index} has no [MASK] to fill")
            if len(row) > self.model.config.block_size:
                raise LmlabError(f"{self.task}: text {index} is {len(row)} tokens, more than the model's "
                                 f"{self.model.config.block_size} positions")
        ids, mask = self._padded(rows)
        logits = self.model(ids, attention_mask=mask).logits  # (B, T, V)
        answers = []
        for r, row in enumerate(rows):
            positions = [p for p, token in enumerate(row) if token == self.mask_id]
            single = len(positions) == 1
            per_mask = []
            for p in positions:
                probs = logits[r, p].float().softmax(dim=-1)  # (V,)
                scores, tokens = probs.topk(min(top_k or probs.numel(), probs.numel()))
                predictions = []
                for score, token in zip(scores.tolist(), tokens.tolist(), strict=True):
                    filled = row[:p] + [token] + row[p + 1 :]
                    # With several masks the others stay in the sequence, so special tokens are kept visible.
                    predictions.append({"score": score, "token": token, "token_str": self.tokenizer.decode([token]),
                                        "sequence": self.tokenizer.decode(filled, skip_special_tokens=single)})
                per_mask.append(predictions)
            answers.append(per_mask[0] if single else per_mask)
        return answers


class FeatureExtractionPipeline(Pipeline):
    """Hidden states of the last layer: one vector per token, or one per text pooled from them.

    `normalize` (unit length, so a dot product is a cosine) defaults to what the model was trained
    for: on for a sentence-transformers directory whose modules end in Normalize (all-MiniLM-L6-v2,
    whose normalised mean pooling is its sentence embedding), off otherwise.
    """

    options = ("pooling", "normalize")

    def __init__(self, *args: Any, max_length: int, normalize: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_length, self.normalize = max_length, normalize
        self.framed = self.tokenizer.token_to_id("[CLS]") is not None  # BERT reads [CLS] text [SEP]

    def _check(self, options: dict[str, Any]) -> None:
        pooling = options.get("pooling")
        if pooling is not None and pooling not in POOLINGS:
            raise LmlabError(f"feature-extraction: pooling must be one of {', '.join(POOLINGS)} or None, "
                             f"got {pooling!r}")
        if pooling is None and options.get("normalize"):
            raise LmlabError("feature-extraction: normalize applies to pooled vectors; give pooling too")

    def _run(self, texts: list[str], first_index: int, pooling: Pooling | None = None,
             normalize: bool | None = None) -> list[Any]:
        rows = []
        for index, text in enumerate(texts, start=first_index):
            tokens = self.tokenizer.encode(text, add_special_tokens=self.framed)
            if len(tokens) > self.max_length:  # keep [SEP] last, as the model always saw it
                tokens = tokens[: self.max_length - 1] + tokens[-1:] if self.framed else tokens[: self.max_length]
            if not tokens:
                raise LmlabError(f"{self.task}: text {index} encodes to no tokens")
            rows.append(tokens)
        ids, mask = self._padded(rows)
        hidden = self.model.features(input_ids=ids, attention_mask=mask).float()  # (B, T, H)
        if pooling is None:
            return [hidden[r, : len(row)].cpu().tolist() for r, row in enumerate(rows)]
        vectors = pool(hidden, mask, pooling)  # (B, H)
        if self.normalize if normalize is None else normalize:
            vectors = F.normalize(vectors, p=2, dim=-1)
        return vectors.cpu().tolist()


class TextGenerationPipeline(Pipeline):
    """Continue each prompt; the options are `GenerationParams`' (max_new_tokens, temperature, top_k, ...)."""

    options = tuple(GenerationParams.model_fields)

    def _check(self, options: dict[str, Any]) -> None:
        GenerationParams(**options)

    def _run(self, texts: list[str], first_index: int, **options: Any) -> list[Any]:
        lm: LanguageModel = self.model
        continuations = lm.generate(texts, GenerationParams(**options))
        return [[{"generated_text": text + new}] for text, new in zip(texts, continuations, strict=True)]


PIPELINES: dict[str, type[Pipeline]] = {
    "sentiment-analysis": TextClassificationPipeline,
    "text-classification": TextClassificationPipeline,
    "fill-mask": FillMaskPipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "text-generation": TextGenerationPipeline,
}


def pipeline(task: str, model: str | os.PathLike[str], device: str | torch.device | None = None,
             batch_size: int = 16) -> Pipeline:
    """A callable that runs `task` with `model` (a run or model directory, a Hugging Face BERT directory,
    or named pretrained weights) on `device` (default: CUDA when there is one), `batch_size` texts at a time."""
    if task not in PIPELINES and task not in HEAD_TASKS:
        raise LmlabError(f"unknown pipeline task {task!r}; known: {', '.join([*PIPELINES, *HEAD_TASKS])}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LmlabError(f"pipeline: batch_size must be a whole number >= 1, got {batch_size!r}")
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    folder = _locate(model)
    family = _family(folder)
    if task in HEAD_TASKS:
        from lmlab.tune.heads import head_pipeline

        return head_pipeline(task, folder, family, device, batch_size)
    cls = PIPELINES[task]
    args = (device, batch_size, folder)  # after (task, model, tokenizer)

    if cls is TextGenerationPipeline:
        if family == "ngram":
            from lmlab.runs import load_language_model  # the n-gram model's own LanguageModel

            return TextGenerationPipeline(task, load_language_model(folder), None, *args)
        net, tokenizer = _load(folder, family, device)
        if not hasattr(net, "new_cache"):
            raise LmlabError(f"{folder}: text-generation needs a causal language model (gpt, rnn, mlp or ngram), "
                             f"not a {family} model")
        if tokenizer.eos_id is None:
            raise LmlabError(f"{folder}/tokenizer.json: no end-of-text token for generation to stop at")
        return TextGenerationPipeline(task, CausalLanguageModel(net, tokenizer), tokenizer, *args)

    if family == "ngram":
        raise LmlabError(f"{folder}: {task} needs a neural network; an n-gram run only does text-generation")
    if cls is TextClassificationPipeline and family != "tuned":
        raise LmlabError(f"{folder}: {task} needs a classifier fine-tuned with `lmlab tune` (model.json family "
                         f"'tuned'), not a {family} model")
    if cls is FillMaskPipeline:
        if family not in ("bert", "hf-bert"):
            raise LmlabError(f"{folder}: fill-mask needs a BERT (a masked language model), not a {family} model")
        if family == "hf-bert" and not _has_mlm_head(folder):
            raise LmlabError(f"{folder}: this BERT directory has no masked-LM head (cls.predictions), so it cannot "
                             "fill masks (all-MiniLM-L6-v2 ships only the encoder); use it for feature-extraction")
    net, tokenizer = _load(folder, family, device)
    if cls is FeatureExtractionPipeline:
        if not hasattr(net, "features"):
            raise LmlabError(f"{folder}: feature-extraction needs a bert or gpt backbone, not a {family} model")
        return FeatureExtractionPipeline(task, net, tokenizer, *args, max_length=_max_length(folder, net),
                                         normalize=_sentence_transformers_normalizes(folder))
    return cls(task, net, tokenizer, *args)


# ---- finding and loading the model ------------------------------------------------------------------

def _locate(model: str | os.PathLike[str]) -> Path:
    path = Path(model)
    if path.is_dir():
        return path
    if str(model) in WEIGHTS:
        return pretrained_directory(str(model))
    raise LmlabError(f"model {str(model)!r}: no such directory, and not named pretrained weights "
                     f"(known: {', '.join(sorted(WEIGHTS))})")


def _family(folder: Path) -> str:
    """The family in model.json, or "hf-bert" for a Hugging Face directory."""
    if (folder / "model.json").exists():
        return read_model_json(folder / "model.json")[0]
    if (folder / "config.json").exists():
        return "hf-bert"
    raise LmlabError(f"{folder}: neither an lmlab run or model directory (model.json) nor a Hugging Face "
                     "directory (config.json)")


def _load(folder: Path, family: str, device: torch.device) -> tuple[nn.Module, Tokenizer]:
    if family == "hf-bert":
        net, tokenizer = load_bert_directory(folder)
    else:
        if not (folder / "tokenizer.json").exists():
            raise LmlabError(f"{folder}: no tokenizer.json beside the model")
        net, tokenizer = load_model(folder), Tokenizer.load(folder / "tokenizer.json")
    return net.to(device).eval(), tokenizer


def _has_mlm_head(folder: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        return any(name.startswith("cls.predictions.") for name in weights.keys())  # noqa: SIM118 (safe_open is no dict)


def _max_length(folder: Path, net: nn.Module) -> int:
    """The model's positions, or fewer where sentence-transformers cuts texts (all-MiniLM-L6-v2: 256)."""
    settings = folder / "sentence_bert_config.json"
    limit = json.loads(settings.read_text(encoding="utf-8")).get("max_seq_length") if settings.exists() else None
    return min(net.config.block_size, limit or net.config.block_size)


def _sentence_transformers_normalizes(folder: Path) -> bool:
    modules = folder / "modules.json"
    if not modules.exists():
        return False
    return any(str(module.get("type", "")).endswith(".Normalize")
               for module in json.loads(modules.read_text(encoding="utf-8")))


# ---- answers as text, for the command line ----------------------------------------------------------

def format_answer(task: str, text: str, answer: Any) -> str:
    """One text's answer as a line or two a person reads (what `lmlab pipeline` prints)."""
    if task in ("sentiment-analysis", "text-classification"):
        return f"{text}\t" + ", ".join(f"{a['label']} {a['score']:.3f}" for a in answer)
    if task == "fill-mask":
        per_mask = answer if answer and isinstance(answer[0], list) else [answer]
        return "\n".join(f"{text}\t[MASK] {i + 1}: " + ", ".join(f"{a['token_str']} {a['score']:.3f}" for a in masks)
                         for i, masks in enumerate(per_mask))
    if task == "token-classification":
        return f"{text}\t" + ", ".join(f"{e['entity_group']} {e['word']!r} {e['score']:.3f}" for e in answer)
    if task == "question-answering":
        return f"{text}\t{answer['answer']!r} {answer['score']:.3f} [{answer['start']}:{answer['end']}]"
    if task == "feature-extraction":
        pooled = not isinstance(answer[0], list)
        first = answer if pooled else answer[0]
        shape = f"a vector of {len(answer)}" if pooled else f"{len(answer)} tokens x {len(first)}"
        return f"{text}\t{shape}: [" + ", ".join(f"{v:.4f}" for v in first[:4]) + ", ...]"
    return "\n".join(a["generated_text"] for a in answer)


def json_line(text: str, answer: Any) -> str:
    return json.dumps({"input": text, "output": answer}, ensure_ascii=False)
