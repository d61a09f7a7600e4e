"""Tests of rnnkit.data.video_lists: the lists of labelled videos (class folders, split files,
csv), segments and per-frame labels, and checking the listed clips."""

import os

import pytest
from video_samples import write_frame_folder, write_solid

from rnnkit.data.video import VideoError
from rnnkit.data.video_lists import (
    Segment,
    VideoItem,
    check_videos,
    frame_labels,
    read_class_folders,
    read_segments,
    read_video_csv,
)


# ------------------------------------------------------------------------------- lists
def make_class_folders(root) -> None:
    (root / "Archery").mkdir(parents=True)
    (root / "Football").mkdir()
    (root / "Archery" / "v_2.mp4").write_bytes(b"")  # listed by name, never opened
    (root / "Archery" / "v_10.mp4").write_bytes(b"")
    write_frame_folder(root / "Football" / "v_1", 4)
    (root / "Football" / "readme.txt").write_text("not a video")
    (root / "Football" / ".DS_Store").write_bytes(b"")


def test_read_class_folders_scans_classes(tmp_path):
    root = tmp_path / "ucf"
    make_class_folders(root)
    report = read_class_folders(root)
    assert [(os.path.relpath(it.path, root), it.label) for it in report.items] == [
        ("Archery/v_2.mp4", "Archery"), ("Archery/v_10.mp4", "Archery"),
        ("Football/v_1", "Football")]
    assert report.items[0].source == os.path.join(root, "Archery")
    assert len(report.skipped) == 1 and "readme.txt" in report.skipped[0]


def test_read_class_folders_with_a_split_list(tmp_path):
    root = tmp_path / "ucf"
    make_class_folders(root)
    split = tmp_path / "trainlist01.txt"
    split.write_text("Football/v_1 2\r\n\nArchery/v_10.mp4\n")  # class number optional
    report = read_class_folders(root, split=split)
    assert [(it.label, it.source) for it in report.items] == [
        ("Football", f"{split}:1"), ("Archery", f"{split}:3")]
    assert report.items[1].path == os.path.join(root, "Archery", "v_10.mp4")


@pytest.mark.parametrize("text, message", [
    ("Archery/v_2.mp4 1\nArchery/v_3.mp4 1\n", r"trainlist01.txt:2: 'Archery/v_3.mp4' does not "
                                                r"exist under"),
    ("v_2.mp4\n", r"trainlist01.txt:1: expected '<class>/<video>'"),
    ("Archery/v_2.mp4 one\n", r"trainlist01.txt:1: expected '<class>/<video> \[class number\]'"),
    ("Archery/v_2.mp4\nArchery/v_2.mp4\n", r"trainlist01.txt:2: .* listed twice \(first at "
                                           r"line 1\)")])
def test_read_class_folders_split_errors_name_file_and_line(tmp_path, text, message):
    root = tmp_path / "ucf"
    make_class_folders(root)
    (tmp_path / "trainlist01.txt").write_text(text)
    with pytest.raises(VideoError, match=message):
        read_class_folders(root, split=tmp_path / "trainlist01.txt")


def test_read_class_folders_without_videos(tmp_path):
    with pytest.raises(VideoError, match="no such folder"):
        read_class_folders(tmp_path / "missing")
    (tmp_path / "root" / "Empty").mkdir(parents=True)
    with pytest.raises(VideoError, match="got none"):
        read_class_folders(tmp_path / "root")


def test_read_video_csv(tmp_path):
    (tmp_path / "lists").mkdir()
    csv_path = tmp_path / "lists" / "train.csv"
    csv_path.write_text("Label,Path,note\nfootball,clips/a.mp4,x\narchery,/abs/b.avi,\n")
    report = read_video_csv(csv_path)
    assert [(it.path, it.label, it.source) for it in report.items] == [
        (os.path.join(tmp_path, "lists", "clips", "a.mp4"), "football", f"{csv_path}:2"),
        ("/abs/b.avi", "archery", f"{csv_path}:3")]
    other = read_video_csv(csv_path, root=tmp_path)
    assert other.items[0].path == os.path.join(tmp_path, "clips", "a.mp4")


