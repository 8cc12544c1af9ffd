"""The config of a run whose model trains its own way (by counting, or word2vec's SGD): a model section
that the family's own config class validates, so a wrong key is named when the config is read."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from lmlab.config import Config, build_config
from lmlab.models.registry import family_class


class FamilyRunConfig(Config):
    model: dict[str, Any] = Field(description="family and the family's own settings")

    @model_validator(mode="before")
    @classmethod
    def _resolve_model(cls, data: Any) -> Any:
        """The model section validated by its family and kept with every default filled in, so the run's
        config.yaml says exactly what was trained (and a wrong key is named when the config is read)."""
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            model = data["model"]
            config_class = family_class(str(model.get("family", "")), "model.family").config_class
            data = {**data, "model": build_config(config_class, model, section="model").model_dump(mode="json")}
        return data

    def model_class(self) -> Any:
        return family_class(str(self.model.get("family", "")), "model.family")

    def model_settings(self) -> Any:
        """The model section validated by the family's own config class."""
        return build_config(self.model_class().config_class, self.model, section="model")
