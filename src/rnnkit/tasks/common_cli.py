"""(Transitional: the CLI of the tasks not yet on tasks.cli; removed once every task is.)

What every task's command line shares: the run options of ``train``, durations, and the
options a user actually gave."""

from __future__ import annotations

import argparse
from dataclasses import fields

from ..train.runtime import parse_duration
from ..train.trainer import TrainConfig

# TrainConfig's fields a command line passes on (the budget and steps go by name)
TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"time_budget", "max_steps"}


def duration(text: str) -> float:
    """``--time-budget 75s|10m|2h`` as seconds, or an argparse error saying what was wrong."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_run_options(parser: argparse.ArgumentParser, budget_example: str = "10m") -> None:
    """The ``run`` group of a task's ``train``: folder, resume, budget, optimisation, device."""
    run = parser.add_argument_group("run")
    run.add_argument("--out", help="run folder")
    run.add_argument("--resume", metavar="RUN_DIR")
    run.add_argument("--time-budget", type=duration, help=f"training time, e.g. {budget_example}")
    run.add_argument("--max-steps", type=int)
    for name, kind in (("learning-rate", float), ("weight-decay", float), ("eval-every", int),
                       ("patience", int), ("seed", int), ("warmup-steps", int),
                       ("weight-average", float)):
        run.add_argument(f"--{name}", type=kind)
    run.add_argument("--device", default="auto")
    run.add_argument("--no-progress", action="store_true")


def given(args: argparse.Namespace, names: set[str]) -> dict:
    """The options among ``names`` that the user set (``None`` means: the task's default)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