@pytest.mark.parametrize("text, message", [
    ("", "empty file"), ("file,label\na.mp4,x\n", r"v.csv:1: expected a header row"),
    ("path,label\na.mp4,x\nb.mp4\n", r"v.csv:3: expected 2 fields"),
    ("path,label\na.mp4, \n", r"v.csv:2: expected a label"),
    ("path,label\n", "expected rows")])
def test_read_video_csv_errors_name_file_and_line(tmp_path, text, message):
    (tmp_path / "v.csv").write_text(text)
    with pytest.raises(VideoError, match=message):
        read_video_csv(tmp_path / "v.csv")


def test_read_video_csv_not_utf8(tmp_path):
    (tmp_path / "v.csv").write_bytes(b"path,label\na.mp4,caf\xe9\n")
    with pytest.raises(VideoError, match=r"v.csv:2: expected UTF-8 text, got byte 0xe9"):
        read_video_csv(tmp_path / "v.csv")


# ------------------------------------------------------------------------------- segments
def test_read_segments_and_frame_labels(tmp_path):
    path = tmp_path / "segments.csv"
    path.write_text("path,start_s,end_s,label\na.mp4,4,6,jump\na.mp4,1.5,4,run\n"
                    "b.mp4,0,2,wave\n")
    segments = read_segments(path)
    a = segments[os.path.join(tmp_path, "a.mp4")]
    assert a == [Segment(1.5, 4.0, "run"), Segment(4.0, 6.0, "jump")]
    assert frame_labels([0.5, 1.5, 3.99, 4.0, 5.5, 6.0], a) == [
        "background", "run", "run", "jump", "jump", "background"]
    assert frame_labels([1.0], [], background="none") == ["none"]


@pytest.mark.parametrize("rows, message", [
    ("a.mp4,1,3,run\na.mp4,2.5,4,jump\n", r"s.csv:3: expected segments of a video not to "
                                          r"overlap, got 2.5-4 s \('jump'\) overlapping 1-3 s "
                                          r"\('run'\) of .*s.csv:2"),
    ("a.mp4,3,3,run\n", r"s.csv:2: expected start_s < end_s"),
    ("a.mp4,-1,3,run\n", r"s.csv:2: expected start_s to be a number of seconds >= 0"),
    ("a.mp4,1,soon,run\n", r"s.csv:2: expected end_s to be a number"),
    ("a.mp4,1,2\n", r"s.csv:2: expected 4 fields")])
def test_read_segments_errors_name_file_and_line(tmp_path, rows, message):
    (tmp_path / "s.csv").write_text("path,start_s,end_s,label\n" + rows)
    with pytest.raises(VideoError, match=message):
        read_segments(tmp_path / "s.csv")


# ------------------------------------------------------------------------------- check_videos
def test_check_videos_skips_bad_ones_with_messages(tmp_path):
    good = write_solid(tmp_path / "good.mp4", count=8)
    (tmp_path / "text.mp4").write_text("hello")
    write_frame_folder(tmp_path / "frames", 3)
    (tmp_path / "no_frames").mkdir()
    truncated = tmp_path / "cut.mkv"
    write_solid(truncated)
    truncated.write_bytes(truncated.read_bytes()[:len(truncated.read_bytes()) // 2])
    items = [VideoItem(good, "a", "list:1"), VideoItem(str(tmp_path / "text.mp4"), "a", "list:2"),
             VideoItem(str(tmp_path / "missing.avi"), "b", "list:3"),
             VideoItem(str(tmp_path / "frames"), "b", "list:4"),
             VideoItem(str(tmp_path / "no_frames"), "b", "list:5"),
             VideoItem(str(truncated), "b", "list:6")]
    kept, skipped = check_videos(items)
    assert [it.source for it in kept] == ["list:1", "list:4", "list:6"]  # a cheap probe
    assert len(skipped) == 3
    for message, source, name in zip(skipped, ("list:2", "list:3", "list:5"),
                                     ("text.mp4", "missing.avi", "no_frames"), strict=True):
        assert name in message and message.endswith(f"(listed at {source})")
    kept, skipped = check_videos(items, full=True)
    assert [it.source for it in kept] == ["list:1", "list:4"]
    assert "truncated" in skipped[-1] and skipped[-1].endswith("(listed at list:6)")
