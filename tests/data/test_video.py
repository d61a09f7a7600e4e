"""Tests of rnnkit.data.video: the sampling policy, reading videos and frame folders, the lists
of labelled videos, segments, checks and the clip-feature cache; tiny videos are written into
tmp_path with PyAV."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.data import video
from rnnkit.data.images import image_tensor
from rnnkit.data.video import (
    ClipFeatureCache,
    Segment,
    VideoError,
    VideoItem,
    check_videos,
    frame_labels,
    frame_names,
    frames_tensor,
    read_class_folders,
    read_frame_folder,
    read_segments,
    read_video,
    read_video_csv,
    sample_times,
)
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


# ------------------------------------------------------------------------------- sample_times
def test_sample_times_centres_one_per_second():
    assert sample_times(30.0) == [k + 0.5 for k in range(30)]
    assert sample_times(3.0, fps=2.0) == [0.25, 0.75, 1.25, 1.75, 2.25, 2.75]
    assert sample_times(2.9999999) == [0.5, 1.5, 2.5]  # a time base's rounding is a whole second
    assert sample_times(3.7) == [0.5, 1.5, 2.5]  # a tail shorter than a second is not sampled


def test_sample_times_long_clip_spreads_over_the_whole_clip():
    times = sample_times(120.0, max_frames=30)
    assert len(times) == 30
    assert times[0] == pytest.approx(2.0) and times[-1] == pytest.approx(118.0)
    assert np.allclose(np.diff(times), 4.0)
    assert sample_times(31.0, max_frames=30)[-1] > 30.0  # not just the first 30 seconds


def test_sample_times_short_clip_gives_its_middle():
    assert sample_times(0.4) == [0.2]
    assert sample_times(0.001, fps=0.5) == [0.0005]


@pytest.mark.parametrize("kwargs", [{"duration": 0}, {"duration": -1.0},
                                    {"duration": float("nan")}, {"duration": 3, "fps": 0},
                                    {"duration": 3, "max_frames": 0},
                                    {"duration": 3, "max_frames": 2.0}])
def test_sample_times_rejects_bad_arguments(kwargs):
    duration = kwargs.pop("duration")
    with pytest.raises(ValueError, match="expected"):
        sample_times(duration, **kwargs)


# ------------------------------------------------------------------------------- read_video
def test_read_video_samples_the_nearest_frames(tmp_path):
    path = write_solid(tmp_path / "clip.mp4", count=40, fps=4)  # 10 s, frame k at k / 4 s
    clip = read_video(path)
    assert clip.path == path and clip.duration == pytest.approx(10.0)
    assert clip.frames.shape == (10, 32, 32, 3) and clip.frames.dtype == torch.uint8
    assert clip.times == pytest.approx([k + 0.5 for k in range(10)])
    assert [frame_index(f) for f in clip.frames] == [4 * k + 2 for k in range(10)]


def test_read_video_other_containers_and_rates(tmp_path):
    for name, codec in (("clip.mkv", "libx264"), ("clip.avi", "mpeg4")):
        clip = read_video(write_solid(tmp_path / name, count=12, fps=4, codec=codec), fps=2.0)
        assert clip.times == pytest.approx([0.25 + 0.5 * k for k in range(6)])
        assert [frame_index(f) for f in clip.frames] == [1, 3, 5, 7, 9, 11]


def test_read_video_max_frames_spreads_and_ties_go_to_the_earlier_frame(tmp_path):
    path = write_solid(tmp_path / "clip.mp4", count=40, fps=4)
    clip = read_video(path, max_frames=4)  # targets 1.25, 3.75, 6.25, 8.75: ties
    assert clip.times == pytest.approx([1.25, 3.75, 6.25, 8.75])
    clip = read_video(path, max_frames=3)  # targets 1.67, 5, 8.33
    assert clip.times == pytest.approx([1.75, 5.0, 8.25])


def test_read_video_seeks_over_long_gaps_with_the_same_frames(tmp_path, monkeypatch):
    pytest.importorskip("av")
    frames = solid_frames(60)
    path = tmp_path / "long.mp4"
    write_video(path, np.concatenate([frames, frames]), fps=2,  # 60 s, a keyframe every 5 s
                options={"b": "2M", "g": "10"})
    seeks = []
    real_seek = video._seek
    monkeypatch.setattr(video, "_seek", lambda *a: (seeks.append(a[2]), real_seek(*a)))
    sought = read_video(path, max_frames=2)  # targets 15 and 45 s: 30 s apart
    assert seeks == [44.0]  # decodes on to 15 s, then seeks to a second before 45 s
    monkeypatch.setattr(video, "_SEEK_GAP_S", 1e9)
    decoded = read_video(path, max_frames=2)
    assert sought.times == decoded.times == pytest.approx([15.0, 45.0])
    assert torch.equal(sought.frames, decoded.frames)
    assert [frame_index(f) for f in sought.frames] == [30, 30]


def test_read_video_falls_back_to_decoding_when_a_seek_overshoots(tmp_path, monkeypatch):
    pytest.importorskip("av")
    path = tmp_path / "long.mp4"
    write_video(path, solid_frames(60), fps=1, options={"b": "2M", "g": "5"})  # 60 s
    expected = read_video(path, max_frames=2)  # 15 and 45 s
    real_seek = video._seek
    monkeypatch.setattr(video, "_seek", lambda c, s, seconds: real_seek(
        c, s, seconds + 10 if seconds > 0 else 0.0))  # a broken index: lands past the target
    clip = read_video(path, max_frames=2)
    assert clip.times == expected.times == [15.0, 45.0]
    assert torch.equal(clip.frames, expected.frames)


def test_read_video_resizes_the_shorter_side_and_crops_the_centre(tmp_path):
    pytest.importorskip("av")
    frames = np.zeros((4, 48, 64, 3), dtype=np.uint8)
    frames[:] = (30, 200, 30)  # green middle ...
    frames[:, :, :8] = frames[:, :, -8:] = (220, 30, 30)  # ... red bands cut away by the crop
    path = tmp_path / "wide.mp4"
    write_video(path, frames, fps=2)
    clip = read_video(path, size=32)
    assert clip.frames.shape == (2, 32, 32, 3)
    green = (clip.frames[..., 1].int() > 150) & (clip.frames[..., 0].int() < 80)
    assert green[:, :, 3:-3].all() and green.float().mean() > 0.9


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "folder", "no frames", "audio",
                                  "truncated"])
def test_read_video_bad_inputs_name_the_path(tmp_path, kind):
    pytest.importorskip("av")
    path = tmp_path / "bad.mp4"
    if kind == "text":
        path.write_text("not a video, only text\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    elif kind == "no frames":
        path = tmp_path / "bad.avi"
        write_empty_avi(path)
    elif kind == "audio":
        path = tmp_path / "bad.m4a"
        write_audio(path)
    elif kind == "truncated":
        path = tmp_path / "bad.mkv"
        write_solid(path)
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    expected = {"missing": "no such file", "text": "FFmpeg cannot read",
                "empty": "empty file", "folder": "got a folder", "no frames": "zero-length",
                "audio": "expected a video stream", "truncated": "truncated"}[kind]
    with pytest.raises(VideoError, match=expected) as raised:
        read_video(path)
    assert str(raised.value).startswith(f"{path}: ")


def write_empty_avi(path) -> None:
    """An AVI file with a video stream and no frames."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = 32
        container.start_encoding()


