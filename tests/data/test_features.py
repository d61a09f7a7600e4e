"""Tests of rnnkit.data.features: the one feature cache, for images and for clips (video files
and frame folders): computed once, rows in the requested order, changed files recomputed,
broken or old indexes and shards recomputed with a warning, resumed after a crash."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from video_samples import write_frame_folder, write_solid

from rnnkit.data import features as features_module
from rnnkit.data.features import FeatureCache
from rnnkit.data.images import ImageError, image_tensor, load_image
from rnnkit.data.video import VideoError, frames_tensor, read_clip, read_video


def save(path, array):
    """Save ``array`` (H, W, 3) uint8 as an image file at ``path``; return ``path``."""
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------------------------- images
class Encoder:
    """Mean colour of each 2 x 2 quarter: ``(B, 3, S, S) -> (B, 4, 3)``; counts its images."""

    def __init__(self):
        self.batches: list[int] = []

    def __call__(self, batch):
        self.batches.append(batch.shape[0])
        pooled = torch.nn.functional.adaptive_avg_pool2d(batch, 2)  # (B, 3, 2, 2)
        return pooled.flatten(2).transpose(1, 2)  # (B, 3, 4) -> (B, 4, 3)


@pytest.fixture
def pictures(tmp_path):
    """Five tiny PNGs of different colours."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    return [str(save(folder / f"{i}.png", np.full((6, 8, 3), 40 * i))) for i in range(5)]


def expected(paths, size=4):
    """The features computed without a cache."""
    batch = torch.stack([image_tensor(load_image(p), size) for p in paths])  # (N, 3, S, S)
    return Encoder()(batch)


def test_cache_computes_once_and_reuses(tmp_path, pictures):
    cache, encode = FeatureCache(tmp_path / "cache", "pool2-4"), Encoder()
    first = cache.images(pictures, encode, image_size=4, batch_size=2, progress=False)
    assert first.shape == (5, 4, 3) and first.dtype == torch.float32
    torch.testing.assert_close(first, expected(pictures))
    assert encode.batches == [2, 2, 1]
    again = FeatureCache(tmp_path / "cache", "pool2-4")  # a new process, same folder
    torch.testing.assert_close(again.images(pictures, encode, image_size=4), first)
    assert encode.batches == [2, 2, 1]  # nothing recomputed
    files = sorted(os.listdir(tmp_path / "cache" / "pool2-4" / "size4"))  # one setting
    assert files[0] == "index.json" and all(f.endswith(".safetensors") for f in files[1:])


def test_cache_rows_follow_the_requested_order(tmp_path, pictures):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.images(pictures[:2], encode, image_size=4, progress=False)
    order = [pictures[3], pictures[0], pictures[3], os.path.relpath(pictures[1]), pictures[2]]
    features = cache.images(order, encode, image_size=4, progress=False)
    torch.testing.assert_close(features, expected(order))
    assert encode.batches == [2, 2]  # 3 and 2 new; 3 once though asked twice


