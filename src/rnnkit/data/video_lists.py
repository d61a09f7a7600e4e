"""Lists of labelled videos (many-to-one classification) and of labelled segments (a label per
frame): the UCF101 / HMDB51 class folders with their split files, CSV lists, and segment
tables. A listed video is a video file or a folder of frame images; the readers only parse the
lists, and :func:`check_videos` finds the clips that cannot be read
(:mod:`rnnkit.data.video` reads them)::

    report = read_class_folders("UCF101", split="ucfTrainTestlist/trainlist01.txt")
    items, bad = check_videos(report.items)          # drop unreadable or empty videos
    segments = read_segments("segments.csv")         # video path -> [Segment(start, end, label)]
    labels = frame_labels(clip.times, segments[items[0].path])
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from . import files
from .video import VIDEO_EXTENSIONS, VideoError, check_clip, natural_key


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


# ------------------------------------------------------------------------------- checking
def check_videos(items: Sequence[VideoItem], *,
                 full: bool = False) -> tuple[list[VideoItem], list[str]]:
    """The items whose clip can be read, in order, and one message per bad item:
    ``"path: what is wrong (listed at source)"``; ``full``: see
    :func:`rnnkit.data.video.check_clip`. A path listed by several items is checked once."""
    return files.keep_readable(items, lambda item: item.path,
                               lambda path: check_clip(path, full=full), VideoError,
                               lambda item: f"listed at {item.source}")


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
    text = files.read_text(files.require_file(path, "a list file", VideoError), "strict",
                           VideoError)
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, line


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
    items = [VideoItem(os.path.normpath(os.path.join(base, file)), label, source)
             for source, _, (file, label) in _table(path, ("path", "label"))]
    if not items:
        raise VideoError(f"{path}: expected rows of videos after the header, got none")
    return VideoReport(items, [])


def _table(path: str, names: tuple[str, ...]) -> Iterator[tuple[str, int, list[str]]]:
    """``("path:line", line, the named fields stripped)`` of each row of a csv file whose header
    row names the columns (any case and order; others ignored); a row with another field count
    than the header or an empty named field raises :class:`VideoError`."""
    text = files.read_text(files.require_file(path, "a list file", VideoError), "strict",
                           VideoError)
    rows = files.csv_rows(text.splitlines(), path, VideoError)
    header = next(rows, None)
    if header is None:
        raise VideoError(f"{path}: expected a header row '{','.join(names)}', got an empty file")
    columns = files.header_columns(header[1], names, f"{path}:{header[0]}", VideoError)
    for line, row in rows:
        source = f"{path}:{line}"
        if len(row) != len(header[1]):
            raise VideoError(f"{source}: expected {len(header[1])} fields as in the header, got "
                             f"{len(row)}")
        values = [row[i].strip() for i in columns]
        for name, value in zip(names, values, strict=True):
            if not value:
                raise VideoError(f"{source}: expected a {name}, got an empty field")
        yield source, line, values


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
    found: dict[str, list[tuple[Segment, int]]] = {}  # video -> (segment, line)
    for source, line, (video, start, end, label) in _table(path, ("path", "start_s", "end_s",
                                                                  "label")):
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
        i = bisect.bisect_right(starts, t) - 1  # the last segment starting <= t
        labels.append(ordered[i].label if i >= 0 and t < ordered[i].end else background)
    return labels
