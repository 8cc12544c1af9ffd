"""fill-mask: a BERT's masked-LM head proposes the likeliest tokens for each [MASK]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import safe_open

from lmlab.errors import LmlabError
from lmlab.pipelines.base import Pipeline, check_top_k
from lmlab.runs import Run


class FillMaskPipeline(Pipeline):
    """A BERT's masked-LM head: the likeliest tokens for each ``[MASK]``, as transformers' fill-mask reports them."""

    kinds = ("encoder",)
    needs_head = True
    options = ("top_k",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mask_id = self.tokenizer.token_to_id("[MASK]")
        if self.mask_id is None:
            raise LmlabError(f"{self.source}: the tokenizer has no [MASK] token to fill")

    @classmethod
    def check_model(cls, task: str, run: Run) -> None:
        super().check_model(task, run)
        if run.family_class.kind != "encoder":
            raise run.refusal(f"fill-mask needs a BERT (a masked language model), not a {run.family} model")
        folder = run.path
        if not (folder / "model.json").exists() and not _has_mlm_head(folder):  # a Hugging Face directory
            raise LmlabError(f"{folder}: this BERT directory has no masked-LM head (cls.predictions), so it cannot "
                             "fill masks (all-MiniLM-L6-v2 ships only the encoder); use it for feature-extraction")

    @staticmethod
    def format_answer(text: str, answer: Any) -> str:
        per_mask = answer if answer and isinstance(answer[0], list) else [answer]
        return "\n".join(f"{text}\t[MASK] {i + 1}: " + ", ".join(f"{a['token_str']} {a['score']:.3f}" for a in masks)
                         for i, masks in enumerate(per_mask))

    def _check(self, options: dict[str, Any]) -> None:
        check_top_k(options.get("top_k", 5), self.task)

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


def _has_mlm_head(folder: Path) -> bool:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        return any(name.startswith("cls.predictions.") for name in weights.keys())  # noqa: SIM118 (safe_open is no dict)
