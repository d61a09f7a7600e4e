"""Command-line options generated from config dataclasses (as fairseq does), so that a flag,
its type, its default and its help are written once, in the config (:func:`rnnkit.config.option`).

Flags default to ``None`` ("not given"), so that what a user did not say falls to the config's
default, a task's recipe or, on ``--resume``, the run's saved value; :func:`given` collects
what was said.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, Field, fields
from typing import Any

from .config import field_type, flat_fields, from_dict, nest, nested_config

__all__ = ["add_config_arguments", "config_values", "given"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default_text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return ""  # the flag says it
    return f" (default: {value})".replace("%", "%%")


def _add(group: Any, owner: type, f: Field, default: Any) -> None:
    meta = f.metadata
    kind, _ = field_type(owner, f)
    flag = meta.get("flag") or _flag(f.name)
    names = [flag, *meta.get("aliases", ())]
    help_text = meta.get("help", "").replace("%", "%%")
    if kind is bool:
        negative = meta.get("negative") or _flag("no_" + f.name)
        if f.default is not True:  # False, or None (not given: detect)
            group.add_argument(*names, dest=f.name, action="store_const", const=True,
                               default=None, help=help_text)
        if f.default is not False:
            label = f"not: {help_text}" if f.default is None else help_text
            group.add_argument(negative, dest=f.name, action="store_const", const=False,
                               default=None, help=label if f.default is None else
                               f"{help_text} (off; default: on)")
        return
    many = typing.get_origin(kind) is list
    if many:
        kind = typing.get_args(kind)[0]
    if kind not in (int, float, str):
        raise TypeError(f"{owner.__name__}.{f.name}: no command-line form for {kind}")
    group.add_argument(*names, dest=f.name, type=kind, default=None, nargs="+" if many else None,
                       choices=meta.get("choices"), metavar=meta.get("metavar"),
                       help=help_text + _default_text(default))


def add_config_arguments(parser: argparse.ArgumentParser, config: type, *,
                         skip: tuple[str, ...] = (), title: str | None = None,
                         defaults: dict | None = None) -> None:
    """``--name`` flags for every command-line field of ``config`` and of the configs it
    nests (each nested config in a group of its own, named after its field). ``defaults``
    replaces the defaults shown where a task starts from its own (a task's learning rate)."""
    defaults = defaults or {}
    group = parser.add_argument_group(title) if title else parser
    for f in fields(config):
        inner = nested_config(config, f)
        if inner is not None:
            add_config_arguments(parser, inner, skip=skip, title=f.name, defaults=defaults)
        elif f.name not in skip and f.metadata.get("cli", True):
            _add(group, config, f, defaults.get(f.name, f.default))


def given(args: argparse.Namespace, *configs: type) -> dict:
    """The options of ``configs`` (flat, nested configs included) that the user gave."""
    names = {name for c in configs for name, (_, f) in flat_fields(c).items()
             if f.metadata.get("cli", True)}
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def config_values(args: argparse.Namespace, config: type) -> Any:
    """``config`` filled from the parsed arguments (a flag not given keeps its default)."""
    return from_dict(config, nest(config, given(args, config)))
