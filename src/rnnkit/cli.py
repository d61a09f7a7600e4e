"""The ``rnnkit`` command line: ``rnnkit <task> <action> ...``.

Exit codes: 0 on success, 2 on bad input or usage, 1 on other failures. Results go to stdout,
progress and logs to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import RnnkitError
from .inspect import cli as inspect_cli
from .tasks.base import TASKS

# what exits with code 2: rnnkit's own errors (every reader's and checkpoint's), the other
# ValueErrors of bad settings, a missing or misplaced path, and an optional extra not installed
BAD_INPUT = (RnnkitError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
             ImportError)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks as the lecture teaches them.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    tasks = parser.add_subparsers(dest="task", metavar="<task>", required=True)

    demo = tasks.add_parser("demo", help="the layers at work: fast paths vs the reference loop")
    demo.add_argument("--batch-size", type=int, default=32, help="B, sequences per batch")
    demo.add_argument("--seq-len", type=int, default=100, help="T, steps per sequence")
    demo.add_argument("--hidden-size", type=int, default=256, help="H, hidden units")
    demo.add_argument("--num-layers", type=int, default=2, help="L, stacked levels")
    demo.add_argument("--seed", type=int, default=0)

    for command in _commands().values():
        command.add_parser(tasks)
    return parser


def _commands() -> dict:
    """The command-line module of every task (``tasks/<task>_cli.py``) and of ``inspect``."""
    commands = {kind: importlib.import_module(f"{__package__}.tasks.{module}_cli")
                for kind, module in TASKS.items()}
    return {**commands, "inspect": inspect_cli}


def _positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.task == "demo":
        _positive(parser, args, "batch_size", "seq_len", "hidden_size", "num_layers")
        from .demo import DemoConfig, format_rows, run_demo

        config = DemoConfig(batch_size=args.batch_size, seq_len=args.seq_len,
                            hidden_size=args.hidden_size, num_layers=args.num_layers,
                            seed=args.seed)
        print(format_rows(config, run_demo(config)))
        return 0
    tasks = _commands()
    if args.task in tasks:
        task = tasks[args.task]
        try:
            return task.run(args)
        except BAD_INPUT as error:
            print(f"rnnkit {args.task} {args.action}: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    parser.error(f"unknown task {args.task!r}")  # argparse already refuses; kept for clarity
    return 2


if __name__ == "__main__":
    sys.exit(main())
