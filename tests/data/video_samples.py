"""Tiny clips for the tests of rnnkit.data: videos of flat colours (written with PyAV; the
test is skipped without it) and folders of frame images, and how to tell their frames apart."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.synthetic.video_writer import write_video

TOLERANCE = 8  # levels of 0-255 that H.264 may move a flat colour


def colour(k: int) -> tuple[int, int, int]:
    """A flat colour for frame ``k``, far enough from frame ``k +- 1``'s to tell them apart."""
    return (k * 6 % 256, 255 - k * 6 % 256, 90 + k % 2 * 80)


def solid_frames(count: int, height: int = 32, width: int = 32) -> np.ndarray:
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for k in range(count):
        frames[k] = colour(k)
    return frames


def write_solid(path, count: int = 40, fps: float = 4, **kwargs) -> str:
    """A video of ``count`` flat frames, frame ``k`` in ``colour(k)``; the test is skipped
    without PyAV."""
    pytest.importorskip("av")
    write_video(path, solid_frames(count), fps=fps, **kwargs)
    return os.fspath(path)


def frame_index(frame: torch.Tensor) -> int:
    """Which ``colour(k)`` a read-back frame shows (its centre pixel), checked to be close."""
    pixel = frame[frame.shape[0] // 2, frame.shape[1] // 2].numpy().astype(int)
    k = min(range(64), key=lambda k: np.abs(pixel - colour(k)).sum())
    assert np.abs(pixel - colour(k)).max() <= TOLERANCE, (pixel, colour(k))
    return k


def write_frame_folder(folder, count: int, name: str = "frame{}.png") -> str:
    folder.mkdir()
    for k in range(count):
        Image.new("RGB", (24, 16), colour(k)).save(folder / name.format(k + 1))
    return os.fspath(folder)
