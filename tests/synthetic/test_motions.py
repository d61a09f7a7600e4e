"""Tests of rnnkit.synthetic.motions: config checks, determinism, the time-reversal pairs, and each
motion's defining property measured on the written-and-read-back mp4 files."""

import os
import zlib

import numpy as np
import pytest

from rnnkit.data.video import read_video
from rnnkit.data.video_lists import read_class_folders
from rnnkit.synthetic.motions import (
    MOTIONS,
    REVERSAL,
    SHAPES,
    MotionConfig,
    generate_motion_clip,
    write_motion_dataset,
)
from rnnkit.synthetic.video_writer import write_video


def measure(frame: np.ndarray) -> tuple[float, float, float, float]:
    """Of the saturated (moving) shape in an ``(H, W, 3)`` frame: centroid x and y in the
    coordinates of ``MotionClip.centres``, area, and principal-axis angle (degrees mod 180,
    clockwise on screen). Each pixel weighs by how far its saturation (max - min channel)
    exceeds 70: the background and the distractors stay at or below 60, and a weight, unlike
    a threshold, follows the shape smoothly through compression's blur."""
    pixels = frame.astype(float)
    weight = np.clip(pixels.max(axis=-1) - pixels.min(axis=-1) - 70, 0, None)  # (H, W)
    y, x = np.mgrid[0:frame.shape[0], 0:frame.shape[1]] + 0.5  # pixel centres
    total = weight.sum()
    cx, cy = (weight * x).sum() / total, (weight * y).sum() / total
    dx, dy = x - cx, y - cy
    angle = 0.5 * np.degrees(np.arctan2(2 * (weight * dx * dy).sum(),
                                        (weight * (dx * dx - dy * dy)).sum()))
    return cx, cy, total, angle


