"""The config of a run whose model trains its own way (by counting, or word2vec's SGD): a model section
that the family's own config class validates, so a wrong key is named when the config is read."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from lmlab.config import Config, build_config
from lmlab.models.registry import family_class


class FamilyRunConfig(Config):
    model: dict[str, Any] = Field(description="family and the family's own settings")

    @model_validator(mode="after")
    def _model_settings(self) -> FamilyRunConfig:
        self.model_settings()
        return self

    def model_class(self) -> Any:
        return family_class(str(self.model.get("family", "")), "model.family")

    def model_settings(self) -> Any:
        """The model section validated by the family's own config class."""
        return build_config(self.model_class().config_class, self.model, section="model")
