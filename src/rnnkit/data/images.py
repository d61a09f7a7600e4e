"""Images for captioning: load them safely, turn them into normalised tensors, and cache the
CNN features computed from them.

The flow::

    items, bad = check_images(report.items)       # drop images that are missing or broken
    cache = FeatureCache("cache/features", key="resnet50-224")
    features = cache.get_or_compute([item.image for item in items], encoder, image_size=224)
    # (N, R, C): R regions (7 * 7 for a ResNet's last grid, 1 for a pooled vector), C channels

Symbols: ``N`` images, ``B`` images per batch, ``S`` image side in pixels, ``R`` regions and
``C`` channels of a feature map.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor
from tqdm import tqdm

from ..errors import RnnkitError
from .captions import CaptionedImage
from .files import atomic_write_bytes

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB mean of ImageNet's training images, on [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)  # their RGB standard deviation; pretrained CNNs expect both

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)  # (3,)
_STD = np.array(IMAGENET_STD, dtype=np.float32)  # (3,)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grey PNG/TIFF: PIL clips to RGB


class ImageError(RnnkitError):
    """An image that cannot be used; the message is ``"path: what is wrong"``."""


# ------------------------------------------------------------------------------- loading
def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """The image at ``path``, fully decoded, in RGB.

    Raises :class:`ImageError` (``"path: what is wrong"``) for a missing path, a folder, a file
    that is not an image, a truncated or corrupt image, and one over PIL's decompression-bomb
    limit (``Image.MAX_IMAGE_PIXELS``, twice the size that warns). PIL's warnings (a large
    image, odd metadata) are passed on with the path in front. Transparency is dropped; palette
    images with a transparent colour go through RGBA so PIL does not warn; 16-bit grey keeps its
    top 8 bits. EXIF orientation is not applied, as torchvision's loader does not.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: expected an image file, got a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = _decode(path)
    for warning in caught:
        warnings.warn(f"{path}: {warning.message}", warning.category, stacklevel=2)
    return rgb


