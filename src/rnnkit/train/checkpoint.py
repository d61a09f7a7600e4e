"""Checkpoints that load anywhere and never run code: safetensors for tensors, JSON for the rest.

A checkpoint is one ``.safetensors`` file. Its tensors are the model's ``state_dict`` under
``weights/<name>`` and the tensors found in the trainer state under ``state/<i>``; its
metadata (safetensors allows ``str -> str``) says who wrote it and holds the JSON parts::

    rnnkit_format  str(FORMAT_VERSION)   bumped when the layout changes; newer files are refused
    rnnkit_kind    "charlm", ...         the task that wrote it, so a task never loads another's
    config         json.dumps(config)    the resolved config of the run
    state          json skeleton         the trainer state with tensors as {"__tensor__": i}
                                         (absent when there is no state)

Loading goes through safetensors' own reader, never ``torch.load``: a file is parsed as data, so
a malicious or foreign file can fail to load but cannot execute anything. Every file is written
atomically (a temporary file in the same folder, flushed, fsynced, then ``os.replace``), so a
crash mid-save leaves the previous checkpoint whole and no half-written file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from ..data.files import atomic_write_bytes
from ..errors import RnnkitError

FORMAT_VERSION = 1

_WEIGHTS = "weights/"  # tensor-name prefix of the model's state_dict
_STATE = "state/"  # tensor-name prefix of the tensors in the trainer state, then their index
# A JSON object with exactly one of these keys stands for a value JSON cannot hold directly.
_TENSOR, _NDARRAY, _NUMPY, _TUPLE, _DICT = (
    "__tensor__", "__ndarray__", "__numpy__", "__tuple__", "__dict__")
_MARKERS = (_TENSOR, _NDARRAY, _NUMPY, _TUPLE, _DICT)
# numpy scalars whose value a Python bool/int/float holds exactly (long double would round).
_NUMPY_SCALARS = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                  "uint64", "float16", "float32", "float64")


class CheckpointError(RnnkitError):
    """A checkpoint file that cannot be used; the message names the file and what was expected."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read from one file."""

    kind: str  # the task that wrote it: "charlm", "sentiment", ...
    weights: dict[str, Tensor]  # a model state_dict, on the requested device
    config: dict  # the resolved config of the run, as plain JSON (tuples are lists)
    state: Any | None  # the trainer state given to save_checkpoint (tensors on the CPU), or None
    path: Path  # the file it was read from


# ---------------------------------------------------------------------------------- JSON
def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; :class:`CheckpointError` names the file (and line, column) if it can't."""
    path = Path(path)
    _require_file(path, "a JSON file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path}: expected a UTF-8 JSON file, got byte "
                              f"0x{error.object[error.start]:02x} at offset {error.start}"
                              ) from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: invalid JSON at line {error.lineno}, column "
                              f"{error.colno}: {error.msg}") from error


def _require_file(path: Path, expected: str) -> None:
    """Fail with a clear message when ``path`` is missing or is a folder."""
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, expected {expected}")
    if not path.exists():
        raise CheckpointError(f"{path} does not exist, expected {expected}")


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike, *, kind: str, weights: Mapping[str, Tensor],
                    config: dict, state: Any = None) -> Path:
    """Save a model's weights, the run's config and the trainer state to one file, atomically.

    Args:
        path: the ``.safetensors`` file to (over)write; its folder must exist.
        kind: the task writing it (``"charlm"``, ...); :func:`load_checkpoint` can insist on it.
        weights: a model ``state_dict``. Tensors are stored detached, contiguous and on the CPU
            (so the file loads on any device); tensors sharing storage (tied weights) are stored
            as separate copies.
        config: the resolved config, JSON-able.
        state: optional trainer state, anything :func:`flatten_state` accepts.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string naming the task, got {kind!r}")
    metadata = {"rnnkit_format": str(FORMAT_VERSION), "rnnkit_kind": kind,
                "config": _config_json(config)}
    tensors = {_WEIGHTS + name: tensor for name, tensor in _checked_weights(weights).items()}
    if state is not None:
        skeleton, state_tensors = flatten_state(state)
        metadata["state"] = json.dumps(skeleton)
        tensors.update({f"{_STATE}{i}": tensor for i, tensor in enumerate(state_tensors)})
    return atomic_write_bytes(path, safetensors_bytes(_storable(tensors), metadata=metadata))


def _config_json(config: dict) -> str:
    """The config as JSON text, or a TypeError that says it is the config that is at fault."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    try:
        return json.dumps(config)
    except (TypeError, ValueError) as error:
        raise TypeError(f"config is not JSON-able: {error}") from error


