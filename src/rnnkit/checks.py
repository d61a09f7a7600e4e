"""Checks of token ids, class ids and lengths: written once, the costly ones run once.

* :func:`check_ids_shape`, :func:`check_lengths_shape`: type, dtype and shape only. They read no
  value, so they cost nothing: the models run them in every forward pass.
* :func:`check_fields`, :func:`check_special_ids`: the fields of a model's config dataclass
  (sizes, switches, rates, choices, special token ids), once, when it is made.
* :func:`check_token_ids`, :func:`check_class_ids`, :func:`check_lengths`: every value in its
  range. Reading the values is a copy to the host that waits for the device on a GPU, so these
  run at the boundary, once: where a task encodes its data, where a user hands ids to a
  model's generation (``sample``, ``translate``, ``explain``), and in
  :class:`rnnkit.nn.Recurrent`'s check of ``lengths`` (which the engines need on the host
  anyway). A model's forward trusts the values.

Each raises :class:`rnnkit.errors.RnnkitError` (``TypeError`` for what is not a tensor at all)
with what was expected and what came.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

from .errors import RnnkitError

__all__ = ["check_class_ids", "check_fields", "check_ids_shape", "check_lengths",
           "check_lengths_shape", "check_special_ids", "check_token_ids", "is_integer"]


def is_integer(value: object) -> bool:
    """An integer (Python's, numpy's), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_fields(config: object, *, positive: Iterable[str] = (), flags: Iterable[str] = (),
                 rates: Iterable[str] = (), choices: Mapping[str, Sequence[str]] | None = None,
                 from_data: Iterable[str] = ()) -> None:
    """The fields of ``config`` named in ``positive`` are integers >= 1, in ``flags`` True or
    False, in ``rates`` numbers in ``[0, 1)`` (dropout), and in ``choices`` one of the values
    listed for them. Those of ``from_data`` are sizes the data decides: integers >= 1, or
    ``None`` until the data is read (the model checks that they are set)."""
    unset = set(from_data)
    for name in [*positive, *unset]:
        value = getattr(config, name)
        if value is None and name in unset:
            continue
        if not is_integer(value) or value < 1:
            raise RnnkitError(f"{name} must be a positive integer, got {value!r}")
    for name in flags:
        if not isinstance(getattr(config, name), bool):
            raise RnnkitError(f"{name} must be True or False, got {getattr(config, name)!r}")
    for name in rates:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise RnnkitError(f"{name} must be in [0, 1), got {value!r}")
    for name, allowed in (choices or {}).items():
        if getattr(config, name) not in allowed:
            raise RnnkitError(f"unknown {name} {getattr(config, name)!r}: expected one of "
                              + ", ".join(repr(a) for a in allowed))


def check_special_ids(config: object, names: Iterable[str], size: int | None, meaning: str,
                      distinct: bool = True) -> None:
    """The fields ``names`` of ``config`` are token ids in ``[0, size)`` (``meaning`` says of
    what, for the message: ``"the vocabulary"``; ``size`` None: not known yet, so >= 0),
    different from each other if ``distinct``."""
    seen: dict[int, str] = {}
    for name in names:
        value = getattr(config, name)
        if not is_integer(value) or value < 0 or (size is not None and value >= size):
            raise RnnkitError(f"{name} must be an id in [0, {size or 'V'}) ({meaning}), got "
                              f"{value!r}")
        if distinct and value in seen:
            raise RnnkitError(f"{name} and {seen[value]} must differ, got {value} for both")
        seen[value] = name


def check_ids_shape(ids: Tensor, where: str, shape: str, dims: tuple[int, ...] = (2,),
                    batch_size: int | None = None, min_steps: int = 1) -> Tensor:
    """``ids`` as an int64 tensor of ``dims`` dimensions, ``batch_size`` rows (when given) and
    at least ``min_steps`` entries in its last; their values are not read.

    ``shape`` describes what is expected in the message (``"(B, T), non-empty"``).
    """
    if not isinstance(ids, Tensor):
        raise TypeError(f"expected {where} as a tensor of token ids {shape}, got "
                        f"{type(ids).__name__}")
    if _not_integer(ids):
        raise RnnkitError(f"expected {where} as integer token ids (int64), got {ids.dtype}")
    if ids.dim() not in dims or ids.numel() == 0 or ids.shape[-1] < min_steps or (
            batch_size is not None and ids.shape[0] != batch_size):
        raise RnnkitError(f"expected {where} of shape {shape}, got {tuple(ids.shape)}")
    return ids.long()


def check_lengths_shape(lengths: Tensor | Sequence[int], batch_size: int,
                        where: str = "lengths") -> Tensor:
    """``lengths`` as ``batch_size`` integers ``(B,)``, int64; their values are not read."""
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (batch_size,) or _not_integer(lengths):
        raise RnnkitError(f"expected {where} as {batch_size} integers (B,), got {lengths.dtype} "
                          f"of shape {tuple(lengths.shape)}")
    return lengths.long()


def check_token_ids(ids: Tensor | Iterable[Sequence[int]], vocab_size: int, where: str) -> None:
    """Every id of ``ids`` in ``[0, vocab_size)``.

    Args:
        ids: a tensor of integer ids, or encoded sequences (lists of ids), any lengths.
        vocab_size: ``V``.
        where: what the ids are, for the message (``"idx"``, ``"the validation captions"``).

    Example::

        >>> check_token_ids(torch.tensor([[0, 11]]), 11, "idx")
        RnnkitError: expected idx in [0, 11) (the vocabulary), got ids from 0 to 11
    """
    _check_range(ids, vocab_size, where, "token ids", "the vocabulary", "ids from ")


def check_class_ids(labels: Tensor | Sequence[int], num_classes: int, where: str) -> None:
    """Every class id of ``labels`` in ``[0, num_classes)`` (see :func:`check_token_ids`)."""
    _check_range(labels, num_classes, where, "class ids", "the classes", "")


def check_lengths(lengths: Tensor | Sequence[int], batch_size: int, steps: int,
                  where: str = "lengths", shortest: int = 1) -> Tensor:
    """``lengths`` as ``batch_size`` integers in ``[shortest, steps]``; returned as int64 ``(B,)``
    on their own device.

    Example::

        >>> check_lengths(torch.tensor([3, 6]), 2, 5)
        RnnkitError: expected every length in [1, T=5], got lengths from 3 to 6
    """
    lengths = check_lengths_shape(lengths, batch_size, where)
    low, high = (int(v) for v in torch.aminmax(lengths))
    if low < shortest or high > steps:
        raise RnnkitError(f"expected every length in [{shortest}, T={steps}], got {where} from "
                          f"{low} to {high}")
    return lengths


def _check_range(values, size: int, where: str, kind: str, meaning: str, got: str) -> None:
    if isinstance(values, Tensor):
        if _not_integer(values):
            raise RnnkitError(f"expected {where} as integer {kind} (int64), got {values.dtype}")
        if values.numel() == 0:
            return
        low, high = (int(v) for v in torch.aminmax(values))  # one pass, one copy to the host
    else:  # encoded sequences (or one flat list of ids): min and max row by row, at C speed
        rows = [row for row in (r if isinstance(r, Iterable) else (r,) for r in values) if row]
        if not rows:
            return
        low, high = min(min(row) for row in rows), max(max(row) for row in rows)
    if low < 0 or high >= size:
        raise RnnkitError(f"expected {where} in [0, {size}) ({meaning}), got {got}{low} to "
                          f"{high}")


def _not_integer(t: Tensor) -> bool:
    return t.is_floating_point() or t.is_complex() or t.dtype == torch.bool
