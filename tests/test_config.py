"""Configs: unknown keys and wrong types are errors that name the key; overrides are dotted."""

import pytest
import yaml

from lmlab.config import Config, load_config, save_config
from lmlab.errors import LmlabError


class Optim(Config):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)


class Run(Config):
    name: str = "run"
    steps: int = 10
    optim: Optim = Optim()


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: tiny\noptim:\n  lr: 0.01\n")
    cfg = load_config(Run, path, ["steps=42", "optim.betas=[0.8, 0.9]"])
    assert (cfg.name, cfg.steps, cfg.optim.lr, cfg.optim.betas) == ("tiny", 42, 0.01, (0.8, 0.9))


def test_unknown_key_names_the_key_and_the_known_ones(tmp_path):
    with pytest.raises(LmlabError, match=r"unknown key 'optim.lr_max'.*known keys: betas, lr"):
        load_config(Run, None, ["optim.lr_max=3"])


def test_wrong_type_names_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: many\n")
    with pytest.raises(LmlabError, match=r"bad.yaml: steps: .*'many'"):
        load_config(Run, path)


def test_bad_yaml_and_override_syntax(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(LmlabError, match="broken.yaml: line 2 is not valid YAML"):
        load_config(Run, path)
    with pytest.raises(LmlabError, match="not of the form key=value"):
        load_config(Run, None, ["steps"])


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(Run, None, ["name=中文运行", "optim.lr=0.5"])
    save_config(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))["name"] == "中文运行"
    assert load_config(Run, tmp_path / "config.yaml") == cfg