def _checked_weights(weights: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """``weights`` itself, after checking it maps names to tensors."""
    for name, tensor in weights.items():
        if not isinstance(name, str) or not isinstance(tensor, Tensor):
            raise TypeError(f"weights must map str to Tensor, got {name!r}: "
                            f"{type(tensor).__name__}")
    return weights


def _storable(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors of which no two share storage.

    safetensors refuses tensors that share memory (tied weights, views of one buffer): the
    second and later users of a storage get their own copy.
    """
    seen: set[int] = set()
    storable = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        storable[name] = tensor
    return storable


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None,
                    device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, without running any code.

    Args:
        path: the ``.safetensors`` file.
        kind: if given, the task the checkpoint must come from.
        device: where the weights go. The tensors of the trainer state stay on the CPU:
            ``torch.set_rng_state`` needs CPU tensors, and ``Optimizer.load_state_dict`` moves
            its state to the parameters' device itself.

    Raises:
        CheckpointError: a one-line message naming the file, when it is missing, a folder, not
            a safetensors file (or truncated), not written by rnnkit, from a newer rnnkit, from
            another task, or has malformed metadata.
    """
    path = Path(path)
    device = torch.device(device)
    metadata, tensors = _read_checkpoint(path, kind)
    weights, state_tensors = _split_tensors(path, tensors)
    state = None
    if "state" in metadata:
        try:
            state = unflatten_state(_json_metadata(path, metadata, "state"), state_tensors)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{path} has malformed 'state' metadata: {error}") from error
    elif state_tensors:
        raise CheckpointError(f"{path} has state tensors but no 'state' metadata")
    return Checkpoint(kind=metadata["rnnkit_kind"],
                      weights={name: tensor.to(device) for name, tensor in weights.items()},
                      config=_config_metadata(path, metadata), state=state, path=path)


def read_kind(path: str | os.PathLike) -> str:
    """The task that wrote the checkpoint at ``path`` (its header only: no tensor is read)."""
    path = Path(path)
    _require_file(path, "an rnnkit checkpoint (.safetensors)")
    try:
        with safe_open(path, framework="pt", device="cpu") as reader:
            return _checked_metadata(path, reader.metadata(), None)["rnnkit_kind"]
    except SafetensorError as error:
        raise CheckpointError(f"{path} is not an rnnkit checkpoint (truncated or not a "
                              f"safetensors file: {' '.join(str(error).split())})") from error


def _read_checkpoint(path: Path, kind: str | None) -> tuple[dict[str, str], dict[str, Tensor]]:
    """The checked metadata and all tensors (on the CPU) of the file at ``path``.

    The metadata is checked before any tensor is read, so a foreign or other-task file fails
    fast, whatever its size.
    """
    _require_file(path, "an rnnkit checkpoint (.safetensors)")
    try:
        with safe_open(path, framework="pt", device="cpu") as reader:
            metadata = _checked_metadata(path, reader.metadata(), kind)
            names = reader.keys()  # a safe_open reader is not iterable itself
            return metadata, {name: reader.get_tensor(name) for name in names}
    except SafetensorError as error:
        detail = " ".join(str(error).split())  # the library's reason, on one line
        raise CheckpointError(f"{path} is not an rnnkit checkpoint (truncated or not a "
                              f"safetensors file: {detail})") from error
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error}") from error


def _checked_metadata(path: Path, metadata: dict[str, str] | None,
                      kind: str | None) -> dict[str, str]:
    """``metadata`` once it is known to be rnnkit's, of a readable format and the right kind."""
    if not metadata or "rnnkit_format" not in metadata:
        raise CheckpointError(f"{path} has no rnnkit metadata: not written by rnnkit")
    written = metadata["rnnkit_format"]
    if not written.isdigit() or int(written) < 1:
        raise CheckpointError(f"{path} has an invalid rnnkit_format {written!r}, expected an "
                              f"integer from 1 to {FORMAT_VERSION}")
    if int(written) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer rnnkit (checkpoint format "
                              f"{written}); this version reads formats up to {FORMAT_VERSION}")
    for key in ("rnnkit_kind", "config"):
        if key not in metadata:
            raise CheckpointError(f"{path} has malformed rnnkit metadata: no {key!r} entry")
    if kind is not None and metadata["rnnkit_kind"] != kind:
        raise CheckpointError(f"{path} is a {metadata['rnnkit_kind']!r} checkpoint, "
                              f"expected {kind!r}")
    return metadata


def _json_metadata(path: Path, metadata: dict[str, str], key: str) -> Any:
    """The JSON value stored in the metadata entry ``key``."""
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} has malformed {key!r} metadata: invalid JSON at column "
                              f"{error.colno}: {error.msg}") from error


