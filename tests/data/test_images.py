"""Images for captioning: safe loading, torchvision-equal tensors and checking items."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.data.captions import CaptionedImage
from rnnkit.data.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
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