def _decode(path: str) -> Image.Image:
    """Open, fully decode and convert one image; every failure as :class:`ImageError`."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later in a batch
            return _to_rgb(image)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: {e}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: expected an image file (JPEG, PNG, ...), got one that PIL "
                         f"cannot identify, starting with {_head(path)!r}") from None
    except PermissionError as e:
        raise ImageError(f"{path}: cannot read it ({e.strerror})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # PIL's ways of saying "corrupt"
        raise ImageError(f"{path}: truncated or corrupt image ({e})") from None


def _head(path: str, size: int = 16) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def _to_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB mode (itself if it is already)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")  # straight to RGB, PIL warns
    if image.mode in _SIXTEEN_BIT:
        grey = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)  # (H, W)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def check_images(items: Sequence[CaptionedImage]) -> tuple[list[CaptionedImage], list[str]]:
    """The items whose image loads (a full decode, so truncated files are found), in order,
    and one message per bad item: ``"path: what is wrong (captions from source)"``. An image
    listed by several items is decoded once."""
    problems: dict[str, str | None] = {}  # image path -> problem, None when it loads
    good, bad = [], []
    for item in items:
        if item.image not in problems:
            problems[item.image] = _problem(item.image)
        problem = problems[item.image]
        if problem is None:
            good.append(item)
        else:
            bad.append(f"{problem} (captions from {item.source})")
    return good, bad


def _problem(path: str) -> str | None:
    try:
        load_image(path)
    except ImageError as e:
        return str(e)
    return None


# ------------------------------------------------------------------------------- tensors
def image_tensor(image: Image.Image, size: int) -> Tensor:
    """``image`` as a ``(3, S, S)`` float32 tensor, ``S = size``, as pretrained CNNs expect.

    The steps of torchvision's ``Resize(S)``, ``CenterCrop(S)``, ``ToTensor()``,
    ``Normalize(IMAGENET_MEAN, IMAGENET_STD)`` on a PIL image, with the same numbers:

    1. resize (PIL bilinear, which antialiases when shrinking) so that the shorter side is
       ``S``, the longer one ``int(S * long / short)``;
    2. crop the centre ``S x S``, the offset ``round((side - S) / 2)`` on each axis;
    3. scale to [0, 1] and normalise each channel: ``(x - mean) / std``.

    A non-RGB image is converted to RGB first.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"expected size to be a positive int, got {size!r}")
    image = _to_rgb(image)
    width, height = image.size
    new_size = _resized(width, height, size)
    if new_size != (width, height):
        image = image.resize(new_size, Image.Resampling.BILINEAR)
    left = int(round((new_size[0] - size) / 2.0))
    top = int(round((new_size[1] - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # (S, S, 3) on [0, 1]
    pixels = (pixels - _MEAN) / _STD  # (S, S, 3)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))  # -> (3, S, S)


def _resized(width: int, height: int, size: int) -> tuple[int, int]:
    """``(width, height)`` with the shorter side ``size`` (torchvision's ``Resize(size)``)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


# ------------------------------------------------------------------------------- feature cache
_INDEX = "index.json"
_FORMAT = 1  # bumped when the layout of the index changes; other versions are recomputed
_SHARD_BYTES = 256 * 2**20  # features held in memory before they are written as one shard
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")  # a key is one folder name
_SHARD = re.compile(r"shard-[0-9a-f]+\.safetensors")  # a shard name: never a path elsewhere


@dataclass(frozen=True)
class _File:
    """An image file as the cache identifies it: a changed size or mtime is another file."""

    path: str  # as given, for messages and loading
    absolute: str
    size: int
    mtime_ns: int


@dataclass
class _Index:
    """The cache's table of contents: which shard row holds the features of which file."""

    image_size: int
    shape: list[int] | None = None  # [R, C] of every row; None until the first features
    # absolute path -> {"size", "mtime_ns", "shard" (a file in the folder), "row" (in it)}
    entries: dict[str, dict] = field(default_factory=dict)

    def to_json(self, key: str) -> dict:
        return {"format": _FORMAT, "key": key, "image_size": self.image_size,
                "shape": self.shape, "entries": self.entries}


class FeatureCache:
    """CNN features of image files, computed once and kept on disk.

    Files live in ``folder/<key>/``: shards ``shard-<id>.safetensors`` (one tensor
    ``"features"``, ``(M, R, C)`` float32) and ``index.json``, which maps each image's absolute
    path to its size, mtime, shard and row. Both are written atomically (a temporary file, then
    ``os.replace``), shard first, so a killed run leaves a whole cache that holds everything
    written before; features are written every ~256 MiB, so a long extraction resumes where it
    stopped. An unreadable index or shard gives a warning and its images are recomputed.

    The key must change whenever the features would: it names the encoder, its weights and its
    settings (``"resnet50-224"``, ``"smallvgg-64-<hash of weights>"``); the cache cannot tell
    that weights changed. One writer at a time per key: two processes filling the same key lose
    each other's entries (never corrupt them). Rows of files that changed stay in their shard
    until the folder is deleted.
    """

    def __init__(self, folder: str | os.PathLike[str], key: str) -> None:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"expected a key usable as a folder name (letters, digits, "
                             f"'._+=-'), got {key!r}")
        self.key = key
        self.folder = Path(folder) / key

    def get_or_compute(self, paths: Sequence[str | os.PathLike[str]],
                       encode: Callable[[Tensor], Tensor], *, image_size: int,
                       batch_size: int = 32, progress: bool = True) -> Tensor:
        """Features ``(N, R, C)`` float32 on the CPU, row ``i`` for ``paths[i]``.

        Images not in the cache (matched by absolute path, size and mtime) are loaded
        (:func:`load_image`), made ``(3, S, S)`` by :func:`image_tensor` with ``S =
        image_size``, and given to ``encode`` in batches ``(B, 3, S, S)`` on the CPU, under
        ``torch.no_grad()``; it returns ``(B, R, C)`` on any device (move the batch to the model's
        device inside it; put the model in eval mode), kept as float32 on the CPU. A tqdm bar
        on stderr counts them (``progress=False``: none).
        A missing or broken image raises :class:`ImageError` naming it: filter with
        :func:`check_images` first.
        """
        for name, value in (("image_size", image_size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
        if not paths:
            raise ValueError("expected at least one image path, got none")
        files = [_identify(path) for path in paths]
        unique = list({file.absolute: file for file in files}.values())
        index = self._load_index(image_size)
        features = self._read_cached(index, unique)  # absolute path -> (R, C)
        missing = [file for file in unique if file.absolute not in features]
        if missing:
            self._compute(index, missing, encode, features, batch_size, progress)
        return torch.stack([features[file.absolute] for file in files])  # N x (R, C) -> (N, R, C)

    # ---------------------------------------------------------------------- reading
    def _load_index(self, image_size: int) -> _Index:
        """The index on disk, or an empty one (with a warning if the file is unusable)."""
        path = self.folder / _INDEX
        if not path.exists():
            return _Index(image_size)
        try:
            obj = json.loads(path.read_bytes().decode("utf-8"))
            index = _parse_index(obj, self.key)
        except (OSError, ValueError) as e:  # ValueError: not UTF-8, not JSON, bad layout
            warnings.warn(f"{path}: unusable feature-cache index ({e}); its features will be "
                          f"recomputed", stacklevel=3)
            return _Index(image_size)
        if index.image_size != image_size:
            raise ValueError(f"{self.folder} holds features of {index.image_size}-pixel images, "
                             f"got image_size={image_size}; give each setting its own key "
                             f"(e.g. '...-{image_size}')")
        return index

    def _read_cached(self, index: _Index, files: list[_File]) -> dict[str, Tensor]:
        """The cached features of the ``files`` whose size and mtime match their entry."""
        by_shard: dict[str, list[tuple[_File, int]]] = {}
        for file in files:
            entry = index.entries.get(file.absolute)
            if entry and (entry["size"], entry["mtime_ns"]) == (file.size, file.mtime_ns):
                by_shard.setdefault(entry["shard"], []).append((file, entry["row"]))
        features: dict[str, Tensor] = {}
        for shard, wanted in by_shard.items():
            try:
                features.update(self._read_rows(shard, wanted, index.shape))
            except (OSError, SafetensorError, ValueError, KeyError, IndexError) as e:
                warnings.warn(f"{self.folder / shard}: unreadable feature shard ({e}); "
                              f"recomputing its {len(wanted)} images", stacklevel=3)
        return features

    def _read_rows(self, shard: str, wanted: list[tuple[_File, int]],
                   shape: list[int] | None) -> dict[str, Tensor]:
        with safe_open(self.folder / shard, framework="pt") as f:
            rows = f.get_slice("features")  # (M, R, C), read lazily
            found = list(rows.get_shape())
            if len(found) != 3 or found[1:] != shape:
                raise ValueError(f"expected (M, R, C) features with (R, C) = {shape}, "
                                 f"got shape {found}")
            if any(row >= found[0] for _, row in wanted):
                raise ValueError(f"expected rows below {found[0]}, got row "
                                 f"{max(row for _, row in wanted)}")
            return {file.absolute: rows[row].to(torch.float32) for file, row in wanted}

    # ---------------------------------------------------------------------- computing
    def _compute(self, index: _Index, missing: list[_File], encode: Callable[[Tensor], Tensor],
                 features: dict[str, Tensor], batch_size: int, progress: bool) -> None:
        """Encode the ``missing`` images in batches, writing a shard every ~256 MiB."""
        pending: list[tuple[_File, Tensor]] = []  # computed, not yet on disk
        with tqdm(total=len(missing), unit="img", desc=f"features {self.key}",
                  file=sys.stderr, disable=not progress) as bar:
            for start in range(0, len(missing), batch_size):
                chunk = missing[start:start + batch_size]
                images = [image_tensor(load_image(file.path), index.image_size) for file in chunk]
                out = _encode_batch(encode, torch.stack(images))  # B x (3, S, S) -> (B, R, C)
                index.shape = _check_shape(index.shape, out, self.folder)
                computed = list(zip(chunk, out, strict=True))  # B x (file, (R, C))
                pending += computed
                features.update((file.absolute, row) for file, row in computed)
                if sum(row.nbytes for _, row in pending) >= _SHARD_BYTES:
                    self._write(index, pending)
                    pending = []
                bar.update(len(chunk))
        if pending:
            self._write(index, pending)

    def _write(self, index: _Index, rows: list[tuple[_File, Tensor]]) -> None:
        """One new shard with ``rows``, then the index that points at it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shard = f"shard-{uuid.uuid4().hex[:16]}.safetensors"
        tensor = torch.stack([row for _, row in rows])  # M x (R, C) -> (M, R, C)
        atomic_write_bytes(self.folder / shard, safetensors_bytes({"features": tensor}))
        for row, (file, _) in enumerate(rows):
            index.entries[file.absolute] = {"size": file.size, "mtime_ns": file.mtime_ns,
                                            "shard": shard, "row": row}
        text = json.dumps(index.to_json(self.key), indent=1, sort_keys=True)
        atomic_write_bytes(self.folder / _INDEX, text.encode("utf-8"))


def _identify(path: str | os.PathLike[str]) -> _File:
    path = os.fspath(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read it ({e.strerror})") from None
    return _File(path, os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def _encode_batch(encode: Callable[[Tensor], Tensor], batch: Tensor) -> Tensor:
    """``encode(batch)`` without autograd, checked to be ``(B, R, C)``, as float32 on the CPU."""
    with torch.no_grad():
        out = encode(batch)  # (B, 3, S, S) -> (B, R, C)
    if not isinstance(out, Tensor) or out.dim() != 3 or out.shape[0] != batch.shape[0]:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"expected encode to return ({batch.shape[0]}, R, C) features for a "
                         f"batch of {batch.shape[0]} images, got {got}")
    return out.detach().to("cpu", torch.float32).contiguous()


def _check_shape(shape: list[int] | None, out: Tensor, folder: Path) -> list[int]:
    """``[R, C]`` of ``out``, checked against the cache's (the key must change with them)."""
    found = list(out.shape[1:])
    if shape is not None and found != shape:
        raise ValueError(f"expected (B, R, C) features with (R, C) = {tuple(shape)} as cached in "
                         f"{folder}, got {tuple(out.shape)}; a changed encoder needs a new key")
    return found


def _parse_index(obj: object, key: str) -> _Index:
    """The :class:`_Index` of a parsed ``index.json``; ``ValueError`` saying what is wrong."""
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT or obj.get("key") != key:
        raise ValueError(f"expected an object with format {_FORMAT} and key {key!r}")
    image_size, shape, entries = obj.get("image_size"), obj.get("shape"), obj.get("entries")
    if not _is_int(image_size) or not isinstance(entries, dict) or not (
            shape is None or (isinstance(shape, list) and len(shape) == 2
                              and all(_is_int(n) for n in shape))):
        raise ValueError("expected image_size, shape [R, C] and entries")
    for path, entry in entries.items():
        if not (isinstance(entry, dict) and set(entry) == {"size", "mtime_ns", "shard", "row"}
                and all(_is_int(entry[k]) for k in ("size", "mtime_ns", "row"))
                and isinstance(entry["shard"], str) and _SHARD.fullmatch(entry["shard"])):
            raise ValueError(f"bad entry for {path!r}: {entry!r}")
    if entries and shape is None:
        raise ValueError("expected a shape [R, C] with entries")
    return _Index(image_size, shape, entries)



def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
