"""Moving shapes for video classification: a built-in dataset, written as real mp4 files, whose
class is in the MOTION, not in any single frame.

Each clip shows one coloured, asymmetric shape (an arrow, an L, a T or a wedge) doing one of
:data:`MOTIONS` on a grey background, with a few muted circles and squares (static or drifting)
as distractors and a little noise::

    items = write_motion_dataset("data/motions", per_class=60, seed=0)   # list[VideoItem]
    # data/motions/bounce/0000.mp4, ..., data/motions/up/0059.mp4: the layout that
    # rnnkit.data.video_lists.read_class_folders reads
    clip = read_video(items[0].path, fps=1.0)        # 10 frames, one a second

Why a frame-by-frame (order-free) model must fail: every class has the same distribution of
frames, and of sets of frames, as its time reversal (:data:`REVERSAL`). Three pairs are each
other's reversal (``left``/``right``, ``up``/``down``, ``grow``/``shrink``): a ``left`` clip is
generated as a ``right`` clip played backwards (:func:`generate_motion_clip` draws the same
numbers for both). ``bounce`` (along a row or a column, out and back, with a turning time
drawn symmetrically) and ``rotate`` (either way) are their own reversals. A model that pools
frames without their order (averages CNN features, bag of frames) can tell where things move
horizontally or vertically, change size or turn, but not which way: within each pair it is at
chance, so its ceiling is 62.5% (all of ``bounce`` and ``rotate``, half of the rest), and it
does not get there (a bounce's frames are points along a segment, as a straight move's, only
visited twice). An RNN reading the frames in order can be right on all of them. This holds
for the sampled frames too: a clip has frames at 0, 1/fps, ..., ``seconds``, so with the
defaults (41 frames, a file of 10.25 s) sampling at 1 FPS takes frames 2, 6, ..., 38, a set
that reversal maps onto itself (only lossy compression, which is not symmetric in time, tells
the files apart: by 1.5 levels in the mean).

A turn's direction is not a class: with clockwise and anticlockwise as two classes, the small
CNN + GRU trained from scratch stayed at chance between them (600 clips of each, 4 minutes),
although the principal axis of the shape's pixels tells them apart on every clip. Comparing
orientations from one frame to the next is a product of two learned features, which such a
model does not find from this signal. So turning is one class, either way.

Designed for the classifier's default of 1 frame per second (:func:`rnnkit.data.video.
sample_times`): the shape moves for ``seconds`` = 10 s at a file rate of ``fps`` = 4, so 41
frames are written and 10 are sampled. Between two sampled frames a shape moves 2.5-4 pixels
(of 64), turns 25-45 degrees, or changes its diameter by 7-13 %. Shapes are drawn
antialiased (4x supersampling), so small motions move the pixels smoothly.

Files are MPEG-4 part 2 in mp4 (FFmpeg's own ``mpeg4`` encoder, in every FFmpeg build, at its
finest quantiser): about 7 KB a clip, and the same bytes for the same seed. H.264 (``codec=
"libx264"``, GPL, bundled by PyAV's wheels) keeps the noise and makes files 4-10 times bigger
for the same accuracy. Lossy compression moves pixels by 2.5 levels on average (the noise is
mostly what goes; up to ~20 at the shapes' edges, where YUV 4:2:0 halves the colour
resolution), so compare read-back frames tolerantly; the motion survives it.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from ..data.video_lists import VideoItem
from .video_writer import write_video

MOTIONS = ("left", "right", "up", "down", "grow", "shrink", "bounce", "rotate")
# each motion's time reversal: the reversed clip of one is a clip of the other
REVERSAL = {"left": "right", "right": "left", "up": "down", "down": "up", "grow": "shrink",
            "shrink": "grow", "bounce": "bounce", "rotate": "rotate"}
_FORWARD = ("right", "down", "grow", "bounce", "rotate")  # drawn; the others are reversed
SHAPES = ("arrow", "ell", "tee", "wedge")  # no rotational symmetry, longer than wide
DISTRACTOR_SHAPES = ("circle", "square")
CODECS = ("mpeg4", "libx264")

# Saturated colours for the moving shape (max - min channel >= 160); distractors get the same
# hues mixed into grey (_MUTE), so that they never look like the moving shape.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 80, 230),
    "yellow": (240, 220, 40), "purple": (160, 40, 200), "orange": (240, 130, 30),
}
# Outlines pointing right (angle 0), x right and y down, each clearly longer than wide (its
# second moment along is 4-9 times that across, so its orientation shows even in moments);
# centred on their area centroid and scaled to fit a circle of diameter 1 by _outline.
_OUTLINES = {
    "arrow": [(-0.5, -0.13), (0.02, -0.13), (0.02, -0.32), (0.5, 0.0), (0.02, 0.32),
              (0.02, 0.13), (-0.5, 0.13)],
    "ell": [(-0.5, 0.2), (0.5, 0.2), (0.5, -0.02), (-0.26, -0.02), (-0.26, -0.3),
            (-0.5, -0.3)],
    "tee": [(-0.5, -0.25), (-0.28, -0.25), (-0.28, -0.1), (0.5, -0.1), (0.5, 0.1),
            (-0.28, 0.1), (-0.28, 0.25), (-0.5, 0.25)],
    "wedge": [(-0.45, -0.27), (0.5, 0.0), (-0.45, 0.27)],
}
_SUPERSAMPLE = 4  # shapes are drawn at 4x the size and averaged down: antialiased edges
_BACKGROUND = (50, 200)  # grey level range of the background
_GRADIENT = 25.0  # largest grey difference across the background
_JITTER = 15  # a colour channel moves by up to this much
_MUTE = 0.75  # a distractor's colour is this much grey, the rest its hue


@dataclass
class MotionConfig:
    """How motion clips are drawn and written. Sizes and speeds are fractions of the frame's
    side (``size``), so a config keeps its look at another size."""

    size: int = 64  # side of the square frames, in pixels; even (colour is stored at half size)
    seconds: float = 10.0  # from the first frame to the last: 10 sampled at the usual 1 FPS
    fps: int = 4  # frame rate of the written file: 41 frames a clip, small files
    object_size: tuple[float, float] = (0.24, 0.36)  # diameter of the moving shape, range
    speed: tuple[float, float] = (0.04, 0.06)  # sides per second for left/right/up/down
    # The other axis drifts by up to this fraction of the speed (left/right/up/down); a
    # growing or turning shape drifts in any direction by up to this fraction of speed[1].
    drift: float = 0.2
    scale: tuple[float, float] = (0.15, 0.6)  # smallest and largest diameter in grow/shrink
    grow_ratio: tuple[float, float] = (2.0, 3.5)  # last / first diameter of a growing shape
    spin: tuple[float, float] = (25.0, 45.0)  # degrees per second; at most 90, a clear turn
    distractors: tuple[int, int] = (0, 2)  # number of distractor shapes, range (inclusive)
    distractor_size: tuple[float, float] = (0.08, 0.14)  # their diameter, range
    static_distractors: float = 0.5  # probability that a distractor stands still
    distractor_speed: tuple[float, float] = (0.005, 0.02)  # sides per second of the others
    noise: float = 2.0  # std of the Gaussian noise on every pixel channel, 0-255 scale
    codec: str = "mpeg4"  # FFmpeg's own MPEG-4 part 2 encoder; or "libx264" (H.264, 4-10x bigger)

    def __post_init__(self) -> None:
        _check_int("size", self.size, 16, 1024)
        if self.size % 2:
            raise ValueError(f"expected an even size (the video stores colour at half "
                             f"resolution, YUV 4:2:0), got {self.size}")
        _check_float("seconds", self.seconds, 0.5, 600.0)
        _check_int("fps", self.fps, 1, 60)
        if self.frames < 2:
            raise ValueError(f"expected seconds * fps >= 1, so a clip has two frames or more, "
                             f"got {self.seconds} * {self.fps}")
        _check_pair("object_size", self.object_size, 0.0, 1.0)
        _check_pair("speed", self.speed, 0.0, 1.0)
        _check_float("drift", self.drift, 0.0, 1.0)
        _check_pair("scale", self.scale, 0.0, 1.0)
        _check_pair("grow_ratio", self.grow_ratio, 1.0, 100.0)
        _check_pair("spin", self.spin, 0.0, 90.0)
        _check_pair("distractors", self.distractors, 0, 8, integer=True)
        _check_pair("distractor_size", self.distractor_size, 0.0, 1.0)
        _check_float("static_distractors", self.static_distractors, 0.0, 1.0)
        _check_pair("distractor_speed", self.distractor_speed, 0.0, 1.0, low_open=False)
        _check_float("noise", self.noise, 0.0, 50.0)
        if self.codec not in CODECS:
            raise ValueError(f"expected codec in {CODECS}, got {self.codec!r}")
        self._check_fits()

    @property
    def frames(self) -> int:
        """Frames of a clip, at 0, 1 / fps, ..., seconds: ``round(seconds * fps) + 1``."""
        return round(self.seconds * self.fps) + 1

    @property
    def span(self) -> float:
        """Seconds from the first frame to the last."""
        return (self.frames - 1) / self.fps

    def _check_fits(self) -> None:
        """Raise unless every motion's path can stay inside the frame (1-pixel margin)."""
        room = 1 - 2 / self.size
        drift = self.drift * self.speed[1] * self.span  # farthest drift of a shape
        needs = {"left/right/up/down": self.speed[1] * self.span + self.object_size[1],
                 "grow/shrink": self.scale[1] + drift,
                 "rotate": self.object_size[1] + drift,
                 "distractors": self.distractor_size[1] + self.distractor_speed[1] * self.span}
        for what, need in needs.items():
            if need > room:
                raise ValueError(f"expected the {what} paths to fit the frame (the travel over "
                                 f"{self.span:g} s plus the shape's diameter <= {room:.3f} "
                                 f"sides), got {need:.3f}: lower the speed or the sizes")
        if self.grow_ratio[1] * self.scale[0] > self.scale[1]:
            raise ValueError(f"expected grow_ratio[1] * scale[0] <= scale[1], so a shape can "
                             f"grow that much, got {self.grow_ratio[1]} * {self.scale[0]} > "
                             f"{self.scale[1]}")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"expected {name} to be an int in [{low}, {high}], got {value!r}")


