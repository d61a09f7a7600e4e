"""Videos for classification (many-to-one): list labelled clips, sample frames at a fixed rate,
and cache the CNN features of the sampled frames.

The lecture's recipe: a clip sampled at 1 frame per second gives ``N`` frames (30 for a 30 s
clip), a CNN turns each into a feature vector, and an RNN reads the series::

    report = read_class_folders("UCF101", split="ucfTrainTestlist/trainlist01.txt")
    items, bad = check_videos(report.items)          # drop unreadable or empty videos
    clip = read_video(items[0].path, fps=1.0, max_frames=30, size=112)
    clip.frames                                       # (N, S, S, 3) uint8, N <= 30
    clip.times                                        # [0.48, 1.48, ...]: seconds of each frame
    cache = ClipFeatureCache("cache/clips", key="smallcnn-112")
    features, counts = cache.get_or_compute([it.path for it in items], encode, size=112)
    # (N_clips, 30, C) zero-padded features and (N_clips,) frames per clip: the RNN's lengths

Which frames: :func:`sample_times` is the one sampling policy, used for video files and
folders of frame images alike. Symbols: ``N`` frames of a clip, ``H``, ``W`` their height and
width, ``S`` the side after resize and crop, ``B`` frames per batch, ``C`` feature channels.

Library: PyAV (``pip install av``), chosen over OpenCV (``opencv-python-headless``):

* licence: PyAV is BSD-3-Clause; its wheels bundle FFmpeg, whose build reports "LGPL version 3
  or later" yet also ships the GPL x264/x265 encoders (which is why writing defaults to
  FFmpeg's own LGPL ``mpeg4`` encoder). OpenCV is Apache-2.0 with the same kind of bundled
  FFmpeg, so licences do not decide it.
* size: PyAV's wheel is 36 MB (about 100 MB installed); OpenCV's headless wheel is of the same
  order and brings a whole computer-vision library we would not use.
* decode accuracy: PyAV hands us every decoded frame with its presentation timestamp, so
  "the frame nearest 12.5 s" is exact; OpenCV's ``CAP_PROP_POS_MSEC`` / ``POS_FRAMES`` are
  derived from frame counts and the nominal rate, which is wrong for variable-frame-rate files.
* seeking: PyAV exposes FFmpeg's seek (to the keyframe before a time, then decode forward,
  with every timestamp visible), so far-apart samples of a long video cost little and we can
  check where a seek landed; OpenCV's ``set(CAP_PROP_POS_FRAMES)`` hides both.
* writing: the built-in dataset (:mod:`rnnkit.synthetic.motions`) writes mp4 files; PyAV sets any
  encoder option and, with one encoder thread, gives the same bytes for the same frames;
  OpenCV's writer takes a FourCC and little else.

PyAV is imported only when a video file is opened or written, so the readers of lists, CSV
files and frame folders work without it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor
from tqdm import tqdm

from ..errors import RnnkitError
from . import files
from .files import atomic_write_bytes
from .images import IMAGENET_MEAN, IMAGENET_STD, ImageError, _resized, load_image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".ogv", ".3gp")  # files read_class_folders takes for videos
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # frame images in a frame folder

_INSTALL = "pip install \"rnnkit[video]\"  (PyAV: FFmpeg for Python)"
_SEEK_GAP_S = 20.0  # seek instead of decoding on when the next sampled time is this far ahead
_SEEK_BACK_S = 1.0  # seek to this long before a sampled time, so the frame before it is seen
_TRUNCATED_S = 1.0  # frames ending this long (plus a frame) before the duration: truncated
_EPS = 1e-6  # seconds: timestamps closer than this are equal (rounding of time bases)
_DIGITS = re.compile(r"(\d+)")


class VideoError(RnnkitError):
    """A video, frame folder or list that cannot be used; the message is
    ``"path: what is wrong"`` (``"path:line: ..."`` for a line of a list)."""


@dataclass
class Clip:
    """The frames sampled from one video (or frame folder)."""

    frames: Tensor  # (N, H, W, 3) uint8 RGB, N <= max_frames; (N, S, S, 3) with size=S
    times: list[float]  # seconds from the start of the video of each frame returned
    duration: float  # seconds: the length of the whole video
    path: str


@dataclass
class VideoItem:
    """One labelled video: a video file or a folder of frame images."""

    path: str  # the video file or frame folder, normalised (os.path.normpath)
    label: str  # the class name, as written (the class folder's name, or the csv's label)
    source: str  # where it was listed: "list:line", or the class folder it was found in


@dataclass
class VideoReport:
    """What a reader found: the items in listed order, and one message per entry skipped."""

    items: list[VideoItem]
    skipped: list[str]


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of a video: ``start <= t < end`` seconds."""

    start: float  # seconds, >= 0
    end: float  # seconds, > start
    label: str


