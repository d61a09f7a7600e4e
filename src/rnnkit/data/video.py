"""Video clips: the frames of a video file or of a folder of frame images, sampled at a fixed
rate (video decoding; the lists of labelled videos are :mod:`rnnkit.data.video_lists`').

The lecture's recipe: a clip sampled at 1 frame per second gives ``N`` frames (30 for a 30 s
clip), a CNN turns each into a feature vector, and an RNN reads the series::

    clip = read_clip(path, fps=1.0, max_frames=30, size=112)   # a video file or frame folder
    clip.frames                                       # (N, S, S, 3) uint8, N <= 30
    clip.times                                        # [0.48, 1.48, ...]: seconds of each frame
    pixels = frames_tensor(clip.frames)               # (N, 3, S, S) normalised, for the CNN
    # the CNN's features of many clips: rnnkit.data.features.FeatureCache.clips

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
* writing: the built-in dataset (:mod:`rnnkit.synthetic.motions`) writes mp4 files
  (:mod:`rnnkit.synthetic.video_writer`); PyAV sets any encoder option and, with one encoder
  thread, gives the same bytes for the same frames; OpenCV's writer takes a FourCC and little
  else.

PyAV is imported only when a video file is opened (:func:`import_av`), so frame folders and
the lists of :mod:`rnnkit.data.video_lists` work without it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import RnnkitError
from . import files
from .images import IMAGENET_MEAN, IMAGENET_STD, ImageError, load_image, resize_crop

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
    check_rate("fps", fps)
    _check_max_frames(max_frames)
    whole = math.floor(duration * fps + _EPS)  # whole intervals of 1 / fps seconds
    if whole == 0:
        return [duration / 2]
    if whole > max_frames:
        return [(k + 0.5) * duration / max_frames for k in range(max_frames)]
    return [(k + 0.5) / fps for k in range(whole)]


def check_rate(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` (frames per second) is a positive finite number."""
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
    check_rate("fps", fps)
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
    """The ``av`` module (PyAV), or ``ModuleNotFoundError`` saying how to install it."""
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
                         f"{files.head(path)!r}") from None
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
    return pixels if size is None else np.asarray(resize_crop(Image.fromarray(pixels), size))


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
    check_rate("fps_of_folder", fps_of_folder)
    check_rate("fps", fps)
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

# ------------------------------------------------------------------------------- clips
def read_clip(path: str | os.PathLike[str], *, fps: float = 1.0, max_frames: int = 30,
              size: int | None = None, fps_of_folder: float | None = None) -> Clip:
    """The sampled frames of a clip, a video file (:func:`read_video`) or a folder of frame
    images (:func:`read_frame_folder`): what the video task reads, so that both work.

    A frame folder has no clock, so ``fps_of_folder`` says how many of its frames make a
    second. ``None`` (the default) takes its frames as sampled already at ``fps``: frame ``i``
    is at ``i / fps`` seconds, so every frame is read, in natural name order, and a folder of
    more than ``max_frames`` frames is spread as a long video is (``max_frames`` frames from
    beginning to end). Without PyAV, frame folders still work.
    """
    if os.path.isdir(path):
        return read_frame_folder(path, fps_of_folder=fps if fps_of_folder is None
                                 else fps_of_folder, fps=fps, max_frames=max_frames, size=size)
    return read_video(path, fps=fps, max_frames=max_frames, size=size)


def check_clip(path: str | os.PathLike[str], *, full: bool = False) -> None:
    """Raise :class:`VideoError` unless the clip at ``path`` can be read.

    A cheap probe by default: a video file must open, hold a video stream of positive duration
    and decode a first frame; a frame folder must hold frame images and its first must load. A
    file truncated later on passes it, and :func:`read_video` raises for it; ``full=True``
    decodes every frame (no RGB conversion; about the cost of playing the file at full speed)
    and also finds truncated and corrupt files.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        names = frame_names(path)
        _load_frame(os.path.join(path, names[0]), path)
        return
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


# ------------------------------------------------------------------------------- tensors
def frames_tensor(frames: Tensor) -> Tensor:
    """``(N, S, S, 3)`` uint8 frames as ``(N, 3, S, S)`` float32, scaled to [0, 1] and
    normalised per channel with ImageNet's mean and std, as
    :func:`rnnkit.data.images.image_tensor` does for one image."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)  # (1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = frames.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # (N, S, S, 3) -> (N, 3, S, S)
    return (pixels - mean) / std
