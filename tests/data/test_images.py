"""Images for captioning: safe loading, torchvision-equal tensors, checking items, and the
feature cache."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.data import images as images_module
from rnnkit.data.captions import CaptionedImage
from rnnkit.data.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FeatureCache,
    ImageError,
    check_images,
    image_tensor,
    load_image,
)


def save(path, array, mode=None, **options):
    """Save ``array`` (H, W[, C]) uint8 as an image file at ``path``; return ``path``."""
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path, **options)
    return path


def jpeg(path, height=32, width=48):
    """A noisy JPEG: the noise makes its entropy-coded data long enough to truncate."""
    rng = np.random.default_rng(0)
    return save(path, rng.integers(0, 256, (height, width, 3)), quality=90)


# ------------------------------------------------------------------------------- load_image
def test_load_png_and_jpeg_as_rgb(tmp_path):
    rgba = save(tmp_path / "a.png", np.full((3, 5, 4), [10, 20, 30, 0]))
    image = load_image(rgba)
    assert (image.mode, image.size) == ("RGB", (5, 3))
    assert np.asarray(image)[0, 0].tolist() == [10, 20, 30]  # alpha dropped, colour kept
    grey = load_image(save(tmp_path / "g.jpg", np.full((4, 4), 200)))
    assert grey.mode == "RGB" and abs(int(np.asarray(grey)[1, 1, 0]) - 200) <= 1
    assert load_image(jpeg(tmp_path / "n.jpg")).size == (48, 32)


def test_load_palette_with_transparency_and_16_bit_without_warnings(tmp_path):
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    # transparency as bytes (a PNG tRNS chunk): a plain convert("RGB") warns
    palette.save(tmp_path / "p.png", transparency=b"\x00\x80")
    sixteen = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))
    sixteen.save(tmp_path / "16.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.asarray(load_image(tmp_path / "p.png"))[0, 0].tolist() == [255, 0, 0]
        assert np.asarray(load_image(tmp_path / "16.png"))[0, :, 0].tolist() == [0, 255]


def test_load_text_file_named_jpg(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_text("hello, not an image")
    with pytest.raises(ImageError, match=rf"^{path}: expected an image file \(JPEG, PNG, \.\.\.\),"
                                         r" got one that PIL cannot identify, starting with "
                                         r"b'hello, not an im'"):
        load_image(path)


def test_load_truncated_jpeg(tmp_path):
    path = jpeg(tmp_path / "cut.jpg")
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(ImageError, match=rf"^{path}: truncated or corrupt image \(image file is "
                                         "truncated"):
        load_image(path)


def test_load_missing_path_and_folder(tmp_path):
    with pytest.raises(ImageError, match=rf"^{tmp_path / 'no.jpg'}: no such file$"):
        load_image(tmp_path / "no.jpg")
    with pytest.raises(ImageError, match=rf"^{tmp_path}: expected an image file, got a folder"):
        load_image(tmp_path)


def test_load_large_image_warns_with_path_and_bomb_is_an_error(tmp_path, monkeypatch):
    path = save(tmp_path / "big.png", np.zeros((10, 10, 3)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60)  # 100 pixels: over the limit, below 2x
    with pytest.warns(Image.DecompressionBombWarning, match=rf"^{path}: Image size \(100 pixels"):
        assert load_image(path).size == (10, 10)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # 100 > 2 * 40: refused
    with pytest.raises(ImageError, match=rf"^{path}: Image size \(100 pixels\) exceeds limit"):
        load_image(path)


# ------------------------------------------------------------------------------- image_tensor
def normalised(rgb) -> np.ndarray:
    """Hand computation: ``(3, H, W)`` of uint8 ``(H, W, 3)`` pixels scaled and normalised."""
    pixels = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(IMAGENET_STD, dtype=np.float32)[:, None, None]
    return (pixels - mean) / std


def test_image_tensor_normalises_each_channel():
    image = Image.new("RGB", (3, 3), (255, 0, 128))
    x = image_tensor(image, 3)
    assert x.shape == (3, 3, 3) and x.dtype == torch.float32
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    torch.testing.assert_close(x[:, 1, 1], torch.tensor(expected))
    grey = image_tensor(Image.new("L", (4, 4), 255), 4)  # converted to RGB: 3 channels
    assert grey.shape == (3, 4, 4)


def test_image_tensor_centre_crop_offsets_round_half_to_even():
    """No resize (the short side is already ``size``): the crop is the centre columns, at
    ``round((W - S) / 2)`` as torchvision's ``CenterCrop`` (Python's round: 1.5 -> 2)."""
    pixels = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3) * 8  # (H=2, W=5, 3)
    x = image_tensor(Image.fromarray(pixels), 2)
    np.testing.assert_allclose(x.numpy(), normalised(pixels[:, 2:4]), rtol=0, atol=1e-6)
    tall = pixels.transpose(1, 0, 2).copy()  # (H=5, W=2, 3): rows 2..3
    x = image_tensor(Image.fromarray(tall), 2)
    np.testing.assert_allclose(x.numpy(), normalised(tall[2:4]), rtol=0, atol=1e-6)


def test_image_tensor_resizes_shorter_side_then_crops():
    """7 x 3 to size 2: resized to int(2 * 7 / 3) = 4 x 2 (truncated, not rounded to 5), then
    cropped at column round((4 - 2) / 2) = 1, as torchvision's Resize(2) + CenterCrop(2)."""
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (3, 7, 3), dtype=np.uint8))
    resized = image.resize((4, 2), Image.Resampling.BILINEAR).crop((1, 0, 3, 2))
    x = image_tensor(image, 2)
    np.testing.assert_allclose(x.numpy(), normalised(resized), rtol=0, atol=1e-6)
    assert image_tensor(Image.new("RGB", (1, 2)), 4).shape == (3, 4, 4)  # upscaled
    with pytest.raises(ValueError, match="expected size to be a positive int, got 0"):
        image_tensor(image, 0)


