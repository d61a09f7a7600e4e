"""Training runs: safe checkpoints (safetensors + JSON, written atomically, never pickled)."""

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

__all__ = ["FORMAT_VERSION", "Checkpoint", "CheckpointError", "flatten_state",
           "load_checkpoint", "load_json", "save_checkpoint", "unflatten_state"]
