"""Configs: pydantic models read from YAML, with dotted ``key=value`` overrides.

Every config class derives from `Config`, which forbids unknown keys, so a typo such as
``optimizer.lr_mx=3e-4`` is an error naming the key instead of a silently ignored setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from lmlab.errors import LmlabError
from lmlab.files import write_text

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base of every lmlab config: strict about keys, tolerant of YAML's natural types."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def registered(names: Mapping[str, Any], what: str) -> AfterValidator:
    """A field validator: the value must be a key of the registry `names` (looked up when validating, so a
    name registered later counts). Use as ``Annotated[str, registered(OBJECTIVES, "objective")]``."""

    def check(value: str) -> str:
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; known: {', '.join(names)}")
        return value

    return AfterValidator(check)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise LmlabError(f"override {dotted!r}: {key!r} is a value, not a section")
        node = child
    node[leaf] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["train.lr=3e-4", "model.n_layer=4"]`` into a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise LmlabError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        if not key:
            raise LmlabError(f"override {item!r} has an empty key")
        _set_dotted(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else raw)
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping, naming the file in any error."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LmlabError(f"{path}: no such config file") from None
    except UnicodeDecodeError as exc:
        raise LmlabError(f"{path}: not valid UTF-8 at byte {exc.start}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise LmlabError(f"{path}:{where} is not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LmlabError(f"{path}: a config file must be a mapping of keys to values")
    return data


def build_config(cls: type[C], data: dict[str, Any], source: str = "config", section: str = "") -> C:
    """Validate `data` against `cls`; the error names the first offending key and what was wrong.

    `section` is where `data` sits in a larger config ("model"), so the key is named in full.
    """
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join([*filter(None, [section]), *(str(part) for part in first["loc"])]) or "(top level)"
        if first["type"] == "extra_forbidden":
            allowed = _allowed_keys(cls, first["loc"][:-1])
            hint = f" (known keys: {', '.join(allowed)})" if allowed else ""
            raise LmlabError(f"{source}: unknown key {key!r}{hint}") from None
        message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own words
        raise LmlabError(f"{source}: {key}: {message} (got {first.get('input')!r})") from None


def _allowed_keys(cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    model: Any = cls
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = field.annotation
    return sorted(model.model_fields)


def load_config(
    cls: type[C], path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None
) -> C:
    """Read `path` (optional), apply dotted `overrides`, validate as `cls`."""
    return build_config(cls, read_config_data(path, overrides), source=str(path) if path else "config")


def read_config_data(path: str | os.PathLike[str] | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The plain dict of `path` (optional) with dotted `overrides` applied, before validation."""
    return _merge(read_yaml(path) if path else {}, parse_overrides(overrides or []))


def save_config(config: Config, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML, so the run can be reproduced from its folder alone."""
    write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
