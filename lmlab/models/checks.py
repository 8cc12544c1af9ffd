"""Range checks shared by the dataclass configs of the neural families, each naming the field at fault.

A `ModelConfigError` keeps the field apart from the problem, so `model_from_config` can name the field
where the config came from (``config: model.n_head must be at least 1``), and a config built directly
still says which family's it is (``GPT config: n_head must be at least 1``).
"""

from __future__ import annotations

from typing import Any

from lmlab.errors import LmlabError
from lmlab.models.init import INIT_SCHEMES

MIN_VOCAB = 2  # with one token there is nothing to predict


class ModelConfigError(LmlabError):
    def __init__(self, label: str, field: str, problem: str):
        super().__init__(f"{label} config: {field} {problem}")
        self.field, self.problem = field, problem


def at_least(label: str, config: Any, names: tuple[str, ...], minimum: int = 1) -> None:
    for name in names:
        if getattr(config, name) < minimum:
            raise ModelConfigError(label, name, f"must be at least {minimum} (got {getattr(config, name)})")


def rates(label: str, config: Any, names: tuple[str, ...]) -> None:
    """Dropout rates: 1 would drop everything."""
    for name in names:
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ModelConfigError(label, name, f"must be in [0, 1) (got {getattr(config, name)})")


def positive(label: str, config: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if not getattr(config, name) > 0:
            raise ModelConfigError(label, name, f"must be > 0 (got {getattr(config, name)})")


def divisible(label: str, config: Any, name: str, by: str) -> None:
    if getattr(config, name) % getattr(config, by):
        raise ModelConfigError(label, name, f"{getattr(config, name)} must be divisible by {by} {getattr(config, by)}")


def one_of(label: str, config: Any, name: str, choices: tuple[str, ...] | Any) -> None:
    if getattr(config, name) not in choices:
        raise ModelConfigError(label, name, f"must be one of {', '.join(choices)} (got {getattr(config, name)!r})")


def init_scheme(label: str, config: Any) -> None:
    one_of(label, config, "init", INIT_SCHEMES)

