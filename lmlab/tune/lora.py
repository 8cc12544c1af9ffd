"""LoRA: fine-tune a frozen network through a low-rank update of some of its linear layers.

Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large Language Models". A pretrained weight W (out, in)
stays frozen; the layer learns ΔW = B A of rank r instead, A (r, in) and B (out, r):

    x ──> W x + b ─────────────────────────────┐
    │                                          (+) ──> y = W x + b + (alpha / r) B A dropout(x)
    └──> dropout ──> A (r x in) ──> B (out x r) ┘

B starts at zero, so training starts from exactly the pretrained model, and A from PEFT's
Kaiming-uniform (or Gaussian 1/r). alpha / r keeps the update's size steady when r changes, so a
learning rate tuned at one rank carries over; rank-stabilised LoRA (Kalajdzievski, 2023) uses
alpha / sqrt(r) instead, which lets large ranks learn as fast as small ones.

For r much smaller than in and out, A and B are a small fraction of W: a GPT-2 block's c_attn is
768 x 2304 weights, its rank-8 LoRA 8 x (768 + 2304), 1.4% of them. After training, ``merge_lora``
folds B A into W, and the model is exactly as fast as before.

Adapters are saved in the PEFT layout (``adapter_config.json`` and ``adapter_model.safetensors``
with keys ``base_model.model.<module>.lora_A.weight``), so an adapter trained on an lmlab GPT loads
with ``peft.PeftModel.from_pretrained`` on the same GPT exported by `lmlab.models.hf.export_gpt2`,
and a PEFT adapter trained on that transformers GPT-2 loads here. lmlab's GPT has GPT-2's module
names; GPT-2's projections are ``Conv1D`` (weights stored (in, out)), but PEFT stores A (r, in) and
B (out, r) for them as for ``nn.Linear``: only the base weight is transposed, which the adapter
does not hold, and the config says ``fan_in_fan_out``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from safetensors.torch import save_file
from torch import Tensor, nn

from lmlab.config import Config, build_config
from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, write_json
from lmlab.models import check_tensors, read_safetensors
from lmlab.tune.params import freeze, matches_name

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # PeftModel -> LoraModel -> the wrapped model


class LoraConfig(Config):
    """Where LoRA goes and how big it is; the fields are PEFT's (``lora_alpha`` is `alpha` here)."""

    r: int = Field(8, ge=1, description="rank of the update B A")
    alpha: float = Field(8.0, gt=0, description="the update is scaled by alpha / r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the input of A")
    target_modules: list[str] | str = Field(
        description="module names (a name or a dotted suffix of one, e.g. c_attn) or one regex matched "
                    "against whole module names; each must be an nn.Linear")
    bias: Literal["none"] = Field("none", description="biases stay frozen (PEFT's bias='none')")
    init: Literal["default", "gaussian"] = Field(
        "default", description="A: Kaiming-uniform (default) or normal with std 1/r; B: zeros")
    use_rslora: bool = Field(False, description="scale by alpha / sqrt(r) (rank-stabilised LoRA)")

    @property
    def scaling(self) -> float:
        return self.alpha / math.sqrt(self.r) if self.use_rslora else self.alpha / self.r


class LoraLinear(nn.Linear):
    """An ``nn.Linear`` plus a low-rank update: y = W x + b + scaling * B A dropout(x).

    It holds the wrapped layer's own `weight` and `bias` Parameters under the same names, so the
    model's state dict keeps its keys, tied weights stay tied, and code that looks for ``nn.Linear``
    still finds the layer. ``lora_A`` (r, in) and ``lora_B`` (out, r) are the only new parameters.
    """

    def __init__(self, base: nn.Linear, cfg: LoraConfig):
        nn.Module.__init__(self)  # not nn.Linear's: that would allocate a fresh weight only to drop it
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.register_parameter("bias", base.bias)
        self.r, self.scaling = cfg.r, cfg.scaling
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(cfg.r, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, cfg.r, **factory))
        if cfg.init == "default":
            # Kaiming-uniform with a = sqrt(5) is nn.Linear's own default, which PEFT keeps for A.
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        else:
            nn.init.normal_(self.lora_A, std=1.0 / cfg.r)
        self.lora_dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.merged = False

    def delta_weight(self) -> Tensor:
        """scaling * B A (out, in), computed in float32 whatever the weights' dtype."""
        delta = (self.lora_B.float() @ self.lora_A.float()) * self.scaling
        return delta.to(self.weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.merged:  # B A is inside W already
            return y
        # Two thin matmuls, never the (out, in) product: (..., in) -> (..., r) -> (..., out).
        return y + F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B) * self.scaling

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, scaling={self.scaling:g}, merged={self.merged}"


