"""One feature cache: the CNN features of images and of the sampled frames of clips, computed
once and kept on disk, so that a frozen pretrained CNN runs over a dataset once.

The flow::

    cache = FeatureCache("cache/features", key="resnet50-224")
    features = cache.images(paths, encode, image_size=224)                  # (N, R, C)
    features, counts = cache.clips(paths, encode, size=112, max_frames=30)  # (N, F, C), (N,)

Symbols: ``N`` images or clips, ``B`` images or frames per batch, ``S`` image side in pixels,
``R`` regions (7 * 7 for a ResNet's last grid, 1 for a pooled vector) and ``C`` channels of a
feature map, ``F`` = ``max_frames`` rows of a clip, zero after its ``count`` frames.

Layout: ``folder/<key>/<setting>/``, one subfolder per setting (``size224`` for images,
``fps1-max30-size112`` for clips), holding shards ``shard-<id>.safetensors`` (one tensor
``"features"``, ``(M, R, C)`` or ``(M, F, C)`` float32) and ``index.json``::

    {"format": 2, "key": "resnet50-224", "setting": {"image_size": 224}, "row": [R, C],
     "entries": {"/abs/path.jpg": {"size": ..., "mtime_ns": ..., "folder_fps": null,
                                   "shard": "shard-....safetensors", "row": 3, "count": R}}}

A file is matched by its absolute path, size and mtime (a changed one is another file); a frame
folder by the number of its entries, its own mtime (changed by adding, removing or renaming
frames, not by editing one in place) and ``folder_fps``, the rate its frames are taken at.
``count`` is the number of leading rows of the entry that hold features (a clip's frames).

Both files are written atomically (:mod:`rnnkit.data.files`), shard first, so a killed run
leaves a whole cache that holds everything written before; a shard is written every ~256 MiB
or every minute, so a long extraction resumes where it stopped. An unreadable index or shard,
and an index of another format (an older rnnkit's), gives a warning and its entries are
recomputed.

The key must change whenever the features would: it names the encoder, its weights and its
settings (``"resnet50-224"``, ``"smallvgg-64-<hash of weights>"``); the cache cannot tell that
weights changed. One writer at a time per key: two processes filling the same key lose each
other's entries (never corrupt them). Rows of files that changed stay in their shard until the
folder is deleted.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor
from tqdm import tqdm

from ..errors import RnnkitError
from . import files
from .images import ImageError, image_tensor, load_image
from .video import VideoError, check_rate, frames_tensor, read_clip

_INDEX = "index.json"
_FORMAT = 2  # bumped when the layout changes; 1: the separate image and clip caches (recomputed)
_SHARD_BYTES = 256 * 2**20  # features held in memory before they are written as one shard
_SHARD_SECONDS = 60.0  # ... or this long after the last write, so a killed run loses little
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")  # a key is one folder name
_SHARD = re.compile(r"shard-[0-9a-f]+\.safetensors")  # a shard name: never a path elsewhere
_ENTRY = {"size", "mtime_ns", "folder_fps", "shard", "row", "count"}

Row = tuple[Tensor, int]  # the features of one image or clip, and its count
Compute = Callable[[list["_Source"]], list[Row]]  # a chunk of sources -> their rows, in order


class FeatureCache:
    """CNN features of image files (:meth:`images`) and of clips (:meth:`clips`), computed once
    and kept in ``folder/<key>/``; see the module's docstring for the layout and guarantees."""

    def __init__(self, folder: str | os.PathLike[str], key: str) -> None:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"expected a key usable as a folder name (letters, digits, "
                             f"'._+=-'), got {key!r}")
        self.key = key
        self.root = Path(folder) / key

    def images(self, paths: Sequence[str | os.PathLike[str]],
               encode: Callable[[Tensor], Tensor], *, image_size: int, batch_size: int = 32,
               progress: bool = True) -> Tensor:
        """Features ``(N, R, C)`` float32 on the CPU, row ``i`` for ``paths[i]``.

        Images not in the cache are loaded (:func:`rnnkit.data.images.load_image`), made
        ``(3, S, S)`` by :func:`~rnnkit.data.images.image_tensor` with ``S = image_size``, and
        given to ``encode`` in batches ``(B, 3, S, S)`` on the CPU, under ``torch.no_grad()``;
        it returns ``(B, R, C)`` on any device (move the batch to the model's device inside it;
        put the model in eval mode), kept as float32 on the CPU. A tqdm bar on stderr counts
        them (``progress=False``: none). A missing or broken image raises
        :class:`~rnnkit.data.images.ImageError` naming it: filter with
        :func:`~rnnkit.data.images.check_images` first.
        """
        _check_positive(image_size=image_size, batch_size=batch_size)
        sources = [_identify(path, None, ImageError) for path in _paths(paths, "image")]
        if (self.root / _INDEX).is_file():
            warnings.warn(f"{self.root}: image features cached by an older rnnkit (format 1) are "
                          f"recomputed in {self.root / f'size{image_size}'}; delete "
                          f"{self.root / _INDEX} and the shards beside it", stacklevel=2)

        def compute(chunk: list[_Source]) -> list[Row]:
            batch = torch.stack([image_tensor(load_image(s.path), image_size) for s in chunk])
            out = _encoded(encode, batch, "R, C", "images")  # (B, 3, S, S) -> (B, R, C)
            return [(row, row.shape[0]) for row in out]

        found = self._rows(f"size{image_size}", {"image_size": image_size}, sources, compute,
                           batch_size, "img", progress)
        return torch.stack([found[s.absolute][0] for s in sources])  # N x (R, C) -> (N, R, C)

    def clips(self, paths: Sequence[str | os.PathLike[str]], encode: Callable[[Tensor], Tensor],
              *, size: int, fps: float = 1.0, max_frames: int = 30,
              fps_of_folder: float | None = None, batch_size: int = 64,
              progress: bool = True) -> tuple[Tensor, Tensor]:
        """Features ``(N, F, C)`` float32 on the CPU, zero after each clip's frames, and the
        frame counts ``(N,)`` int64, row ``i`` for ``paths[i]`` (``F = max_frames``).

        Clips (video files or frame folders) not in the cache are read with
        :func:`rnnkit.data.video.read_clip` (``fps``, ``max_frames``, ``size``,
        ``fps_of_folder``: ``None`` takes a folder's frames as sampled at ``fps``), made
        ``(N, 3, S, S)`` by :func:`~rnnkit.data.video.frames_tensor` and given to ``encode``
        in batches of at most ``batch_size`` frames on the CPU, under ``torch.no_grad()``; it
        returns ``(B, C)`` on any device. A tqdm bar on stderr counts the clips
        (``progress=False``: none). A bad clip raises :class:`~rnnkit.data.video.VideoError`
        naming it: filter with :func:`rnnkit.data.video_lists.check_videos` first.
        """
        _check_positive(size=size, batch_size=batch_size, max_frames=max_frames)
        check_rate("fps", fps)
        if fps_of_folder is not None:
            check_rate("fps_of_folder", fps_of_folder)
        folder_fps = fps if fps_of_folder is None else fps_of_folder
        sources = [_identify(path, folder_fps, VideoError) for path in _paths(paths, "clip")]

        def compute(chunk: list[_Source]) -> list[Row]:  # one clip
            clip = read_clip(chunk[0].path, fps=fps, max_frames=max_frames, size=size,
                             fps_of_folder=chunk[0].folder_fps)
            pixels = frames_tensor(clip.frames)  # (N, 3, S, S)
            out = torch.cat([_encoded(encode, pixels[i:i + batch_size], "C", "frames")
                             for i in range(0, len(pixels), batch_size)])  # (N, C)
            row = torch.zeros(max_frames, out.shape[1])  # (F, C), zero after the frames
            row[:len(out)] = out
            return [(row, len(out))]

        setting = {"fps": fps, "max_frames": max_frames, "size": size}
        found = self._rows(f"fps{fps:g}-max{max_frames}-size{size}", setting, sources, compute,
                           1, "clip", progress)
        features = torch.stack([found[s.absolute][0] for s in sources])  # -> (N, F, C)
        counts = torch.tensor([found[s.absolute][1] for s in sources], dtype=torch.int64)
        return features, counts

    def _rows(self, subfolder: str, setting: dict, sources: list[_Source], compute: Compute,
              chunk: int, unit: str, progress: bool) -> dict[str, Row]:
        """The row of every source (absolute path -> row), cached ones read, the others given
        to ``compute`` ``chunk`` at a time and written."""
        folder = self.root / subfolder
        unique = list({s.absolute: s for s in sources}.values())
        index = _load_index(folder, self.key, setting)
        found = _read_cached(folder, index, unique)
        missing = [s for s in unique if s.absolute not in found]
        if missing:
            job = _Job(folder, self.key, index)
            with tqdm(total=len(missing), unit=unit, desc=f"features {self.key}",
                      file=sys.stderr, disable=not progress) as bar:
                for start in range(0, len(missing), chunk):
                    job.add(missing[start:start + chunk], compute, found)
                    bar.update(len(missing[start:start + chunk]))
            job.write()
        return found


