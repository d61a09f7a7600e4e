"""Simple scenes for image captioning: coloured shapes on a noisy background, with true captions.

A built-in dataset that needs no download: every image is drawn from a seed, and its captions are
derived from what was drawn, so they are true by construction and a generated caption can be
checked against the scene (:func:`names_objects_correctly`)::

    train = generate_scenes(5000, seed=0)           # list[Scene]; another seed for validation
    scene = train[0]
    scene.image                                      # PIL RGB image, 64x64
    scene.objects                                    # (SceneObject("circle", "red", "small",
                                                     #   (x0, y0, x1, y1)), ...)
    scene.captions                                   # ["a small red circle above a large blue
                                                     #   square", "there is a blue square below a
                                                     #   red circle", ...]
    names_objects_correctly("a red circle above a blue square", scene.objects)   # -> bool

The grammar (every word is in :data:`VOCABULARY`, 38 words). An object is ``a [size] colour
shape``, with the size word in about half of the captions (all objects of a caption or none).

* one object: ``OBJ`` / ``OBJ WHERE`` / ``there is OBJ WHERE`` / ``OBJ on a BG background`` /
  ``there is OBJ on a BG background``, where ``WHERE`` comes from the third of the image that
  holds the object's centre (``in the top left corner``, ``at the top``, ``on the left``,
  ``in the middle``, ...) and ``BG`` is ``dark`` or ``light``;
* two objects, ``REL`` being ``above`` / ``below`` / ``to the left of`` / ``to the right of``
  along the dominant axis of the offset between the centres (in either order of the objects):
  ``A REL B`` / ``there is A REL B`` / ``A is REL B`` / ``A REL B on a BG background`` /
  ``A and B`` / ``there are two shapes A and B``;
* three or four objects, ``LIST`` being ``A and B and C``: ``LIST`` / ``there is LIST`` /
  ``there are three shapes LIST`` / ``LIST on a BG background`` / ``from left to right LIST``
  (only when the centres are well apart from left to right).

Templates are weighted so that one reading of a scene is the most common (a top or left object
first, sizes said): references vary, as BLEU's multiple references want, yet a model that learns
the most likely caption matches some reference closely.

Boxes are ``(x0, y0, x1, y1)`` in pixels with ``x1``, ``y1`` exclusive, so that
``numpy.asarray(image)[y0:y1, x0:x1]`` is the box; ``y`` grows downwards.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross")
# Saturated colours far from each other and from the grey backgrounds (see _background).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "purple": (150, 50, 190),
}
SIZES = ("small", "large")
BACKGROUNDS = ("dark", "light")
RELATIONS = ("above", "below", "left", "right")  # of the first object relative to the second
MAX_OBJECTS = 4  # more would not fit a caption of <= 30 words nor, with large shapes, the image

_RELATION_PHRASES = {"above": "above", "below": "below",
                     "left": "to the left of", "right": "to the right of"}
_COUNT_WORDS = {2: "two", 3: "three", 4: "four"}
# (row, column) of the third holding a centre -> where a single object is
_WHERE = {("top", "left"): "in the top left corner", ("top", "centre"): "at the top",
          ("top", "right"): "in the top right corner", ("middle", "left"): "on the left",
          ("middle", "centre"): "in the middle", ("middle", "right"): "on the right",
          ("bottom", "left"): "in the bottom left corner", ("bottom", "centre"): "at the bottom",
          ("bottom", "right"): "in the bottom right corner"}
_GREY_LEVELS = {"dark": (25, 85), "light": (170, 230)}  # background grey range per kind
_TINT = 12  # a background channel moves by up to this much from its grey, so it stays neutral
_PLACE_TRIES = 200  # positions tried for one object before the scene starts over
_SCENE_TRIES = 100  # fresh starts before a config is declared too crowded
_MIN_SIDE = 6  # pixels: below this a small triangle and a small circle look alike

VOCABULARY: tuple[str, ...] = tuple(sorted(
    {"a", "there", "is", "are", "and", "shapes", "on", "background", "from", "in", "at", "the",
     "corner", "top", "bottom", "middle", "left", "right", "to", "of", "above", "below"}
    | set(SHAPES) | set(COLOURS) | set(SIZES) | set(BACKGROUNDS) | set(_COUNT_WORDS.values())))


@dataclass(frozen=True)
class SceneObject:
    """One shape drawn in a scene."""

    shape: str  # one of SHAPES
    colour: str  # a key of COLOURS (the pixels are this colour plus a little jitter)
    size: str  # "small" | "large"
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1 and y1 exclusive

    @property
    def centre(self) -> tuple[float, float]:
        """``(x, y)`` of the box's centre, in pixels."""
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass
class Scene:
    """An image, what is in it, and captions that are true of it."""

    image: Image.Image  # RGB, config.image_size pixels square
    objects: tuple[SceneObject, ...]  # in drawing order; no two share colour and shape
    captions: list[str]  # config.captions_per_image distinct ones where the grammar has enough
    background: str  # "dark" | "light"


