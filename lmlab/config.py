"""Configs: pydantic models read from YAML, with dotted ``key=value`` overrides.

Every config class derives from `Config`, which forbids unknown keys, so a typo such as
``optimizer.lr_mx=3e-4`` is an error naming the key instead of a silently ignored setting.

Paths to inputs (a field typed `InputPath`) follow one rule, so that a run folder can be moved with
its data and used from anywhere: a relative path written in a config file names what sits next to
that file (when something is there), a path given on the command line is relative to the working
directory, and `save_config` writes input paths relative to the folder it writes into.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from lmlab.errors import LmlabError
from lmlab.files import write_text

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base of every lmlab config: strict about keys, tolerant of YAML's natural types."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _keep_section_defaults(cls, data: Any) -> Any:
        """A section given as a mapping starts from the field's default, not the section class's.

        ``train: LoopConfig = LoopConfig(max_steps=300, ...)`` with an override ``train.max_steps=40``
        would otherwise validate ``{max_steps: 40}`` alone and drop every other value that default set.
        """
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given = data.get(name)
            if isinstance(field.default, BaseModel) and isinstance(given, dict):
                merged[name] = _merge(_values_set(field.default), given)
        return merged


def _values_set(model: BaseModel) -> dict[str, Any]:
    """The values `model` was built with (a section inside them whole); the rest fall to its class's defaults,
    as they did when it was built, and a validator of the outer config may still lay its own under them."""
    return {key: value.model_dump() if isinstance(value := getattr(model, key), BaseModel) else value
            for key in model.model_fields_set}


class _InputPathMarker:
    """Marks a config field that names an input file or directory (or a list of them)."""


INPUT_PATH = _InputPathMarker()
InputPath = Annotated[str, INPUT_PATH]


def _names_input_paths(annotation: Any, metadata: list[Any]) -> bool:
    return INPUT_PATH in metadata or any(INPUT_PATH in getattr(arg, "__metadata__", ()) for arg in get_args(annotation))


def input_path_fields(cls: type[BaseModel]) -> list[str]:
    """The top-level fields of `cls` that hold input paths (`InputPath` or a list of them)."""
    return [name for name, info in cls.model_fields.items() if _names_input_paths(info.annotation, info.metadata)]


def resolve_beside(value: Any, folder: Path) -> Any:
    """`value` read from a file in `folder`: a relative path that names something there is taken from there;
    any other value (a name such as ``sentiment-en``, an absolute path) is left as it is."""
    if isinstance(value, list):
        return [resolve_beside(item, folder) for item in value]
    if not isinstance(value, str) or not value or Path(value).is_absolute():
        return value
    candidate = os.path.normpath(folder / value)
    return candidate if os.path.exists(candidate) or glob.glob(candidate) else value


def _relative_to(value: Any, folder: Path) -> Any:
    """`value` as written into a file in `folder`: an existing path, relative to `folder`."""
    if isinstance(value, list):
        return [_relative_to(item, folder) for item in value]
    if not isinstance(value, str) or not value or not Path(value).exists():
        return value
    try:  # lexically, as `resolve_beside` reads it back
        return os.path.relpath(os.path.abspath(value), os.path.abspath(folder))
    except ValueError:  # another drive (Windows): no relative path exists
        return os.path.abspath(value)


class FieldError(ValueError):
    """What a model validator raises about one field of its config, so the error names that field
    (dotted, from the validated config's top) rather than the whole config."""

    def __init__(self, field: str, message: str, value: Any):
        super().__init__(message)
        self.field, self.message, self.value = field, message, value


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
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):  # a check across fields, about one of them: name it, not the config
            key = ".".join([*filter(None, [section]), *(str(part) for part in first["loc"]), cause.field])
            raise LmlabError(f"{source}: {key}: {cause.message} (got {cause.value!r})") from None
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
    return build_config(cls, read_config_data(path, overrides, cls), source=str(path) if path else "config")


ConfigClass = type[BaseModel] | Callable[[dict[str, Any]], type[BaseModel]]


def read_config_data(path: str | os.PathLike[str] | None, overrides: list[str] | None = None,
                     config_class: ConfigClass | None = None) -> dict[str, Any]:
    """The plain dict of `path` (optional) with dotted `overrides` applied, before validation.

    With `config_class` (the class, or a function choosing it from the file's data), the file's relative
    input paths are taken from beside the file.
    """
    data, extra = (read_yaml(path) if path else {}), parse_overrides(overrides or [])
    if path and config_class is not None:
        cls = config_class if isinstance(config_class, type) else config_class(_merge(data, extra))
        folder = Path(path).parent
        data = {key: resolve_beside(value, folder) if key in input_path_fields(cls) else value
                for key, value in data.items()}
    return _merge(data, extra)


def save_config(config: Config, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML, so the run can be reproduced from its folder alone; input paths are
    written relative to that folder, so it can move together with its data."""
    data = config.model_dump(mode="json")
    folder = Path(path).parent
    for key in input_path_fields(type(config)):
        data[key] = _relative_to(data[key], folder)
    write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
