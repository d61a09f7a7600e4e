"""Image captioning: the lecture's one-to-many, from images and captions to words about new images.

A CNN turns an image into features ``v`` (a grid of ``R`` positions, ``C`` channels); the RNN
starts from ``<START>``, computes ``h = tanh(W_xh x + W_hh h + W_ih v)`` (or one of the other
ways in :mod:`rnnkit.models.captioner`), writes a word, feeds it back, and stops at ``<END>`` or
after 30 words.

Data: COCO (``captions_*.json`` + image folder), Flickr8k/30k (token file + split list), a CSV
``image,caption``, or, with none of them, the built-in scenes (:mod:`rnnkit.synthetic.scenes`):
generated images of shapes with true captions, so that captioning trains anywhere in minutes.

The image encoder is the small VGG-style CNN trained with the decoder end to end (works
everywhere), or a pretrained torchvision CNN (VGG-16 as in the lecture, ResNet) whose features
are computed once and cached on disk, or fine-tuned end to end (``finetune``); see
:mod:`rnnkit.models.image_captioner`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from ..checks import check_token_ids
from ..config import from_dict, option, to_dict
from ..data import image_sets
from ..data.captions import CaptionedImage, CaptionVocab
from ..data.image_sets import CaptionData, CaptionFiles, ImageSet
from ..data.images import image_tensor, load_image
from ..models.image_captioner import CaptionOptions, ImageCaptioner, ImageCaptionerConfig
from ..nn import evaluating
from ..train.run import SavedRun
from ..train.trainer import StepOutput
from . import base

PRETRAINED_SIZE = 224  # the input size torchvision's ImageNet CNNs were trained at
SCENE_SEEDS = {"train": 0, "val": 1, "test": 2}  # the built-in scenes of each part
SPECIAL_IDS = {"pad_index": CaptionVocab.PAD, "unk_index": CaptionVocab.UNK,
               "start_index": CaptionVocab.START, "end_index": CaptionVocab.END}


@dataclass
class CaptionConfig(CaptionFiles):
    """What a captioning run reads (none of coco / flickr / csv: the built-in scenes) and how
    (the model's shape in ``model``)."""

    val_coco: str | None = option(None, "validation data in the same forms (default: "
                                        "--val-fraction of the images held out)",
                                  metavar="ANNOTATIONS.json")
    val_flickr: str | None = option(None, "validation token file (optionally --val-split)",
                                    metavar="TOKENS.txt")
    val_csv: str | None = option(None, "validation CSV with columns image,caption",
                                 metavar="FILE")
    val_images: str | None = option(None, "folder of the validation images (default: --images)",
                                    metavar="DIR")
    val_split: str | None = option(None, "Flickr: the validation images' names, one per line "
                                         "(Flickr_8k.devImages.txt)", metavar="LIST.txt")
    val_fraction: float = option(0.1, "images held out for validation when no validation data "
                                      "is given")
    skip_bad_records: bool = option(False, "skip bad caption records and report how many "
                                           "(default: stop)")
    scenes: int = option(6000, "built-in scenes to train on (validation: a tenth as many, new "
                               "ones)")
    scene_objects: int = option(2, "most shapes per scene (1-4)")
    min_count: int = option(5, "rarer words become <unk> (Karpathy's NeuralTalk: 5)")
    image_size: int | None = option(None, "pixels per side (default: 64 for smallvgg, 224 "
                                          "pretrained)")
    feature_cache: str | None = option(None, "where pretrained features are cached (default: "
                                             "RUN_DIR/features)", metavar="DIR")
    batch_size: int = option(32, "images per step, each with all its captions (the CNN runs "
                                 "once)")
    eval_images: int = option(500, "validation images captioned (greedy) for BLEU/CIDEr per "
                                   "evaluation")
    model: ImageCaptionerConfig = option(factory=ImageCaptionerConfig)

    @property
    def uses_scenes(self) -> bool:
        return not self.given

    @property
    def size(self) -> int:
        """The side of the square images the encoder reads."""
        if self.image_size is not None:
            return self.image_size
        return PRETRAINED_SIZE if self.model.pretrained else 64

    def cache_folder(self, run_dir: Path | None) -> Path:
        if self.feature_cache:
            return Path(self.feature_cache)
        if run_dir is None:
            raise ValueError("a pretrained CNN's features need a folder: give feature_cache")
        return run_dir / "features"


# ------------------------------------------------------------------------------------- data
def _val_files(config: CaptionConfig) -> CaptionFiles:
    return CaptionFiles(config.val_coco, config.val_flickr, config.val_csv,
                        config.val_images or config.images, config.val_split)


def _file_images(items: list[CaptionedImage], config: CaptionConfig, frozen: nn.Module | None,
                 cache_folder: Path | None, progress: bool) -> ImageSet:
    """Pixels (the encoder trains), or a frozen encoder's features cached under its name and
    input size."""
    return image_sets.file_images(items, config.size, frozen, cache_folder,
                                  f"{config.model.encoder}-{config.size}", progress)


# ------------------------------------------------------------------------------------- task
class CaptionTask(base.Task):
    """Each step reads ``batch_size`` images with all their captions (the CNN runs once per
    image); validation: the cross-entropy per word, and BLEU/CIDEr of greedy captions."""

    kind = "caption"
    Config = CaptionConfig
    Model = ImageCaptioner
    vocabularies = {"vocab": CaptionVocab}
    skipped_what = "bad records or images"
    train_defaults = {"learning_rate": 2e-3, "eval_every": 250, "patience": 6,
                      "warmup_steps": 100}

    @classmethod
    def load_data(cls, config: CaptionConfig, *, run_dir: Path | None = None,
                  progress: bool = False) -> CaptionData:
        """The training and validation images and captions, the vocabulary, and what was skipped."""
        val_given = _val_files(config).given
        if config.uses_scenes and val_given:
            raise ValueError("validation data needs training data of the same kind: give "
                             "--coco/--flickr/--csv too (or neither, for the built-in scenes)")
        if config.uses_scenes and not config.model.trains_encoder:
            raise ValueError("the built-in scenes train their own CNN: use --encoder smallvgg "
                             "(or --finetune)")
        model = config.model
        frozen = None if model.trains_encoder else ImageCaptioner.frozen_encoder(model.encoder)
        if config.uses_scenes:
            train = image_sets.scene_images(config.scenes, SCENE_SEEDS["train"], config.size,
                                            config.scene_objects)
            val = image_sets.scene_images(max(1, config.scenes // 10), SCENE_SEEDS["val"],
                                          config.size, config.scene_objects)
            skipped, source = [], f"{config.scenes:,} built-in scenes"
        else:
            items, skipped = image_sets.read_files(config, config.skip_bad_records)
            if val_given:
                val_items, more = image_sets.read_files(_val_files(config),
                                                        config.skip_bad_records)
                skipped += more
            else:
                if len(items) < 2:
                    raise ValueError("need at least 2 images to hold some out for validation, "
                                     f"got {len(items)}; or give validation data (--val-coco/"
                                     "--val-flickr/--val-csv)")
                items, val_items = base.held_out(items, config.val_fraction)
            cache_folder = config.cache_folder(run_dir) if frozen is not None else None
            train = _file_images(items, config, frozen, cache_folder, progress)
            val = _file_images(val_items, config, frozen, cache_folder, progress)
            source = config.coco or config.flickr or config.csv
        return CaptionData.build(train, val, min_count=config.min_count, max_len=model.max_len,
                                 skipped=skipped, source=source)

    def build_model(self) -> ImageCaptioner:
        model, data = self.settings.model, self.data
        grid = (ImageCaptioner.encoder_grid(model, self.settings.size) if model.trains_encoder
                else tuple(data.train.inputs.shape[1:]))  # cached features (N, R, C)
        return ImageCaptioner(replace(model, vocab_size=len(data.vocab),
                                      feature_size=model.decoder_features(grid), **SPECIAL_IDS))

    def check_data(self) -> None:
        vocab_size, data = self.model.config.vocab_size, self.data
        check_token_ids([c for refs in data.captions for c in refs], vocab_size,
                        "the training captions")
        check_token_ids([c for _, c in self.val_pairs], vocab_size, "the validation captions")

    @cached_property
    def val_pairs(self) -> list[tuple[int, list[int]]]:
        """``(image, caption ids)`` of every caption of the images evaluated, encoded once."""
        count = min(len(self.data.val), self.settings.eval_images)
        return self.data.val_pairs(count, self.settings.model.max_len)

    def summary(self) -> str:
        return self.data.summary()

    def train_batch(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        images = self.shuffled(step, len(self.data.train), self.settings.batch_size)  # (B,)
        return self.data.batch(images, self.device)  # the CNN reads each image once

    def training_step(self, model, batch) -> StepOutput:
        inputs, captions, owners = batch
        _, loss = model(inputs, captions, owners)
        return StepOutput(loss, int((captions[:, 1:] != CaptionVocab.PAD).sum()))

    def validate(self, model: ImageCaptioner) -> dict[str, float]:
        data, count = self.data, min(len(self.data.val), self.settings.eval_images)
        loss = validation_loss(model, data.val, self.val_pairs, self.device)
        return {"loss": loss, **score_images(model, data.val, data.vocab, self.device, count=count)}

    def describe(self, loss: float) -> dict[str, float]:
        return {"ppl": math.exp(min(loss, 50.0))}


@torch.no_grad()
def validation_loss(model: ImageCaptioner, images: ImageSet, pairs: list[tuple[int, list[int]]],
                    device: torch.device, batch_size: int = 128) -> float:
    """The mean cross-entropy per scored word over ``pairs`` (teacher forcing, no dropout)."""
    total, words = 0.0, 0
    with evaluating(model):
        for inputs, captions in images.caption_batches(pairs, batch_size, device):
            _, loss = model(inputs, captions)
            count = int((captions[:, 1:] != CaptionVocab.PAD).sum())
            total, words = total + loss.item() * count, words + count
    return total / max(words, 1)


def score_images(model: ImageCaptioner, images: ImageSet, vocab: CaptionVocab,
                 device: torch.device, *, count: int | None = None, **options) -> dict[str, float]:
    """The scores (:meth:`ImageSet.score`) of the model's captions of the first ``count``
    images (all by default); ``options``: :meth:`ImageCaptioner.generate`'s."""
    count = len(images) if count is None else min(count, len(images))
    return images.score([vocab.decode(c[0].tokens) for inputs in images.batches(count, 100, device)
                         for c in model.generate(inputs, **options)])


# ------------------------------------------------------------------------------ trained runs
def train(out: str | Path | None = None, **options) -> TrainedCaptioner | None:
    """Train a captioner into the run folder ``out`` (see :func:`rnnkit.tasks.base.train` for
    the options). Without a time budget or ``max_steps``, ten minutes (early stop may end it
    sooner)."""
    return base.train(CaptionTask, out, **options)


@dataclass
class EvalOptions(CaptionFiles):
    """What to evaluate on: ``rnnkit caption eval``'s data options and
    :meth:`TrainedCaptioner.eval_imageset`'s."""

    scenes: int = option(500, "fresh built-in scenes to evaluate on (scene models)")


@dataclass(kw_only=True)
class TrainedCaptioner(base.Trained):
    """A captioner loaded from a run folder (or one of its checkpoint files)."""

    task = CaptionTask
    vocab: CaptionVocab
    frozen: nn.Module | None = None  # the pretrained encoder of cached-feature models

    @classmethod
    def upgrade(cls, saved: dict) -> dict:
        """Runs saved before the model's config was one dataclass held the decoder's fields in
        ``model["decoder"]`` and the encoder's only in the task's config (flat)."""
        if "decoder" not in saved["model"]:
            return saved
        config = from_dict(CaptionConfig, saved["caption"])
        return {**saved, "model": {**to_dict(config.model), **saved["model"]["decoder"]}}

    @classmethod
    def restore(cls, saved: SavedRun, config: CaptionConfig, device: torch.device) -> dict:
        frozen = None
        if not config.model.trains_encoder:
            frozen = ImageCaptioner.frozen_encoder(config.model.encoder).to(device)
        return {"frozen": frozen}

    def predict(self, inputs: list[str | Image.Image], *, batch_size: int = 32,
                **options) -> list[dict]:
        """One row per image file (or PIL image, named ``image N``) of ``inputs``: ``{"image",
        "caption", "score"}`` (the log-probability), with ``n_best > 1`` the ``"nbest"``
        ``[{"caption", "score"}, ...]``, and with ``attention`` (attention models) the best
        caption's ``"attention"``, per word the weights of the ``R`` grid positions (options:
        :class:`CaptionOptions`). A file that cannot be read is an ``ImageError`` naming it,
        before any work is done."""
        settings = CaptionOptions(**options)
        images = [x if isinstance(x, Image.Image) else load_image(x) for x in inputs]
        names = [f"image {i}" if isinstance(x, Image.Image) else str(x)
                 for i, x in enumerate(inputs)]
        generate, rows = settings.generate_options(self.device), []
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([image_tensor(i, self.config.size)
                                  for i in images[start:start + batch_size]])
            features = pixels.to(self.device)  # (B, 3, S, S)
            if self.frozen is not None:  # the model reads the frozen CNN's features (B, R, C)
                with torch.no_grad():
                    features = self.frozen(features)
            for name, captions in zip(names[start:], self.model.generate(features, **generate),
                                      strict=False):
                texts = [" ".join(self.vocab.decode(c.tokens)) for c in captions]
                rows.append({"image": name, "caption": texts[0], "score": captions[0].score})
                if settings.n_best > 1:
                    rows[-1]["nbest"] = [{"caption": text, "score": c.score}
                                         for text, c in zip(texts, captions, strict=True)]
                if settings.attention and captions[0].attention is not None:
                    rows[-1]["attention"] = captions[0].attention.tolist()  # (words, R)
        return rows

    def evaluate(self, images: ImageSet, **options) -> dict[str, float]:
        """BLEU-1..4, CIDEr-D (and ``objects_correct`` for scenes) on ``images`` (options:
        :class:`CaptionOptions`; sampling is seeded, by default with 0)."""
        generate = CaptionOptions(**options).generate_options(self.device, seed=0)
        return score_images(self.model, images, self.vocab, self.device, **generate)

    def eval_imageset(self, *, progress: bool = True, **options) -> tuple[ImageSet, list[str]]:
        """The evaluation images (options: :class:`EvalOptions`): from files (the training
        data's forms), or fresh built-in scenes (a seed no training run uses)."""
        where, config = EvalOptions(**options), self.config
        if not where.given:
            if not config.uses_scenes:
                raise ValueError("this model was trained on files: give the evaluation data "
                                 "(--coco/--flickr/--csv with --images)")
            return image_sets.scene_images(where.scenes, SCENE_SEEDS["test"], config.size,
                                           config.scene_objects), []
        good, skipped = image_sets.read_files(where, config.skip_bad_records)
        folder = config.cache_folder(self.path.parent)
        return _file_images(good, config, self.frozen, folder, progress), skipped


TASK = CaptionTask
CaptionTask.Trained = TrainedCaptioner
