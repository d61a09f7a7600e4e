"""Simple captioning scenes: determinism, drawing, true captions, parsing and checking."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from rnnkit.synthetic.scenes import (
    COLOURS,
    SHAPES,
    VOCABULARY,
    SceneConfig,
    SceneObject,
    caption_objects,
    describe,
    generate_scene,
    generate_scenes,
    names_objects_correctly,
    overlap,
)

# Scenes shared by the tests (drawing 300 takes ~0.1 s): one or two objects, and up to four.
SCENES = generate_scenes(300, seed=11)
MANY = generate_scenes(100, seed=12, config=SceneConfig(min_objects=3, max_objects=4))
_RELATION = re.compile(r"(above|below|to the left of|to the right of)")


def kinds(objects) -> Counter:
    """The multiset of (colour, shape) of ``objects``."""
    return Counter((obj.colour, obj.shape) for obj in objects)


def find(objects, colour: str, shape: str) -> SceneObject:
    """The object of ``colour`` and ``shape`` (a scene holds one at most)."""
    (obj,) = [o for o in objects if (o.colour, o.shape) == (colour, shape)]
    return obj


def centre(obj: SceneObject) -> tuple[float, float]:
    """The box's centre, computed here from the box rather than by the module."""
    x0, y0, x1, y1 = obj.box
    return (x0 + x1) / 2, (y0 + y1) / 2


def obj(colour: str, shape: str, size: str = "small", box=(0, 0, 10, 10)) -> SceneObject:
    return SceneObject(shape, colour, size, box)


# ------------------------------------------------------------------------------- generating
def test_same_seed_same_scenes_and_prefix():
    """A seed fixes the scenes; a shorter list is a prefix of a longer one; seeds differ."""
    a, b = generate_scenes(12, seed=3), generate_scenes(20, seed=3)
    for x, y in zip(a, b[:12], strict=True):
        assert x.image.tobytes() == y.image.tobytes()
        assert (x.objects, x.captions, x.background) == (y.objects, y.captions, y.background)
    other = generate_scenes(12, seed=4)
    assert [s.image.tobytes() for s in a] != [s.image.tobytes() for s in other]
    assert [s.objects for s in a] != [s.objects for s in other]
    assert generate_scenes(0, seed=3) == []


def test_generate_scene_takes_a_generator():
    rng = np.random.default_rng(5)
    first, second = generate_scene(rng), generate_scene(rng)
    assert first.objects != second.objects
    again = generate_scene(np.random.default_rng(5))
    assert again.image.tobytes() == first.image.tobytes()


@pytest.mark.parametrize("size", [64, 40])
def test_image_size_and_mode(size):
    for scene in generate_scenes(5, seed=0, config=SceneConfig(image_size=size)):
        assert scene.image.mode == "RGB"
        assert scene.image.size == (size, size)


def test_object_counts_kinds_and_sizes():
    """Counts cover [min, max]; (colour, shape) never repeats in a scene; sides lie in the
    configured ranges, so small and large differ clearly."""
    config = SceneConfig()
    assert {len(s.objects) for s in SCENES} == {1, 2}
    assert {len(s.objects) for s in MANY} == {3, 4}
    for scene in SCENES + MANY:
        assert max(kinds(scene.objects).values()) == 1
        for o in scene.objects:
            assert o.shape in SHAPES and o.colour in COLOURS
            x0, y0, x1, y1 = o.box
            assert x1 - x0 == y1 - y0
            low, high = config.small_size if o.size == "small" else config.large_size
            assert round(low * 64) <= x1 - x0 <= round(high * 64)
    assert {o.size for s in SCENES for o in s.objects} == {"small", "large"}
    assert {o.shape for s in SCENES for o in s.objects} == set(SHAPES)
    assert {o.colour for s in SCENES for o in s.objects} == set(COLOURS)
    assert {s.background for s in SCENES} == {"dark", "light"}


def test_objects_inside_image_and_apart():
    """Boxes lie inside the image with ``min_gap`` pixels between them (max_overlap 0), and
    two-object layouts respect ``relation_ratio``; a looser config allows some overlap."""
    for scene in SCENES + MANY:
        for o in scene.objects:
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        for i, a in enumerate(scene.objects):
            for b in scene.objects[i + 1:]:
                gap_x = max(b.box[0] - a.box[2], a.box[0] - b.box[2])
                gap_y = max(b.box[1] - a.box[3], a.box[1] - b.box[3])
                assert max(gap_x, gap_y) >= 2
        if len(scene.objects) == 2:
            (ax, ay), (bx, by) = (centre(o) for o in scene.objects)
            dx, dy = abs(ax - bx), abs(ay - by)
            assert max(dx, dy) >= 1.5 * min(dx, dy)
    loose = SceneConfig(min_objects=2, max_objects=4, max_overlap=0.3, min_gap=0)
    pairs = [(a, b) for s in generate_scenes(100, seed=2, config=loose)
             for i, a in enumerate(s.objects) for b in s.objects[i + 1:]]
    assert all(overlap(a.box, b.box) <= 0.3 for a, b in pairs)
    assert any(overlap(a.box, b.box) > 0 for a, b in pairs)