def turns(angles: list[float]) -> np.ndarray:
    """Steps between principal-axis angles, unwrapped from mod 180 to (-90, 90]."""
    steps = np.diff(angles)
    return (steps + 90) % 180 - 90


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One clip of every motion written as mp4 (seed 7); the tests using it need PyAV."""
    pytest.importorskip("av")
    folder = tmp_path_factory.mktemp("motions")
    return folder, write_motion_dataset(folder, per_class=1, seed=7, progress=False)


# ------------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, message", [
    ({"size": 63}, "even size"), ({"fps": 0}, "fps"), ({"seconds": 0.1}, "seconds"),
    ({"speed": (0.06, 0.04)}, "speed"), ({"spin": (30.0, 120.0)}, "spin"),
    ({"distractors": (0, 1.5)}, "distractors"), ({"codec": "h265"}, "codec"),
    ({"speed": (0.05, 0.1)}, "paths to fit the frame"),
    ({"grow_ratio": (2.0, 5.0)}, r"grow_ratio\[1\] \* scale\[0\] <= scale\[1\]")])
def test_config_is_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        MotionConfig(**changes)


# ------------------------------------------------------------------------------- clips
def test_clips_are_deterministic_and_well_formed():
    config = MotionConfig()
    for motion in MOTIONS:
        a = generate_motion_clip(np.random.default_rng(1), motion, config)
        b = generate_motion_clip(np.random.default_rng(1), motion, config)
        assert np.array_equal(a.frames, b.frames)
        assert a.frames.shape == (41, 64, 64, 3) and a.frames.dtype == np.uint8
        assert a.motion == motion and a.shape in SHAPES
        radius = a.diameters[:, None] / 2
        assert (a.centres - radius >= 0).all() and (a.centres + radius <= 64).all()


@pytest.mark.parametrize("motion", ["left", "up", "shrink"])
def test_each_pair_is_the_same_clip_backwards(motion):
    """The time-reversal property: with the same numbers drawn, a clip of one motion played
    backwards is the clip of its partner, so both classes have the same frames."""
    config = MotionConfig(distractors=(2, 2), static_distractors=0.0)
    clip = generate_motion_clip(np.random.default_rng(5), motion, config)
    partner = generate_motion_clip(np.random.default_rng(5), REVERSAL[motion], config)
    assert np.array_equal(clip.frames, partner.frames[::-1])
    assert np.array_equal(clip.centres, partner.centres[::-1])
    assert np.array_equal(clip.angles, partner.angles[::-1])
    as_set = sorted(frame.tobytes() for frame in clip.frames)  # what an order-free model sees
    assert as_set == sorted(frame.tobytes() for frame in partner.frames)


def test_bounce_and_rotate_are_their_own_reversal():
    """A bounce backwards is a bounce (out and back along one axis, turning at a time drawn
    symmetrically); a turn backwards is a turn the other way, and both ways are drawn."""
    config = MotionConfig()
    ways = set()
    for seed in range(20):
        bounce = generate_motion_clip(np.random.default_rng(seed), "bounce", config)
        travel = bounce.centres - bounce.centres[0]  # (N, 2)
        axis = int(np.abs(travel).max(axis=0).argmax())
        along = travel[:, axis] * np.sign(travel[1, axis])  # outwards is positive
        turn = int(along.argmax())  # the farthest point out: where it turns back
        assert 0.3 * 40 - 1 <= turn <= 0.7 * 40 + 1
        steps = np.diff(along)
        assert (steps[:turn - 1] > 0).all() and (steps[turn + 1:] < 0).all()
        assert np.array_equal(bounce.angles, np.full(41, bounce.angles[0]))
        rotate = generate_motion_clip(np.random.default_rng(seed), "rotate", config)
        step = (np.diff(rotate.angles) + 180) % 360 - 180
        assert np.allclose(step, step[0]) and 25 / 4 <= abs(step[0]) <= 45 / 4
        ways.add(np.sign(step[0]))
    assert ways == {-1.0, 1.0}


def test_sampled_frames_of_a_pair_are_the_same_set(tmp_path):
    """Read at 1 FPS from the files, a clip's frames are its partner's backwards, but for the
    artefacts of compression: an order-free model sees the same frames for both classes."""
    pytest.importorskip("av")
    for motion in ("left", "shrink"):
        clip = generate_motion_clip(np.random.default_rng(3), motion)
        partner = generate_motion_clip(np.random.default_rng(3), REVERSAL[motion])
        write_video(tmp_path / "a.mp4", clip.frames, fps=clip.fps)
        write_video(tmp_path / "b.mp4", partner.frames, fps=partner.fps)
        a, b = read_video(tmp_path / "a.mp4"), read_video(tmp_path / "b.mp4")
        assert a.times == b.times == [k + 0.5 for k in range(10)]
        diff = np.abs(a.frames.numpy().astype(int) - b.frames.numpy()[::-1].astype(int))
        assert diff.mean() < 2.5 and np.percentile(diff, 99) < 20


def test_shapes_are_centred_on_their_metadata():
    clip = generate_motion_clip(np.random.default_rng(2), "right",
                                MotionConfig(noise=0.0, distractors=(0, 0)))
    for k in (0, 20, 39):
        x, y, _, _ = measure(clip.frames[k])
        assert abs(x - clip.centres[k, 0]) < 0.3 and abs(y - clip.centres[k, 1]) < 0.3


# ------------------------------------------------------------------------------- dataset
def test_dataset_layout_and_determinism(dataset, tmp_path):
    folder, items = dataset
    assert [(it.label, os.path.basename(it.path)) for it in items] == [
        (motion, "0000.mp4") for motion in sorted(MOTIONS)]
    assert read_class_folders(folder).items == items
    again = write_motion_dataset(tmp_path, per_class=1, seed=7, progress=False)
    for first, second in zip(items, again, strict=True):
        with open(first.path, "rb") as a, open(second.path, "rb") as b:
            assert a.read() == b.read()
    assert all(os.path.getsize(it.path) < 40_000 for it in items)


def test_sampled_frames_carry_the_motion(dataset):
    """Each class's defining property, measured on the mp4 read back at 1 FPS: between every
    two sampled frames the shape moves > 1 pixel, grows or shrinks by > 3 % of its area, or
    turns > 10 degrees, in the class's direction."""
    _, items = dataset
    for item in items:
        clip = read_video(item.path)
        assert len(clip.times) == 10 and clip.times[0] == pytest.approx(0.5)
        x, y, area, angle = np.array([measure(f) for f in clip.frames.numpy()]).T
        growth = np.diff(area) / area[:-1]
        if item.label == "bounce":  # out along its axis, then back past the turning second
            along = x if np.ptp(x) > np.ptp(y) else y
            steps = np.diff(along) * np.sign(along[1] - along[0])  # outwards is positive
            turn = int(np.argmax(steps < 1.0))  # the first step that is not outwards
            assert 2 <= turn <= 7 and (steps[:turn] > 1.0).all(), steps
            assert (steps[turn + 1:] < -1.0).all(), steps
            continue
        steps = {"right": np.diff(x), "left": -np.diff(x), "down": np.diff(y),
                 "up": -np.diff(y), "grow": growth, "shrink": -growth,
                 "rotate": np.abs(turns(angle))}[item.label]
        if item.label == "rotate":
            assert len(set(np.sign(turns(angle)))) == 1  # one way throughout
        smallest = {"grow": 0.03, "shrink": 0.03, "rotate": 10.0}
        assert (steps > smallest.get(item.label, 1.0)).all(), (item.label, steps)


def test_read_back_frames_match_the_generated_ones(dataset):
    """Lossy compression moves pixels a little; the shapes stay where they were drawn."""
    _, items = dataset
    for item in items:
        rng = np.random.default_rng([7, zlib.crc32(item.label.encode()), 0])
        drawn = generate_motion_clip(rng, item.label)
        clip = read_video(item.path)
        indices = [round(t * drawn.fps) for t in clip.times]
        diff = np.abs(clip.frames.numpy().astype(int) - drawn.frames[indices].astype(int))
        assert diff.mean() < 4 and np.percentile(diff, 99) < 40
        for frame, k in zip(clip.frames.numpy(), indices, strict=True):
            x, y, _, _ = measure(frame)
            assert np.hypot(x - drawn.centres[k, 0], y - drawn.centres[k, 1]) < 2.0
