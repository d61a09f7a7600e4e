"""Captioned images as a captioner reads them: pixels, or a frozen CNN's cached features.

The reading itself is :mod:`rnnkit.data.captions`' (the caption formats),
:mod:`rnnkit.data.images`' (decoding, the feature cache) and :mod:`rnnkit.synthetic.scenes`' (the
built-in scenes); this module puts their results together::

    items, skipped = read_files(CaptionFiles(csv="captions.csv", images="images/"))
    train = file_images(items, size=64)                      # pixels (N, 3, 64, 64)
    train = file_images(items, 224, cnn, "cache/", "resnet50-224")  # features (N, R, C)
    val = scene_images(600, seed=1, size=64)                 # the built-in scenes
    data = CaptionData.build(train, val, min_count=5, max_len=30, skipped=skipped,
                             source="captions.csv")          # + the vocabulary, caption ids
    inputs, captions, owners = data.batch(torch.tensor([3, 1]), device)

Symbols: ``N`` images, ``S`` the image side in pixels, ``R`` grid positions, ``C`` features.
"""

from __future__ import annotations

import csv as csv_module
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..config import option
from ..metrics import caption_scores
from ..synthetic.scenes import SceneConfig, SceneObject, generate_scenes, names_objects_correctly
from .captions import CaptionedImage, CaptionVocab, caption_tokens, read_captions
from .features import FeatureCache
from .files import atomic_write_bytes
from .images import check_images, image_tensor, load_image

__all__ = ["CaptionData", "CaptionFiles", "ImageSet", "file_images", "pad_captions",
           "read_files", "scene_images", "write_scenes"]


@dataclass
class CaptionFiles:
    """Where captioned images are: one of a COCO, Flickr or CSV caption file, and the folder of
    the images (none given: a task's built-in scenes). A task's config (and its evaluation's
    options) start with these."""

    coco: str | None = option(None, "COCO captions file (with --images)",
                              metavar="ANNOTATIONS.json")
    flickr: str | None = option(None, "Flickr8k/30k token file (with --images, optionally "
                                      "--split)", metavar="TOKENS.txt")
    csv: str | None = option(None, "CSV with columns image,caption", metavar="FILE")
    images: str | None = option(None, "folder of the image files", metavar="DIR")
    split: str | None = option(None, "Flickr: the image names to use, one per line",
                               metavar="LIST.txt")

    @property
    def given(self) -> bool:
        return bool(self.coco or self.flickr or self.csv)


def read_files(files: CaptionFiles, skip_bad: bool = False
               ) -> tuple[list[CaptionedImage], list[str]]:
    """The items of ``files`` whose image loads, and one message per record or image left
    out. That no image loads is an error."""
    if files.images is None:
        raise ValueError("give the image folder: --images DIR")
    report = read_captions(coco=files.coco, flickr=files.flickr, csv=files.csv,
                           images=files.images, split=files.split, skip_bad=skip_bad)
    good, bad = check_images(report.items)
    if not good:
        problems = bad + report.skipped
        raise ValueError(f"none of the {len(report.items)} images could be read; the first "
                         f"problem: {problems[0] if problems else 'no captioned images'}")
    return good, report.skipped + bad