def _config_metadata(path: Path, metadata: dict[str, str]) -> dict:
    """The config stored in the metadata; it must be a JSON object."""
    config = _json_metadata(path, metadata, "config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} has malformed 'config' metadata: expected a JSON object, "
                              f"got {type(config).__name__}")
    return config


def _split_tensors(path: Path, tensors: dict[str, Tensor]
                   ) -> tuple[dict[str, Tensor], list[Tensor]]:
    """The model weights by name and the state tensors in index order."""
    weights, state = {}, {}
    for name, tensor in tensors.items():
        if name.startswith(_WEIGHTS):
            weights[name[len(_WEIGHTS):]] = tensor
        elif name.startswith(_STATE) and name[len(_STATE):].isdigit():
            state[int(name[len(_STATE):])] = tensor
        else:
            raise CheckpointError(f"{path} has an unexpected tensor {name!r}, expected names "
                                  f"'{_WEIGHTS}<name>' or '{_STATE}<index>'")
    if sorted(state) != list(range(len(state))):
        raise CheckpointError(f"{path} has state tensors {sorted(state)}, expected indices "
                              f"0 to {len(state) - 1}")
    return weights, [state[i] for i in range(len(state))]


# ------------------------------------------------------------------------- trainer state
def flatten_state(state: Any) -> tuple[Any, list[Tensor]]:
    """Split a nested trainer state into a JSON-able skeleton and the tensors found in it.

    Accepted: dict (str or int keys), list, tuple, None, bool, int, float (inf and nan too),
    str, Tensor, and numpy scalars and arrays (``np.random.get_state()`` holds both). Values JSON
    cannot hold become one-key objects: ``{"__tensor__": i}`` (the i-th tensor returned),
    ``{"__ndarray__": i}`` (the same, given back as an array), ``{"__numpy__": [dtype,
    value]}``, ``{"__tuple__": [...]}`` and ``{"__dict__": [[key, value], ...]}`` (for int keys,
    or a str-keyed dict that would read as one of these). :func:`unflatten_state` undoes it
    exactly, with one exception: dict, list and tuple subclasses (``OrderedDict``, a
    ``NamedTuple``) come back as the plain type, which compares equal.

    Raises:
        TypeError: for anything else, naming where it is, e.g.
            ``state['optimizer']['param_groups'][0]['foo']: cannot store a set``.
    """
    tensors: list[Tensor] = []
    return _flatten(state, "state", tensors), tensors


