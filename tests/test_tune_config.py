"""Tune's settings: one dotted override keeps the rest of a section's defaults, and each method brings its own
defaults (learning rate, head) unless the run sets them, for `lmlab tune` and `lmlab tune compare` alike."""

from __future__ import annotations

import pytest

from lmlab.config import Config, build_config, load_config
from lmlab.train.optim import OptimizerConfig
from lmlab.tune.methods import METHODS, MethodConfig
from lmlab.tune.runner import METHOD_DEFAULTS, TuneConfig, method_overrides, read_tune_config

REQUIRED = ["base=x", "data=y"]


class Inner(Config):
    a: int = 1
    b: int = 2


class Middle(Config):
    inner: Inner = Inner(a=10)
    c: int = 3


class Outer(Config):
    middle: Middle = Middle(inner=Inner(b=20), c=30)
    plain: Inner = Inner()


def test_a_nested_override_keeps_the_other_values_of_the_fields_default():
    cfg = load_config(Outer, None, ["middle.c=4", "plain.a=5"])
    assert cfg.middle.c == 4 and cfg.middle.inner == Inner(b=20)  # the field's default, not Middle's own
    assert cfg.plain == Inner(a=5, b=2)
    deeper = build_config(Outer, {"middle": {"inner": {"a": 7}}})
    assert deeper.middle == Middle(inner=Inner(a=7, b=20), c=30)
    assert build_config(Outer, {"middle": Middle()}).middle == Middle()  # an object given whole stays whole


def test_one_train_override_keeps_tunes_other_loop_settings():
    cfg = read_tune_config(None, [*REQUIRED, "train.max_steps=40", "schedule.warmup_steps=2",
                                  "optimizer.grad_clip=0.5"])
    defaults = TuneConfig.model_fields
    assert cfg.train == defaults["train"].default.model_copy(update={"max_steps": 40})
    assert cfg.train.early_stopping == 3 and cfg.train.eval_tokens is None and cfg.train.best_metric == "val_macro_f1"
    assert cfg.schedule == defaults["schedule"].default.model_copy(update={"warmup_steps": 2})
    assert cfg.optimizer.weight_decay == defaults["optimizer"].default.weight_decay != OptimizerConfig().weight_decay
    assert cfg.optimizer.grad_clip == 0.5


@pytest.mark.parametrize("method", list(METHOD_DEFAULTS))
def test_each_method_gets_its_defaults_unless_the_run_sets_them(method, tmp_path):
    assert method in METHODS
    cfg = read_tune_config(None, [*REQUIRED, f"method.method={method}"])
    for section, values in METHOD_DEFAULTS[method].items():
        assert getattr(cfg, section).model_dump() | values == getattr(cfg, section).model_dump()
    explicit = read_tune_config(None, [*REQUIRED, f"method.method={method}", "optimizer.lr=0.123", "head.hidden=7"])
    assert explicit.optimizer.lr == 0.123 and explicit.head.hidden == 7
    config = tmp_path / "tune.yaml"
    config.write_text(f"base: x\ndata: y\nmethod: {{method: {method}}}\noptimizer: {{lr: 0.25}}\n")
    from_file = read_tune_config(config, [])
    assert from_file.optimizer.lr == 0.25 and from_file.optimizer.weight_decay == cfg.optimizer.weight_decay
    built = TuneConfig(base="x", data="y", method=MethodConfig(method=method))  # built in Python: the same
    assert built.optimizer == cfg.optimizer and built.head == cfg.head


def test_the_methods_learning_rates_differ_and_the_default_method_has_its_own():
    assert read_tune_config(None, REQUIRED).optimizer.lr == METHOD_DEFAULTS["full"]["optimizer"]["lr"]
    assert METHOD_DEFAULTS["features"]["optimizer"]["lr"] != METHOD_DEFAULTS["full"]["optimizer"]["lr"]


@pytest.mark.parametrize("method", ["features", "full", "adapters", "lora", "prompt", "lora+fgm", "lora+pgd"])
def test_compare_names_a_method_and_what_it_combines_with_not_its_settings(method):
    """`tune compare` runs each method by its name alone, so each gets what `lmlab tune` gives it."""
    assert method_overrides(method) == [f"method.method={method}"]
    cfg = read_tune_config(None, [*REQUIRED, *method_overrides(method)])
    weights, _, adversary = method.partition("+")
    assert cfg.method.method == weights and cfg.adversarial.method == (adversary or "none")
    assert cfg.optimizer.lr == METHOD_DEFAULTS[weights]["optimizer"]["lr"]


def test_a_combination_takes_its_parts_defaults_the_first_in_methods_order_winning():
    lora = METHOD_DEFAULTS["lora"]["optimizer"]["lr"]
    assert lora != METHOD_DEFAULTS["prompt"]["optimizer"]["lr"]
    for name in ("lora+prompt", "prompt+lora"):
        assert read_tune_config(None, [*REQUIRED, f"method.method={name}"]).optimizer.lr == lora
    with_adversary = read_tune_config(None, [*REQUIRED, "method.method=lora+fgm"])
    assert with_adversary.optimizer.lr == lora and with_adversary.adversarial.method == "fgm"
    assert read_tune_config(None, [*REQUIRED, "method.method=lora+prompt", "optimizer.lr=0.5"]).optimizer.lr == 0.5


def test_the_package_offers_what_a_user_types_first():
    """Issue 11, item 7: `from lmlab.tune import tune` (it was an ImportError)."""
    import lmlab.tune as package
    from lmlab.tune import METHOD_DEFAULTS, METHODS, TASKS, compare_methods, read_tune_config, tune
    from lmlab.tune.runner import tune as runner_tune

    assert tune is runner_tune and callable(compare_methods)
    assert set(METHOD_DEFAULTS) <= set(METHODS) and "classification" in TASKS
    assert sorted(package.__all__) == sorted(name for name in package.__all__ if hasattr(package, name))
    assert read_tune_config(None, ["base=b", "data=d", "method.method=lora"]).optimizer.lr == \
        METHOD_DEFAULTS["lora"]["optimizer"]["lr"]