# ------------------------------------------------------------------------------- sampling
def sample_times(duration: float, *, fps: float = 1.0, max_frames: int = 30) -> list[float]:
    """The seconds at which a clip of ``duration`` seconds is sampled.

    The policy, for every reader of this module:

    1. cut the clip into intervals of ``1 / fps`` seconds from its start, and take one frame at
       the centre of each whole interval: ``0.5 / fps, 1.5 / fps, ...`` (a 30 s clip at 1 FPS
       gives 30 frames at 0.5, 1.5, ..., 29.5 s); a tail shorter than one interval is not
       sampled;
    2. if that gives more than ``max_frames`` frames, take instead the centres of
       ``max_frames`` equal intervals of the WHOLE clip, ``(k + 0.5) * duration / max_frames``,
       so that a long clip is seen from beginning to end, not only its first seconds;
    3. a clip shorter than ``1 / fps`` gives one frame, its middle: never zero frames.

    ``sample_times(30) -> [0.5, 1.5, ..., 29.5]``; ``sample_times(120) -> [2.0, 6.0, ...,
    118.0]``; ``sample_times(0.4) -> [0.2]``.
    """
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
            or not math.isfinite(duration) or duration <= 0:
        raise ValueError(f"expected duration to be a positive number of seconds, "
                         f"got {duration!r}")
    _check_positive("fps", fps)
    _check_max_frames(max_frames)
    whole = math.floor(duration * fps + _EPS)  # whole intervals of 1 / fps seconds
    if whole == 0:
        return [duration / 2]
    if whole > max_frames:
        return [(k + 0.5) * duration / max_frames for k in range(max_frames)]
    return [(k + 0.5) / fps for k in range(whole)]


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected {name} to be a positive number, got {value!r}")


def _check_max_frames(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected max_frames to be a positive int, got {value!r}")


def _check_size(size: object) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"expected size to be None or a positive int, got {size!r}")


def _nearest(times: Sequence[float], target: float) -> int:
    """The index of the time in sorted ``times`` nearest ``target``; a tie goes to the earlier."""
    i = int(np.searchsorted(times, target))  # times[i - 1] < target <= times[i]
    if i == 0:
        return 0
    if i == len(times) or target - times[i - 1] <= times[i] - target + _EPS:
        return i - 1
    return i


# ------------------------------------------------------------------------------- video files
def read_video(path: str | os.PathLike[str], *, fps: float = 1.0, max_frames: int = 30,
               size: int | None = None) -> Clip:
    """The frames of a video file at the times of :func:`sample_times`.

    Each sampled time gets the decoded frame whose presentation time is nearest (a tie goes to
    the earlier frame; a time after the last frame gets the last frame); ``times`` are those
    frames' own timestamps, counted from the stream's start. Several times may get the same
    frame when the file has fewer frames per second than ``fps``. With ``size``, each frame's
    shorter side is resized to ``size`` (PIL bilinear, as :func:`rnnkit.data.images.image_tensor`)
    and its centre ``size x size`` cropped.

    Cost: frames are decoded in order from the start (only the picked ones are converted to
    RGB, which is the dearer step), so reading costs about the decode time of the clip up to
    its last sampled frame (roughly 0.1-1 ms per 240p frame, 1800 frames for a minute at 30
    FPS). When sampled times are more than 20 s apart (a long video squeezed into
    ``max_frames``), the reader seeks to each one instead: FFmpeg jumps to the keyframe before
    it and decodes forward from there.

    The duration is the video stream's (else the container's; else found by decoding). Rotation
    metadata of phone videos is not applied. Raises :class:`VideoError` (``"path: ..."``) for
    a missing path, a folder, an empty file, a file FFmpeg cannot read, one without a video
    stream, a zero-length video, corrupt data, frames that end more than a second before a
    sampled time (a truncated file), and frames of several sizes without ``size``;
    ``ModuleNotFoundError`` without PyAV.
    """
    _check_positive("fps", fps)
    _check_max_frames(max_frames)
    _check_size(size)
    path = _check_video_path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        duration = _duration(container, stream, path)
        targets = sample_times(duration, fps=fps, max_frames=max_frames)
        picked = _pick_frames(container, stream, targets, path)
    frames = [_resize_crop(frame, size) for _, frame in picked]  # N x (H, W, 3)
    return Clip(_stack(frames, path), [t for t, _ in picked], duration, path)


def _stack(frames: list[np.ndarray], path: str) -> Tensor:
    """``N x (H, W, 3)`` -> ``(N, H, W, 3)``, checked to be of one size."""
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        sizes = sorted((w, h) for h, w, _ in shapes)
        raise VideoError(f"{path}: expected frames of one size, got sizes {sizes} (width, "
                         f"height); pass size= to resize them")
    return torch.from_numpy(np.stack(frames))


def import_av():
    try:
        import av
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(f"reading and writing video files needs PyAV: {_INSTALL}") \
            from e
    return av


def _check_video_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a string, checked to be a non-empty file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoError(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoError(f"{path}: expected a video file, got a folder")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path}: expected a video file, got an empty file (0 bytes)")
    return path


@contextlib.contextmanager
def _open(path: str):
    """The PyAV input container of ``path``; FFmpeg's failures as :class:`VideoError`."""
    av = import_av()
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(f"{path}: expected a video file ({', '.join(VIDEO_EXTENSIONS[:5])}, "
                         f"...), got one FFmpeg cannot read ({_reason(e)}), starting with "
                         f"{_head(path)!r}") from None
    except OSError as e:
        raise VideoError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        yield container
    except av.FFmpegError as e:
        raise VideoError(f"{path}: corrupt video data ({_reason(e)})") from None
    finally:
        container.close()


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _head(path: str, size: int = 16) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def _video_stream(container, path: str):
    """The first video stream. (FFmpeg's frame threads, ``thread_type = "AUTO"``, cost more to
    start than a short clip takes to decode; parallelise over files instead.)"""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoError(f"{path}: expected a video stream, got streams of kind "
                         f"{', '.join(kinds)}")
    return container.streams.video[0]