def _targets(model: nn.Module, target_modules: list[str] | str) -> list[str]:
    """Names of the modules LoRA wraps, checked: at least one, every one an nn.Linear."""
    names = []
    for name, module in model.named_modules():
        if not name or isinstance(module, LoraLinear):
            continue
        hit = (re.fullmatch(target_modules, name) is not None if isinstance(target_modules, str)
               else matches_name(name, target_modules))
        if hit:
            if type(module) is not nn.Linear:
                raise LmlabError(f"lora.target_modules: {name} is a {type(module).__name__}, not an nn.Linear "
                                 "(name its linear layers, e.g. c_attn)")
            names.append(name)
    if not names:
        raise LmlabError(f"lora.target_modules: {target_modules!r} matches no module of the model "
                         f"(its linear layers include {_linear_examples(model)})")
    return names


def _linear_examples(model: nn.Module) -> str:
    leaves = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
    return ", ".join(leaves[:8]) or "none"


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def lora_layers(model: nn.Module) -> Iterator[tuple[str, LoraLinear]]:
    """(name, layer) of every LoRA layer of `model`."""
    for name, module in model.named_modules():
        if isinstance(module, LoraLinear):
            yield name, module


def _refuse_second_lora(model: nn.Module) -> None:
    if any(True for _ in lora_layers(model)):
        raise LmlabError("the model has LoRA layers already; remove_lora first to start again")


