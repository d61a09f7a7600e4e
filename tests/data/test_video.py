"""Tests of rnnkit.data.video: the sampling policy, reading videos, frame folders and either
(read_clip), and the tensors of frames; tiny videos are written into tmp_path with PyAV."""

import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from video_samples import frame_index, solid_frames, write_frame_folder, write_solid

from rnnkit.data import video
from rnnkit.data.images import image_tensor
from rnnkit.data.video import (
    VideoError,
    check_clip,
    frame_names,
    frames_tensor,
    read_clip,
    read_frame_folder,
    read_video,
    sample_times,
)
from rnnkit.synthetic.video_writer import write_video


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


# ------------------------------------------------------------------------------- read_clip
def test_read_clip_takes_a_frame_folder_as_sampled_already_or_at_its_own_rate(tmp_path):
    folder = write_frame_folder(tmp_path / "v", 5)  # frame1.png .. frame5.png
    clip = read_clip(folder, fps=2.0)  # no clock: frame i at i / 2 s, every frame read
    assert [frame_index(f) for f in clip.frames] == [0, 1, 2, 3, 4]
    assert clip.times == [0.0, 0.5, 1.0, 1.5, 2.0] and clip.duration == 2.5
    assert [frame_index(f) for f in read_clip(folder, max_frames=2).frames] == [1, 4]  # spread
    rated = read_clip(folder, fps_of_folder=2.0, size=8)  # 2.5 s at 1 FPS: 0.5 and 1.5 s
    expected = read_frame_folder(folder, fps_of_folder=2.0, size=8)
    assert torch.equal(rated.frames, expected.frames) and rated.times == expected.times == [0.5,
                                                                                           1.5]


def test_read_clip_reads_a_video_file_as_read_video(tmp_path):
    path = write_solid(tmp_path / "v.mp4", count=12, fps=4)
    clip, expected = read_clip(path, max_frames=2, size=16), read_video(path, max_frames=2,
                                                                         size=16)
    assert torch.equal(clip.frames, expected.frames) and clip.times == expected.times


def test_frame_folders_need_no_pyav(tmp_path, monkeypatch):
    folder = write_frame_folder(tmp_path / "v", 3)
    (tmp_path / "v.mp4").write_bytes(b"not opened")
    monkeypatch.setitem(sys.modules, "av", None)  # import av now fails
    assert len(read_clip(folder).frames) == 3
    check_clip(folder, full=True)
    with pytest.raises(ModuleNotFoundError, match=r"pip install \"rnnkit\[video\]\""):
        read_clip(tmp_path / "v.mp4")


# ------------------------------------------------------------------------------- tensors
def test_frames_tensor_matches_image_tensor():
    frames = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    expected = image_tensor(Image.fromarray(frames[1].numpy()), 8)
    assert torch.allclose(frames_tensor(frames)[1], expected, atol=1e-6)