def test_overlap():
    assert overlap((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges share nothing
    assert overlap((0, 0, 10, 10), (5, 0, 25, 20)) == 0.5  # 50 pixels of the smaller 100
    assert overlap((0, 0, 4, 4), (0, 0, 10, 10)) == 1.0


def test_colours_present_in_pixels():
    """The pixels at an object's centre are nearest its colour among COLOURS, and close to it;
    background pixels are dark or light greys as the scene says."""
    palette = np.array(list(COLOURS.values()), dtype=float)  # (K, 3)
    names = list(COLOURS)
    for scene in SCENES[:150]:
        pixels = np.asarray(scene.image, dtype=float)  # (S, S, 3)
        for o in scene.objects:
            x, y = (int(v) for v in centre(o))
            r = 2 if o.size == "large" else 1  # a 5x5 or 3x3 patch lies inside every shape
            mean = pixels[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 3).mean(axis=0)
            assert names[np.argmin(((palette - mean) ** 2).sum(axis=1))] == o.colour
            assert np.abs(mean - COLOURS[o.colour]).max() < 40
        background = np.ones((64, 64), dtype=bool)
        for o in scene.objects:
            background[o.box[1]:o.box[3], o.box[0]:o.box[2]] = False
        grey = pixels[background].mean()
        assert grey < 110 if scene.background == "dark" else grey > 150


def test_crowded_config_raises():
    crowded = SceneConfig(min_objects=4, max_objects=4, small_size=(0.6, 0.6),
                          large_size=(0.9, 1.0))
    with pytest.raises(ValueError, match="fit the image"):
        generate_scenes(1, seed=0, config=crowded)


# ------------------------------------------------------------------------------- captions
def test_captions_name_their_own_objects_only():
    """Every caption names exactly its scene's objects, and fails another scene's objects
    whenever those differ in (colour, shape)."""
    scenes = SCENES + MANY
    for i, scene in enumerate(scenes):
        other = scenes[(i + 7) % len(scenes)]
        for caption in scene.captions:
            assert names_objects_correctly(caption, scene.objects), caption
            if kinds(other.objects) != kinds(scene.objects):
                assert not names_objects_correctly(caption, other.objects), caption


def test_caption_form():
    """captions_per_image distinct lowercase captions of VOCABULARY words, <= 30 words."""
    for scene in SCENES + MANY:
        assert len(scene.captions) == 5
        assert len(set(scene.captions)) == 5
        for caption in scene.captions:
            words = caption.split(" ")
            assert all(words) and len(words) <= 30
            assert set(words) <= set(VOCABULARY), caption
    assert len(VOCABULARY) < 60


def test_size_words_are_true_and_sometimes_omitted():
    said = omitted = 0
    for scene in SCENES:
        for caption in scene.captions:
            words = caption.split()
            sized = [words[i - 1] for i, w in enumerate(words) if w in COLOURS
                     and words[i - 1] in ("small", "large")]
            for size, (colour, shape) in zip(sized, caption_objects(caption), strict=False):
                assert find(scene.objects, colour, shape).size == size
            said, omitted = said + bool(sized), omitted + (not sized)
    assert said > 0 and omitted > 0


def test_relations_agree_with_boxes():
    """In two-object captions, "A above B" means A's centre is higher (smaller y) and the
    vertical offset dominates; likewise for below / left / right."""
    seen = set()
    for scene in SCENES:
        if len(scene.objects) != 2:
            continue
        for caption in scene.captions:
            match = _RELATION.search(caption)
            if match is None:
                assert " and " in caption, caption
                continue
            (c1, s1), (c2, s2) = caption_objects(caption)
            (ax, ay), (bx, by) = centre(find(scene.objects, c1, s1)), centre(
                find(scene.objects, c2, s2))
            dx, dy = ax - bx, ay - by
            expected = {"above": dy < 0 and abs(dy) > abs(dx),
                        "below": dy > 0 and abs(dy) > abs(dx),
                        "to the left of": dx < 0 and abs(dx) > abs(dy),
                        "to the right of": dx > 0 and abs(dx) > abs(dy)}
            assert expected[match.group(1)], (caption, scene.objects)
            seen.add(match.group(1))
    assert seen == {"above", "below", "to the left of", "to the right of"}


def test_single_object_places_agree_with_box():
    """"left"/"right"/"top"/"bottom" name the third of the image that holds the centre, and
    "in the middle" the central ninth."""
    seen = set()
    for scene in SCENES:
        if len(scene.objects) != 1:
            continue
        x, y = centre(scene.objects[0])
        for caption in scene.captions:
            words = set(caption.split())
            places = words & {"left", "right", "top", "bottom", "middle"}
            if not places:
                continue
            assert ("left" in words) == (x < 64 / 3), (caption, x)
            assert ("right" in words) == (x >= 128 / 3), (caption, x)
            assert ("top" in words) == (y < 64 / 3), (caption, y)
            assert ("bottom" in words) == (y >= 128 / 3), (caption, y)
            assert ("corner" in words) == (len(places) == 2), caption
            seen |= places | (words & {"corner"})
    assert seen == {"left", "right", "top", "bottom", "middle", "corner"}


def test_background_words_are_true():
    for scene in SCENES:
        for caption in scene.captions:
            if "background" in caption:
                assert f"on a {scene.background} background" in caption


def test_left_to_right_order_with_many_objects():
    count = 0
    for scene in MANY:
        for caption in scene.captions:
            if caption.startswith("from left to right"):
                xs = [centre(find(scene.objects, c, s))[0] for c, s in caption_objects(caption)]
                assert xs == sorted(xs) and len(xs) == len(scene.objects)
                count += 1
    assert count > 0


def test_describe_repeats_when_the_grammar_runs_out():
    """A single object has 10 captions in the grammar; asking for 30 gives all 10, repeated."""
    captions = describe(SCENES[0].objects[:1], "dark", 64, 30, np.random.default_rng(0))
    assert len(captions) == 30 and len(set(captions)) == 10


# ------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("caption, expected", [
    ("a large green triangle", [("green", "triangle")]),
    ("a green triangle in the top left corner", [("green", "triangle")]),
    ("there is a small red circle on a dark background", [("red", "circle")]),
    ("a small red circle above a large blue square", [("red", "circle"), ("blue", "square")]),
    ("a blue square below a red circle", [("blue", "square"), ("red", "circle")]),
    ("there is a red circle to the left of a blue square", [("red", "circle"), ("blue", "square")]),
    ("a yellow cross is to the right of a purple cross",
     [("yellow", "cross"), ("purple", "cross")]),
    ("there are two shapes a red circle and a blue square",
     [("red", "circle"), ("blue", "square")]),
    ("from left to right a red circle and a small blue square and a green cross",
     [("red", "circle"), ("blue", "square"), ("green", "cross")]),
    ("a circle above a red square", [(None, "circle"), ("red", "square")]),
    ("a large red", []),
])
def test_caption_objects(caption, expected):
    assert caption_objects(caption) == expected