# ------------------------------------------------------------------------------- check_images
def test_check_images_keeps_loadable_ones(tmp_path):
    good = save(tmp_path / "good.png", np.zeros((2, 2, 3)))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really")
    items = [CaptionedImage(str(good), ["a"], "c.json: images[0]"),
             CaptionedImage(str(tmp_path / "gone.jpg"), ["b"], "c.json: images[1]"),
             CaptionedImage(str(broken), ["c"], "c.json: images[2]"),
             CaptionedImage(str(good), ["d"], "c.json: images[3]")]
    kept, bad = check_images(items)
    assert kept == [items[0], items[3]]
    assert bad[0] == f"{tmp_path / 'gone.jpg'}: no such file (captions from c.json: images[1])"
    assert bad[1].startswith(f"{broken}: ") and bad[1].endswith("(captions from c.json: images[2])")


# ------------------------------------------------------------------------------- FeatureCache
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
    first = cache.get_or_compute(pictures, encode, image_size=4, batch_size=2, progress=False)
    assert first.shape == (5, 4, 3) and first.dtype == torch.float32
    torch.testing.assert_close(first, expected(pictures))
    assert encode.batches == [2, 2, 1]
    again = FeatureCache(tmp_path / "cache", "pool2-4")  # a new process, same folder
    torch.testing.assert_close(again.get_or_compute(pictures, encode, image_size=4), first)
    assert encode.batches == [2, 2, 1]  # nothing recomputed
    files = sorted(os.listdir(tmp_path / "cache" / "pool2-4"))
    assert files[0] == "index.json" and all(f.endswith(".safetensors") for f in files[1:])


def test_cache_rows_follow_the_requested_order(tmp_path, pictures):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.get_or_compute(pictures[:2], encode, image_size=4, progress=False)
    order = [pictures[3], pictures[0], pictures[3], os.path.relpath(pictures[1]), pictures[2]]
    features = cache.get_or_compute(order, encode, image_size=4, progress=False)
    torch.testing.assert_close(features, expected(order))
    assert encode.batches == [2, 2]  # 3 and 2 new; 3 once though asked twice