def apply_lora(model: nn.Module, cfg: LoraConfig, trainable: Sequence[str] = ()) -> nn.Module:
    """Wrap each linear layer named by ``cfg.target_modules`` in a `LoraLinear`, in place.

    Afterwards only the LoRA factors train, plus the modules named in `trainable` (a task head
    such as ``["score"]``, which has nothing pretrained to keep). Returns `model`.
    """
    _refuse_second_lora(model)
    for name in _targets(model, cfg.target_modules):
        _set_module(model, name, LoraLinear(model.get_submodule(name), cfg))
    freeze(model, except_names=trainable)
    for _, layer in lora_layers(model):
        layer.lora_A.requires_grad_(True)
        layer.lora_B.requires_grad_(True)
    return model


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold each update into its weight, W <- W + scaling * B A: inference then costs what the base did.

    The factors are kept, so `unmerge_lora` can take the update out again.
    """
    for _, layer in lora_layers(model):
        if not layer.merged:
            layer.weight.add_(layer.delta_weight())
            layer.merged = True
    return model


@torch.no_grad()
def unmerge_lora(model: nn.Module) -> nn.Module:
    """Take each merged update out again, W <- W - scaling * B A.

    This is W restored up to float rounding, not bit for bit: (W + D) - D rounds twice. The error is
    at most about one unit in the last place of W + D (about 1e-7 relative in float32), and keeping
    an exact copy of every targeted weight instead would double their memory, which is what LoRA
    is used to save. Do not train the factors between merging and unmerging: D would change.
    """
    for _, layer in lora_layers(model):
        if layer.merged:
            layer.weight.sub_(layer.delta_weight())
            layer.merged = False
    return model


def remove_lora(model: nn.Module, merge: bool = False) -> nn.Module:
    """Turn every LoRA layer back into a plain ``nn.Linear``, in place.

    With ``merge=True`` its weight keeps the update (PEFT's ``merge_and_unload``: a plain model that
    computes what the adapted one did); otherwise the update is discarded and the original layer
    returns (PEFT's ``unload``). Parameters keep their ``requires_grad``.
    """
    merge_lora(model) if merge else unmerge_lora(model)
    for name, layer in list(lora_layers(model)):
        plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
        plain.weight = layer.weight
        plain.register_parameter("bias", layer.bias)
        _set_module(model, name, plain)
    return model


def _lora_state(model: nn.Module) -> dict[str, Tensor]:
    return {f"{PEFT_PREFIX}{name}.lora_{part}.weight": getattr(layer, f"lora_{part}").detach().cpu().contiguous()
            for name, layer in lora_layers(model) for part in ("A", "B")}


def save_lora(model: nn.Module, out_dir: str | os.PathLike[str], cfg: LoraConfig,
              base_model_name_or_path: str | None = None) -> None:
    """Write the adapter of `model` to `out_dir` in the PEFT layout, atomically.

    `base_model_name_or_path` goes into the config, where ``PeftModel.from_pretrained`` users look
    for the base model (e.g. the directory `export_gpt2` wrote).
    """
    tensors = _lora_state(model)
    if not tensors:
        raise LmlabError("the model has no LoRA layers to save; apply_lora first")
    if any(layer.merged for _, layer in lora_layers(model)):
        raise LmlabError("the LoRA layers are merged into their weights; unmerge_lora before saving the adapter")
    alpha = int(cfg.alpha) if float(cfg.alpha).is_integer() else cfg.alpha
    config = {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": base_model_name_or_path,
        "r": cfg.r,
        "lora_alpha": alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": cfg.target_modules,
        "bias": cfg.bias,
        "use_rslora": cfg.use_rslora,
        "init_lora_weights": True if cfg.init == "default" else "gaussian",
        # GPT-2's transformers layers are Conv1D, whose base weight is (in, out); PEFT needs to know
        # to transpose B A before merging it there. The adapter tensors are the same either way.
        "fan_in_fan_out": getattr(model, "lora_fan_in_fan_out", False),
        "modules_to_save": None,
        "use_dora": False,
        "inference_mode": True,
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_json(tmp / ADAPTER_CONFIG, config)
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})


def read_lora_config(adapter_dir: str | os.PathLike[str]) -> LoraConfig:
    """The `LoraConfig` of a PEFT adapter directory; PEFT features lmlab does not compute are refused."""
    path = Path(adapter_dir) / ADAPTER_CONFIG
    peft = read_json(path, "file; is this a PEFT adapter directory?")
    if not isinstance(peft, dict) or peft.get("peft_type") != "LORA":
        found = peft.get("peft_type") if isinstance(peft, dict) else None
        raise LmlabError(f"{path}: peft_type is {found!r}; only LORA adapters load as LoRA")
    # Each of these changes what the adapter computes or where it goes; loading it without them
    # would give silently wrong outputs.
    unsupported = {
        "use_dora": (False, None), "rank_pattern": ({}, None), "alpha_pattern": ({}, None),
        "layers_to_transform": (None,), "layer_replication": (None,), "modules_to_save": (None, []),
        "exclude_modules": (None,), "target_parameters": (None,), "trainable_token_indices": (None,),
        "lora_bias": (False, None), "bias": ("none",),
    }
    for key, allowed in unsupported.items():
        if peft.get(key, allowed[0]) not in allowed:
            raise LmlabError(f"{path}: {key}={peft[key]!r} is not supported (lmlab loads {key}={allowed[0]!r})")
    init = peft.get("init_lora_weights", True)
    data = {
        "r": peft.get("r", 8),
        "alpha": peft.get("lora_alpha", 8),
        "dropout": peft.get("lora_dropout", 0.0),
        "target_modules": peft.get("target_modules"),
        "use_rslora": peft.get("use_rslora", False),
        "init": "gaussian" if init == "gaussian" else "default",  # irrelevant once the weights are read
    }
    return build_config(LoraConfig, data, source=str(path))


def load_lora(model: nn.Module, adapter_dir: str | os.PathLike[str], trainable: Sequence[str] = ()) -> nn.Module:
    """Apply the PEFT LoRA adapter in `adapter_dir` to `model` (in place) and return it.

    `model` must have the adapter's module names, as an lmlab GPT has for an adapter made on the
    transformers GPT-2 it was exported as. Every LoRA layer must get both factors, with the
    config's rank, and the file must hold nothing else.
    """
    _refuse_second_lora(model)
    cfg = read_lora_config(adapter_dir)
    path = Path(adapter_dir) / ADAPTER_WEIGHTS
    tensors = read_safetensors(path)
    # Everything is checked before the model is touched, so a bad adapter leaves it as it was.
    shapes = {}
    for name in _targets(model, cfg.target_modules):
        linear = model.get_submodule(name)
        shapes[f"{PEFT_PREFIX}{name}.lora_A.weight"] = (cfg.r, linear.in_features)
        shapes[f"{PEFT_PREFIX}{name}.lora_B.weight"] = (linear.out_features, cfg.r)
    check_tensors(tensors, shapes, f"{path} (r={cfg.r})")
    apply_lora(model, cfg, trainable=trainable)
    with torch.no_grad():
        for name, layer in lora_layers(model):
            layer.lora_A.copy_(tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"])
            layer.lora_B.copy_(tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"])
    return model
