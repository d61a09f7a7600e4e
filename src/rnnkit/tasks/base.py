"""What every task shares: the trainer's view of a task, training into a run folder, and the
model loaded back from one.

A task is four things (see "Adding a task" in the README):

- a **config** dataclass (:func:`rnnkit.config.option` fields: data options, with the model's
  config nested in ``model``), from which the command line is generated;
- its **data**: ``load_data(config, run_dir=..., progress=...)`` reads and encodes what the
  config names;
- its **model**: ``build_model()`` (the model config filled with the sizes the data decides);
- its **steps**: ``train_batch(step)`` (a pure function of the step, so that a resumed run
  repeats it), ``training_step(model, batch)`` and ``validate(model)``.

Everything else is here: :func:`train` (plan, seed, build, train, load the best model), the
held-out split, the epoch arithmetic under DDP, what a run folder saves, :class:`Trained` (a
run loaded back, with one ``predict`` for every task) and :func:`load`, which opens any run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import from_dict, to_dict
from ..train import distributed, run
from ..train.run import SavedRun, open_run, saved_kind
from ..train.runtime import resolve_device
from ..train.trainer import TrainResult

__all__ = ["TASKS", "BucketedTask", "Task", "Trained", "held_out", "load", "train"]

# every task: its kind (as written in checkpoints) -> its module, ``tasks/<module>.py`` (the
# task) and ``tasks/<module>_cli.py`` (its command line); the order of ``rnnkit --help``
TASKS = {"charlm": "charlm", "sentiment": "sentiment", "caption": "caption",
         "translate": "translate", "video": "video"}


class Task:
    """The trainer's view of a task (:class:`rnnkit.train.trainer.Task`), with the defaults
    every task shares. A subclass sets the class attributes and writes the steps."""

    kind: ClassVar[str]  # "charlm", "sentiment", ...: written into checkpoints
    Config: ClassVar[type]  # the task's config dataclass (the model's nested as ``model``)
    Model: ClassVar[type[nn.Module]]  # the model, built from its config: ``Model(config)``
    Trained: ClassVar[type[Trained]]  # what a run of this task loads back as
    monitor: ClassVar[str] = "loss"  # the validation metric that picks the best model (lower)
    train_defaults: ClassVar[dict] = {}  # TrainConfig settings this task is best with
    default_budget: ClassVar[float] = 600.0  # seconds, without --time-budget or --max-steps
    skipped_what: ClassVar[str] = "bad rows"  # what the data's ``skipped`` list holds
    # what a run saves as JSON besides its configs, by name: the class of the data's attribute
    # of that name (a vocabulary, a label set: ``to_json`` / ``from_json``), loaded back onto
    # the trained model's attribute of the same name
    vocabularies: ClassVar[dict[str, type]] = {}

    def __init__(self, config: Any, data: Any, device: torch.device,
                 context: distributed.DistContext | None = None) -> None:
        self.settings, self.data, self.device = config, data, device
        self.context = context or distributed.DistContext()
        self.model = self.build_model()
        self.check_data()

    # ------------------------------------------------------------------ what a task writes
    @classmethod
    def recipe(cls, time_budget: float | None) -> dict:
        """Options that do better for this budget (measured), under what the user gives."""
        return {}

    @classmethod
    def load_data(cls, config: Any, *, run_dir: Path | None = None,
                  progress: bool = False) -> Any:
        """The run's data as ``config`` names it (``run_dir``: where a task may cache)."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def check_data(self) -> None:
        """Check the values of the encoded data once, where the model meets it (token ids
        within the vocabulary, class ids within the labels): the model's forward trusts them."""

    def summary(self) -> str:
        """One line for stderr before training: the model and the data it reads."""
        return ""

    def saved(self) -> dict:
        """JSON a later load needs besides the configs: the data's :attr:`vocabularies`."""
        return {name: getattr(self.data, name).to_json() for name in self.vocabularies}

    def files(self) -> dict:
        """Extra JSON files for the run folder, by name (e.g. ``vocab.json``)."""
        return {}

    # ------------------------------------------------------------------ shared defaults
    def describe(self, loss: float) -> dict[str, float]:
        """Metrics derived from the training loss for the log (e.g. bits per character)."""
        return {}

    def config(self) -> dict:
        return {self.kind: to_dict(self.settings), **self.saved(),
                "model": to_dict(self.model.config)}

    def parameter_groups(self) -> list[dict] | None:
        """Parameter groups with their own ``lr_scale`` (a factor of the schedule's learning
        rate: discriminative fine-tuning trains a pretrained encoder slower than a new head),
        or ``None``: one group, every parameter at the schedule's rate."""
        return None

    def state_dict(self) -> dict:
        return {}  # state carried from one batch to the next (a language model's hidden state)

    def load_state_dict(self, state: dict) -> None:
        pass

    def position(self, step: int, batches_per_epoch: int) -> tuple[int, int]:
        """``(epoch, batch)`` of this rank at ``step``: under DDP each rank takes every
        ``world_size``-th batch, so that together they read each batch once per epoch."""
        index = step * self.context.world_size + self.context.rank
        return divmod(index, max(1, batches_per_epoch))

    def shuffled(self, step: int, count: int, batch_size: int) -> torch.Tensor:
        """The item indices ``(B,)`` of this rank's batch at ``step``: an epoch is a fresh
        permutation of the ``count`` items, drawn from its own seed (not the global one)."""
        epoch, index = self.position(step, count // batch_size)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(1000 + epoch))
        return order[index * batch_size:(index + 1) * batch_size]


class BucketedTask(Task):
    """A task whose data are id sequences batched by length: ``data.train`` and ``data.val``
    are the arguments of its :attr:`Batches` (``BucketBatches``, ``PairBatches``), whose
    ``batch(epoch, index)`` is a tuple of tensors."""

    Batches: ClassVar[type]
    eval_batch_size: ClassVar[int] = 128  # no gradients: larger batches

    def __init__(self, config: Any, data: Any, device: torch.device,
                 context: distributed.DistContext | None = None) -> None:
        super().__init__(config, data, device, context)
        self.batches = self.Batches(*data.train, config.batch_size, seed=0)
        self.val_batches = self.Batches(*data.val, self.eval_batch_size, shuffle=False)

    def train_batch(self, step: int) -> tuple[torch.Tensor, ...]:
        epoch, index = self.position(step, len(self.batches))
        return tuple(t.to(self.device) for t in self.batches.batch(epoch, index))


def held_out(items: list, fraction: float, *, seed: int = 0) -> tuple[list, list]:
    """``(train, val)``: a fixed, shuffled ``fraction`` of ``items`` (at least one) held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    cut = len(items) - max(1, int(len(items) * fraction))
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    return [items[i] for i in order[:cut]], [items[i] for i in order[cut:]]


def train(task: type[Task], out: str | Path | None = None, *,
          resume: str | Path | None = None, device: str | torch.device = "auto",
          progress: bool = True, time_budget: str | float | None = None,
          max_steps: int | None = None, **options) -> Trained | None:
    """Train ``task`` into the run folder ``out`` (or continue the run ``resume``).

    ``options`` are the fields of the task's config (data and model, given flat:
    ``hidden_size=512``) and of :class:`rnnkit.train.TrainConfig`; ``time_budget`` takes
    ``"75s"``, ``"10m"`` or seconds. Returns the best model (``None`` on ranks other than 0
    under ``torchrun``).
    """
    run_plan = run.plan(task.kind, task.Config, options, out=out, resume=resume,
                        time_budget=time_budget, max_steps=max_steps,
                        train_defaults=task.train_defaults, default_budget=task.default_budget,
                        recipe=task.recipe)
    skipped: list[str] = []

    def build(device: torch.device, context: distributed.DistContext):
        data = task.load_data(run_plan.config, run_dir=run_plan.run_dir,
                              progress=progress and context.is_main)
        skipped.extend(getattr(data, "skipped", []))
        job = task(run_plan.config, data, device, context)
        return job, job.summary(), job.files()

    result, device = run.execute(run_plan, build, device=device, progress=progress)
    if result is None:  # a rank other than 0
        return None
    trained = task.Trained.load(run_plan.run_dir, device)
    trained.result, trained.skipped = result, skipped
    return trained


@dataclass(kw_only=True)
class Trained:
    """A task's model loaded from a run folder (or one of its checkpoint files), ready to use.

    A subclass names its task and adds what its ``predict`` needs (vocabularies) in
    :meth:`restore`; ``predict(inputs, **options)`` returns one JSON-ready dict per input, the
    objects ``rnnkit <task> predict --json`` prints and a server returns.
    """

    task: ClassVar[type[Task]]
    model: nn.Module
    config: Any  # the task's config
    path: Path  # the checkpoint read
    metrics: dict = field(default_factory=dict)  # the best checkpoint's validation metrics
    result: TrainResult | None = None  # how training went, when this came from train()
    skipped: list[str] = field(default_factory=list)  # bad records skipped in training

    @classmethod
    def load(cls, run: str | Path, device: str | torch.device = "cpu") -> Trained:
        device = resolve_device(device)
        saved = open_run(run, cls.task.kind, device)
        saved.task = cls.upgrade(saved.task)
        config = from_dict(cls.task.Config, saved.task[cls.task.kind], where=str(saved.path))
        model_config = from_dict(type(config.model), saved.task["model"], where=str(saved.path))
        model = saved.restore(cls.task.Model(model_config), device)
        vocabularies = {name: kind.from_json(saved.task[name])
                        for name, kind in cls.task.vocabularies.items()}
        return cls(model=model, config=config, path=saved.path, metrics=saved.metrics,
                   **vocabularies, **cls.restore(saved, config, device))

    @classmethod
    def upgrade(cls, saved: dict) -> dict:
        """The task's part of a checkpoint's config (``{kind: ..., "model": ...}``) in today's
        layout: a task whose saved layout changed reads its older runs here."""
        return saved

    @classmethod
    def restore(cls, saved: SavedRun, config: Any, device: torch.device) -> dict:
        """The subclass's own fields besides its task's vocabularies, from the saved run."""
        return {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def predict(self, inputs: list, **options) -> list[dict]:
        raise NotImplementedError


def task_class(kind: str) -> type[Task]:
    """The task of ``kind`` (imported only when asked for)."""
    if kind not in TASKS:
        raise ValueError(f"unknown task {kind!r}: expected one of {', '.join(TASKS)}")
    module = importlib.import_module(f"{__package__}.{TASKS[kind]}")
    return module.TASK


def load(run: str | Path, device: str | torch.device = "cpu") -> Trained:
    """The trained model of any run folder (or checkpoint file), whatever its task::

        model = rnnkit.load("runs/sst2")
        model.predict(["a gripping, funny film"])
    """
    return task_class(saved_kind(run)).Trained.load(run, device)
