"""lmlab runs inside EleutherAI's lm-evaluation-harness: ``lm_eval --model lmlab --model_args path=RUN``.

lm-eval asks a model three things (``lm_eval.api.model.LM``), and lmlab's `LanguageModel` answers
exactly those, so the adapter only unpacks lm-eval's requests and hands them over:

    lm-eval request                       ──> lmlab LanguageModel
    loglikelihood  (context, continuation) ──> loglikelihood([(context, continuation)])  -> (ll, greedy)
    loglikelihood_rolling  (text,)         ──> loglikelihood_rolling([text])             -> ll
    generate_until (context, gen_kwargs)   ──> generate([context], GenerationParams)      -> text

Every score lm-eval reports (acc, acc_norm, word_perplexity, ...) is then computed from lmlab's own
numbers, for a run of any generation: n-gram, MLP, RNN or GPT.

lm-eval finds "lmlab" through `lmlab._lm_eval_hook`, which a ``.pth`` file in site-packages loads
in every interpreter; ``python -m lmlab.evaluate.lm_eval_adapter install`` writes that file
(``uninstall`` removes it). lm-eval is an optional dependency: only this module imports it.
"""

from __future__ import annotations

import argparse
import json
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

# The built-in table first: lm-eval imports it only while its registry is empty, so registering
# "lmlab" into an empty registry would hide every built-in model.
import lm_eval.models  # noqa: F401
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.utils import simple_parse_args_string
from tqdm import tqdm

from lmlab import _lm_eval_hook
from lmlab.errors import LmlabError
from lmlab.files import write_text
from lmlab.generate import GenerationParams
from lmlab.models.language_model import CausalLanguageModel
from lmlab.runs import open_run

# Sorted after setuptools' "__editable__.lmlab-….pth" (site reads .pth files in name order), so an
# editable install can already import lmlab when this line runs.
PTH_NAME = "lmlab_lm_eval.pth"
PTH_LINE = "import lmlab._lm_eval_hook\n"

DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's own default for its Hugging Face models
MODEL_ARGS = ("path", "batch_size", "max_length", "device", "max_batch_size")
GEN_KWARGS = ("until", "max_gen_toks", "temperature", "do_sample", "top_k", "top_p", "repetition_penalty", "seed")

Result = TypeVar("Result")


class LmlabLM(LM):
    """An lmlab run directory as an lm-eval model.

    ``path``: the run directory, of any family (`lmlab.runs.open_run` reads it).
    ``batch_size``: rolling windows scored in one forward, and prompts generated together
    ("auto" means 16). ``max_length``: the context a neural model reads, at most its block size.
    ``device``: where a neural model runs (default, and for "cuda" without a GPU: cuda when there is
    one). ``max_batch_size`` is accepted because lm-eval passes it to every model, and unused.
    """

    def __init__(self, path: str, batch_size: int | str = DEFAULT_BATCH_SIZE, max_length: int | None = None,
                 device: str | None = None, max_batch_size: int | None = None) -> None:
        super().__init__()
        self.path = str(path)
        # lm-eval's CLI asks for cuda:0 by default, GPU or not; like its own models, use what there is.
        usable = device is not None and not (str(device).startswith("cuda") and not torch.cuda.is_available())
        self.lm = open_run(self.path).language_model(device=device if usable else None)
        self.batch_size = _batch_size(batch_size)
        if isinstance(self.lm, CausalLanguageModel):
            if max_length is not None:
                self.lm.max_length = _max_length(self.lm, int(max_length))
            self.lm.batch_size = self.batch_size
        elif max_length is not None:
            # An n-gram model reads the last n-1 units, whatever the length of the text.
            raise LmlabError(f"--model_args max_length={max_length}: {self.path} is an n-gram run, which has no "
                             "context window to set")
        self._device = getattr(self.lm, "device", torch.device("cpu"))

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None) -> LmlabLM:
        """The model from ``--model_args`` (a dict) and lm-eval's run-wide settings; the model's own win."""
        unknown = [key for key in arg_dict if key not in MODEL_ARGS]
        if unknown:
            raise LmlabError(f"--model_args {unknown[0]}=...: unknown to the lmlab model, which takes "
                             f"{', '.join(MODEL_ARGS[:3])} (and device)")
        if "path" not in arg_dict:
            raise LmlabError("--model_args: the lmlab model needs path=RUN_DIR, the run to evaluate")
        settings = {key: value for key, value in (additional_config or {}).items() if value is not None}
        return cls(**(settings | arg_dict))

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict[str, Any] | None = None) -> LmlabLM:
        """The model from a ``"path=RUN,batch_size=8"`` string, as ``--model_args`` gives it."""
        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    def _each_batch(self, requests: Sequence[Instance], kind: str,
                    score: Callable[[list[Instance]], list[Result]]) -> list[Result]:
        """`score` over the requests a batch at a time, with a progress bar and lm-eval's cache hook."""
        results: list[Result] = []
        with tqdm(total=len(requests), desc=f"lmlab {kind}", disable=self.rank != 0) as bar:
            for start in range(0, len(requests), self.batch_size):
                chunk = list(requests[start : start + self.batch_size])
                for request, result in zip(chunk, score(chunk), strict=True):
                    self.cache_hook.add_partial(kind, request.args, result)
                    results.append(result)
                bar.update(len(chunk))
        return results

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        def score(chunk: list[Instance]) -> list[tuple[float, bool]]:
            pairs = [(context, continuation) for context, continuation in (r.args for r in chunk)]
            return [(float(ll), bool(greedy)) for ll, greedy in self.lm.loglikelihood(pairs)]

        return self._each_batch(requests, "loglikelihood", score)

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        def score(chunk: list[Instance]) -> list[float]:
            return [float(ll) for ll in self.lm.loglikelihood_rolling([r.args[0] for r in chunk])]

        return self._each_batch(requests, "loglikelihood_rolling", score)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        # Requests that share their settings are generated together, in lm-eval's order.
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(index)
        texts: list[str] = [""] * len(requests)
        with tqdm(total=len(requests), desc="lmlab generate_until", disable=self.rank != 0) as bar:
            for indices in groups.values():
                params = generation_params(requests[indices[0]].args[1], requests[indices[0]])
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start : start + self.batch_size]
                    outputs = self.lm.generate([requests[i].args[0] for i in chunk], params)
                    for i, text in zip(chunk, outputs, strict=True):
                        self.cache_hook.add_partial("generate_until", requests[i].args, text)
                        texts[i] = text
                    bar.update(len(chunk))
        return texts