def test_cache_recomputes_a_changed_file(tmp_path, pictures):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.get_or_compute(pictures, encode, image_size=4, progress=False)
    save(pictures[1], np.full((6, 8, 3), 255))  # new content ...
    stat = os.stat(pictures[1])
    os.utime(pictures[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # ... and mtime
    features = cache.get_or_compute(pictures, encode, image_size=4, progress=False)
    assert encode.batches == [5, 1]
    torch.testing.assert_close(features, expected(pictures))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong layout"])
def test_cache_survives_a_broken_index(tmp_path, pictures, damage):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.get_or_compute(pictures, encode, image_size=4, progress=False)
    index = tmp_path / "k" / "index.json"
    text = index.read_text()
    index.write_text({"truncate": text[:len(text) // 2], "garbage": "\xff\x00",
                      "wrong layout": json.dumps({"format": 1, "key": "k"})}[damage])
    with pytest.warns(UserWarning, match=rf"{index}: unusable feature-cache index .* will be "
                                         "recomputed"):
        features = cache.get_or_compute(pictures, encode, image_size=4, progress=False)
    torch.testing.assert_close(features, expected(pictures))
    assert encode.batches == [5, 5]
    cache.get_or_compute(pictures, encode, image_size=4, progress=False)
    assert encode.batches == [5, 5]  # the index is whole again


def test_cache_survives_a_broken_shard(tmp_path, pictures):
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()
    cache.get_or_compute(pictures, encode, image_size=4, progress=False)
    shard = next((tmp_path / "k").glob("*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:40])
    with pytest.warns(UserWarning, match=f"{shard}: unreadable feature shard"):
        features = cache.get_or_compute(pictures, encode, image_size=4, progress=False)
    torch.testing.assert_close(features, expected(pictures))
    assert encode.batches == [5, 5]


def test_cache_keeps_what_was_written_before_a_failure(tmp_path, pictures, monkeypatch):
    """A shard per batch (tiny shard size); the run dies in the third batch: the next run
    computes only what was lost, and no temporary file is left."""
    monkeypatch.setattr(images_module, "_SHARD_BYTES", 1)
    cache, encode = FeatureCache(tmp_path, "k"), Encoder()

    def dies_on_third(batch):
        if len(encode.batches) == 2:
            raise KeyboardInterrupt
        return encode(batch)

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(pictures, dies_on_third, image_size=4, batch_size=2, progress=False)
    features = cache.get_or_compute(pictures, encode, image_size=4, batch_size=2, progress=False)
    assert encode.batches == [2, 2, 1]
    torch.testing.assert_close(features, expected(pictures))
    assert not [f for f in os.listdir(tmp_path / "k") if f.endswith(".tmp")]


def test_cache_bad_image_and_bad_encoder(tmp_path, pictures):
    cache = FeatureCache(tmp_path, "k")
    with pytest.raises(ImageError, match=rf"^{tmp_path / 'gone.png'}: no such file"):
        cache.get_or_compute([pictures[0], str(tmp_path / "gone.png")], Encoder(), image_size=4)
    text = tmp_path / "text.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match=rf"^{text}: expected an image file"):
        cache.get_or_compute([str(text)], Encoder(), image_size=4, progress=False)
    with pytest.raises(ValueError, match=r"expected encode to return \(5, R, C\) features for a "
                                         r"batch of 5 images, got shape \(5, 12\)"):
        cache.get_or_compute(pictures, lambda b: b.flatten(2).mean(2).repeat(1, 4),
                             image_size=4, progress=False)


def test_cache_settings_must_match_the_key(tmp_path, pictures):
    cache = FeatureCache(tmp_path, "k")
    cache.get_or_compute(pictures[:1], Encoder(), image_size=4, progress=False)
    with pytest.raises(ValueError, match="holds features of 4-pixel images, got image_size=8"):
        cache.get_or_compute(pictures[1:], Encoder(), image_size=8, progress=False)
    with pytest.raises(ValueError, match=r"with \(R, C\) = \(4, 3\) as cached in .* got "
                                         r"\(4, 1, 3\); a changed encoder needs a new key"):
        cache.get_or_compute(pictures[1:], lambda b: Encoder()(b)[:, :1], image_size=4,
                             progress=False)
    with pytest.raises(ValueError, match="expected a key usable as a folder name"):
        FeatureCache(tmp_path, "../elsewhere")


def test_cache_progress_goes_to_stderr(tmp_path, pictures, capsys):
    FeatureCache(tmp_path, "k").get_or_compute(pictures, Encoder(), image_size=4)
    out, err = capsys.readouterr()
    assert out == "" and "features k" in err and "5/5" in err
    FeatureCache(tmp_path, "j").get_or_compute(pictures, Encoder(), image_size=4, progress=False)
    assert capsys.readouterr() == ("", "")
