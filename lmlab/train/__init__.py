"""`lmlab.train`: one training loop for every neural model, with objectives that plug into it."""

from lmlab.train.dispatch import load_run_config, read_train_config, train_run
from lmlab.train.loop import LoopConfig, TrainConfig, TrainResult, fit, train
from lmlab.train.optim import OptimizerConfig, ScheduleConfig
from lmlab.train.runtime import Runtime

__all__ = [
    "LoopConfig", "OptimizerConfig", "Runtime", "ScheduleConfig", "TrainConfig", "TrainResult", "fit",
    "load_run_config", "read_train_config", "train", "train_run",
]