def _start(stream) -> float:
    """Seconds of the stream's first timestamp (frame times are counted from it)."""
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _duration(container, stream, path: str) -> float:
    """Seconds of the video stream: its own duration, else the container's, else the end of
    its last frame (decoding it all, then seeking back to the start)."""
    if stream.duration is not None and stream.duration > 0:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None and container.duration > 0:
        duration = container.duration / 1_000_000 - _start(stream)  # AV_TIME_BASE: microseconds
    else:
        times = [t for t, _ in _decoded(container, stream, path, convert=False)]
        if not times:
            raise VideoError(f"{path}: expected a video with frames, got none (a zero-length "
                             f"video)")
        step = 1 / float(stream.average_rate) if stream.average_rate else 0.0
        duration = times[-1] + step
        _seek(container, stream, 0.0)
    if not duration > 0:
        raise VideoError(f"{path}: expected a video longer than 0 s, got a zero-length one")
    return duration


def _decoded(container, stream, path: str,
             convert: bool = True) -> Iterator[tuple[float, object]]:
    """``(seconds, frame)`` of each frame from the current position: the frame as PyAV's
    ``VideoFrame`` (convert later with :class:`_ToRGB`), or ``None`` when not ``convert``."""
    start = _start(stream)
    for frame in container.decode(stream):
        if frame.time is None:  # a raw stream without timestamps: nothing to sample by
            raise VideoError(f"{path}: expected frames with timestamps, got one without (a raw "
                             f"stream such as .h264? put it in a container: .mp4, .mkv)")
        yield frame.time - start, frame if convert else None


def _pick_frames(container, stream, targets: list[float],
                 path: str) -> list[tuple[float, np.ndarray]]:
    """``(seconds, (H, W, 3) uint8)`` of the frame nearest each target, decoding forward and
    seeking over gaps longer than ``_SEEK_GAP_S``."""
    rgb = _ToRGB()
    picked: list[tuple[float, np.ndarray]] = []
    for group in _groups(targets):
        chosen = None
        if group[0] > _SEEK_GAP_S:
            _seek(container, stream, group[0] - _SEEK_BACK_S)
            chosen = _pick_forward(container, stream, group, path, rgb, after_seek=True)
            if chosen is None:  # the seek overshot (a broken index): decode from the start
                _seek(container, stream, 0.0)
        if chosen is None:
            chosen = _pick_forward(container, stream, group, path, rgb)
        picked += chosen
    return picked


def _groups(targets: list[float]) -> list[list[float]]:
    """``targets`` cut where two neighbours are more than ``_SEEK_GAP_S`` apart."""
    groups = [[targets[0]]]
    for before, after in itertools.pairwise(targets):
        if after - before > _SEEK_GAP_S:
            groups.append([])
        groups[-1].append(after)
    return groups


def _seek(container, stream, seconds: float) -> None:
    """Jump to the keyframe at or before ``seconds`` (FFmpeg's backward seek); PyAV flushes
    the decoder."""
    offset = int((max(seconds, 0.0) + _start(stream)) / stream.time_base)
    container.seek(offset, stream=stream, backward=True, any_frame=False)


def _pick_forward(container, stream, targets: list[float], path: str, rgb: _ToRGB,
                  after_seek: bool = False) -> list[tuple[float, np.ndarray]] | None:
    """Decode from the current position, picking for each target the nearer of the frames
    just before and at-or-after it; ``None`` when ``after_seek`` and the first frame decoded
    comes after the first target (the seek skipped frames that might be nearer)."""
    picked: list[tuple[float, np.ndarray]] = []
    before = None  # (seconds, frame) of the frame decoded before ``now``
    for now in _decoded(container, stream, path):
        if before is None and after_seek and now[0] > targets[0] + _EPS:
            return None
        while len(picked) < len(targets) and now[0] >= targets[len(picked)] - _EPS:
            target = targets[len(picked)]
            near = before if before and target - before[0] <= now[0] - target + _EPS else now
            picked.append((near[0], rgb(near[1])))
        if len(picked) == len(targets):
            return picked
        before = now
    if before is None:
        raise VideoError(f"{path}: expected a video with frames, got none that decode")
    _check_end(before[0], targets[-1], stream, path)
    picked += [(before[0], rgb(before[1]))] * (len(targets) - len(picked))  # past the end
    return picked


def _check_end(last: float, wanted: float, stream, path: str) -> None:
    """Raise if the frames end well before ``wanted`` seconds (a truncated file): more than
    ``_TRUNCATED_S`` plus one frame interval, which a whole video's last frame never is."""
    interval = 1 / float(stream.average_rate) if stream.average_rate else 0.0
    if wanted - last > _TRUNCATED_S + interval:
        raise VideoError(f"{path}: truncated or corrupt video: its frames end at {last:.2f} s, "
                         f"expected frames up to {wanted:.2f} s of its stated duration")


class _ToRGB:
    """Decoded frames to ``(H, W, 3)`` uint8 RGB through one reformatter: its conversion
    context is made once, where ``frame.to_ndarray(format="rgb24")`` makes one per frame
    (about 2-7 ms each with FFmpeg 8, more than decoding a small frame)."""

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self.reformatter = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        return self.reformatter.reformat(frame, format="rgb24").to_ndarray()  # (H, W, 3)


