"""Labelled clips as a model reads them: every clip's sampled frames (or a frozen CNN's cached
features of them), padded to one length, with the clips' lengths and labels (one per clip, or
one per sampled frame from a segments file).

The reading itself is :mod:`rnnkit.data.video`'s (lists, decoding, the feature cache) and
:mod:`rnnkit.synthetic.motions`' (the built-in clips); this module puts their results together::

    items, skipped = read_items("UCF101", "ucfTrainTestlist/trainlist01.txt", None)
    labels = clip_labels(items, None)
    clips = read_clips(items, labels, fps=1.0, max_frames=30, size=64)
    inputs, lengths, targets = clips.batch(torch.arange(16), device)

Symbols: ``N`` clips, ``T`` frames of the longest, ``S`` the frame side, ``C`` features.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import option
from ..synthetic.motions import write_motion_dataset
from .features import FeatureCache
from .labelled import LabelSet
from .video import VideoError, frames_tensor, read_clip
from .video_lists import (
    Segment,
    VideoItem,
    check_videos,
    frame_labels,
    read_class_folders,
    read_video_csv,
)

__all__ = ["BACKGROUND", "MOTION_SEEDS", "ClipFiles", "ClipSet", "clip_labels", "motion_items",
           "clip_input", "read_clips", "read_items"]

BACKGROUND = "background"  # the label of frames outside every segment (per-frame labels)
MOTION_SEEDS = {"train": 0, "val": 1, "test": 2}  # the built-in clips: each part its own


@dataclass
class ClipFiles:
    """Where labelled clips are: class folders or a CSV, and the per-frame labels (none given: a
    task's built-in clips). A task's config (and its evaluation's options) start with these."""

    root: str | None = option(None, "one folder per class (UCF101 / HMDB layout)", metavar="DIR")
    split: str | None = option(None, "UCF101 trainlist01.txt-style list of the videos to use",
                               metavar="LIST.txt")
    csv: str | None = option(None, "or a CSV with columns path,label", metavar="FILE")
    segments: str | None = option(None, "CSV path,start_s,end_s,label: a label for every "
                                        "sampled frame", metavar="FILE")


@dataclass
class ClipSet:
    """Clips as the model reads them: frames ``(N, T, S, S, 3)`` uint8 (the CNN trains) or
    features ``(N, T, C)`` (cached), padded to ``T``; ``lengths`` ``(N,)``; labels ``(N,)`` or
    ``(N, T)`` per frame."""

    inputs: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    paths: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple:
        inputs = self.inputs[index]
        if inputs.dtype == torch.uint8:  # frames: normalised, channels first
            B, T, S = inputs.shape[:3]
            # (B, T, S, S, 3) -> (B*T, S, S, 3) -> (B*T, 3, S, S) -> (B, T, 3, S, S)
            inputs = frames_tensor(inputs.flatten(0, 1)).view(B, T, 3, S, S)
        return (inputs.to(device), self.lengths[index].to(device),
                self.labels[index].to(device))

    def batches(self, batch_size: int, device: torch.device) -> Iterator[tuple]:
        """Every clip in order, ``batch_size`` at a time (the last batch may be smaller)."""
        for start in range(0, len(self), batch_size):
            yield self.batch(torch.arange(start, min(start + batch_size, len(self))), device)


def read_items(root: str | None, split: str | None, table: str | None
               ) -> tuple[list[VideoItem], list[str]]:
    """The readable clips of a class-folder tree (``root``, with an optional ``split`` list) or
    of a CSV ``table``, and what was skipped; :class:`VideoError` if none can be read."""
    report = read_class_folders(root, split=split) if root else read_video_csv(table)
    good, bad = check_videos(report.items)
    if not good:
        raise VideoError(f"none of the {len(report.items)} videos could be read; the first "
                         f"problem: {(bad or report.skipped)[0]}")
    return good, report.skipped + bad


def motion_items(part: str, folder: Path, per_class: int, progress: bool) -> list[VideoItem]:
    """Built-in motion clips of ``part`` ("train", "val", "test": each its own seed), written
    once into ``folder/part``."""
    return write_motion_dataset(folder / part, per_class=per_class, seed=MOTION_SEEDS[part],
                                progress=progress)


def clip_labels(items: list[VideoItem], segments: dict | None) -> LabelSet:
    """The clips' labels, or (per frame) the segments' and :data:`BACKGROUND`."""
    if segments is None:
        return LabelSet.from_examples(items)
    names = {s.label for spans in segments.values() for s in spans} | {BACKGROUND}
    return LabelSet(sorted(names))


def _frames(items: list[VideoItem], fps: float, max_frames: int, size: int
            ) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Frames ``(N, T, S, S, 3)`` uint8, zero-padded, the counts, and each clip's times."""
    clips = [read_clip(item.path, fps=fps, max_frames=max_frames, size=size) for item in items]
    T = max(len(c.frames) for c in clips)
    frames = torch.zeros(len(clips), T, size, size, 3, dtype=torch.uint8)
    for row, clip in enumerate(clips):
        frames[row, :len(clip.frames)] = clip.frames
    return frames, torch.tensor([len(c.frames) for c in clips]), [c.times for c in clips]


def clip_input(path: str, *, fps: float, max_frames: int, size: int,
              encoder: torch.nn.Module | None = None, device: torch.device | None = None
              ) -> tuple[torch.Tensor, list[float]]:
    """One clip as a model reads it, on ``device``: its frames ``(T, 3, S, S)`` (normalised) or,
    with a frozen ``encoder``, their features ``(T, C)``; and the frames' times (seconds)."""
    clip = read_clip(path, fps=fps, max_frames=max_frames, size=size)  # a file or a frame folder
    frames = frames_tensor(clip.frames).to(device)  # (T, S, S, 3) -> (T, 3, S, S)
    # the encoder's grid averaged over its R positions: (T, R, C) -> (T, C)
    return (frames if encoder is None else encoder(frames).mean(dim=1)), clip.times


def read_clips(items: list[VideoItem], labels: LabelSet, *, fps: float, max_frames: int,
               size: int, segments: dict[str, list[Segment]] | None = None,
               encoder: torch.nn.Module | None = None, cache: FeatureCache | None = None,
               progress: bool = True) -> ClipSet:
    """The clips of ``items`` sampled at ``fps`` (at most ``max_frames``, ``size`` pixels a
    side), labelled per clip or, with ``segments``, per sampled frame.

    ``encoder``: a frozen CNN, frames ``(B, 3, S, S)`` -> a grid ``(B, R, C)``, whose features
    (the grid's mean) ``cache`` keeps on disk; without it the frames themselves (for a CNN
    that trains with the model).
    """
    paths = [item.path for item in items]
    times = None
    if encoder is not None:
        inputs, lengths = cache.clips(
            paths, lambda frames: encoder(frames).mean(dim=1), size=size, fps=fps,
            max_frames=max_frames, progress=progress)
        if segments is not None:
            _, _, times = _frames(items, fps, max_frames, size)
    else:
        inputs, lengths, times = _frames(items, fps, max_frames, size)
    if segments is None:
        targets = torch.tensor([labels.encode(item.label, item.source) for item in items])
    else:
        targets = torch.full((len(items), inputs.shape[1]), -100, dtype=torch.long)
        for row, item in enumerate(items):
            names = frame_labels(times[row], segments.get(item.path, []), BACKGROUND)
            targets[row, :len(names)] = torch.tensor([labels.encode(n, item.source)
                                                      for n in names])
    return ClipSet(inputs, lengths, targets, paths)
