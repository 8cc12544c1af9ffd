"""`lmlab.train`: one training loop for every neural model, with objectives that plug into it."""

from lmlab.train.loop import LoopConfig, TrainConfig, TrainResult, load_run_config, train
from lmlab.train.optim import OptimizerConfig, ScheduleConfig

__all__ = [
    "LoopConfig", "OptimizerConfig", "ScheduleConfig", "TrainConfig", "TrainResult", "load_run_config", "train",
]