def _check_float(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"expected {name} to be a number in [{low}, {high}], got {value!r}")


def _check_pair(name: str, value: object, low: float, high: float, *, integer: bool = False,
                low_open: bool | None = None) -> None:
    """Raise unless ``value`` is a tuple ``(a, b)`` with ``low < a <= b <= high`` (``low <= a``
    for ints, or with ``low_open=False``)."""
    kind = int if integer else (int, float)
    open_low = not integer if low_open is None else low_open
    ok = (isinstance(value, tuple) and len(value) == 2
          and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
          and (low < value[0] if open_low else low <= value[0]) and value[0] <= value[1] <= high)
    if not ok:
        bound = "<" if open_low else "<="
        what = "ints" if integer else "numbers"
        raise ValueError(f"expected {name} to be a tuple (low, high) of {what} with {low} "
                         f"{bound} low <= high <= {high}, got {value!r}")


@dataclass
class MotionClip:
    """One generated clip and what was drawn in it (per frame, in the order shown)."""

    frames: np.ndarray  # (N, S, S, 3) uint8 RGB, N = config.frames, S = config.size
    motion: str  # one of MOTIONS
    fps: int  # frames per second: frame k is shown at k / fps seconds
    shape: str  # one of SHAPES
    colour: str  # a key of COLOURS
    # (N, 2) float: (x, y) of the shape's centre (its area centroid) in pixels, y downwards;
    # pixel [i, j] of a frame covers x in [j, j + 1), y in [i, i + 1)
    centres: np.ndarray
    diameters: np.ndarray  # (N,) float: the shape's diameter in pixels
    angles: np.ndarray  # (N,) float: degrees it points to, growing clockwise on screen


