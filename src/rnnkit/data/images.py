"""Images for captioning: load them safely and turn them into the normalised tensors that
pretrained CNNs expect.

The flow::

    items, bad = check_images(report.items)       # drop images that are missing or broken
    pixels = image_tensor(load_image(items[0].image), 224)   # (3, S, S)
    # the CNN's features of many images: rnnkit.data.features.FeatureCache.images

Symbols: ``S`` image side in pixels.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..errors import RnnkitError
from . import files
from .captions import CaptionedImage

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB mean of ImageNet's training images, on [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)  # their RGB standard deviation; pretrained CNNs expect both

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)  # (3,)
_STD = np.array(IMAGENET_STD, dtype=np.float32)  # (3,)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grey PNG/TIFF: PIL clips to RGB


class ImageError(RnnkitError):
    """An image that cannot be used; the message is ``"path: what is wrong"``."""


# ------------------------------------------------------------------------------- loading
def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """The image at ``path``, fully decoded, in RGB.

    Raises :class:`ImageError` (``"path: what is wrong"``) for a missing path, a folder, a file
    that is not an image, a truncated or corrupt image, and one over PIL's decompression-bomb
    limit (``Image.MAX_IMAGE_PIXELS``, twice the size that warns). PIL's warnings (a large
    image, odd metadata) are passed on with the path in front. Transparency is dropped; palette
    images with a transparent colour go through RGBA so PIL does not warn; 16-bit grey keeps its
    top 8 bits. EXIF orientation is not applied, as torchvision's loader does not.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: expected an image file, got a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = _decode(path)
    for warning in caught:
        warnings.warn(f"{path}: {warning.message}", warning.category, stacklevel=2)
    return rgb


def _decode(path: str) -> Image.Image:
    """Open, fully decode and convert one image; every failure as :class:`ImageError`."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later in a batch
            return _to_rgb(image)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: {e}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: expected an image file (JPEG, PNG, ...), got one that PIL "
                         f"cannot identify, starting with {files.head(path)!r}") from None
    except PermissionError as e:
        raise ImageError(f"{path}: cannot read it ({e.strerror})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # PIL's ways of saying "corrupt"
        raise ImageError(f"{path}: truncated or corrupt image ({e})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB mode (itself if it is already)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")  # straight to RGB, PIL warns
    if image.mode in _SIXTEEN_BIT:
        grey = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)  # (H, W)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def check_images(items: Sequence[CaptionedImage]) -> tuple[list[CaptionedImage], list[str]]:
    """The items whose image loads (a full decode, so truncated files are found), in order,
    and one message per bad item: ``"path: what is wrong (captions from source)"``. An image
    listed by several items is decoded once."""
    return files.keep_readable(items, lambda item: item.image, load_image, ImageError,
                               lambda item: f"captions from {item.source}")


# ------------------------------------------------------------------------------- tensors
def image_tensor(image: Image.Image, size: int) -> Tensor:
    """``image`` as a ``(3, S, S)`` float32 tensor, ``S = size``, as pretrained CNNs expect.

    The steps of torchvision's ``Resize(S)``, ``CenterCrop(S)``, ``ToTensor()``,
    ``Normalize(IMAGENET_MEAN, IMAGENET_STD)`` on a PIL image, with the same numbers:

    1. resize (PIL bilinear, which antialiases when shrinking) so that the shorter side is
       ``S``, the longer one ``int(S * long / short)``;
    2. crop the centre ``S x S``, the offset ``round((side - S) / 2)`` on each axis;
    3. scale to [0, 1] and normalise each channel: ``(x - mean) / std``.

    A non-RGB image is converted to RGB first.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"expected size to be a positive int, got {size!r}")
    image = resize_crop(_to_rgb(image), size)
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # (S, S, 3) on [0, 1]
    pixels = (pixels - _MEAN) / _STD  # (S, S, 3)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))  # -> (3, S, S)


def resize_crop(image: Image.Image, size: int) -> Image.Image:
    """Steps 1 and 2 of :func:`image_tensor`: ``image`` resized so that its shorter side is
    ``size`` and its centre ``size x size`` cropped (video frames get the same)."""
    width, height = image.size
    new_size = _resized(width, height, size)
    if new_size != (width, height):
        image = image.resize(new_size, Image.Resampling.BILINEAR)
    left = int(round((new_size[0] - size) / 2.0))
    top = int(round((new_size[1] - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def _resized(width: int, height: int, size: int) -> tuple[int, int]:
    """``(width, height)`` with the shorter side ``size`` (torchvision's ``Resize(size)``)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size