def test_cache_recomputes_a_changed_file(tmp_path, pictures):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.images(pictures, encode, image_size=4, progress=False)
    save(pictures[1], np.full((6, 8, 3), 255))  # new content ...
    stat = os.stat(pictures[1])
    os.utime(pictures[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # ... and mtime
    features = cache.images(pictures, encode, image_size=4, progress=False)
    assert encode.batches == [5, 1]
    torch.testing.assert_close(features, expected(pictures))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong layout"])
def test_cache_survives_a_broken_index(tmp_path, pictures, damage):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.images(pictures, encode, image_size=4, progress=False)
    index = tmp_path / "k" / "size4" / "index.json"
    text = index.read_text()
    index.write_text({"truncate": text[:len(text) // 2], "garbage": "\xff\x00",
                      "wrong layout": json.dumps({"format": 1, "key": "k"})}[damage])
    with pytest.warns(UserWarning, match=rf"{index}: unusable feature-cache index .* will be "
                                         "recomputed"):
        features = cache.images(pictures, encode, image_size=4, progress=False)
    torch.testing.assert_close(features, expected(pictures))
    assert encode.batches == [5, 5]
    cache.images(pictures, encode, image_size=4, progress=False)
    assert encode.batches == [5, 5]  # the index is whole again


def test_cache_survives_a_broken_shard(tmp_path, pictures):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.images(pictures, encode, image_size=4, progress=False)
    shard = next((tmp_path / "k" / "size4").glob("*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:40])
    with pytest.warns(UserWarning, match=f"{shard}: unreadable feature shard"):
        features = cache.images(pictures, encode, image_size=4, progress=False)
    torch.testing.assert_close(features, expected(pictures))
    assert encode.batches == [5, 5]


def test_cache_keeps_what_was_written_before_a_failure(tmp_path, pictures, monkeypatch):
    """A shard per batch (tiny shard size); the run dies in the third batch: the next run
    computes only what was lost, and no temporary file is left."""
    monkeypatch.setattr(features_module, "_SHARD_BYTES", 1)
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()

    def dies_on_third(batch):
        if len(encode.batches) == 2:
            raise KeyboardInterrupt
        return encode(batch)

    with pytest.raises(KeyboardInterrupt):
        cache.images(pictures, dies_on_third, image_size=4, batch_size=2, progress=False)
    features = cache.images(pictures, encode, image_size=4, batch_size=2, progress=False)
    assert encode.batches == [2, 2, 1]
    torch.testing.assert_close(features, expected(pictures))
    assert not [f for f in os.listdir(tmp_path / "k" / "size4") if f.endswith(".tmp")]


def test_cache_bad_image_and_bad_encoder(tmp_path, pictures):
    cache = FeatureCache(tmp_path, "k")
    with pytest.raises(ImageError, match=rf"^{tmp_path / 'gone.png'}: no such file"):
        cache.images([pictures[0], str(tmp_path / "gone.png")], Encoder(), image_size=4)
    text = tmp_path / "text.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match=rf"^{text}: expected an image file"):
        cache.images([str(text)], Encoder(), image_size=4, progress=False)
    with pytest.raises(ValueError, match=r"expected encode to return \(5, R, C\) features for a "
                                         r"batch of 5 images, got shape \(5, 12\)"):
        cache.images(pictures, lambda b: b.flatten(2).mean(2).repeat(1, 4),
                             image_size=4, progress=False)


def test_cache_keeps_settings_apart_and_a_changed_encoder_needs_a_new_key(tmp_path, pictures):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.images(pictures[:1], encode, image_size=4, progress=False)
    eight = cache.images(pictures[:1], encode, image_size=8, progress=False)  # another setting
    torch.testing.assert_close(eight, expected(pictures[:1], size=8))
    assert sorted(os.listdir(tmp_path / "k")) == ["size4", "size8"]
    cache.images(pictures[:1], encode, image_size=4, progress=False)
    cache.images(pictures[:1], encode, image_size=8, progress=False)
    assert encode.batches == [1, 1]  # each setting computed once
    with pytest.raises(ValueError, match=r"expected rows of shape \(4, 3\) as cached in .*, got "
                                         r"\(1, 3\); a changed encoder needs a new key"):
        cache.images(pictures[1:], lambda b: Encoder()(b)[:, :1], image_size=4, progress=False)
    with pytest.raises(ValueError, match="expected a key usable as a folder name"):
        FeatureCache(tmp_path, "../elsewhere")


def test_a_cache_of_an_older_rnnkit_is_recomputed_with_a_warning(tmp_path, pictures):
    """Format 1 kept images in folder/key/ and clips in folder/key/<setting>/: both are found
    and recomputed, never read as the new format."""
    old = {"format": 1, "key": "k", "image_size": 4, "shape": [4, 3], "entries": {}}
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "index.json").write_text(json.dumps(old))
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    with pytest.warns(UserWarning, match=r"cached by an older rnnkit \(format 1\) are recomputed"):
        features = cache.images(pictures, encode, image_size=4, progress=False)
    torch.testing.assert_close(features, expected(pictures))
    folder = write_frame_folder(tmp_path / "frames", 2)
    setting = tmp_path / "c" / "k" / "fps1-max30-size8"
    setting.mkdir(parents=True)
    (setting / "index.json").write_text(json.dumps({"format": 1, "key": "k", "max_frames": 30,
                                                    "channels": 3, "entries": {}}))
    with pytest.warns(UserWarning, match=r"unusable feature-cache index \(expected format 2, "
                                         r"got 1\)"):
        _, counts = FeatureCache(tmp_path / "c", "k").clips([folder], mean_colour, size=8,
                                                            progress=False)
    assert counts.tolist() == [2]


def test_cache_progress_goes_to_stderr(tmp_path, pictures, capsys):
    FeatureCache(tmp_path, "k").images(pictures, Encoder(), image_size=4)
    out, err = capsys.readouterr()
    assert out == "" and "features k" in err and "5/5" in err
    FeatureCache(tmp_path, "j").images(pictures, Encoder(), image_size=4, progress=False)
    assert capsys.readouterr() == ("", "")


# ------------------------------------------------------------------------------- clips
def mean_colour(batch: torch.Tensor) -> torch.Tensor:
    """A stand-in CNN: the mean of each channel, ``(B, 3, S, S) -> (B, 3)``."""
    mean_colour.calls += len(batch)
    return batch.mean(dim=(2, 3))


mean_colour.calls = 0


def test_clip_feature_cache_computes_once_and_pads(tmp_path):
    short = write_solid(tmp_path / "short.mp4", count=12, fps=4)  # 3 s: 3 frames
    long = write_solid(tmp_path / "long.mp4", count=40, fps=4)  # 10 s: 5 of 10 frames
    folder = write_frame_folder(tmp_path / "frames", 4)
    cache = FeatureCache(tmp_path / "cache", key="mean-16")
    paths = [short, long, folder, short]
    mean_colour.calls = 0
    features, counts = cache.clips(paths, mean_colour, size=16, max_frames=5,
                                            fps_of_folder=2.0, batch_size=2, progress=False)
    assert features.shape == (4, 5, 3) and counts.tolist() == [3, 5, 2, 3]
    assert mean_colour.calls == 3 + 5 + 2  # the repeated clip is computed once
    assert (features[0, 3:] == 0).all() and (features[0, :3] != 0).any()
    clip = read_video(long, max_frames=5, size=16)
    assert torch.allclose(features[1], frames_tensor(clip.frames).mean(dim=(2, 3)))
    again, again_counts = cache.clips(paths, mean_colour, size=16, max_frames=5,
                                               fps_of_folder=2.0, progress=False)
    assert mean_colour.calls == 10 and torch.equal(again, features)
    assert torch.equal(again_counts, counts)
    write_solid(short, count=8, fps=4)  # changed file: 2 s, 2 frames
    os.utime(short, ns=(1, 1))
    _, counts = cache.clips([short], mean_colour, size=16, max_frames=5,
                                     progress=False)
    assert counts.tolist() == [2] and mean_colour.calls == 12
    settings = sorted(os.listdir(tmp_path / "cache" / "mean-16"))
    assert settings == ["fps1-max5-size16"]


def test_clip_feature_cache_recovers_from_a_broken_index(tmp_path):
    path = write_solid(tmp_path / "a.mp4", count=8, fps=4)
    cache = FeatureCache(tmp_path / "cache", key="mean")
    first, _ = cache.clips([path], mean_colour, size=8, progress=False)
    index = tmp_path / "cache" / "mean" / "fps1-max30-size8" / "index.json"
    index.write_text("{not json")
    with pytest.warns(UserWarning, match="unusable feature-cache index"):
        second, _ = cache.clips([path], mean_colour, size=8, progress=False)
    assert torch.equal(first, second)


def test_clip_feature_cache_resumes_after_a_crash(tmp_path, monkeypatch):
    folders = [write_frame_folder(tmp_path / f"v{i}", 2) for i in range(3)]
    monkeypatch.setattr(features_module, "_SHARD_SECONDS", 0.0)  # a shard after every clip
    seen = []

    def crash_on_third(batch):
        seen.append(len(batch))
        if len(seen) == 3:
            raise KeyboardInterrupt  # killed while encoding the third clip
        return batch.mean(dim=(2, 3))

    cache = FeatureCache(tmp_path / "cache", key="mean")
    with pytest.raises(KeyboardInterrupt):
        cache.clips(folders, crash_on_third, size=8, fps_of_folder=1, progress=False)
    mean_colour.calls = 0
    _, counts = cache.clips(folders, mean_colour, size=8, fps_of_folder=1,
                                     progress=False)
    assert counts.tolist() == [2, 2, 2]
    assert mean_colour.calls == 2  # only the third clip (2 frames) was computed again
    mean_colour.calls = 0
    cache.clips(folders, mean_colour, size=8, fps_of_folder=2, progress=False)
    assert mean_colour.calls == 3 * 1  # another folder rate is another clip: 2 frames = 1 s


def test_clip_feature_cache_errors(tmp_path):
    with pytest.raises(ValueError, match="usable as a folder name"):
        FeatureCache(tmp_path, key="a/b")
    folder = write_frame_folder(tmp_path / "frames", 2)
    cache = FeatureCache(tmp_path / "cache", key="k")
    with pytest.raises(VideoError, match="no such file"):
        cache.clips([tmp_path / "missing.mp4"], mean_colour, size=8, progress=False)
    with pytest.raises(ValueError, match=r"expected encode to return \(2, C\)"):
        cache.clips([folder], lambda b: b, size=8, fps_of_folder=1, progress=False)


def test_clip_cache_takes_a_frame_folder_as_sampled_already_without_fps_of_folder(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 3)
    cache = FeatureCache(tmp_path / "cache", key="k")
    features, counts = cache.clips([folder], mean_colour, size=8, fps=2.0, progress=False)
    assert counts.tolist() == [3]  # every frame, as read_clip reads it
    clip = read_clip(folder, fps=2.0, size=8)
    torch.testing.assert_close(features[0, :3], frames_tensor(clip.frames).mean(dim=(2, 3)))
    mean_colour.calls = 0
    same, _ = cache.clips([folder], mean_colour, size=8, fps=2.0, fps_of_folder=2.0,
                          progress=False)
    assert mean_colour.calls == 0 and torch.equal(same, features)  # the same clip