# ------------------------------------------------------------------------------- clips
def generate_motion_clip(rng: np.random.Generator, motion: str,
                         config: MotionConfig | None = None) -> MotionClip:
    """One clip of ``motion`` drawn from ``rng``.

    The first motion of each reversed pair (``right``, ``down``, ``grow``) is drawn; its
    partner is the same clip backwards: with generators in the same state,
    ``generate_motion_clip(rng, "left").frames`` equals ``generate_motion_clip(rng2,
    "right").frames[::-1]``, which is what makes the pairs indistinguishable without order.
    """
    if motion not in MOTIONS:
        raise ValueError(f"expected a motion in {MOTIONS}, got {motion!r}")
    config = config or MotionConfig()
    forward = motion if motion in _FORWARD else REVERSAL[motion]
    clip = _draw_clip(rng, forward, config)
    if forward == motion:
        return clip
    return MotionClip(clip.frames[::-1].copy(), motion, clip.fps, clip.shape, clip.colour,
                      clip.centres[::-1].copy(), clip.diameters[::-1].copy(),
                      clip.angles[::-1].copy())


def _draw_clip(rng: np.random.Generator, motion: str, config: MotionConfig) -> MotionClip:
    """A clip of one of the ``_FORWARD`` motions: the shape's path, the distractors, the
    background, then every frame drawn and noised."""
    n, side = config.frames, config.size
    t = np.arange(n) / config.fps  # (N,) seconds of each frame
    shape = str(rng.choice(SHAPES))
    colour = str(rng.choice(list(COLOURS)))
    rgb = _jittered(rng, COLOURS[colour])
    centres, diameters, angles = _path(rng, motion, config, t)
    others = [_distractor(rng, config, t) for _ in range(
        int(rng.integers(config.distractors[0], config.distractors[1] + 1)))]
    background = _background(rng, side)
    frames = np.empty((n, side, side, 3), dtype=np.uint8)
    for k in range(n):
        pixels = background.copy()  # (S, S, 3) float
        for kind, colour_of, path, diameter in others:
            _paint(pixels, _disc_or_square(kind, path[k], diameter, side), colour_of)
        _paint(pixels, _polygon_mask(shape, centres[k], diameters[k], angles[k], side), rgb)
        pixels += config.noise * rng.standard_normal(pixels.shape)
        frames[k] = np.clip(pixels, 0, 255).round().astype(np.uint8)
    return MotionClip(frames, motion, config.fps, shape, colour, centres, diameters, angles)


