"""Training runs: the task-agnostic trainer and its config, and safe checkpoints (safetensors
+ JSON, written atomically, never pickled)."""

from .checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    flatten_state,
    load_checkpoint,
    load_json,
    save_checkpoint,
    unflatten_state,
)
from .trainer import StepOutput, TrainConfig, Trainer, TrainResult

__all__ = ["FORMAT_VERSION", "Checkpoint", "CheckpointError", "StepOutput", "TrainConfig",
           "TrainResult", "Trainer", "flatten_state", "load_checkpoint", "load_json",
           "save_checkpoint", "unflatten_state"]