@dataclass
class SceneConfig:
    """How scenes are drawn and described."""

    image_size: int = 64  # side of the square image, in pixels
    min_objects: int = 1  # objects per scene, drawn uniformly from [min_objects, max_objects]
    max_objects: int = 2  # at most MAX_OBJECTS
    captions_per_image: int = 5  # reference captions per scene (BLEU's multiple references)
    noise: float = 10.0  # std of the Gaussian noise added to every pixel channel, 0-255 scale
    colour_jitter: int = 20  # an object's channels move by up to this much from its colour
    small_size: tuple[float, float] = (0.18, 0.25)  # side of a small object / image_size, range
    large_size: tuple[float, float] = (0.38, 0.46)  # the same for a large object
    max_overlap: float = 0.0  # share of the smaller box that may lie inside the other box
    min_gap: int = 2  # pixels of background kept around a box when measuring max_overlap
    # For two objects, the centres' offset along the dominant axis must be at least this many
    # times the offset along the other axis, so that "above" or "to the left of" is never a
    # coin toss; 1.0 accepts any layout.
    relation_ratio: float = 1.5
    gradient: float = 30.0  # largest difference in grey level across the background

    def __post_init__(self) -> None:
        _check_int("image_size", self.image_size, 16)
        _check_int("min_objects", self.min_objects, 1)
        _check_int("max_objects", self.max_objects, self.min_objects, MAX_OBJECTS)
        _check_int("captions_per_image", self.captions_per_image, 1)
        _check_int("colour_jitter", self.colour_jitter, 0, 60)
        _check_int("min_gap", self.min_gap, 0, self.image_size // 4)
        _check_float("noise", self.noise, 0.0, 100.0)
        _check_float("max_overlap", self.max_overlap, 0.0, 1.0)
        _check_float("relation_ratio", self.relation_ratio, 1.0, 10.0)
        _check_float("gradient", self.gradient, 0.0, 60.0)
        _check_range("small_size", self.small_size)
        _check_range("large_size", self.large_size)
        if self.small_size[1] >= self.large_size[0]:
            raise ValueError(f"expected small_size to end below large_size, so that the sizes "
                             f"differ, got small_size={self.small_size}, "
                             f"large_size={self.large_size}")
        if round(self.small_size[0] * self.image_size) < _MIN_SIDE:
            raise ValueError(f"expected small_size[0] * image_size >= {_MIN_SIDE} pixels, so "
                             f"that small shapes stay recognisable, got {self.small_size[0]} * "
                             f"{self.image_size}")


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    """Raise unless ``value`` is an int in ``[low, high]``."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected {name} to be an int {bounds}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"expected {name} {bounds}, got {value}")


def _check_float(name: str, value: object, low: float, high: float) -> None:
    """Raise unless ``value`` is a real number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"expected {name} to be a number in [{low}, {high}], got {value!r}")


def _check_range(name: str, value: object) -> None:
    """Raise unless ``value`` is a pair ``(low, high)`` with ``0 < low <= high <= 1``."""
    if (not isinstance(value, tuple) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not 0 < value[0] <= value[1] <= 1):
        raise ValueError(f"expected {name} to be a tuple (low, high) of fractions of the image "
                         f"size with 0 < low <= high <= 1, got {value!r}")


# ------------------------------------------------------------------------------- scenes
def generate_scenes(count: int, seed: int, config: SceneConfig | None = None) -> list[Scene]:
    """``count`` scenes drawn from ``numpy.random.default_rng(seed)``: the same seed gives the
    same scenes, and a shorter list is a prefix of a longer one."""
    _check_int("count", count, 0)
    rng = np.random.default_rng(seed)
    return [generate_scene(rng, config) for _ in range(count)]


