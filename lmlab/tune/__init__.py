"""`lmlab.tune`: fine-tune any lmlab model (or a Hugging Face BERT, or named weights) for a task.

What a user types first:

    from lmlab.tune import read_tune_config, tune, compare_methods

    cfg = read_tune_config(None, ["base=runs/bert", "data=sentiment-en-binary", "method.method=lora"])
    summary = tune(cfg)                 # writes cfg.run_dir; returns the test figures, trainable share, time
    rows = compare_methods(None, ["base=runs/bert", "data=sentiment-en-binary"], ["features", "lora+adapters"],
                           "runs/compare-methods")

`TuneConfig` is the config (`lmlab tune --help` lists its keys); `METHODS` the tuning methods (full,
features, lora, adapters, prompt, combined with ``+``), `METHOD_DEFAULTS` each one's learning rate
and head, `TASKS` the tasks (classification, tagging, qa, multiple_choice). A tuned run opens with
`lmlab.runs.open_run` and answers through `lmlab.pipeline(...)`.
"""

from lmlab.tune.methods import METHODS, MethodConfig
from lmlab.tune.runner import METHOD_DEFAULTS, TuneConfig, compare_methods, read_tune_config, tune
from lmlab.tune.tasks import TASKS

__all__ = ["METHODS", "METHOD_DEFAULTS", "TASKS", "MethodConfig", "TuneConfig", "compare_methods",
           "read_tune_config", "tune"]