def write_audio(path) -> None:
    """An audio-only m4a file."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)


# ------------------------------------------------------------------------------- frame folders
def write_frame_folder(folder, count: int, name: str = "frame{}.png") -> str:
    folder.mkdir()
    for k in range(count):
        Image.new("RGB", (24, 16), colour(k)).save(folder / name.format(k + 1))
    return os.fspath(folder)


def test_read_frame_folder_natural_order_and_times(tmp_path):
    folder = write_frame_folder(tmp_path / "v_01", 12)  # frame1.png .. frame12.png
    (tmp_path / "v_01" / "notes.txt").write_text("ignored")
    assert frame_names(folder)[8:] == ["frame9.png", "frame10.png", "frame11.png",
                                       "frame12.png"]
    clip = read_frame_folder(folder, fps_of_folder=2.0)  # 6 s, frame i at i / 2 s
    assert clip.duration == 6.0 and clip.times == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    assert [frame_index(f) for f in clip.frames] == [1, 3, 5, 7, 9, 11]  # exact: PNG
    assert read_frame_folder(folder, fps_of_folder=2.0, size=8).frames.shape == (6, 8, 8, 3)


def test_read_frame_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="got none in the folder"):
        read_frame_folder(tmp_path / "empty", fps_of_folder=25)
    with pytest.raises(VideoError, match="no such folder"):
        read_frame_folder(tmp_path / "missing", fps_of_folder=25)
    folder = write_frame_folder(tmp_path / "mixed", 2)
    Image.new("RGB", (10, 10)).save(os.path.join(folder, "frame2.png"))
    with pytest.raises(VideoError, match="frames of one size"):
        read_frame_folder(folder, fps_of_folder=1)
    (tmp_path / "mixed" / "frame2.png").write_bytes(b"broken")
    with pytest.raises(VideoError, match="bad frame image"):
        read_frame_folder(folder, fps_of_folder=1)


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


# ------------------------------------------------------------------------------- features
def mean_colour(batch: torch.Tensor) -> torch.Tensor:
    """A stand-in CNN: the mean of each channel, ``(B, 3, S, S) -> (B, 3)``."""
    mean_colour.calls += len(batch)
    return batch.mean(dim=(2, 3))


mean_colour.calls = 0


def test_frames_tensor_matches_image_tensor():
    frames = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    expected = image_tensor(Image.fromarray(frames[1].numpy()), 8)
    assert torch.allclose(frames_tensor(frames)[1], expected, atol=1e-6)


def test_clip_feature_cache_computes_once_and_pads(tmp_path):
    short = write_solid(tmp_path / "short.mp4", count=12, fps=4)  # 3 s: 3 frames
    long = write_solid(tmp_path / "long.mp4", count=40, fps=4)  # 10 s: 5 of 10 frames
    folder = write_frame_folder(tmp_path / "frames", 4)
    cache = ClipFeatureCache(tmp_path / "cache", key="mean-16")
    paths = [short, long, folder, short]
    mean_colour.calls = 0
    features, counts = cache.get_or_compute(paths, mean_colour, size=16, max_frames=5,
                                            fps_of_folder=2.0, batch_size=2, progress=False)
    assert features.shape == (4, 5, 3) and counts.tolist() == [3, 5, 2, 3]
    assert mean_colour.calls == 3 + 5 + 2  # the repeated clip is computed once
    assert (features[0, 3:] == 0).all() and (features[0, :3] != 0).any()
    clip = read_video(long, max_frames=5, size=16)
    assert torch.allclose(features[1], frames_tensor(clip.frames).mean(dim=(2, 3)))
    again, again_counts = cache.get_or_compute(paths, mean_colour, size=16, max_frames=5,
                                               fps_of_folder=2.0, progress=False)
    assert mean_colour.calls == 10 and torch.equal(again, features)
    assert torch.equal(again_counts, counts)
    write_solid(short, count=8, fps=4)  # changed file: 2 s, 2 frames
    os.utime(short, ns=(1, 1))
    _, counts = cache.get_or_compute([short], mean_colour, size=16, max_frames=5,
                                     progress=False)
    assert counts.tolist() == [2] and mean_colour.calls == 12
    settings = sorted(os.listdir(tmp_path / "cache" / "mean-16"))
    assert settings == ["fps1-max5-size16"]


def test_clip_feature_cache_recovers_from_a_broken_index(tmp_path):
    path = write_solid(tmp_path / "a.mp4", count=8, fps=4)
    cache = ClipFeatureCache(tmp_path / "cache", key="mean")
    first, _ = cache.get_or_compute([path], mean_colour, size=8, progress=False)
    index = tmp_path / "cache" / "mean" / "fps1-max30-size8" / "index.json"
    index.write_text("{not json")
    with pytest.warns(UserWarning, match="unusable clip-feature index"):
        second, _ = cache.get_or_compute([path], mean_colour, size=8, progress=False)
    assert torch.equal(first, second)


def test_clip_feature_cache_resumes_after_a_crash(tmp_path, monkeypatch):
    folders = [write_frame_folder(tmp_path / f"v{i}", 2) for i in range(3)]
    monkeypatch.setattr(video, "_SHARD_SECONDS", 0.0)  # a shard after every clip
    seen = []

    def crash_on_third(batch):
        seen.append(len(batch))
        if len(seen) == 3:
            raise KeyboardInterrupt  # killed while encoding the third clip
        return batch.mean(dim=(2, 3))

    cache = ClipFeatureCache(tmp_path / "cache", key="mean")
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(folders, crash_on_third, size=8, fps_of_folder=1, progress=False)
    mean_colour.calls = 0
    _, counts = cache.get_or_compute(folders, mean_colour, size=8, fps_of_folder=1,
                                     progress=False)
    assert counts.tolist() == [2, 2, 2]
    assert mean_colour.calls == 2  # only the third clip (2 frames) was computed again
    mean_colour.calls = 0
    cache.get_or_compute(folders, mean_colour, size=8, fps_of_folder=2, progress=False)
    assert mean_colour.calls == 3 * 1  # another folder rate is another clip: 2 frames = 1 s


def test_clip_feature_cache_errors(tmp_path):
    with pytest.raises(ValueError, match="usable as a folder name"):
        ClipFeatureCache(tmp_path, key="a/b")
    folder = write_frame_folder(tmp_path / "frames", 2)
    cache = ClipFeatureCache(tmp_path / "cache", key="k")
    with pytest.raises(ValueError, match="expected fps_of_folder"):
        cache.get_or_compute([folder], mean_colour, size=8, progress=False)
    with pytest.raises(VideoError, match="no such file"):
        cache.get_or_compute([tmp_path / "missing.mp4"], mean_colour, size=8, progress=False)
    with pytest.raises(ValueError, match=r"expected encode to return \(2, C\)"):
        cache.get_or_compute([folder], lambda b: b, size=8, fps_of_folder=1, progress=False)
