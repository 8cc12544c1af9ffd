"""question-answering: a run of `lmlab tune task=qa` finds the answer to a question in a context."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lmlab.errors import LmlabError
from lmlab.pipelines.base import Pipeline
from lmlab.pipelines.checks import check_tuned_task
from lmlab.runs import Run
from lmlab.tune.encoding import pad_batch
from lmlab.tune.tasks.qa import best_spans, qa_windows


class QuestionAnsweringPipeline(Pipeline):
    """The best answer span of a context: ``qa(question=..., context=...)``, or a {question, context} dict or a
    list of them, as transformers takes them. Long contexts are read in windows (doc_stride), and
    the answer is the legal span (inside the context, at most max_answer_len tokens) of highest
    probability p(start) x p(end), each a softmax over its window's context tokens."""

    kinds = ("task",)
    options = ("doc_stride", "max_answer_len")

    @classmethod
    def check_model(cls, task: str, run: Run) -> None:
        check_tuned_task(task, run, "qa")

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        return f"{text}\t{answer['answer']!r} {answer['score']:.3f} [{answer['start']}:{answer['end']}]"

    def __call__(self, inputs: Any = None, *, question: str | None = None, context: str | None = None,
                 **options: Any) -> Any:
        if inputs is None:
            if question is None or context is None:
                raise LmlabError("question-answering: give question= and context=, or {question, context} dicts")
            inputs = {"question": question, "context": context}
        single = isinstance(inputs, dict)
        pairs = [inputs] if single else list(inputs)
        for index, pair in enumerate(pairs):
            if not isinstance(pair, dict) or not isinstance(pair.get("question"), str) or not isinstance(
                    pair.get("context"), str):
                raise LmlabError(f"question-answering: input {index} is not a {{question, context}} pair of texts")
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise LmlabError(f"question-answering: unknown option {unknown[0]!r} (it takes "
                             f"{', '.join(self.options)})")
        # A quarter of the block by default, the share transformers' 128 of 384 is, near enough.
        doc_stride = options.get("doc_stride") or self.model.config.block_size // 4
        max_answer_len = options.get("max_answer_len", 30)
        answers = []
        with torch.inference_mode():
            for pair in pairs:
                answers.append(self._answer(pair["question"], pair["context"], doc_stride, max_answer_len))
        return answers[0] if single else answers

    def _answer(self, question: str, context: str, doc_stride: int, max_answer_len: int) -> dict[str, Any]:
        windows = qa_windows(self.tokenizer, question, context, self.model.config.block_size, doc_stride)
        best = {"score": 0.0, "start": 0, "end": 0, "answer": ""}
        for start in range(0, len(windows[0]), self.batch_size):
            rows = range(start, min(start + self.batch_size, len(windows[0])))
            ids, mask = self._padded([windows[0][i] for i in rows])
            types, _ = pad_batch([windows[1][i] for i in rows], 0)
            logits = self.model(ids, attention_mask=mask, token_type_ids=types.to(self.device)).logits.float().cpu()
            for r, i in enumerate(rows):
                offsets = windows[2][i]
                inside = torch.tensor([offset is not None for offset in offsets])
                window = logits[r, : len(offsets)].masked_fill(~inside[:, None], float("-inf"))
                log_probs = window.log_softmax(dim=0).numpy()  # (T, 2) over the context's tokens
                spans = best_spans(log_probs[:, 0], log_probs[:, 1], offsets, max_answer_length=max_answer_len)
                if spans and np.exp(spans[0][0]) > best["score"]:
                    first, last = offsets[spans[0][1]][0], offsets[spans[0][2]][1]  # type: ignore[index]
                    best = {"score": float(np.exp(spans[0][0])), "start": first, "end": last,
                            "answer": context[first:last]}
        return best