@dataclass
class ImageSet:
    """Images of one part, as what the model reads: pixels ``(N, 3, S, S)`` (normalised, stored
    as float16 to halve the memory) when the encoder trains, else cached features ``(N, R, C)``.
    ``references[i]`` are the tokenized captions of image ``i``; ``objects[i]`` the shapes of a
    built-in scene (else empty)."""

    inputs: Tensor
    references: list[list[list[str]]]
    names: list[str]  # the image's path, or "scene N"
    objects: list[list[SceneObject]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.references)

    def batch(self, index: Tensor, device: torch.device) -> Tensor:
        return self.inputs[index].to(device=device, dtype=torch.float32)

    def batches(self, count: int, batch_size: int, device: torch.device) -> Iterator[Tensor]:
        """The first ``count`` images in order, ``batch_size`` at a time."""
        for start in range(0, count, batch_size):
            yield self.batch(torch.arange(start, min(start + batch_size, count)), device)

    def caption_batches(self, pairs: list[tuple[int, list[int]]], batch_size: int,
                        device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
        """``(image, caption ids)`` pairs in order, ``batch_size`` at a time, as inputs
        ``(B, ...)`` (an image once per caption) and padded captions ``(B, T)``."""
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            captions = pad_captions([c for _, c in chunk]).to(device)
            yield self.batch(torch.tensor([i for i, _ in chunk]), device), captions

    def score(self, captions: list[list[str]]) -> dict[str, float]:
        """BLEU-1..4 and CIDEr-D of ``captions`` (tokenized) of the first ``len(captions)``
        images against their references, as the COCO caption evaluation scores them; for
        built-in scenes also the share naming every shape's colour right (``objects_correct``)."""
        scores = caption_scores(captions, self.references[:len(captions)])
        if self.objects:
            right = sum(names_objects_correctly(" ".join(words), objects)
                        for words, objects in zip(captions, self.objects, strict=False))
            scores["objects_correct"] = right / len(captions)
        return scores


@dataclass
class CaptionData:
    """A captioning run's data: the training and validation images, the vocabulary of the
    training captions and each training image's caption ids, and what was left out."""

    vocab: CaptionVocab
    train: ImageSet
    val: ImageSet
    captions: list[list[list[int]]]  # the caption ids of each training image
    skipped: list[str]  # bad records and images that were reported and left out
    source: str  # what the data is, for the log

    @classmethod
    def build(cls, train: ImageSet, val: ImageSet, *, min_count: int, max_len: int,
              skipped: list[str], source: str) -> CaptionData:
        """The vocabulary of ``train``'s captions (words seen fewer than ``min_count`` times
        become ``<unk>``) and their ids, at most ``max_len`` words each."""
        vocab = CaptionVocab.build((c for refs in train.references for c in refs),
                                   min_count=min_count)
        captions = [[vocab.encode(c, max_len) for c in refs] for refs in train.references]
        return cls(vocab, train, val, captions, skipped, source)

    def summary(self) -> str:
        return (f"{self.source}: {len(self.train):,} training images "
                f"({sum(map(len, self.captions)):,} captions), {len(self.val):,} validation "
                f"images, {len(self.vocab):,} words"
                + (f"; skipped {len(self.skipped)}, the first: {self.skipped[0]}"
                   if self.skipped else ""))

    def batch(self, images: Tensor, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Training images ``(B,)`` with all their captions: the inputs ``(B, ...)``, the
        captions ``(N, T)`` padded, and the row of each caption's image ``(N,)`` (so that the
        CNN reads each image once)."""
        captions, owners = [], []
        for row, image in enumerate(images.tolist()):
            captions += self.captions[image]
            owners += [row] * len(self.captions[image])
        return (self.train.batch(images, device), pad_captions(captions).to(device),
                torch.tensor(owners, device=device))

    def val_pairs(self, count: int, max_len: int) -> list[tuple[int, list[int]]]:
        """``(image, caption ids)`` of every caption of the first ``count`` validation
        images."""
        return [(i, self.vocab.encode(c, max_len))
                for i, refs in enumerate(self.val.references[:count]) for c in refs]


def scene_images(count: int, seed: int, size: int, max_objects: int = 2) -> ImageSet:
    """``count`` built-in scenes drawn from ``seed`` (:mod:`rnnkit.synthetic.scenes`), at their own
    size (64 pixels), then resized to ``size``."""
    scenes = generate_scenes(count, seed, SceneConfig(max_objects=max_objects))
    pixels = torch.stack([image_tensor(s.image, size) for s in scenes]).half()
    references = [[caption_tokens(c) for c in s.captions] for s in scenes]
    return ImageSet(pixels, references, [f"scene {i}" for i in range(count)],
                    [s.objects for s in scenes])


def file_images(items: list[CaptionedImage], size: int,
                encoder: Callable[[Tensor], Tensor] | None = None, cache_folder: Path | None = None,
                key: str = "", progress: bool = True) -> ImageSet:
    """Pixels ``(N, 3, S, S)`` (no ``encoder``: the model's own CNN reads them), or the
    features of a frozen ``encoder``, computed once into the :class:`FeatureCache` of
    ``cache_folder`` under ``key`` (which names the encoder and the size)."""
    references = [[caption_tokens(c) for c in item.captions] for item in items]
    names = [item.image for item in items]
    if encoder is None:
        pixels = [image_tensor(load_image(name), size) for name in names]
        return ImageSet(torch.stack(pixels).half(), references, names)
    features = FeatureCache(cache_folder, key).images(names, encoder, image_size=size,
                                                      progress=progress)
    return ImageSet(features, references, names)


def pad_captions(captions: list[list[int]]) -> Tensor:
    """Caption ids of different lengths -> ``(B, T_max)``, ``<PAD>`` after each ``<END>``."""
    out = torch.full((len(captions), max(len(c) for c in captions)), CaptionVocab.PAD)
    for row, ids in enumerate(captions):
        out[row, :len(ids)] = torch.tensor(ids)
    return out


def write_scenes(folder: str | Path, count: int, seed: int, max_objects: int = 2) -> Path:
    """``count`` built-in scenes as ``scene0000.png``... in ``folder`` and their captions as
    ``captions.csv`` (``image,caption``, a row per caption); returns the CSV's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv_module.writer(table, lineterminator="\n")
    writer.writerow(["image", "caption"])
    scenes = generate_scenes(count, seed, SceneConfig(max_objects=max_objects))
    for index, scene in enumerate(scenes):
        name = f"scene{index:04d}.png"
        scene.image.save(folder / name)
        writer.writerows([name, caption] for caption in scene.captions)
    atomic_write_bytes(folder / "captions.csv", table.getvalue().encode("utf-8"))
    return folder / "captions.csv"
