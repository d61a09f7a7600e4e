"""Checkpoints round-trip exactly, load anywhere, never run code, and fail with one clear line."""

from __future__ import annotations

import enum
import io
import json
import os
import pickle
import re
import stat
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import rnnkit.data.files as files_module
from rnnkit.data.files import atomic_write_bytes, save_json
from rnnkit.train import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    flatten_state,
    load_checkpoint,
    load_json,
    save_checkpoint,
    unflatten_state,
)


class TinyModel(nn.Module):
    """An LSTM and a linear head: the shape of the lecture's many-to-one models."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)  # (B, T, 3) -> (B, T, 5)
        return self.head(out[:, -1])  # (B, 5) -> (B, 2)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer,
               rng: np.random.RandomState) -> None:
    """One step whose data comes from torch's global generator and from ``rng``."""
    x = torch.randn(4, 6, 3)
    target = torch.from_numpy(rng.standard_normal((4, 2))).float()
    loss = nn.functional.mse_loss(model(x), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def assert_same(expected: Any, got: Any, where: str = "state") -> None:
    """``got`` equals ``expected`` with the same types all the way down (and nan where nan)."""
    assert type(got) is type(expected), f"{where}: {type(got)} is not {type(expected)}"
    if isinstance(expected, torch.Tensor):
        assert (got.dtype, got.shape) == (expected.dtype, expected.shape), where
        assert torch.equal(got, expected), where
    elif isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and np.array_equal(got, expected), where
    elif isinstance(expected, dict):
        assert [(type(k), k) for k in got] == [(type(k), k) for k in expected], where
        for key in expected:
            assert_same(expected[key], got[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_same(e, g, f"{where}[{i}]")
    elif expected != expected:  # nan, Python's or numpy's
        assert got != got, where
    else:
        assert got == expected, where


def mixed_state() -> dict:
    """Everything a trainer state may hold, including what JSON cannot hold by itself."""
    return {
        "step": 7, "big": 2**80, "lr": 1e-3, "flag": True, "nothing": None, "name": "charlm ✓",
        "floats": [float("inf"), -float("inf"), float("nan"), -0.0],
        "int_keys": {0: {"step": torch.tensor(2.0)}, 1: "b"},
        "int_and_str_keys": {1: "one", "1": "the string one"},
        "betas": (0.9, 0.999), "nested": [(1, [2, (3,)]), [], ()], "empty": {},
        "reads_as_marker": {"__tensor__": 0}, "reads_as_tuple": {"__tuple__": [1]},
        "numpy": [np.float32(0.1), np.float64(-2.5), np.int64(-(2**62)), np.uint64(2**64 - 1),
                  np.bool_(True), np.float16(np.inf), np.float32("nan"), np.int8(-7)],
        "numpy_rng": np.random.RandomState(3).get_state(),  # a tuple holding a uint32 array
        "torch_rng": torch.get_rng_state(),
    }


def write_safetensors(path: Path, metadata: dict[str, str] | None,
                      tensors: dict[str, torch.Tensor] | None = None) -> None:
    """A safetensors file written by safetensors itself, with any metadata."""
    save_file(tensors or {"weights/w": torch.zeros(2)}, str(path), metadata=metadata)


RNNKIT_METADATA = {"rnnkit_format": "1", "rnnkit_kind": "charlm", "config": "{}"}


# ------------------------------------------------------------------------- round trips
def test_resume_gives_a_bit_identical_next_step(tmp_path: Path) -> None:
    model = TinyModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    rng = np.random.RandomState(0)
    for _ in range(2):
        train_step(model, optimizer, rng)
    state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
             "numpy_rng": rng.get_state(), "step": 2, "best_loss": np.float32(0.25),
             "history": [1.5, float("nan"), np.float64(0.75)]}
    path = save_checkpoint(tmp_path / "last.safetensors", kind="charlm",
                           weights=model.state_dict(), config={"hidden_size": 5}, state=state)
    train_step(model, optimizer, rng)  # the step the resumed run must repeat exactly

    torch.manual_seed(123)
    resumed = TinyModel()
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=1.0)
    assert not torch.equal(resumed.head.weight, model.head.weight)
    checkpoint = load_checkpoint(path, kind="charlm")
    resumed.load_state_dict(checkpoint.weights)
    resumed_optimizer.load_state_dict(checkpoint.state["optimizer"])
    torch.set_rng_state(checkpoint.state["torch_rng"])
    resumed_rng = np.random.RandomState()
    resumed_rng.set_state(checkpoint.state["numpy_rng"])
    train_step(resumed, resumed_optimizer, resumed_rng)

    assert_same(model.state_dict(), resumed.state_dict())
    assert_same(optimizer.state_dict(), resumed_optimizer.state_dict())
    assert_same(state, checkpoint.state)
    assert checkpoint.config == {"hidden_size": 5}


def test_optimizer_state_keeps_int_keys_tuples_and_floats(tmp_path: Path) -> None:
    model = TinyModel()
    optimizer = torch.optim.AdamW(model.parameters(), betas=(0.8, 0.95))
    rng = np.random.RandomState(0)
    for _ in range(2):
        train_step(model, optimizer, rng)
    path = save_checkpoint(tmp_path / "c.safetensors", kind="charlm",
                           weights={}, config={}, state=optimizer.state_dict())
    loaded = load_checkpoint(path).state
    assert_same(optimizer.state_dict(), loaded)
    assert sorted(loaded["state"]) == list(range(len(list(model.parameters()))))
    assert loaded["param_groups"][0]["betas"] == (0.8, 0.95)


def test_state_round_trips_exactly_through_flatten_json_and_file(tmp_path: Path) -> None:
    state = mixed_state()
    skeleton, tensors = flatten_state(state)
    assert_same(state, unflatten_state(skeleton, tensors))
    assert_same(state, unflatten_state(json.loads(json.dumps(skeleton)), tensors))
    path = save_checkpoint(tmp_path / "c.safetensors", kind="charlm", weights={}, config={},
                           state=state)
    assert_same(state, load_checkpoint(path).state)


def test_skeleton_marks_what_json_cannot_hold() -> None:
    weight = torch.ones(2)
    skeleton, tensors = flatten_state({"w": weight, "betas": (0.9, 0.99), "groups": {0: "a"},
                                       "plain": {"x": [1, None]}})
    assert skeleton == {"w": {"__tensor__": 0}, "betas": {"__tuple__": [0.9, 0.99]},
                        "groups": {"__dict__": [[0, "a"]]}, "plain": {"x": [1, None]}}
    assert len(tensors) == 1 and tensors[0] is weight


def test_container_subclasses_come_back_as_the_plain_type() -> None:
    class Pair(NamedTuple):
        h: int
        c: int

    state = {"ordered": OrderedDict(b=1, a=2), "pair": Pair(1, 2)}
    restored = unflatten_state(*flatten_state(state))
    assert_same({"ordered": {"b": 1, "a": 2}, "pair": (1, 2)}, restored)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16, torch.float32,
                                   torch.int64, torch.int8, torch.uint8, torch.bool])