def _flatten(value: Any, where: str, tensors: list[Tensor]) -> Any:
    """The skeleton of ``value`` (found at ``where``), appending its tensors to ``tensors``."""
    if isinstance(value, Tensor):
        tensors.append(value)
        return {_TENSOR: len(tensors) - 1}
    if isinstance(value, np.ndarray):
        tensors.append(_ndarray_tensor(value, where))
        return {_NDARRAY: len(tensors) - 1}
    if isinstance(value, np.generic):
        return _numpy_scalar(value, where)
    # Exact types: a subclass (an IntEnum, ...) would come back as something else.
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, (list, tuple)):
        items = [_flatten(item, f"{where}[{i}]", tensors) for i, item in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return _flatten_dict(value, where, tensors)
    raise TypeError(f"{where}: cannot store a {type(value).__name__}")


def _flatten_dict(value: dict, where: str, tensors: list[Tensor]) -> Any:
    """A plain JSON object when the keys allow it, else ``{"__dict__": [[key, value], ...]}``."""
    for key in value:
        if type(key) not in (str, int):
            raise TypeError(f"{where}: cannot store the {type(key).__name__} key {key!r} "
                            f"(dict keys must be str or int)")
    items = {key: _flatten(item, f"{where}[{key!r}]", tensors) for key, item in value.items()}
    reads_as_marker = len(value) == 1 and next(iter(value)) in _MARKERS
    if all(type(key) is str for key in value) and not reads_as_marker:
        return items
    return {_DICT: [[key, item] for key, item in items.items()]}


def _ndarray_tensor(array: np.ndarray, where: str) -> Tensor:
    """A tensor holding a copy of ``array`` (a copy: read-only arrays make torch warn)."""
    try:
        return torch.from_numpy(array.copy())
    except TypeError as error:
        raise TypeError(f"{where}: cannot store a numpy array of dtype {array.dtype}") from error


def _numpy_scalar(value: np.generic, where: str) -> dict:
    """``{"__numpy__": [dtype, value]}`` for numpy scalars a Python number holds exactly."""
    if value.dtype.name not in _NUMPY_SCALARS:
        raise TypeError(f"{where}: cannot store a numpy {value.dtype.name} scalar")
    return {_NUMPY: [value.dtype.name, value.item()]}


def unflatten_state(skeleton: Any, tensors: Sequence[Tensor]) -> Any:
    """The state that :func:`flatten_state` split into ``skeleton`` and ``tensors``.

    Raises:
        ValueError: if the skeleton is malformed (names where, e.g. a tensor index out of range).
    """
    return _unflatten(skeleton, tensors, "state")


def _unflatten(node: Any, tensors: Sequence[Tensor], where: str) -> Any:
    """The value that ``node`` (found at ``where``) stands for."""
    if isinstance(node, list):
        return [_unflatten(item, tensors, f"{where}[{i}]") for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node  # None, bool, int, float, str
    if len(node) == 1 and next(iter(node)) in _MARKERS:
        [(marker, payload)] = node.items()
        return _unflatten_marker(marker, payload, tensors, where)
    return {key: _unflatten(item, tensors, f"{where}[{key!r}]") for key, item in node.items()}


def _unflatten_marker(marker: str, payload: Any, tensors: Sequence[Tensor], where: str) -> Any:
    """The value of one ``{marker: payload}`` object."""
    if marker in (_TENSOR, _NDARRAY):
        if type(payload) is not int or not 0 <= payload < len(tensors):
            raise ValueError(f"{where}: tensor index {payload!r} out of range for "
                             f"{len(tensors)} tensors")
        tensor = tensors[payload]
        return tensor if marker == _TENSOR else tensor.cpu().numpy()
    if marker == _NUMPY and _is_pair(payload, (str,), (bool, int, float)) \
            and payload[0] in _NUMPY_SCALARS:
        return np.dtype(payload[0]).type(payload[1])
    if marker == _TUPLE and isinstance(payload, list):
        return tuple(_unflatten(payload, tensors, where))
    if marker == _DICT and isinstance(payload, list) \
            and all(_is_pair(pair, (str, int), object) for pair in payload):
        return {key: _unflatten(item, tensors, f"{where}[{key!r}]") for key, item in payload}
    raise ValueError(f"{where}: malformed {marker} entry {payload!r}")


def _is_pair(value: Any, first: tuple[type, ...], second: tuple[type, ...] | type) -> bool:
    """Whether ``value`` is a two-item list ``[first, second]`` of those types."""
    return (isinstance(value, list) and len(value) == 2
            and type(value[0]) in first and isinstance(value[1], second))
