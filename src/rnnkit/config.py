"""Configs as dataclasses whose every field carries its default and its help text, once.

A field is declared with :func:`option`::

    hidden_size: int = option(256, "H, units per level")

and everything else is derived from it: the command line's ``--hidden-size`` (its type, its
help, its default shown; see :mod:`rnnkit.cli`), the keys a saved config may have, and the
checks of a dict read back from a run folder (:func:`from_dict`). A config may nest another
one (a task's config holds its model's, as minGPT's ``C.model = GPT.get_default_config()``);
on the command line and in ``train(**options)`` the nested fields are given flat
(``hidden_size=512``), :func:`nest` puts them where they belong.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import Any

__all__ = ["flat_fields", "flatten", "from_dict", "nest", "option", "to_dict"]


def option(default: Any = MISSING, help: str = "", *, factory: Any = MISSING,
           flag: str | None = None, negative: str | None = None, aliases: tuple[str, ...] = (),
           old_names: tuple[str, ...] = (), choices: tuple | None = None,
           metavar: str | None = None, cli: bool = True) -> Any:
    """A config field with its help text (and how the command line spells it).

    ``flag`` replaces ``--field-name``; ``aliases`` are older spellings of the flag that still
    work, ``old_names`` older names of the field (in saved runs and ``train(**options)``);
    ``negative`` is the flag that sets a boolean to False (default ``--no-field-name`` for a
    field that defaults to True); ``cli=False`` keeps a field off the command line (sizes that
    come from the data, such as a model's ``vocab_size``). A ``list[str]`` field takes one or
    more values (``--train A.txt B.txt``).
    """
    metadata = {"help": help, "flag": flag, "negative": negative, "aliases": aliases,
                "old_names": old_names, "choices": choices, "metavar": metavar, "cli": cli}
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_type(cls: type, f: Field) -> tuple[type, bool]:
    """The field's base type and whether it may be None: ``int | None`` -> ``(int, True)``."""
    hint = typing.get_type_hints(cls)[f.name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return kinds[0], len(kinds) < len(args)
    return hint, False


def nested_config(cls: type, f: Field) -> type | None:
    """The config class a field nests (``model: ModelConfig``), else None."""
    kind, _ = field_type(cls, f)
    return kind if is_dataclass(kind) else None


def flat_fields(cls: type) -> dict[str, tuple[type, Field]]:
    """Every field of ``cls`` and of the configs it nests, by name: ``{name: (owner, field)}``.

    Names must be unique across the nesting, since the command line gives them flat."""
    found: dict[str, tuple[type, Field]] = {}
    for f in fields(cls):
        inner = nested_config(cls, f)
        items = flat_fields(inner).items() if inner else [(f.name, (cls, f))]
        for name, owner in items:
            if name in found:
                raise TypeError(f"{cls.__name__}: the option {name!r} is declared twice")
            found[name] = owner
    return found


def _renamed(cls: type, values: dict) -> dict:
    """``values`` with the old names of ``cls``'s fields (and its nested configs') replaced."""
    names = {old: name for name, (_, f) in flat_fields(cls).items()
             for old in f.metadata.get("old_names", ())}
    return {names.get(key, key): value for key, value in values.items()}


def nest(cls: type, flat: dict) -> dict:
    """Flat options ``{"hidden_size": 512, "text": ...}`` as ``cls`` nests them:
    ``{"text": ..., "model": {"hidden_size": 512}}``. Unknown names are an error."""
    flat = _renamed(cls, flat)
    known = flat_fields(cls)
    unknown = sorted(set(flat) - set(known))
    if unknown:
        raise ValueError(f"unknown options for {cls.__name__}: {', '.join(unknown)}")
    nested: dict = {}
    for f in fields(cls):
        inner = nested_config(cls, f)
        if inner:
            part = nest(inner, {k: v for k, v in flat.items() if k in flat_fields(inner)})
            if part:
                nested[f.name] = part
        elif f.name in flat:
            nested[f.name] = flat[f.name]
    return nested


def flatten(values: dict) -> dict:
    """The inverse of :func:`nest`: nested dicts' keys brought up to the top."""
    flat: dict = {}
    for key, value in values.items():
        flat.update(flatten(value) if isinstance(value, dict) else {key: value})
    return flat


def from_dict(cls: type, values: dict, where: str = "") -> Any:
    """``cls`` from a (possibly partial) dict; nested configs from nested dicts.

    Keys of a nested config found at the top are moved into it: run folders written before the
    model's config was nested in the task's keep loading. Unknown keys are an error naming
    ``where`` (the file they came from)."""
    values = _renamed(cls, values)
    kwargs: dict = {}
    for f in fields(cls):
        inner = nested_config(cls, f)
        if inner is None:
            if f.name in values:
                kwargs[f.name] = values.pop(f.name)
            continue
        part = dict(values.pop(f.name, {}) or {})
        for name in [n for n in values if n in {g.name for g in fields(inner)}]:
            part.setdefault(name, values.pop(name))  # the flat layout of older runs
        kwargs[f.name] = from_dict(inner, part, where)
    if values:
        place = f" in {where}" if where else ""
        raise ValueError(f"unknown {cls.__name__} keys{place}: {', '.join(sorted(values))}")
    return cls(**kwargs)


def to_dict(config: Any) -> dict:
    """The config as JSON-ready nested dicts (what a run folder saves)."""
    return dataclasses.asdict(config)
