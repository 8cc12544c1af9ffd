"""Model families and lmlab's model format: safetensors weights plus a JSON description.

A model directory holds two files:

    model.json         {"family": "gpt", "config": {"n_layer": 6, ...}}   what to build
    model.safetensors  the weights by parameter name, tied weights stored once

Safetensors, never pickle: a pickled checkpoint can run any code when loaded, safetensors is plain
tensors and a JSON header. A new family is one file in this package plus one line in
`lmlab.models.registry.FAMILIES`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lmlab.errors import LmlabError
from lmlab.files import atomic_path, read_json, safetensors_errors, write_json
from lmlab.models.base import CausalLM, KVCache, LMOutput, ModelFamily, Pooling
from lmlab.models.checks import ModelConfigError
from lmlab.models.gpt import GPT, GPTConfig
from lmlab.models.language_model import CausalLanguageModel, LanguageModel
from lmlab.models.registry import FAMILIES, family_class, register_family

__all__ = [
    "FAMILIES", "GPT", "GPTConfig", "CausalLM", "CausalLanguageModel", "KVCache", "LMOutput", "LanguageModel",
    "ModelFamily", "Pooling", "check_tensors", "family_class", "load_model", "load_weights", "model_from_config",
    "read_model_json", "read_safetensors", "register_family", "save_model", "unique_state_dict",
]


def model_from_config(family: str, config: dict[str, Any], source: str = "model config",
                      section: str = "") -> nn.Module:
    """Build a freshly initialised model of `family` from a plain dict of its config fields.

    `source` names where the dict came from (a file, a config) in error messages, and `section` where the
    dict sits in it ("model"), so a field is named in full (``config: model.n_head``).
    """
    model_class = family_class(family, source)
    config_class = model_class.config_class
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    for key, value in config.items():
        if key not in fields:
            known = ", ".join(fields)
            raise LmlabError(f"{source}: {family} has no config key {key!r} (known keys: {known})")
        default = fields[key].default
        _check_type(source, _dotted(section, key), value,
                    type(fields[key].default_factory() if default is dataclasses.MISSING else default))
    try:
        settings = config_class(**config)
    except ModelConfigError as exc:
        raise LmlabError(f"{source}: {_dotted(section, exc.field)} {exc.problem}") from None
    return model_class(settings)


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _check_type(source: str, key: str, value: Any, expected: type) -> None:
    # bool is an int in Python, so it is checked first: n_layer=True is a mistake, not a 1.
    ok = (
        isinstance(value, bool) if expected is bool
        else isinstance(value, int) and not isinstance(value, bool) if expected is int
        else isinstance(value, int | float) and not isinstance(value, bool) if expected is float
        else isinstance(value, expected)
    )
    if not ok:
        raise LmlabError(f"{source}: {key} must be {expected.__name__}, got {value!r}")


def unique_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state dict with each tied tensor once, under the first name it appears with.

    For GPT that keeps ``transformer.wte.weight`` and drops ``lm_head.weight``, the same tensor.
    """
    seen: set[int] = set()
    unique = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        unique[name] = tensor.detach().contiguous()
    return unique


def save_model(model: nn.Module, out_dir: str | os.PathLike[str]) -> None:
    """Write ``model.safetensors`` and ``model.json`` into `out_dir` (created if needed), atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.cpu() for name, tensor in unique_state_dict(model).items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    write_json(out / "model.json", {"family": model.family, "config": model.config_dict()})


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """All tensors of a safetensors file on the CPU; a missing, truncated or corrupt file is a LmlabError."""
    with safetensors_errors(path):
        return load_file(str(path), device="cpu")


def read_model_json(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """The (family, config) of a ``model.json``, every defect named with the file."""
    spec = read_json(path, "file; is this a model directory?")
    if not isinstance(spec, dict) or not isinstance(spec.get("family"), str):
        raise LmlabError(f'{path}: needs a "family" string, as in {{"family": "gpt", "config": {{...}}}}')
    if not isinstance(spec.get("config"), dict):
        raise LmlabError(f'{path}: needs a "config" object with the model\'s settings')
    return spec["family"], spec["config"]


def load_model(model_dir: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved in `model_dir` by `save_model`, on `device`, in eval mode."""
    folder = Path(model_dir)
    family, config = read_model_json(folder / "model.json")
    model_class = family_class(family, str(folder / "model.json"))
    if not issubclass(model_class, nn.Module):  # a count-based model reads its own files
        return model_class.load(folder)
    model = model_from_config(family, config, source=str(folder / "model.json"))
    weights_path = folder / "model.safetensors"
    load_weights(model, read_safetensors(weights_path), str(weights_path))
    return model.to(device).eval()


def check_tensors(tensors: dict[str, Tensor], shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """Insist that `tensors` holds exactly the names of `shapes`, each with exactly its shape."""
    missing = sorted(shapes.keys() - tensors.keys())
    unexpected = sorted(tensors.keys() - shapes.keys())
    if missing:
        raise LmlabError(f"{source}: missing tensor {missing[0]!r} ({len(missing)} missing in all)")
    if unexpected:
        raise LmlabError(f"{source}: unexpected tensor {unexpected[0]!r}; does it belong to another model?")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(shapes[name]):
            raise LmlabError(f"{source}: {name} has shape {tuple(tensor.shape)}, expected {tuple(shapes[name])}")


def load_weights(model: nn.Module, tensors: dict[str, Tensor], source: str) -> None:
    """Copy `tensors` into `model`, insisting on exactly its parameters with exactly their shapes."""
    check_tensors(tensors, {name: tuple(t.shape) for name, t in unique_state_dict(model).items()}, source)
    # strict=False only because tied copies are absent from the file; loading their twin fills them.
    model.load_state_dict(tensors, strict=False)