# ------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class _Source:
    """An image or clip as the cache identifies it: a changed size or mtime is another file."""

    path: str  # as given, for messages and reading
    absolute: str
    size: int  # bytes of a file; entries of a frame folder
    mtime_ns: int
    folder_fps: float | None  # the rate a frame folder's frames are taken at; None for a file

    def matches(self, entry: dict) -> bool:
        return (entry["size"], entry["mtime_ns"], entry["folder_fps"]) == (
            self.size, self.mtime_ns, self.folder_fps)


def _paths(paths: Sequence[str | os.PathLike[str]], noun: str) -> Sequence:
    if not paths:
        raise ValueError(f"expected at least one {noun} path, got none")
    return paths


def _identify(path: str | os.PathLike[str], folder_fps: float | None,
              error: type[RnnkitError]) -> _Source:
    path = os.fspath(path)
    try:
        stat = os.stat(path)
        if folder_fps is not None and os.path.isdir(path):
            return _Source(path, os.path.abspath(path), len(os.listdir(path)), stat.st_mtime_ns,
                           float(folder_fps))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as e:
        raise error(f"{path}: cannot read it ({e.strerror})") from None
    return _Source(path, os.path.abspath(path), stat.st_size, stat.st_mtime_ns, None)


def _check_positive(**values: object) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expected {name} to be a positive int, got {value!r}")