def test_dtypes_round_trip(tmp_path: Path, dtype: torch.dtype) -> None:
    tensor = (torch.randn(3, 4) * 50).to(dtype)
    path = save_checkpoint(tmp_path / "c.safetensors", kind="charlm", weights={"t": tensor},
                           config={}, state={"t": tensor, "scalar": tensor[0, 0]})
    loaded = load_checkpoint(path)
    assert_same(tensor, loaded.weights["t"])
    assert_same({"t": tensor, "scalar": tensor[0, 0]}, loaded.state)


def test_views_and_shared_storage_round_trip(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    views = {"base": base, "same": base, "transposed": base.t(), "row": base[1],
             "strided": base[:, ::2], "expanded": base[0].expand(2, 4)}
    embedding = nn.Embedding(4, 3)
    tied = nn.Linear(3, 4, bias=False)
    tied.weight = embedding.weight  # weight tying: two names, one Parameter
    weights = {**views, "embedding.weight": embedding.weight, "out.weight": tied.weight}
    path = save_checkpoint(tmp_path / "c.safetensors", kind="charlm", weights=weights,
                           config={}, state={"views": views})
    loaded = load_checkpoint(path)
    for name, tensor in weights.items():
        assert torch.equal(loaded.weights[name], tensor.detach()), name
        assert loaded.weights[name].is_contiguous(), name
    for name, tensor in views.items():
        assert torch.equal(loaded.state["views"][name], tensor), name
    assert torch.equal(base, torch.arange(12.0).reshape(3, 4))  # saving changed nothing


def test_weights_go_to_the_requested_device_and_state_stays_on_cpu(tmp_path: Path) -> None:
    model = TinyModel()
    path = save_checkpoint(tmp_path / "c.safetensors", kind="charlm", weights=model.state_dict(),
                           config={}, state={"rng": torch.get_rng_state()})
    for device in ("cpu", torch.device("cpu")):
        loaded = load_checkpoint(path, device=device)
        assert all(t.device.type == "cpu" for t in loaded.weights.values())
        fresh = TinyModel()
        fresh.load_state_dict(loaded.weights)
        assert_same(model.state_dict(), fresh.state_dict())
    # The meta device exists on every machine: the weights really move, the state does not.
    on_meta = load_checkpoint(path, device="meta")
    assert {t.device.type for t in on_meta.weights.values()} == {"meta"}
    assert on_meta.state["rng"].device.type == "cpu"


def test_file_layout_follows_the_format(tmp_path: Path) -> None:
    weights = {"head.weight": torch.ones(2, 3), "head.bias": torch.zeros(2)}
    state = {"step": 3, "rng": torch.get_rng_state(), "pair": (torch.ones(1), 1)}
    path = save_checkpoint(tmp_path / "c.safetensors", kind="charlm", weights=weights,
                           config={"lr": 0.1}, state=state)
    assert isinstance(path, Path) and path == tmp_path / "c.safetensors"
    with safe_open(path, framework="pt") as reader:
        names, metadata = set(reader.keys()), reader.metadata()
    assert names == {"weights/head.weight", "weights/head.bias", "state/0", "state/1"}
    assert metadata == {
        "rnnkit_format": str(FORMAT_VERSION), "rnnkit_kind": "charlm",
        "config": json.dumps({"lr": 0.1}),
        "state": json.dumps({"step": 3, "rng": {"__tensor__": 0},
                             "pair": {"__tuple__": [{"__tensor__": 1}, 1]}})}


def test_without_state_there_is_no_state(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", kind="video", weights={"w": torch.ones(1)},
                           config={"a": [1, 2]})
    with safe_open(path, framework="pt") as reader:
        assert "state" not in reader.metadata() and reader.keys() == ["weights/w"]
    loaded = load_checkpoint(path)
    assert loaded == Checkpoint(kind="video", weights=loaded.weights, config={"a": [1, 2]},
                                state=None, path=path)


def test_kind_is_checked_only_when_asked(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "last.safetensors", kind="sentiment", weights={},
                           config={})
    assert load_checkpoint(path).kind == "sentiment"
    assert load_checkpoint(path, kind="sentiment").kind == "sentiment"
    with pytest.raises(CheckpointError,
                       match=re.escape(f"{path} is a 'sentiment' checkpoint, expected 'charlm'")):
        load_checkpoint(path, kind="charlm")


# ------------------------------------------------------------------------------ errors
def real_checkpoint(path: Path) -> bytes:
    """The bytes of a real checkpoint with weights, config and state."""
    save_checkpoint(path, kind="charlm", weights=TinyModel().state_dict(), config={"a": 1},
                    state={"rng": torch.get_rng_state()})
    return path.read_bytes()


def cut(keep: float | int):
    """A writer of a real checkpoint cut short: a fraction of its bytes, or a byte count."""
    def write(path: Path) -> None:
        data = real_checkpoint(path)
        end = int(len(data) * keep) if isinstance(keep, float) else keep
        path.write_bytes(data[:end])
    return write


NOT_SAFETENSORS = re.escape("is not an rnnkit checkpoint (truncated or not a safetensors file")
NO_METADATA = re.escape("has no rnnkit metadata: not written by rnnkit")

BAD_FILES = {
    "missing": (lambda path: None, "does not exist, expected an rnnkit checkpoint"),
    "directory": (lambda path: path.mkdir(), "is a directory, expected an rnnkit checkpoint"),
    "empty": (lambda path: path.write_bytes(b""), NOT_SAFETENSORS),
    "cut to 4 bytes": (cut(4), NOT_SAFETENSORS),
    "cut in the header": (cut(0.05), NOT_SAFETENSORS),
    "cut in the data": (cut(0.6), NOT_SAFETENSORS),
    "one byte short": (cut(-1), NOT_SAFETENSORS),
    "random bytes": (lambda path: path.write_bytes(np.random.RandomState(0).bytes(4096)),
                     NOT_SAFETENSORS),
    "JSON renamed": (lambda path: path.write_text(json.dumps({"rnnkit_format": "1"})),
                     NOT_SAFETENSORS),
    "torch.save zip": (lambda path: torch.save({"w": torch.ones(2)}, path), NOT_SAFETENSORS),
    "torch.save legacy pickle": (
        lambda path: torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False),
        NOT_SAFETENSORS),
    "no metadata": (lambda path: write_safetensors(path, None), NO_METADATA),
    "foreign metadata": (lambda path: write_safetensors(path, {"format": "pt"}), NO_METADATA),
    "newer format": (
        lambda path: write_safetensors(path, {**RNNKIT_METADATA, "rnnkit_format": "99"}),
        re.escape("was written by a newer rnnkit (checkpoint format 99); this version reads "
                  "formats up to 1")),
    "format not a number": (
        lambda path: write_safetensors(path, {**RNNKIT_METADATA, "rnnkit_format": "one"}),
        re.escape("has an invalid rnnkit_format 'one', expected an integer from 1 to 1")),
    "no kind": (
        lambda path: write_safetensors(path, {"rnnkit_format": "1", "config": "{}"}),
        re.escape("has malformed rnnkit metadata: no 'rnnkit_kind' entry")),
    "config not JSON": (
        lambda path: write_safetensors(path, {**RNNKIT_METADATA, "config": "{'a': 1}"}),
        re.escape("has malformed 'config' metadata: invalid JSON at column 2")),
    "config not an object": (
        lambda path: write_safetensors(path, {**RNNKIT_METADATA, "config": "[1]"}),
        re.escape("has malformed 'config' metadata: expected a JSON object, got list")),
    "state not JSON": (
        lambda path: write_safetensors(path, {**RNNKIT_METADATA, "state": "{"}),
        re.escape("has malformed 'state' metadata: invalid JSON at column 2")),
    "state tensor missing": (
        lambda path: write_safetensors(path, {**RNNKIT_METADATA,
                                              "state": '{"rng": {"__tensor__": 0}}'}),
        re.escape("has malformed 'state' metadata: state['rng']: tensor index 0 out of range")),
    "state tensors without state": (
        lambda path: write_safetensors(path, RNNKIT_METADATA, {"state/0": torch.ones(1)}),
        re.escape("has state tensors but no 'state' metadata")),
    "unexpected tensor": (
        lambda path: write_safetensors(path, RNNKIT_METADATA, {"lstm.weight": torch.ones(1)}),
        re.escape("has an unexpected tensor 'lstm.weight'")),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_unusable_file_gives_one_line_naming_it(tmp_path: Path, case: str) -> None:
    write, expected = BAD_FILES[case]
    path = tmp_path / "run" / "last.safetensors"
    path.parent.mkdir()
    write(path)
    with pytest.raises(CheckpointError, match=expected) as error:
        load_checkpoint(path, kind="charlm")
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message


class CreatesMarker:
    """Unpickling this creates ``marker``: the shape of a malicious pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.touch, (self.marker,)


def write_pickle(path: Path, value: Any) -> None:
    path.write_bytes(pickle.dumps(value))


def write_with_torch(path: Path, value: Any) -> None:
    torch.save(value, path)


def unpickle(path: Path) -> None:
    pickle.loads(path.read_bytes())


def unpickle_with_torch(path: Path) -> None:
    # Under a .pt name: torch.load hands a .safetensors name to safetensors' loader itself.
    torch.load(path.rename(path.with_suffix(".pt")), weights_only=False)


@pytest.mark.parametrize(("write", "unpickle_it"), [(write_pickle, unpickle),
                                                    (write_with_torch, unpickle_with_torch)])
def test_loading_never_unpickles(tmp_path: Path, write, unpickle_it) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "last.safetensors"
    write(path, CreatesMarker(marker))
    with pytest.raises(CheckpointError, match=NOT_SAFETENSORS):
        load_checkpoint(path)
    assert not marker.exists()
    unpickle_it(path)  # the payload is live: unpickling the same file does run it
    assert marker.exists()


# ------------------------------------------------------------------------------ saving
def test_save_rejects_bad_arguments_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    with pytest.raises(ValueError, match="kind must be a non-empty string"):
        save_checkpoint(path, kind="", weights={}, config={})
    with pytest.raises(TypeError, match=re.escape("weights must map str to Tensor, got 'w': list")):
        save_checkpoint(path, kind="charlm", weights={"w": [1.0]}, config={})
    with pytest.raises(TypeError, match="config is not JSON-able: .*set"):
        save_checkpoint(path, kind="charlm", weights={}, config={"a": {1}})
    with pytest.raises(TypeError, match="config must be a dict, got list"):
        save_checkpoint(path, kind="charlm", weights={}, config=[])
    with pytest.raises(TypeError, match=re.escape("state['tags']: cannot store a set")):
        save_checkpoint(path, kind="charlm", weights={}, config={}, state={"tags": {"a"}})
    assert list(tmp_path.iterdir()) == []


def fail(exception: type[BaseException]):
    def raise_it(*args, **kwargs):
        raise exception("simulated failure")
    return raise_it


class HalfWriter(io.FileIO):
    """A file that writes half of what it is given, then fails: a disk filling up mid-save."""

    def write(self, data: bytes) -> int:
        super().write(bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")


def fail_mid_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "open", lambda fd, mode: HalfWriter(fd, "wb"),
                        raising=False)


FAILURES = {
    "write": (fail_mid_write, OSError),
    "fsync": (lambda mp: mp.setattr(os, "fsync", fail(OSError)), OSError),
    "replace": (lambda mp: mp.setattr(os, "replace", fail(OSError)), OSError),
    "interrupted": (lambda mp: mp.setattr(os, "replace", fail(KeyboardInterrupt)),
                    KeyboardInterrupt),
}
SAVERS = {
    "checkpoint": lambda path, value: save_checkpoint(
        path, kind="charlm", weights={"w": torch.full((1000,), float(value))},
        config={"value": value}),
    "json": save_json,
}


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("saver", SAVERS)
def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saver: str, failure: str) -> None:
    path = tmp_path / "last.file"
    SAVERS[saver](path, 1)
    before = path.read_bytes()
    break_it, exception = FAILURES[failure]
    with monkeypatch.context() as patch:
        break_it(patch)
        with pytest.raises(exception, match="simulated failure|No space left"):
            SAVERS[saver](path, 2)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]
    SAVERS[saver](path, 3)  # and the next save works
    assert path.read_bytes() != before


def test_atomic_write_bytes_writes_replaces_and_leaves_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "plot.png"
    assert atomic_write_bytes(str(path), b"first") == path
    assert atomic_write_bytes(path, b"\x00second\xff") == path
    assert path.read_bytes() == b"\x00second\xff"
    assert list(tmp_path.iterdir()) == [path]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")  # a file made the ordinary way gets the permissions the umask gives
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "no_such_folder" / "x", b"data")
    assert set(tmp_path.iterdir()) == {path, plain}


# -------------------------------------------------------------------------------- JSON
def test_json_round_trip_is_sorted_indented_utf8_with_a_newline(tmp_path: Path) -> None:
    value = {"vocab": ["é", "✓", "\n"], "b": {"z": 1, "y": [1.5, None, True]}, "a": -1}
    path = save_json(tmp_path / "config.json", value)
    assert load_json(path) == value
    assert path.read_bytes().decode("utf-8") == (
        '{\n  "a": -1,\n  "b": {\n    "y": [\n      1.5,\n      null,\n      true\n    ],\n'
        '    "z": 1\n  },\n  "vocab": [\n    "é",\n    "✓",\n    "\\n"\n  ]\n}\n')


@pytest.mark.parametrize(("content", "expected"), [
    (b'{\n  "a": 1,\n  "b": \n}\n',
     r"bad\.json: invalid JSON at line 4, column 1: Expecting value"),
    (b'{"a": "caf\xe9"}', r"bad\.json: expected a UTF-8 JSON file, got byte 0xe9 at offset 10"),
    (None, r"bad\.json does not exist, expected a JSON file"),
])
def test_load_json_errors_name_the_file_and_place(tmp_path: Path, content: bytes | None,
                                                  expected: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as error:
        load_json(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


# ------------------------------------------------------------------------ flatten_state
class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(("state", "expected"), [
    ({"optimizer": {"param_groups": [{"foo": {1, 2}}]}},
     "state['optimizer']['param_groups'][0]['foo']: cannot store a set"),
    ([0, (1, nn.Linear(1, 1))], "state[1][1]: cannot store a Linear"),
    ({"a": {1.5: 2}}, "state['a']: cannot store the float key 1.5 (dict keys must be str or int)"),
    ({"a": {(1, 2): 2}}, "state['a']: cannot store the tuple key (1, 2)"),
    ({"color": Color.RED}, "state['color']: cannot store a Color"),
    ({"words": np.array(["a", None], dtype=object)},
     "state['words']: cannot store a numpy array of dtype object"),
    ([np.str_("a")], "state[0]: cannot store a numpy str32 scalar"),
])
def test_flatten_state_rejects_what_it_cannot_store_and_says_where(state: Any,
                                                                   expected: str) -> None:
    with pytest.raises(TypeError, match=re.escape(expected)):
        flatten_state(state)


@pytest.mark.parametrize(("skeleton", "expected"), [
    ({"a": {"__tensor__": 3}}, "state['a']: tensor index 3 out of range for 1 tensors"),
    ([{"__ndarray__": "0"}], "state[0]: tensor index '0' out of range"),
    ({"__numpy__": ["object", 1]}, "state: malformed __numpy__ entry ['object', 1]"),
    ({"__dict__": [[[1], 2]]}, "state: malformed __dict__ entry [[[1], 2]]"),
    ({"__tuple__": 5}, "state: malformed __tuple__ entry 5"),
])
def test_unflatten_state_rejects_a_malformed_skeleton(skeleton: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        unflatten_state(skeleton, [torch.ones(1)])