def generate_scene(rng: np.random.Generator, config: SceneConfig | None = None) -> Scene:
    """One scene drawn from ``rng``: objects placed, background and objects drawn, noise added,
    captions chosen."""
    config = config or SceneConfig()
    objects = _place_objects(rng, config)
    background = str(rng.choice(BACKGROUNDS))
    pixels = _background(rng, background, config)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        _draw(draw, obj, _jittered(rng, obj.colour, config.colour_jitter))
    image = _add_noise(rng, image, config.noise)
    captions = describe(objects, background, config.image_size, config.captions_per_image, rng)
    return Scene(image, objects, captions, background)


def _place_objects(rng: np.random.Generator, config: SceneConfig) -> tuple[SceneObject, ...]:
    """Objects of distinct (colour, shape) at random places that respect ``max_overlap`` and,
    for two objects, ``relation_ratio``; starts over when one does not fit."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(_SCENE_TRIES):
        objects: list[SceneObject] = []
        for colour, shape in _distinct_kinds(rng, count):
            size = str(rng.choice(SIZES))
            obj = _place_one(rng, config, shape, colour, size, objects, count)
            if obj is None:
                break
            objects.append(obj)
        else:
            return tuple(objects)
    raise ValueError(f"expected a config whose objects fit the image, got none of "
                     f"{_SCENE_TRIES} tries placing {count} objects in {config}")


def _distinct_kinds(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` different (colour, shape) pairs, so that a caption names each object once."""
    kinds = list(itertools.product(COLOURS, SHAPES))
    return [kinds[i] for i in rng.choice(len(kinds), size=count, replace=False)]


def _place_one(rng: np.random.Generator, config: SceneConfig, shape: str, colour: str,
               size: str, placed: Sequence[SceneObject], count: int) -> SceneObject | None:
    """The object at the first of ``_PLACE_TRIES`` random boxes that fits among ``placed``."""
    low, high = config.small_size if size == "small" else config.large_size
    n = config.image_size
    for _ in range(_PLACE_TRIES):
        side = int(round(rng.uniform(low, high) * n))
        x0, y0 = (int(v) for v in rng.integers(0, n - side + 1, size=2))
        obj = SceneObject(shape, colour, size, (x0, y0, x0 + side, y0 + side))
        if _fits(obj, placed, config, count):
            return obj
    return None


def _fits(obj: SceneObject, placed: Sequence[SceneObject], config: SceneConfig,
          count: int) -> bool:
    """Whether ``obj`` overlaps no placed box beyond ``max_overlap`` and, in a two-object scene,
    stands clearly along one axis from the other object."""
    x0, y0, x1, y1 = obj.box
    gap = config.min_gap
    grown = (x0 - gap, y0 - gap, x1 + gap, y1 + gap)  # so that touching shapes do not merge
    if any(overlap(grown, other.box) > config.max_overlap for other in placed):
        return False
    if count == 2 and placed:
        dx, dy = _offset(obj, placed[0])
        return max(abs(dx), abs(dy)) >= config.relation_ratio * min(abs(dx), abs(dy))
    return True


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The area shared by boxes ``a`` and ``b`` over the area of the smaller one, in [0, 1]."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / smaller


# ------------------------------------------------------------------------------- drawing
def _background(rng: np.random.Generator, kind: str, config: SceneConfig) -> np.ndarray:
    """A ``(S, S, 3)`` uint8 grey of the ``kind``'s range with a slight tint, fading linearly
    along a random direction into a second such grey at most ``config.gradient`` levels away."""
    low, high = _GREY_LEVELS[kind]
    start = rng.uniform(low, high) + rng.uniform(-_TINT, _TINT, size=3)  # (3,)
    shift = rng.uniform(-config.gradient, config.gradient)
    end = np.clip(start + shift, low - _TINT, high + _TINT)  # (3,)
    angle = rng.uniform(0, 2 * np.pi)
    x, y = _grid(config.image_size)
    t = x * np.cos(angle) + y * np.sin(angle)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)  # (S, S) in [0, 1] along the direction
    pixels = start + t[..., None] * (end - start)  # (S, S, 1) * (3,) -> (S, S, 3)
    return pixels.round().astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: each pixel's column and row scaled to [0, 1], ``(S, S)`` each, read-only."""
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _jittered(rng: np.random.Generator, colour: str, jitter: int) -> tuple[int, int, int]:
    """The RGB of ``colour`` with each channel moved by up to ``jitter``."""
    rgb = np.array(COLOURS[colour]) + rng.integers(-jitter, jitter + 1, size=3)
    return tuple(int(v) for v in np.clip(rgb, 0, 255))