def _encoded(encode: Callable[[Tensor], Tensor], batch: Tensor, dims: str, noun: str) -> Tensor:
    """``encode(batch)`` without autograd, checked to be ``(B, *dims)``, as float32 on the
    CPU."""
    with torch.no_grad():
        out = encode(batch)  # (B, 3, S, S) -> (B, R, C) or (B, C)
    if not isinstance(out, Tensor) or out.dim() != 1 + len(dims.split(", ")) \
            or out.shape[0] != batch.shape[0]:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"expected encode to return ({batch.shape[0]}, {dims}) features for a "
                         f"batch of {batch.shape[0]} {noun}, got {got}")
    return out.detach().to("cpu", torch.float32).contiguous()


# ------------------------------------------------------------------------------- index
@dataclass
class _Index:
    """The table of contents of one setting's folder: which shard row holds which source."""

    setting: dict  # what the features were computed with, besides the key
    row: list[int] | None = None  # the shape of every row; None until the first features
    entries: dict[str, dict] = field(default_factory=dict)  # absolute path -> _ENTRY keys

    def to_json(self, key: str) -> dict:
        return {"format": _FORMAT, "key": key, "setting": self.setting, "row": self.row,
                "entries": self.entries}


def _load_index(folder: Path, key: str, setting: dict) -> _Index:
    """The index in ``folder``, or an empty one (with a warning if the file is unusable)."""
    path = folder / _INDEX
    if not path.exists():
        return _Index(setting)
    try:
        return _parse_index(json.loads(path.read_bytes().decode("utf-8")), key, setting)
    except (OSError, ValueError) as e:  # ValueError: not UTF-8, not JSON, bad layout
        warnings.warn(f"{path}: unusable feature-cache index ({e}); its features will be "
                      f"recomputed", stacklevel=4)
        return _Index(setting)