def _path(rng: np.random.Generator, motion: str, config: MotionConfig,
          t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres ``(N, 2)``, diameters ``(N,)`` and angles ``(N,)`` of the shape at times ``t``,
    all in pixels and degrees."""
    side, span = config.size, config.span
    angle0 = rng.uniform(0, 360)
    if motion in ("right", "down"):
        diameter = np.full(len(t), rng.uniform(*config.object_size) * side)
        speed = rng.uniform(*config.speed) * side
        across = rng.uniform(-config.drift, config.drift) * speed
        velocity = np.array([speed, across] if motion == "right" else [across, speed])
        angles = np.full(len(t), angle0)
    elif motion == "bounce":  # along a row or a column, back at a time in [0.3, 0.7] of span
        diameter = np.full(len(t), rng.uniform(*config.object_size) * side)
        speed = rng.uniform(*config.speed) * side * rng.choice([-1.0, 1.0])
        across = rng.uniform(-config.drift, config.drift) * abs(speed)
        turn = rng.uniform(0.3, 0.7) * span
        along = speed * (turn - np.abs(t - turn))  # (N,): out, and back as off a wall
        offsets = np.stack([along, across * t], axis=1)  # (N, 2), x then y
        if rng.random() < 0.5:  # a column: y is the bouncing axis
            offsets = offsets[:, ::-1]
        centres = _start(rng, offsets, diameter[0] / 2, side) + offsets
        return centres, diameter, np.full(len(t), angle0) % 360
    else:
        velocity = _any_direction(rng, rng.uniform(0, config.drift * config.speed[1]) * side)
        if motion == "grow":
            ratio = rng.uniform(*config.grow_ratio)
            first = rng.uniform(config.scale[0], config.scale[1] / ratio) * side
            diameter = first * ratio ** (t / span)  # the same factor every second
            angles = np.full(len(t), angle0)
        else:  # rotate, either way: a growing angle turns clockwise on screen (y points down)
            diameter = np.full(len(t), rng.uniform(*config.object_size) * side)
            angles = angle0 + rng.choice([-1.0, 1.0]) * rng.uniform(*config.spin) * t
    offsets = t[:, None] * velocity  # (N, 1) * (2,) -> (N, 2)
    return _start(rng, offsets, diameter.max() / 2, side) + offsets, diameter, angles % 360


def _any_direction(rng: np.random.Generator, speed: float) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    return speed * np.array([np.cos(angle), np.sin(angle)])


def _start(rng: np.random.Generator, offsets: np.ndarray, radius: float, side: int) -> np.ndarray:
    """A random start ``(x, y)`` from which a path through ``offsets`` ``(N, 2)`` (from the
    start, the first is 0) keeps a circle of ``radius`` inside the frame, one pixel from its
    edges."""
    low = radius + 1 - offsets.min(axis=0)  # (2,)
    high = side - radius - 1 - offsets.max(axis=0)
    return rng.uniform(low, np.maximum(high, low))


def _distractor(rng: np.random.Generator, config: MotionConfig,
                t: np.ndarray) -> tuple[str, tuple[int, int, int], np.ndarray, float]:
    """``(kind, rgb, centres (N, 2), diameter)`` of one distractor: static or drifting
    straight in a random direction."""
    side = config.size
    kind = str(rng.choice(DISTRACTOR_SHAPES))
    hue = np.array(_jittered(rng, COLOURS[str(rng.choice(list(COLOURS)))]), dtype=float)
    grey = rng.uniform(*_BACKGROUND)
    rgb = tuple(int(v) for v in np.round(_MUTE * grey + (1 - _MUTE) * hue))  # saturation <= 60
    diameter = rng.uniform(*config.distractor_size) * side
    speed = 0.0 if rng.random() < config.static_distractors else \
        rng.uniform(*config.distractor_speed) * side
    velocity = _any_direction(rng, speed)
    offsets = t[:, None] * velocity  # (N, 1) * (2,) -> (N, 2)
    return kind, rgb, _start(rng, offsets, diameter / 2, side) + offsets, diameter


def _jittered(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """``rgb`` with each channel moved by up to ``_JITTER``."""
    moved = np.array(rgb) + rng.integers(-_JITTER, _JITTER + 1, size=3)
    return tuple(int(v) for v in np.clip(np.round(moved), 0, 255))


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """A ``(S, S, 3)`` float grey with a slight tint, fading along a random direction."""
    grey = rng.uniform(*_BACKGROUND) + rng.uniform(-8, 8, size=3)  # (3,)
    shift = rng.uniform(-_GRADIENT, _GRADIENT)
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:side, 0:side] / max(side - 1, 1)  # (S, S) each, on [0, 1]
    along = x * np.cos(angle) + y * np.sin(angle)
    along = (along - along.min()) / max(along.max() - along.min(), 1e-9)  # (S, S) on [0, 1]
    return grey + shift * along[..., None]  # (3,) + (S, S, 1) -> (S, S, 3)


# ------------------------------------------------------------------------------- drawing
@functools.cache
def _outline(shape: str) -> np.ndarray:
    """The shape's ``(P, 2)`` outline centred on its area centroid, fitting a unit circle's
    diameter (its farthest point 0.5 from the centre), read-only."""
    points = np.array(_OUTLINES[shape], dtype=float)
    x, y = points[:, 0], points[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y  # shoelace terms
    area = cross.sum() / 2
    centroid = np.array([((x + np.roll(x, -1)) * cross).sum(),
                         ((y + np.roll(y, -1)) * cross).sum()]) / (6 * area)
    points = points - centroid
    points /= 2 * np.hypot(points[:, 0], points[:, 1]).max()
    points.flags.writeable = False
    return points


def _polygon_mask(shape: str, centre: np.ndarray, diameter: float, angle: float,
                  side: int) -> np.ndarray:
    """The ``(S, S)`` coverage in [0, 1] of the shape turned by ``angle`` degrees (clockwise on
    screen), drawn at ``_SUPERSAMPLE`` times the size and averaged down."""
    theta = math.radians(angle)
    turn = np.array([[math.cos(theta), -math.sin(theta)],
                     [math.sin(theta), math.cos(theta)]])
    points = _outline(shape) @ turn.T * diameter + centre  # (P, 2) in pixels
    return _coverage(side, lambda draw, k: draw.polygon(
        [(float(px) * k, float(py) * k) for px, py in points], fill=255))


def _disc_or_square(kind: str, centre: np.ndarray, diameter: float, side: int) -> np.ndarray:
    """The ``(S, S)`` coverage of an upright square or a disc."""
    (x, y), r = centre, diameter / 2
    if kind == "circle":
        return _coverage(side, lambda draw, k: draw.ellipse(
            ((x - r) * k, (y - r) * k, (x + r) * k, (y + r) * k), fill=255))
    r /= math.sqrt(2)  # the square fits the same circle
    return _coverage(side, lambda draw, k: draw.rectangle(
        ((x - r) * k, (y - r) * k, (x + r) * k, (y + r) * k), fill=255))


def _coverage(side: int, paint) -> np.ndarray:
    k = _SUPERSAMPLE
    big = Image.new("L", (side * k, side * k), 0)
    paint(ImageDraw.Draw(big), k)
    small = big.resize((side, side), Image.Resampling.BOX)  # the mean of each k x k block
    return np.asarray(small, dtype=np.float32) / 255.0  # (S, S)


def _paint(pixels: np.ndarray, alpha: np.ndarray, rgb: tuple[int, int, int]) -> None:
    """Blend ``rgb`` into ``pixels`` ``(S, S, 3)`` with coverage ``alpha`` ``(S, S)``."""
    a = alpha[..., None]  # (S, S, 1)
    pixels *= 1 - a
    pixels += a * np.array(rgb, dtype=float)


# ------------------------------------------------------------------------------- dataset
def write_motion_dataset(folder: str | os.PathLike[str], *, per_class: int, seed: int,
                         config: MotionConfig | None = None,
                         progress: bool = True) -> list[VideoItem]:
    """Write ``per_class`` clips of every motion as ``folder/<motion>/<index>.mp4`` (index
    zero-padded to 4 digits), the layout :func:`rnnkit.data.video_lists.read_class_folders` reads,
    and return their items in that reader's order.

    Deterministic: clip ``i`` of a motion is drawn from ``numpy.random.default_rng([seed,
    crc32(motion), i])``, so the same seed gives the same frames and, with the same FFmpeg,
    the same bytes; more clips per class add files without changing the others. Existing
    files are overwritten (each atomically). A tqdm bar on stderr counts the clips
    (``progress=False``: none). 60 clips per class (480 files, 3.2 MB) take 8-11 s on
    2 shared CPU cores, most of it drawing (~15 ms a clip) rather than encoding (~3 ms).
    """
    _check_int("per_class", per_class, 1, 1_000_000)
    _check_int("seed", seed, 0, 2**63 - 1)
    config = config or MotionConfig()
    root = os.fspath(folder)
    items = []
    with tqdm(total=per_class * len(MOTIONS), unit="clip", desc="motion clips",
              file=sys.stderr, disable=not progress) as bar:
        for motion in sorted(MOTIONS):
            class_folder = os.path.join(root, motion)
            os.makedirs(class_folder, exist_ok=True)
            for i in range(per_class):
                rng = np.random.default_rng([seed, zlib.crc32(motion.encode()), i])
                clip = generate_motion_clip(rng, motion, config)
                path = os.path.normpath(os.path.join(class_folder, f"{i:04d}.mp4"))
                write_video(path, clip.frames, fps=config.fps, codec=config.codec)
                items.append(VideoItem(path, motion, class_folder))
                bar.update(1)
    return items


__all__ = ["CODECS", "COLOURS", "DISTRACTOR_SHAPES", "MOTIONS", "REVERSAL", "SHAPES",
           "MotionClip", "MotionConfig", "generate_motion_clip", "write_motion_dataset"]