def _resize_crop(pixels: np.ndarray, size: int | None) -> np.ndarray:
    """``(H, W, 3)`` uint8 resized so the shorter side is ``size`` and centre-cropped to
    ``(size, size, 3)``, with the numbers of :func:`rnnkit.data.images.image_tensor`."""
    if size is None:
        return pixels
    image = Image.fromarray(pixels)
    width, height = image.size
    new_size = _resized(width, height, size)
    if new_size != (width, height):
        image = image.resize(new_size, Image.Resampling.BILINEAR)
    left = int(round((new_size[0] - size) / 2.0))
    top = int(round((new_size[1] - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


# ------------------------------------------------------------------------------- frame folders
def read_frame_folder(path: str | os.PathLike[str], *, fps_of_folder: float,
                      fps: float = 1.0, max_frames: int = 30, size: int | None = None) -> Clip:
    """The frames of a folder of frame images (``frame1.jpg``, ``frame2.jpg``, ...), taken as a
    video of ``fps_of_folder`` frames per second, at the times of :func:`sample_times`.

    Images (:data:`FRAME_EXTENSIONS`, any case; other and hidden files are ignored) are sorted
    by name in natural order, so ``frame10`` comes after ``frame9``. Frame ``i`` is shown at
    ``i / fps_of_folder`` seconds; the duration is ``count / fps_of_folder``. Only the picked
    frames are decoded (:func:`rnnkit.data.images.load_image`). ``size``: as in
    :func:`read_video`. Raises :class:`VideoError` for a missing path, a file, a folder without
    frame images, a broken image, and frames of different sizes without ``size``.
    """
    _check_positive("fps_of_folder", fps_of_folder)
    _check_positive("fps", fps)
    _check_max_frames(max_frames)
    _check_size(size)
    path = os.fspath(path)
    names = frame_names(path)
    duration = len(names) / fps_of_folder
    times = [i / fps_of_folder for i in range(len(names))]
    targets = sample_times(duration, fps=fps, max_frames=max_frames)
    indices = [_nearest(times, t) for t in targets]
    frames = [_load_frame(os.path.join(path, names[i]), path) for i in indices]  # N x (H, W, 3)
    frames = [_resize_crop(frame, size) for frame in frames]
    return Clip(_stack(frames, path), [times[i] for i in indices], duration, path)


def frame_names(path: str | os.PathLike[str]) -> list[str]:
    """The names of the frame images in folder ``path``, in natural order; raises
    :class:`VideoError` for a missing path, a file and a folder without frame images."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        what = "a file" if os.path.exists(path) else "nothing (no such folder)"
        raise VideoError(f"{path}: expected a folder of frame images, got {what}")
    try:
        names = [name for name in os.listdir(path) if not name.startswith(".")
                 and name.lower().endswith(FRAME_EXTENSIONS)]
    except OSError as e:
        raise VideoError(f"{path}: cannot list it ({e.strerror})") from None
    if not names:
        raise VideoError(f"{path}: expected frame images ({', '.join(FRAME_EXTENSIONS)}), "
                         f"got none in the folder")
    return sorted(names, key=natural_key)


def natural_key(name: str) -> list:
    """A sort key that orders the digits in ``name`` by value: ``"frame9" < "frame10"``."""
    parts = _DIGITS.split(name)  # ["frame", "10", ".jpg"]: text at even places, digits at odd
    return [int(part) if i % 2 else part.casefold() for i, part in enumerate(parts)]


def _load_frame(file: str, folder: str) -> np.ndarray:
    try:
        return np.asarray(load_image(file))  # (H, W, 3) uint8
    except ImageError as e:
        raise VideoError(f"{folder}: bad frame image: {e}") from None


# ------------------------------------------------------------------------------- checking
def check_videos(items: Sequence[VideoItem], *,
                 full: bool = False) -> tuple[list[VideoItem], list[str]]:
    """The items whose video opens, in order, and one message per bad item:
    ``"path: what is wrong (listed at source)"``.

    By default a cheap probe: a video file must open, hold a video stream of positive duration
    and decode a first frame; a frame folder must hold frame images and its first must load.
    A file truncated later on passes it, and :func:`read_video` raises for it; ``full=True``
    decodes every frame (no RGB conversion; about the cost of playing the files at full speed)
    and also finds truncated and corrupt files. A path listed by several items is checked once.
    """
    problems: dict[str, str | None] = {}  # path -> problem, None when it is good
    good, bad = [], []
    for item in items:
        if item.path not in problems:
            problems[item.path] = _problem(item.path, full)
        problem = problems[item.path]
        if problem is None:
            good.append(item)
        else:
            bad.append(f"{problem} (listed at {item.source})")
    return good, bad


def _problem(path: str, full: bool) -> str | None:
    try:
        if os.path.isdir(path):
            names = frame_names(path)
            _load_frame(os.path.join(path, names[0]), path)
        else:
            _probe(path, full)
    except VideoError as e:
        return str(e)
    return None


def _probe(path: str, full: bool) -> None:
    """Raise :class:`VideoError` unless ``path`` opens, has a video stream of positive
    duration and decodes one frame (``full``: every frame, ending near the duration)."""
    path = _check_video_path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        duration = _duration(container, stream, path)
        last = None
        for seconds, _ in _decoded(container, stream, path, convert=False):
            last = seconds
            if not full:
                break
        if last is None:
            raise VideoError(f"{path}: expected a video with frames, got none that decode")
        if full:
            _check_end(last, duration, stream, path)


# ------------------------------------------------------------------------------- lists
def read_class_folders(root: str | os.PathLike[str], *,
                       split: str | os.PathLike[str] | None = None) -> VideoReport:
    """The videos of the UCF101 / HMDB51 layout, ``root/<class>/<video file or frame folder>``;
    the label is the class folder's name.

    Without ``split``: every class folder (sorted; hidden ones ignored) and in it every video
    file (:data:`VIDEO_EXTENSIONS`, any case) and every subfolder (a folder of frame images),
    in natural order; other files are listed in ``skipped``, hidden ones ignored. With
    ``split``, a list in UCF101's ``trainlist01.txt`` format: one ``<class>/<name>`` per line
    relative to ``root``, optionally followed by the class number (``testlist01.txt`` has
    none), e.g. ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``; only those, in its order.

    Raises :class:`VideoError` for a missing root, no videos, and in a split file (naming it
    and the line): an entry without a class folder, a class number that is not an int, an entry
    listed twice, and one that does not exist under ``root``.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise VideoError(f"{root}: expected the folder of class folders, got "
                         f"{'a file' if os.path.exists(root) else 'no such folder'}")
    if split is not None:
        items, skipped = _read_split(os.fspath(split), root), []
    else:
        items, skipped = _scan_classes(root)
    if not items:
        raise VideoError(f"{root}: expected videos in class folders (root/<class>/<video>), "
                         f"got none" + (f"; skipped: {skipped[0]} ..." if skipped else ""))
    return VideoReport(items, skipped)


def _scan_classes(root: str) -> tuple[list[VideoItem], list[str]]:
    items, skipped = [], []
    for label in sorted(_visible(root)):
        folder = os.path.join(root, label)
        if not os.path.isdir(folder):
            skipped.append(f"{folder}: not a class folder, ignored")
            continue
        for name in sorted(_visible(folder), key=natural_key):
            path = os.path.normpath(os.path.join(folder, name))
            if os.path.isdir(path) or name.lower().endswith(VIDEO_EXTENSIONS):
                items.append(VideoItem(path, label, folder))
            else:
                skipped.append(f"{path}: expected a video file ({', '.join(VIDEO_EXTENSIONS)}) "
                               f"or a frame folder, got another kind of file, ignored")
    return items, skipped


def _visible(folder: str) -> list[str]:
    try:
        return [name for name in os.listdir(folder) if not name.startswith(".")]
    except OSError as e:
        raise VideoError(f"{folder}: cannot list it ({e.strerror})") from None


def _read_split(split: str, root: str) -> list[VideoItem]:
    items: list[VideoItem] = []
    first_line: dict[str, int] = {}  # entry -> the line that listed it first
    for number, line in _text_lines(split):
        source = f"{split}:{number}"
        fields = line.split()
        if len(fields) > 2 or (len(fields) == 2 and not re.fullmatch(r"[+-]?\d+", fields[1])):
            raise VideoError(f"{source}: expected '<class>/<video> [class number]', got "
                             f"{line.strip()!r}")
        entry = fields[0].replace("\\", "/").strip("/")
        label, _, name = entry.partition("/")
        if not name:
            raise VideoError(f"{source}: expected '<class>/<video>' with a class folder, got "
                             f"{fields[0]!r}")
        if entry in first_line:
            raise VideoError(f"{source}: {entry!r} is listed twice (first at line "
                             f"{first_line[entry]})")
        first_line[entry] = number
        path = os.path.normpath(os.path.join(root, *entry.split("/")))
        if not os.path.exists(path):
            raise VideoError(f"{source}: {entry!r} does not exist under {root} (no {path})")
        items.append(VideoItem(path, label, source))
    return items


def _text_lines(path: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` of each non-blank line of a UTF-8 text file (BOM dropped)."""
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if line.strip():
            yield number, line


def _read_text(path: str) -> str:
    return files.read_text(files.require_file(path, "a list file", VideoError), "strict",
                           VideoError)


def read_video_csv(path: str | os.PathLike[str], *,
                   root: str | os.PathLike[str] | None = None) -> VideoReport:
    """The videos of a csv file with a header row naming a ``path`` and a ``label`` column (any
    case and order; other columns ignored), one video (file or frame folder) per row.

    Relative paths are joined to ``root`` (default: the csv file's folder). The files are not
    opened here: :func:`check_videos` finds missing or broken ones. Raises :class:`VideoError`
    naming ``path:line`` for a missing header column, another field count than the header, an
    empty path or label, and bytes that are not UTF-8.
    """
    path = os.fspath(path)
    base = os.fspath(root) if root is not None else os.path.dirname(path)
    rows = _csv_rows(path)
    header = next(rows, None)
    if header is None:
        raise VideoError(f"{path}: expected a header row 'path,label', got an empty file")
    path_i, label_i = _columns(header[1], f"{path}:{header[0]}", ("path", "label"))
    items = []
    for line, row in rows:
        source = f"{path}:{line}"
        _check_row(row, len(header[1]), (path_i, label_i), ("path", "label"), source)
        file = os.path.normpath(os.path.join(base, row[path_i].strip()))
        items.append(VideoItem(file, row[label_i].strip(), source))
    if not items:
        raise VideoError(f"{path}: expected rows of videos after the header, got none")
    return VideoReport(items, [])


def _csv_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, row)`` of each non-blank csv row."""
    return files.csv_rows(_read_text(path).splitlines(), path, VideoError)


def _columns(header: list[str], source: str, wanted: tuple[str, ...]) -> tuple[int, ...]:
    return files.header_columns(header, wanted, source, VideoError)


def _check_row(row: list[str], width: int, indices: Sequence[int], names: Sequence[str],
               source: str) -> None:
    if len(row) != width:
        raise VideoError(f"{source}: expected {width} fields as in the header, got {len(row)}")
    for i, name in zip(indices, names, strict=True):
        if not row[i].strip():
            raise VideoError(f"{source}: expected a {name}, got an empty field")


# ------------------------------------------------------------------------------- segments
def read_segments(path: str | os.PathLike[str], *,
                  root: str | os.PathLike[str] | None = None) -> dict[str, list[Segment]]:
    """Per-frame labels from a csv file with a header ``path,start_s,end_s,label`` (any case and
    order; other columns ignored): when in a video something happens.

    Keys are the video paths joined to ``root`` (default: the csv file's folder) and normalised,
    as :func:`read_video_csv` makes them; each list is sorted by start. Raises
    :class:`VideoError` naming ``path:line`` for a bad header or field count, an empty field,
    times that are not numbers >= 0, ``start >= end``, and a segment overlapping another of the
    same video (touching, ``end == next start``, is fine).
    """
    path = os.fspath(path)
    base = os.fspath(root) if root is not None else os.path.dirname(path)
    names = ("path", "start_s", "end_s", "label")
    rows = _csv_rows(path)
    header = next(rows, None)
    if header is None:
        raise VideoError(f"{path}: expected a header row 'path,start_s,end_s,label', got an "
                         f"empty file")
    columns = _columns(header[1], f"{path}:{header[0]}", names)
    found: dict[str, list[tuple[Segment, int]]] = {}  # video -> (segment, line)
    for line, row in rows:
        source = f"{path}:{line}"
        _check_row(row, len(header[1]), columns, names, source)
        video, start, end, label = (row[i].strip() for i in columns)
        segment = Segment(_seconds(start, "start_s", source), _seconds(end, "end_s", source),
                          label)
        if segment.start >= segment.end:
            raise VideoError(f"{source}: expected start_s < end_s, got {start} >= {end}")
        key = os.path.normpath(os.path.join(base, video))
        _check_overlap(segment, found.get(key, []), source, path)
        found.setdefault(key, []).append((segment, line))
    return {key: sorted((s for s, _ in pairs), key=lambda s: s.start)
            for key, pairs in found.items()}


def _seconds(text: str, name: str, source: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise VideoError(f"{source}: expected {name} to be a number of seconds >= 0, "
                         f"got {text!r}")
    return value


def _check_overlap(segment: Segment, others: list[tuple[Segment, int]], source: str,
                   path: str) -> None:
    for other, line in others:
        if segment.start < other.end and other.start < segment.end:
            raise VideoError(f"{source}: expected segments of a video not to overlap, got "
                             f"{segment.start:g}-{segment.end:g} s ({segment.label!r}) "
                             f"overlapping {other.start:g}-{other.end:g} s ({other.label!r}) "
                             f"of {path}:{line}")


def frame_labels(times: Sequence[float], segments: Sequence[Segment],
                 background: str = "background") -> list[str]:
    """The label of each time (e.g. ``clip.times``): that of the segment with
    ``start <= t < end``, or ``background`` where none is."""
    ordered = sorted(segments, key=lambda s: s.start)
    starts = [s.start for s in ordered]
    labels = []
    for t in times:
        i = int(np.searchsorted(starts, t, side="right")) - 1  # the last segment starting <= t
        labels.append(ordered[i].label if i >= 0 and t < ordered[i].end else background)
    return labels


# ------------------------------------------------------------------------------- features
def frames_tensor(frames: Tensor) -> Tensor:
    """``(N, S, S, 3)`` uint8 frames as ``(N, 3, S, S)`` float32, scaled to [0, 1] and
    normalised per channel with ImageNet's mean and std, as
    :func:`rnnkit.data.images.image_tensor` does for one image."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)  # (1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = frames.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # (N, S, S, 3) -> (N, 3, S, S)
    return (pixels - mean) / std


_INDEX = "index.json"
_FORMAT = 1  # bumped when the layout of the index changes; other versions are recomputed
_SHARD_BYTES = 256 * 2**20  # features held in memory before they are written as one shard
_SHARD_SECONDS = 60.0  # ... or this long after the last write, so a killed run loses little
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")  # a key is one folder name
_SHARD = re.compile(r"shard-[0-9a-f]+\.safetensors")  # a shard name: never a path elsewhere


@dataclass(frozen=True)
class _Source:
    """A clip as the cache identifies it: a changed size or mtime is another clip. For a frame
    folder, ``size`` counts its entries and ``mtime_ns`` is the folder's own (changed by adding,
    removing or renaming frames, not by editing one in place)."""

    path: str  # as given, for messages and reading
    absolute: str
    size: int
    mtime_ns: int
    folder_fps: float | None  # fps_of_folder for a frame folder, None for a video file

    def matches(self, entry: dict) -> bool:
        return (entry["size"], entry["mtime_ns"], entry["folder_fps"]) == (
            self.size, self.mtime_ns, self.folder_fps)


class ClipFeatureCache:
    """CNN features of the sampled frames of clips (video files or frame folders), computed
    once and kept on disk.

    :class:`rnnkit.data.images.FeatureCache` keys features by image file, and a clip is many
    frames of one file, so this cache keeps one ``(max_frames, C)`` row per clip, zero-padded
    after its ``count`` frames. Its guarantees are FeatureCache's: files live in
    ``folder/<key>/fps<fps>-max<max_frames>-size<size>/`` (one subfolder per sampling
    setting), shards ``shard-<id>.safetensors`` (``"features"``, ``(M, max_frames, C)``
    float32) and ``index.json`` (each clip's absolute path, size, mtime, frame folder rate,
    shard, row and frame count), both written atomically, shard first; a shard is written every
    ~256 MiB or every minute, so a killed run resumes where it stopped; an unreadable index or
    shard gives a warning and its clips are recomputed.

    The key names the encoder, its weights and its settings (``"resnet18-112"``); the cache
    cannot tell that weights changed. One writer at a time per key.
    """

    def __init__(self, folder: str | os.PathLike[str], key: str) -> None:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"expected a key usable as a folder name (letters, digits, "
                             f"'._+=-'), got {key!r}")
        self.key = key
        self.root = Path(folder) / key

    def get_or_compute(self, paths: Sequence[str | os.PathLike[str]],
                       encode: Callable[[Tensor], Tensor], *, size: int, fps: float = 1.0,
                       max_frames: int = 30, fps_of_folder: float | None = None,
                       batch_size: int = 64, progress: bool = True) -> tuple[Tensor, Tensor]:
        """Features ``(N_clips, max_frames, C)`` float32 on the CPU, zero after each clip's
        frames, and the frame counts ``(N_clips,)`` int64, row ``i`` for ``paths[i]``.

        Clips not in the cache (matched by absolute path, size, mtime and, for frame folders,
        ``fps_of_folder``) are read with :func:`read_video` / :func:`read_frame_folder`
        (``fps``, ``max_frames``, ``size``), made ``(N, 3, S, S)`` by :func:`frames_tensor`
        and given to ``encode`` in batches of at most ``batch_size`` frames on the CPU, under
        ``torch.no_grad()``; it returns ``(B, C)`` on any device (move the batch to the
        model's device inside it; put the model in eval mode). A tqdm bar on stderr counts the
        clips (``progress=False``: none). A bad clip raises :class:`VideoError` naming it:
        filter with :func:`check_videos` first.
        """
        _check_positive("fps", fps)
        _check_max_frames(max_frames)
        for name, value in (("size", size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
        if fps_of_folder is not None:
            _check_positive("fps_of_folder", fps_of_folder)
        if not paths:
            raise ValueError("expected at least one clip path, got none")
        sources = [_identify(path, fps_of_folder) for path in paths]
        unique = list({s.absolute: s for s in sources}.values())
        folder = self.root / f"fps{fps:g}-max{max_frames}-size{size}"
        index = _load_index(folder, self.key, max_frames)
        found = _read_cached(folder, index, unique)  # absolute path -> ((F, C), count)
        missing = [s for s in unique if s.absolute not in found]
        if missing:
            settings = {"fps": fps, "max_frames": max_frames, "size": size}
            job = _Job(folder, self.key, index, encode, settings, batch_size)
            job.run(missing, found, progress)
        features = torch.stack([found[s.absolute][0] for s in sources])  # -> (N_clips, F, C)
        counts = torch.tensor([found[s.absolute][1] for s in sources], dtype=torch.int64)
        return features, counts


def _identify(path: str | os.PathLike[str], folder_fps: float | None) -> _Source:
    path = os.fspath(path)
    try:
        stat = os.stat(path)
        if os.path.isdir(path):
            if folder_fps is None:
                raise ValueError(f"{path} is a frame folder: expected fps_of_folder, got None")
            return _Source(path, os.path.abspath(path), len(os.listdir(path)),
                           stat.st_mtime_ns, float(folder_fps))
    except FileNotFoundError:
        raise VideoError(f"{path}: no such file") from None
    except OSError as e:
        raise VideoError(f"{path}: cannot read it ({e.strerror})") from None
    return _Source(path, os.path.abspath(path), stat.st_size, stat.st_mtime_ns, None)


@dataclass
class _ClipIndex:
    """The table of contents of one setting's folder: which shard row holds which clip."""

    max_frames: int
    channels: int | None = None  # C of every row; None until the first features
    # absolute path -> {"size", "mtime_ns", "folder_fps", "shard", "row", "count"}
    entries: dict[str, dict] = field(default_factory=dict)

    def to_json(self, key: str) -> dict:
        return {"format": _FORMAT, "key": key, "max_frames": self.max_frames,
                "channels": self.channels, "entries": self.entries}


def _load_index(folder: Path, key: str, max_frames: int) -> _ClipIndex:
    """The index in ``folder``, or an empty one (with a warning if the file is unusable)."""
    path = folder / _INDEX
    if not path.exists():
        return _ClipIndex(max_frames)
    try:
        return _parse_index(json.loads(path.read_bytes().decode("utf-8")), key, max_frames)
    except (OSError, ValueError) as e:  # ValueError: not UTF-8, not JSON, bad layout
        warnings.warn(f"{path}: unusable clip-feature index ({e}); its features will be "
                      f"recomputed", stacklevel=3)
        return _ClipIndex(max_frames)


def _parse_index(obj: object, key: str, max_frames: int) -> _ClipIndex:
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT or obj.get("key") != key \
            or obj.get("max_frames") != max_frames:
        raise ValueError(f"expected an object with format {_FORMAT}, key {key!r} and "
                         f"max_frames {max_frames}")
    channels, entries = obj.get("channels"), obj.get("entries")
    if not isinstance(entries, dict) or not (channels is None or _is_int(channels)):
        raise ValueError("expected channels and entries")
    fields = {"size", "mtime_ns", "folder_fps", "shard", "row", "count"}
    for path, entry in entries.items():
        if not (isinstance(entry, dict) and set(entry) == fields
                and all(_is_int(entry[k]) for k in ("size", "mtime_ns", "row", "count"))
                and (entry["folder_fps"] is None or isinstance(entry["folder_fps"], float))
                and isinstance(entry["shard"], str) and _SHARD.fullmatch(entry["shard"])
                and 1 <= entry["count"] <= max_frames):
            raise ValueError(f"bad entry for {path!r}: {entry!r}")
    if entries and channels is None:
        raise ValueError("expected channels with entries")
    return _ClipIndex(max_frames, channels, entries)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_cached(folder: Path, index: _ClipIndex,
                 sources: list[_Source]) -> dict[str, tuple[Tensor, int]]:
    """The cached ``((F, C), count)`` of the ``sources`` whose identity matches their entry."""
    by_shard: dict[str, list[tuple[_Source, dict]]] = {}
    for source in sources:
        entry = index.entries.get(source.absolute)
        if entry and source.matches(entry):
            by_shard.setdefault(entry["shard"], []).append((source, entry))
    found: dict[str, tuple[Tensor, int]] = {}
    for shard, wanted in by_shard.items():
        try:
            with safe_open(folder / shard, framework="pt") as f:
                rows = f.get_slice("features")  # (M, F, C), read lazily
                shape = list(rows.get_shape())
                if shape[1:] != [index.max_frames, index.channels]:
                    raise ValueError(f"expected (M, {index.max_frames}, {index.channels}) "
                                     f"features, got shape {shape}")
                for source, entry in wanted:
                    found[source.absolute] = (rows[entry["row"]].to(torch.float32),
                                              entry["count"])
        except (OSError, SafetensorError, ValueError, KeyError, IndexError) as e:
            for source, _ in wanted:
                found.pop(source.absolute, None)
            warnings.warn(f"{folder / shard}: unreadable clip-feature shard ({e}); "
                          f"recomputing its {len(wanted)} clips", stacklevel=3)
    return found


@dataclass
class _Job:
    """Computing the missing clips of one setting, writing shards as it goes."""

    folder: Path
    key: str
    index: _ClipIndex
    encode: Callable[[Tensor], Tensor]
    settings: dict  # fps, max_frames, size: read_video's arguments
    batch_size: int
    pending: list[tuple[_Source, Tensor, int]] = field(default_factory=list)  # not on disk yet
    last_write: float = field(default_factory=time.monotonic)

    def run(self, missing: list[_Source], found: dict[str, tuple[Tensor, int]],
            progress: bool) -> None:
        with tqdm(total=len(missing), unit="clip", desc=f"clip features {self.key}",
                  file=sys.stderr, disable=not progress) as bar:
            for source in missing:
                row, count = self._features(source)
                found[source.absolute] = (row, count)
                self.pending.append((source, row, count))
                nbytes = sum(r.nbytes for _, r, _ in self.pending)
                if nbytes >= _SHARD_BYTES or time.monotonic() - self.last_write >= _SHARD_SECONDS:
                    self._write()
                bar.update(1)
        if self.pending:
            self._write()

    def _features(self, source: _Source) -> tuple[Tensor, int]:
        """``((max_frames, C), count)`` of one clip: its frames encoded, zero rows after."""
        if source.folder_fps is not None:
            clip = read_frame_folder(source.path, fps_of_folder=source.folder_fps,
                                     **self.settings)
        else:
            clip = read_video(source.path, **self.settings)
        pixels = frames_tensor(clip.frames)  # (N, 3, S, S)
        out = torch.cat([_encode_batch(self.encode, pixels[i:i + self.batch_size])
                         for i in range(0, len(pixels), self.batch_size)])  # (N, C)
        channels = out.shape[1]
        if self.index.channels is not None and channels != self.index.channels:
            raise ValueError(f"expected (B, C) features with C = {self.index.channels} as "
                             f"cached in {self.folder}, got C = {channels}; a changed encoder "
                             f"needs a new key")
        self.index.channels = channels
        row = torch.zeros(self.index.max_frames, channels)  # (F, C), zero after the frames
        row[:len(out)] = out
        return row, len(out)

    def _write(self) -> None:
        """One new shard with the pending rows, then the index that points at it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shard = f"shard-{uuid.uuid4().hex[:16]}.safetensors"
        tensor = torch.stack([row for _, row, _ in self.pending])  # M x (F, C) -> (M, F, C)
        atomic_write_bytes(self.folder / shard, safetensors_bytes({"features": tensor}))
        for i, (source, _, count) in enumerate(self.pending):
            self.index.entries[source.absolute] = {
                "size": source.size, "mtime_ns": source.mtime_ns,
                "folder_fps": source.folder_fps, "shard": shard, "row": i, "count": count}
        text = json.dumps(self.index.to_json(self.key), indent=1, sort_keys=True)
        atomic_write_bytes(self.folder / _INDEX, text.encode("utf-8"))
        self.pending = []
        self.last_write = time.monotonic()


def _encode_batch(encode: Callable[[Tensor], Tensor], batch: Tensor) -> Tensor:
    """``encode(batch)`` without autograd, checked to be ``(B, C)``, as float32 on the CPU."""
    with torch.no_grad():
        out = encode(batch)  # (B, 3, S, S) -> (B, C)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != batch.shape[0]:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"expected encode to return ({batch.shape[0]}, C) features for a "
                         f"batch of {batch.shape[0]} frames, got {got}")
    return out.detach().to("cpu", torch.float32)


__all__ = ["FRAME_EXTENSIONS", "VIDEO_EXTENSIONS", "Clip", "ClipFeatureCache", "Segment",
           "VideoError", "VideoItem", "VideoReport", "check_videos", "frame_labels",
           "frame_names", "frames_tensor", "natural_key", "read_class_folders",
           "read_frame_folder", "read_segments", "read_video", "read_video_csv",
           "sample_times"]