def _draw(draw: ImageDraw.ImageDraw, obj: SceneObject, rgb: tuple[int, int, int]) -> None:
    """Fill ``obj``'s shape inside its box (PIL's boxes are inclusive, ours exclusive)."""
    x0, y0, x1, y1 = obj.box
    x1, y1 = x1 - 1, y1 - 1
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=rgb)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=rgb)
    elif obj.shape == "triangle":  # pointing up, base along the bottom of the box
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=rgb)
    elif obj.shape == "cross":  # a plus sign whose arms are a third of the side thick
        third = (x1 - x0 + 1) / 3
        draw.rectangle((x0, round(y0 + third), x1, round(y1 - third)), fill=rgb)
        draw.rectangle((round(x0 + third), y0, round(x1 - third), y1), fill=rgb)
    else:
        raise ValueError(f"expected a shape in {SHAPES}, got {obj.shape!r}")


def _add_noise(rng: np.random.Generator, image: Image.Image, std: float) -> Image.Image:
    """``image`` with Gaussian noise of ``std`` added to every channel, clipped to 0-255."""
    if std == 0:
        return image
    pixels = np.asarray(image, dtype=np.float32)  # (S, S, 3)
    pixels += std * rng.standard_normal(pixels.shape, dtype=np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


# ------------------------------------------------------------------------------- captions
def relation(a: SceneObject, b: SceneObject) -> str:
    """Where ``a`` is relative to ``b``: ``"above"``, ``"below"``, ``"left"`` or ``"right"``,
    along the dominant axis of the offset between their centres (ties go to the vertical)."""
    dx, dy = _offset(a, b)
    if abs(dy) >= abs(dx):
        return "above" if dy < 0 else "below"
    return "left" if dx < 0 else "right"


def _offset(a: SceneObject, b: SceneObject) -> tuple[float, float]:
    """``a``'s centre minus ``b``'s, ``(dx, dy)`` in pixels."""
    (ax, ay), (bx, by) = a.centre, b.centre
    return ax - bx, ay - by


def where(obj: SceneObject, image_size: int) -> str:
    """The phrase for the third of the image that holds ``obj``'s centre ("on the left")."""
    x, y = obj.centre
    column = ("left", "centre", "right")[min(int(3 * x / image_size), 2)]
    row = ("top", "middle", "bottom")[min(int(3 * y / image_size), 2)]
    return _WHERE[row, column]


def describe(objects: Sequence[SceneObject], background: str, image_size: int, count: int,
             rng: np.random.Generator) -> list[str]:
    """``count`` captions true of a scene, distinct where the grammar has that many, drawn by
    the templates' weights without replacement."""
    candidates = _candidates(objects, background, image_size)
    texts = list(candidates)
    weights = np.array(list(candidates.values()))
    take = min(count, len(texts))
    chosen = rng.choice(len(texts), size=take, replace=False, p=weights / weights.sum())
    extra = rng.choice(len(texts), size=count - take, p=weights / weights.sum())
    return [texts[i] for i in [*chosen, *extra]]


def _candidates(objects: Sequence[SceneObject], background: str,
                image_size: int) -> dict[str, float]:
    """Every caption the grammar allows for the scene, with its weight."""
    if not objects:
        raise ValueError("expected at least one object to describe, got none")
    candidates: dict[str, float] = {}
    for sized in (True, False):
        weight = 1.5 if sized else 1.0  # sizes said is the commoner reading
        if len(objects) == 1:
            templates = _one_object(objects[0], sized, background, image_size)
        elif len(objects) == 2:
            templates = _two_objects(objects, sized, background)
        else:
            templates = _many_objects(objects, sized, background, image_size)
        for text, w in templates:
            candidates[text] = candidates.get(text, 0.0) + weight * w
    return candidates


def _phrase(obj: SceneObject, sized: bool) -> str:
    """``"a small red circle"``, or ``"a red circle"`` when not ``sized``."""
    return f"a {obj.size} {obj.colour} {obj.shape}" if sized else f"a {obj.colour} {obj.shape}"


def _one_object(obj: SceneObject, sized: bool, background: str,
                image_size: int) -> list[tuple[str, float]]:
    """The one-object templates for ``obj``, with weights."""
    it, place = _phrase(obj, sized), where(obj, image_size)
    return [(f"{it} {place}", 3.0), (it, 2.0), (f"there is {it} {place}", 2.0),
            (f"{it} on a {background} background", 1.5),
            (f"there is {it} on a {background} background", 1.0)]


def _two_objects(objects: Sequence[SceneObject], sized: bool,
                 background: str) -> list[tuple[str, float]]:
    """The two-object templates in both orders, with weights; the top or left object first
    weighs twice as much, so that one reading dominates."""
    templates = []
    for a, b in (objects, objects[::-1]):
        rel = relation(a, b)
        first, second, phrase = _phrase(a, sized), _phrase(b, sized), _RELATION_PHRASES[rel]
        order = 2.0 if rel in ("above", "left") else 1.0
        templates += [(f"{first} {phrase} {second}", 3.0 * order),
                      (f"there is {first} {phrase} {second}", 1.5 * order),
                      (f"{first} is {phrase} {second}", 1.5 * order),
                      (f"{first} {phrase} {second} on a {background} background", 1.0 * order),
                      (f"{first} and {second}", 0.5 * order),
                      (f"there are two shapes {first} and {second}", 0.5 * order)]
    return templates


def _many_objects(objects: Sequence[SceneObject], sized: bool, background: str,
                  image_size: int) -> list[tuple[str, float]]:
    """The templates for three or more objects, in every order, with weights; ``from left to
    right`` only when neighbouring centres are at least an eighth of the image apart."""
    templates = []
    for order in itertools.permutations(objects):
        listed = " and ".join(_phrase(obj, sized) for obj in order)
        templates += [(listed, 1.0), (f"there is {listed}", 1.0),
                      (f"there are {_COUNT_WORDS[len(objects)]} shapes {listed}", 1.0),
                      (f"{listed} on a {background} background", 1.0)]
    xs = sorted(obj.centre[0] for obj in objects)
    if all(right - left >= image_size / 8 for left, right in itertools.pairwise(xs)):
        by_x = sorted(objects, key=lambda obj: obj.centre[0])
        listed = " and ".join(_phrase(obj, sized) for obj in by_x)
        templates.append((f"from left to right {listed}", 3.0))
    return templates


# ------------------------------------------------------------------------------- checking
def caption_objects(caption: str) -> list[tuple[str | None, str]]:
    """The ``(colour, shape)`` mentions of a caption, in order: each shape word with the colour
    word right before it (after an optional size word), or ``None`` when there is none.

    ``"a small red circle above a blue square"`` -> ``[("red", "circle"), ("blue", "square")]``.
    """
    words = caption.lower().split()
    return [(words[i - 1] if i > 0 and words[i - 1] in COLOURS else None, word)
            for i, word in enumerate(words) if word in SHAPES]


def names_objects_correctly(caption: str, objects: Sequence[SceneObject]) -> bool:
    """Whether ``caption`` names exactly ``objects``: the multiset of its (colour, shape)
    mentions equals the objects', every shape has its colour, and no colour word stands alone
    (``"a red blue circle"`` fails). Order and size words are not checked."""
    mentions = caption_objects(caption)
    colours = sum(word in COLOURS for word in caption.lower().split())
    if any(colour is None for colour, _ in mentions) or colours != len(mentions):
        return False
    return Counter(mentions) == Counter((obj.colour, obj.shape) for obj in objects)


__all__ = ["BACKGROUNDS", "COLOURS", "MAX_OBJECTS", "RELATIONS", "SHAPES", "SIZES", "VOCABULARY",
           "Scene", "SceneConfig", "SceneObject", "caption_objects", "describe",
           "generate_scene", "generate_scenes", "names_objects_correctly", "overlap", "relation",
           "where"]