def test_names_objects_correctly():
    scene = [obj("red", "circle"), obj("blue", "square", "large")]
    assert names_objects_correctly("a blue square below a red circle", scene)
    assert names_objects_correctly("A  small red circle above a blue square\n", scene)
    assert names_objects_correctly("a large red circle and a small blue square", scene)  # sizes
    assert not names_objects_correctly("a red circle", scene)  # missing object
    assert not names_objects_correctly("a red circle above a green square", scene)  # wrong colour
    assert not names_objects_correctly("a red circle above a blue triangle", scene)  # wrong shape
    assert not names_objects_correctly("a red circle above a blue square and a red circle", scene)
    assert not names_objects_correctly("a circle above a blue square", scene)  # no colour
    assert not names_objects_correctly("a red circle above a blue square yellow", scene)  # stray
    assert not names_objects_correctly("a red blue circle and a blue square", scene)
    assert not names_objects_correctly("", scene)
    assert names_objects_correctly("a red circle and a red circle",
                                   [obj("red", "circle"), obj("red", "circle")])


# ------------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, field", [
    ({"image_size": 8}, "image_size"),
    ({"image_size": 64.0}, "image_size"),
    ({"min_objects": 0}, "min_objects"),
    ({"max_objects": 5}, "max_objects"),
    ({"min_objects": 2, "max_objects": 1}, "max_objects"),
    ({"captions_per_image": 0}, "captions_per_image"),
    ({"noise": -1.0}, "noise"),
    ({"noise": True}, "noise"),
    ({"colour_jitter": 100}, "colour_jitter"),
    ({"small_size": (0.3, 0.2)}, "small_size"),
    ({"large_size": (0.4, 1.2)}, "large_size"),
    ({"large_size": [0.4, 0.5]}, "large_size"),
    ({"small_size": (0.2, 0.4)}, "small_size"),  # reaches into large_size
    ({"small_size": (0.05, 0.1)}, "small_size"),  # too few pixels
    ({"max_overlap": 1.5}, "max_overlap"),
    ({"min_gap": -1}, "min_gap"),
    ({"relation_ratio": 0.5}, "relation_ratio"),
    ({"gradient": 100.0}, "gradient"),
])
def test_config_validation(changes, field):
    with pytest.raises(ValueError, match=rf"expected {field}.* got"):
        SceneConfig(**changes)


def test_count_validation():
    with pytest.raises(ValueError, match="expected count >= 0, got -1"):
        generate_scenes(-1, seed=0)
