"""What every task's ``train()`` shares: turning options into a run, and running it.

:func:`plan` checks the options, opens a new run folder or a resumed one (whose data and model
settings must not change), and settles the time budget; :func:`execute` joins the process group
under ``torchrun``, seeds, builds the task, trains, and writes the run's JSON files from rank 0.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..config import flat_fields, flatten, from_dict, nest, to_dict
from ..data.files import save_json
from . import distributed
from .checkpoint import load_checkpoint, read_kind
from .runtime import parse_duration, resolve_device
from .trainer import BEST, LAST, Task, TrainConfig, Trainer, TrainResult

_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"time_budget", "max_steps"}


@dataclass
class RunFolder:
    """A run folder claimed for training, new or resumed: the one place where a run's folder
    is opened to write into (so that what guards a run, such as a lock or a check that a
    resume reads the same data, is written once)."""

    path: Path
    saved: dict | None  # the last checkpoint's config when resuming: {"task": ..., "train": ...}

    @property
    def last(self) -> Path:
        return self.path / LAST

    @classmethod
    def claim(cls, kind: str, *, out: str | Path | None,
              resume: str | Path | None) -> RunFolder:
        """``out`` for a new run (refused if it holds one), or the run ``resume`` continues."""
        if resume is not None:
            if out is not None and Path(out) != Path(resume):
                raise ValueError("resume continues a run in its own folder: drop --out")
            path = Path(resume)
            return cls(path, load_checkpoint(path / LAST, kind=kind).config)
        if out is None:
            raise ValueError("give --out RUN_DIR (where the run is written)")
        path = Path(out)
        if (path / LAST).exists():
            raise ValueError(f"{path} already holds a run: --resume {path} continues it, "
                             "or choose another --out")
        return cls(path, None)


@dataclass
class Plan:
    folder: RunFolder
    config: Any  # the task's config: from the options given (new run) or saved (resumed run)
    train: TrainConfig

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    @property
    def resume(self) -> bool:
        return self.folder.saved is not None


def plan(kind: str, config_class: type, options: dict, *, out, resume, time_budget,
         max_steps, train_defaults: dict, default_budget: float,
         recipe: Callable[[float | None], dict] | None = None) -> Plan:
    """Check ``options`` (the task config's fields, flat, and TrainConfig's) and settle the
    run's settings."""
    task_fields = set(flat_fields(config_class))
    unknown = sorted(set(options) - task_fields - _TRAIN_FIELDS)
    if unknown:
        raise TypeError(f"unknown options: {', '.join(unknown)}")
    given_task = {k: v for k, v in options.items() if k in task_fields}
    given_train = {k: v for k, v in options.items() if k in _TRAIN_FIELDS}
    folder = RunFolder.claim(kind, out=out, resume=resume)
    if folder.saved is not None:
        config = from_dict(config_class, folder.saved["task"][kind], where=str(folder.last))
        saved_values = flatten(to_dict(config))
        changed = sorted(k for k, v in given_task.items() if v != saved_values.get(k))
        if changed:
            raise ValueError("a resumed run keeps its data and model; these options differ "
                             f"from the run's: {', '.join(changed)}")
        train_values = {**folder.saved["train"], **given_train}
    else:
        train_values = {**train_defaults, **given_train}
    if time_budget is not None or max_steps is not None:
        train_values["time_budget"] = None if time_budget is None else parse_duration(time_budget)
        train_values["max_steps"] = max_steps
    elif resume is None:
        train_values["time_budget"] = default_budget
    if resume is None:
        suggested = recipe(train_values["time_budget"]) if recipe else {}
        config = from_dict(config_class, nest(config_class, {**suggested, **given_task}))
    return Plan(folder, config, TrainConfig(**train_values))


def execute(run_plan: Plan, build: Callable[[torch.device, distributed.DistContext], tuple],
            *, device="auto", progress: bool = True) -> tuple[TrainResult | None, torch.device]:
    """Train the task ``build(device, context)`` returns as ``(task, message, json_files)``.

    Returns the result (``None`` on ranks other than 0) and the device used.
    """
    device = resolve_device(device)
    context = distributed.setup(device)
    if context.enabled and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
    try:
        torch.manual_seed(run_plan.train.seed)  # the model's initial weights
        task, message, json_files = build(device, context)
        if context.is_main and progress and message:
            print(message, file=sys.stderr)
        trainer = Trainer(task, run_plan.train, run_plan.run_dir, device=device,
                          resume=run_plan.resume, progress=progress, context=context)
        if context.is_main:
            save_json(run_plan.run_dir / "config.json",
                      {task.kind: task.config()[task.kind], "train": asdict(run_plan.train)})
            for name, value in json_files.items():
                save_json(run_plan.run_dir / name, value)
        result = trainer.fit()
        del trainer  # its DistributedDataParallel must go before the process group
    finally:
        distributed.teardown(context)
    return (result if context.is_main else None), device


@dataclass
class SavedRun:
    """What a task's ``Trained*.load`` needs from a run folder or checkpoint file."""

    path: Path  # the checkpoint read: best.safetensors when there is one, else last
    task: dict  # the task's saved config (its model, vocabulary, settings)
    weights: dict  # the model's state_dict
    metrics: dict  # the best checkpoint's validation metrics ({} for the last one)

    def restore(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``model`` with the saved weights, on ``device``, in evaluation mode."""
        model.load_state_dict(self.weights)
        return model.to(device).eval()


def checkpoint_path(run: str | Path) -> Path:
    """The checkpoint to load from a run folder (its best, else its last), or the file given."""
    path = Path(run)
    if path.is_dir():
        path = path / BEST if (path / BEST).exists() else path / LAST
    return path


def saved_kind(run: str | Path) -> str:
    """The task of a run folder or checkpoint file ("charlm", "sentiment", ...)."""
    return read_kind(checkpoint_path(run))


def open_run(run: str | Path, kind: str, device: torch.device) -> SavedRun:
    """The best checkpoint of a run folder (else its last), or the checkpoint file given."""
    path = checkpoint_path(run)
    checkpoint = load_checkpoint(path, kind=kind, device=device)
    metrics = (checkpoint.state or {}).get("metrics", {}) if path.name == BEST else {}
    return SavedRun(path, checkpoint.config["task"], checkpoint.weights, metrics)


__all__ = ["Plan", "SavedRun", "Task", "checkpoint_path", "execute", "open_run", "plan",
           "saved_kind"]