def generation_params(gen_kwargs: dict[str, Any], request: Instance | None = None) -> GenerationParams:
    """lm-eval's ``gen_kwargs`` as lmlab's `GenerationParams`: greedy unless a temperature above 0 is given.

    ``until`` becomes the stop strings and ``max_gen_toks`` the token budget; ``do_sample=False``
    forces greedy decoding, and ``do_sample=True`` without a temperature samples at 1, as Hugging Face does.
    """
    kwargs = dict(gen_kwargs)
    where = f"request {request.doc_id} of {request.task_name}" if request is not None else "gen_kwargs"
    unknown = [key for key in kwargs if key not in GEN_KWARGS]
    if unknown:
        raise LmlabError(f"{where}: gen_kwargs {unknown[0]!r} is not supported by lmlab; "
                         f"it takes {', '.join(GEN_KWARGS)}")
    until = kwargs.pop("until", None) or []
    do_sample = kwargs.pop("do_sample", None)
    temperature = float(kwargs.pop("temperature", 1.0 if do_sample else 0.0))
    return GenerationParams(
        max_new_tokens=kwargs.pop("max_gen_toks", DEFAULT_MAX_GEN_TOKS),
        temperature=0.0 if do_sample is False else temperature,
        stop=[until] if isinstance(until, str) else list(until),
        **kwargs,
    )


def _batch_size(value: int | str) -> int:
    if isinstance(value, str) and value.startswith("auto"):
        return DEFAULT_BATCH_SIZE  # nothing to tune: lmlab's scoring batches are small and fixed
    try:
        size = int(value)
    except ValueError:
        raise LmlabError(f"--model_args batch_size={value}: expected a whole number or 'auto'") from None
    if size < 1:
        raise LmlabError(f"--model_args batch_size={value}: must be at least 1")
    return size


def _max_length(lm: CausalLanguageModel, value: int) -> int:
    block_size = lm.model.config.block_size
    # A recurrent model carries its state across windows, so any window length works; a Transformer
    # has positions for block_size tokens only.
    if value < 1 or (value > block_size and not lm.carries_state):
        raise LmlabError(f"--model_args max_length={value}: must be between 1 and the model's block size {block_size}")
    return value


# ---- the startup hook: lm-eval finds "lmlab" in every interpreter of this environment --------------

def _site_dir(target_dir: str | Path | None) -> Path:
    return Path(target_dir) if target_dir is not None else Path(sysconfig.get_paths()["purelib"])


def install_hook(target_dir: str | Path | None = None) -> Path:
    """Write the ``.pth`` file that loads `lmlab._lm_eval_hook` (into site-packages unless `target_dir`).

    Idempotent, and atomic: an interpreter starting meanwhile reads no file or the whole line.
    """
    path = _site_dir(target_dir) / PTH_NAME
    if not (path.exists() and path.read_text(encoding="utf-8") == PTH_LINE):
        write_text(path, PTH_LINE)
    return path


def uninstall_hook(target_dir: str | Path | None = None) -> Path | None:
    """Remove the ``.pth`` file `install_hook` wrote; its path, or None when there was none."""
    path = _site_dir(target_dir) / PTH_NAME
    if not path.exists():
        return None
    path.unlink()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmlab.evaluate.lm_eval_adapter",
                                     description="Make `lm_eval --model lmlab` available in this environment.")
    parser.add_argument("action", choices=["install", "uninstall"])
    parser.add_argument("--dir", help="the site directory to write to (default: this environment's site-packages)")
    args = parser.parse_args(argv)
    if args.action == "install":
        print(f"lm-eval hook: {install_hook(args.dir)}; try `lm_eval --model lmlab --model_args path=RUN ...`")
    else:
        removed = uninstall_hook(args.dir)
        print(f"lm-eval hook: removed {removed}" if removed else "lm-eval hook: not installed, nothing to remove")
    return 0


# Also without the .pth file, importing this module is enough for `simple_evaluate(model="lmlab")`.
_lm_eval_hook.register()

if __name__ == "__main__":
    raise SystemExit(main())
