"""`lmlab export` of a tuned run: the base as a Hugging Face directory, the method's weights as PEFT's.

For ``lora`` and ``prompt``:

    OUT/
      adapter_config.json         PEFT's config (peft_type LORA or PROMPT_TUNING), base_model_name_or_path: OUT/base
      adapter_model.safetensors   the LoRA factors or the prompt, under PEFT's key names
      base/                       the backbone as its family exports it (config.json, model.safetensors, tokenizer)

so ``PeftModel.from_pretrained(<transformers class>.from_pretrained("OUT/base"), "OUT")`` computes the
tuned backbone's hidden states (BERT: a class with the ``bert.`` prefix, such as BertForPreTraining
or BertForSequenceClassification, since the adapter's module names carry it). For ``full`` and
``features``, OUT is the backbone's Hugging Face directory itself. The task head is lmlab's own (its
pooling and layers are no transformers head), so it stays in the run in every case.

Bottleneck adapters have no PEFT counterpart, and PEFT does not load LoRA and a prompt as one model
(see tests/test_composed_methods.py), so those runs are refused rather than half exported.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from lmlab.errors import LmlabError
from lmlab.files import atomic_path
from lmlab.models.registry import family_class, resolve
from lmlab.tune.lora import remove_lora, save_lora
from lmlab.tune.methods import lora_config
from lmlab.tune.model import TunedModel
from lmlab.tune.prompt import save_prompt_tuning

# The PEFT model class that puts a prompt in front of a backbone of each kind.
PROMPT_TASK_TYPES = {"encoder": "FEATURE_EXTRACTION", "decoder": "CAUSAL_LM"}


def export_tuned(model: TunedModel, out_dir: str | os.PathLike[str],
                 tokenizer_json: str | os.PathLike[str] | None = None) -> str:
    """Write `model`'s backbone (and its LoRA or prompt in PEFT's layout) to `out_dir`; says what it wrote.

    The directory appears complete or not at all.
    """
    method, base_family = model.method, model.config.base_family
    exporter = family_class(base_family).exporter
    if exporter is None:
        raise LmlabError(f"a {base_family} base has no Hugging Face counterpart to export to")
    export_base = resolve(exporter)
    out = Path(out_dir)
    if method.parts in (["full"], ["features"]):
        export_base(model.backbone, out, tokenizer_json=tokenizer_json)
        return (f"wrote the tuned {base_family} backbone as a Hugging Face directory to {out} "
                "(the task head stays in the run)")
    if method.parts not in (["lora"], ["prompt"]):
        raise LmlabError(f"method {method.method} has no PEFT adapter to export to (lora and prompt do; "
                         "PEFT has no bottleneck adapters and loads no LoRA and prompt together)")
    prompted = method.parts == ["prompt"]
    if prompted and model.backbone.backbone.kind not in PROMPT_TASK_TYPES:
        raise LmlabError(f"a {model.backbone.backbone.kind} backbone has no PEFT prompt-tuning counterpart")
    base_dir = out.resolve() / "base"  # where PeftModel users (and AutoPeftModel) look for the base
    with atomic_path(out) as tmp:
        if prompted:
            base = model.backbone.backbone
            save_prompt_tuning(model.backbone, tmp, task_type=PROMPT_TASK_TYPES[base.kind],
                               base_model_name_or_path=str(base_dir))
        else:
            save_lora(model.backbone, tmp, lora_config(model.backbone, method), base_model_name_or_path=str(base_dir))
            base = remove_lora(copy.deepcopy(model.backbone))  # the run's own model keeps its LoRA
        export_base(base, tmp / "base", tokenizer_json=tokenizer_json)
    return (f"wrote the {method.method} weights as a PEFT adapter directory to {out}, over the {base_family} base "
            f"in {out / 'base'} (the task head stays in the run)")
