"""What every task's command line shares: ``train`` generated from the task's config and
:class:`rnnkit.train.TrainConfig`, the run options, and a few argument types."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..arguments import add_config_arguments, given
from ..train.runtime import parse_duration
from ..train.trainer import TrainConfig
from . import base


def duration(text: str) -> float:
    """``--time-budget 75s|10m|2h`` as seconds, or an argparse error saying what was wrong."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_actions(tasks: Any, task: str, help: str) -> Any:
    """``rnnkit <task> ...``: the task's parser, whose actions its command-line module adds."""
    parser = tasks.add_parser(task, help=help)
    return parser.add_subparsers(dest="action", metavar="<action>", required=True)


def add_train(actions: Any, task: type[base.Task], help: str) -> argparse.ArgumentParser:
    """``<task> train``: the task's data and model options, the trainer's, and the run's."""
    parser = actions.add_parser("train", help=help)
    add_config_arguments(parser, task.Config, title="data")
    add_config_arguments(parser, TrainConfig, title="training", defaults=task.train_defaults)
    run = parser.add_argument_group("run")
    run.add_argument("--out", help="run folder (checkpoints, metrics, curves)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    run.add_argument("--time-budget", type=duration,
                     help="training time, e.g. 75s, 10m, 2h (evaluation not counted; default: "
                          f"{task.default_budget / 60:g} minutes)")
    run.add_argument("--max-steps", type=int, help="stop after this many updates")
    add_device(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def add_device(parser: Any) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")


def add_action(actions: Any, name: str, *, help: str, json: str | None = None,
               aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """An action on a trained run (``eval``, ``predict``): ``RUN_DIR`` first, then the
    action's own options; ``--json`` (its ``help`` says what is printed) and ``--device``."""
    parser = actions.add_parser(name, help=help, aliases=list(aliases))
    parser.add_argument("run", metavar="RUN_DIR", help="run folder or checkpoint file")
    if json is not None:
        parser.add_argument("--json", action="store_true", help=json)
    add_device(parser)
    return parser


def input_lines(given: list[str], file: str | None, what: str) -> list[str]:
    """What to work on: the ``given`` arguments, else the lines of ``file``, else of stdin
    (blank lines left out); an error naming ``what`` when there is nothing."""
    if given:
        return given
    if file:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    found = [line for line in lines if line.strip()]
    if not found:
        raise ValueError(f"no {what}: pass them as arguments, with --file, or on stdin")
    return found


def train(task: type[base.Task], args: argparse.Namespace) -> base.Trained | None:
    """``<task> train`` with the options given; prints how training ended. ``None`` on ranks
    other than 0 of a distributed run."""
    trained = base.train(task, args.out, resume=args.resume, device=args.device,
                         progress=not args.no_progress, time_budget=args.time_budget,
                         max_steps=args.max_steps, **given(args, task.Config, TrainConfig))
    if trained is not None:
        result = trained.result
        print(f"stopped after {result.steps} steps ({result.stopped_because}), "
              f"{result.train_seconds:.0f} s of training", file=sys.stderr)
        if trained.skipped:
            print(f"skipped {len(trained.skipped)} {task.skipped_what}, the first: "
                  f"{trained.skipped[0]}", file=sys.stderr)
    return trained