def _parse_index(obj: object, key: str, setting: dict) -> _Index:
    """The :class:`_Index` of a parsed ``index.json``; ``ValueError`` saying what is wrong."""
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"expected format {_FORMAT}, got {got!r}")
    if obj.get("key") != key or obj.get("setting") != setting:
        raise ValueError(f"expected key {key!r} and setting {setting}")
    row, entries = obj.get("row"), obj.get("entries")
    if not isinstance(entries, dict) or not (row is None or (
            isinstance(row, list) and row and all(_is_count(n) for n in row))):
        raise ValueError("expected a row shape and entries")
    for path, entry in entries.items():
        if not (row and isinstance(entry, dict) and set(entry) == _ENTRY
                and all(_is_int(entry[k]) for k in ("size", "mtime_ns", "row"))
                and (entry["folder_fps"] is None or isinstance(entry["folder_fps"], float))
                and isinstance(entry["shard"], str) and _SHARD.fullmatch(entry["shard"])
                and _is_count(entry["count"]) and entry["count"] <= row[0]):
            raise ValueError(f"bad entry for {path!r}: {entry!r}")
    return _Index(setting, row, entries)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    return _is_int(value) and value >= 1


def _read_cached(folder: Path, index: _Index, sources: list[_Source]) -> dict[str, Row]:
    """The cached rows of the ``sources`` whose identity matches their entry."""
    by_shard: dict[str, list[tuple[_Source, dict]]] = {}
    for source in sources:
        entry = index.entries.get(source.absolute)
        if entry and source.matches(entry):
            by_shard.setdefault(entry["shard"], []).append((source, entry))
    found: dict[str, Row] = {}
    for shard, wanted in by_shard.items():
        try:
            with safe_open(folder / shard, framework="pt") as f:
                rows = f.get_slice("features")  # (M, *row), read lazily
                shape = list(rows.get_shape())
                if shape[1:] != index.row or any(e["row"] >= shape[0] for _, e in wanted):
                    raise ValueError(f"expected (M, {', '.join(map(str, index.row))}) features "
                                     f"holding rows {max(e['row'] for _, e in wanted)}, got "
                                     f"shape {shape}")
                for source, entry in wanted:
                    found[source.absolute] = (rows[entry["row"]].to(torch.float32),
                                              entry["count"])
        except (OSError, SafetensorError, ValueError, KeyError, IndexError) as e:
            for source, _ in wanted:
                found.pop(source.absolute, None)
            warnings.warn(f"{folder / shard}: unreadable feature shard ({e}); recomputing its "
                          f"{len(wanted)} entries", stacklevel=4)
    return found


# ------------------------------------------------------------------------------- writing
@dataclass
class _Job:
    """Computing the missing rows of one setting, writing shards as it goes."""

    folder: Path
    key: str
    index: _Index
    pending: list[tuple[_Source, Row]] = field(default_factory=list)  # not on disk yet
    last_write: float = field(default_factory=time.monotonic)

    def add(self, chunk: list[_Source], compute: Compute, found: dict[str, Row]) -> None:
        """Compute the rows of ``chunk``; write a shard when enough bytes or time piled up."""
        for source, (row, count) in zip(chunk, compute(chunk), strict=True):
            if self.index.row is not None and list(row.shape) != self.index.row:
                raise ValueError(f"expected rows of shape {tuple(self.index.row)} as cached in "
                                 f"{self.folder}, got {tuple(row.shape)}; a changed encoder "
                                 f"needs a new key")
            self.index.row = list(row.shape)
            found[source.absolute] = (row, count)
            self.pending.append((source, (row, count)))
        if sum(row.nbytes for _, (row, _) in self.pending) >= _SHARD_BYTES \
                or time.monotonic() - self.last_write >= _SHARD_SECONDS:
            self.write()

    def write(self) -> None:
        """One new shard with the pending rows, then the index that points at it."""
        if not self.pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        shard = f"shard-{uuid.uuid4().hex[:16]}.safetensors"
        tensor = torch.stack([row for _, (row, _) in self.pending])  # M x row -> (M, *row)
        files.atomic_write_bytes(self.folder / shard, safetensors_bytes({"features": tensor}))
        for i, (source, (_, count)) in enumerate(self.pending):
            self.index.entries[source.absolute] = {
                "size": source.size, "mtime_ns": source.mtime_ns,
                "folder_fps": source.folder_fps, "shard": shard, "row": i, "count": count}
        files.save_json(self.folder / _INDEX, self.index.to_json(self.key))
        self.pending = []
        self.last_write = time.monotonic()
