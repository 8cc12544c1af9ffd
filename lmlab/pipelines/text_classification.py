"""sentiment-analysis, text-classification: a run of `lmlab tune` gives each text its labels' probabilities."""

from __future__ import annotations

from typing import Any

from lmlab.pipelines.base import Pipeline, check_top_k
from lmlab.pipelines.checks import check_tuned_task
from lmlab.runs import Run
from lmlab.tune.encoding import frame_text


class TextClassificationPipeline(Pipeline):
    """A fine-tuned classifier: the probability of each label, from a softmax over the head's logits."""

    kinds = ("task",)
    options = ("top_k",)

    @classmethod
    def check_model(cls, task: str, run: Run) -> None:
        super().check_model(task, run)
        if run.family_class.kind != "task":
            raise run.refusal(f"{task} needs a classifier fine-tuned with `lmlab tune` (model.json family 'tuned'), "
                              f"not a {run.family} model")
        check_tuned_task(task, run, "classification")  # not a tagger's or a reader's head

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        return f"{text}\t" + ", ".join(f"{a['label']} {a['score']:.3f}" for a in answer)

    def _check(self, options: dict[str, Any]) -> None:
        check_top_k(options.get("top_k", 1), self.task)

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
