"""Image captioning: the lecture's one-to-many, from images and captions to words about new images.

A CNN turns an image into features ``v`` (a grid of ``R`` positions, ``C`` channels); the RNN
starts from ``<START>``, computes ``h = tanh(W_xh x + W_hh h + W_ih v)`` (or one of the other
ways in :mod:`rnnkit.models.captioner`), writes a word, feeds it back, and stops at ``<END>`` or
after 30 words.

Data: COCO (``captions_*.json`` + image folder), Flickr8k/30k (token file + split list), a CSV
``image,caption``, or, with none of them, the built-in scenes (:mod:`rnnkit.data.scenes`):
generated images of shapes with true captions, so that captioning trains anywhere in minutes.

The image encoder is the small VGG-style CNN trained with the decoder end to end (works
everywhere), or a pretrained torchvision CNN (VGG-16 as in the lecture, ResNet) whose features
are computed once and cached on disk, or fine-tuned end to end (``finetune``).
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..checks import check_token_ids
from ..data.captions import CaptionedImage, CaptionVocab, caption_tokens, read_captions
from ..data.images import FeatureCache, check_images, image_tensor, load_image
from ..data.scenes import SceneConfig, generate_scenes, names_objects_correctly
from ..metrics import caption_scores
from ..models.captioner import Caption, Captioner, CaptionerConfig
from ..models.encoders import SmallVGG, build_encoder
from ..nn import evaluating
from ..train import distributed, run
from ..train.run import open_run
from ..train.runtime import resolve_device
from ..train.trainer import StepOutput, TrainResult

KIND = "caption"
TRAIN_DEFAULTS = {"learning_rate": 2e-3, "eval_every": 250, "patience": 6, "warmup_steps": 100}
PRETRAINED_SIZE = 224  # the input size torchvision's ImageNet CNNs were trained at
SCENE_SEEDS = {"train": 0, "val": 1, "test": 2}  # the built-in scenes of each part


@dataclass
class CaptionConfig:
    # data: one of coco / flickr / csv with images; none of them: the built-in scenes
    coco: str | None = None  # COCO captions_*.json
    flickr: str | None = None  # Flickr8k.token.txt (or Flickr30k's token file)
    csv: str | None = None  # a CSV with columns image,caption
    images: str | None = None  # the folder of the image files
    split: str | None = None  # Flickr: the list of training images (Flickr_8k.trainImages.txt)
    val_coco: str | None = None  # validation data in the same forms (None: val_fraction held out)
    val_flickr: str | None = None
    val_csv: str | None = None
    val_images: str | None = None  # (default: images)
    val_split: str | None = None  # Flickr: Flickr_8k.devImages.txt
    val_fraction: float = 0.1  # images held out for validation when no validation data is given
    skip_bad_records: bool = False  # count and skip bad caption records instead of stopping
    scenes: int = 6000  # built-in scenes to train on (validation: a tenth as many, new ones)
    scene_objects: int = 2  # at most this many shapes per scene (1-4)
    min_count: int = 5  # words seen fewer times become <unk> (Karpathy's NeuralTalk: 5)
    max_len: int = 30  # words kept per training caption and written per generated one
    encoder: str = "smallvgg"  # smallvgg (trained here) | vgg16 | resnet18 | resnet50 (pretrained)
    image_size: int | None = None  # pixels per side (None: 64 for smallvgg, 224 pretrained)
    cnn_width: int = 16  # smallvgg: channels of the first block, doubled per block (4 blocks)
    convs_per_block: int = 1  # smallvgg: 3x3 convolutions per block (2 as VGG: slower here)
    finetune: bool = False  # pretrained encoders: train the CNN too (smallvgg always trains)
    feature_cache: str | None = None  # folder of cached pretrained features (None: RUN_DIR/..)
    conditioning: str = "every_step"  # every_step (W_ih v) | init_state | first_input | attention
    image_vector: str = "flatten"  # v from the CNN's grid: "flatten" or "mean" (not attention)
    cell: str = "lstm"
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.3
    batch_size: int = 32  # images per step, each with all its captions (the CNN runs once)
    eval_images: int = 500  # validation images captioned (greedy) for BLEU/CIDEr per evaluation

    @classmethod
    def from_dict(cls, values: dict) -> CaptionConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown caption config keys: {', '.join(unknown)}")
        return cls(**values)

    @property
    def uses_scenes(self) -> bool:
        return not (self.coco or self.flickr or self.csv)

    @property
    def pretrained(self) -> bool:
        return self.encoder != "smallvgg"

    @property
    def size(self) -> int:
        """The side of the square images the encoder reads."""
        if self.image_size is not None:
            return self.image_size
        return PRETRAINED_SIZE if self.pretrained else 64

    @property
    def trains_encoder(self) -> bool:
        return not self.pretrained or self.finetune


# ------------------------------------------------------------------------------------- data
@dataclass
class ImageSet:
    """Images of one part, as what the model reads: pixels ``(N, 3, S, S)`` (normalised, stored
    as float16 to halve the memory) when the encoder trains, else cached features ``(N, R, C)``.
    ``references[i]`` are the tokenized captions of image ``i``; ``objects[i]`` the shapes of a
    built-in scene (else empty)."""

    inputs: Tensor
    references: list[list[list[str]]]
    names: list[str]  # the image's path, or "scene N"
    objects: list[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.references)

    def batch(self, index: Tensor, device: torch.device) -> Tensor:
        return self.inputs[index].to(device=device, dtype=torch.float32)


@dataclass
class CaptionData:
    vocab: CaptionVocab
    train: ImageSet
    val: ImageSet
    captions: list[list[list[int]]]  # the caption ids of each training image
    skipped: list[str]  # bad records and images that were reported and left out
    source: str  # what the data is, for the log


def _scene_part(config: CaptionConfig, part: str, count: int) -> tuple[list, list, list, list]:
    # drawn at the scenes' own size (64 pixels), then resized to what the encoder reads
    scenes = generate_scenes(count, SCENE_SEEDS[part],
                             SceneConfig(max_objects=config.scene_objects))
    pixels = [image_tensor(s.image, config.size) for s in scenes]
    references = [[caption_tokens(c) for c in s.captions] for s in scenes]
    return pixels, references, [f"scene {i}" for i in range(count)], [s.objects for s in scenes]


def scenes_imageset(config: CaptionConfig, part: str, count: int) -> ImageSet:
    """``count`` built-in scenes of ``part`` (train / val / test: different seeds)."""
    pixels, references, names, objects = _scene_part(config, part, count)
    return ImageSet(torch.stack(pixels).half(), references, names, objects)


def _read_part(config: CaptionConfig, prefix: str) -> tuple[list[CaptionedImage], list[str]]:
    get = (lambda name: getattr(config, f"{prefix}{name}"))  # noqa: E731
    images = get("images") or config.images
    if images is None:
        raise ValueError("give the image folder: --images DIR")
    report = read_captions(coco=get("coco"), flickr=get("flickr"), csv=get("csv"),
                           images=images, split=get("split"), skip_bad=config.skip_bad_records)
    good, bad_images = check_images(report.items)
    if not good:
        raise ValueError(f"none of the {len(report.items)} images could be read; the first "
                         f"problem: {bad_images[0] if bad_images else report.skipped[0]}")
    return good, report.skipped + bad_images


def _split(items: list[CaptionedImage], fraction: float) -> tuple[list, list]:
    if len(items) < 2:
        raise ValueError(f"need at least 2 images to hold some out for validation, got "
                         f"{len(items)}; or give validation data (--val-coco/--val-flickr/"
                         "--val-csv)")
    cut = len(items) - max(1, int(len(items) * fraction))
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(0)).tolist()
    return [items[i] for i in order[:cut]], [items[i] for i in order[cut:]]


def files_imageset(items: list[CaptionedImage], config: CaptionConfig,
                   encoder: nn.Module | None, cache_folder: Path | None,
                   progress: bool) -> ImageSet:
    """Pixels (encoder trained here) or cached features (frozen pretrained encoder)."""
    references = [[caption_tokens(c) for c in item.captions] for item in items]
    names = [item.image for item in items]
    if encoder is None:
        pixels = [image_tensor(load_image(name), config.size) for name in names]
        return ImageSet(torch.stack(pixels).half(), references, names)
    cache = FeatureCache(cache_folder, feature_key(config))
    features = cache.get_or_compute(names, encoder, image_size=config.size, progress=progress)
    return ImageSet(features, references, names)


def feature_key(config: CaptionConfig) -> str:
    """The cache key of a frozen pretrained encoder's features: its name and input size."""
    return f"{config.encoder}-{config.size}"


def load_data(config: CaptionConfig, *, cache_folder: Path | None = None,
              progress: bool = True) -> CaptionData:
    """The training and validation images and captions, the vocabulary, and what was skipped."""
    frozen = frozen_encoder(config) if not config.trains_encoder else None
    if config.uses_scenes:
        if any((config.val_coco, config.val_flickr, config.val_csv)):
            raise ValueError("validation data needs training data of the same kind: give "
                             "--coco/--flickr/--csv too (or neither, for the built-in scenes)")
        if config.pretrained and not config.finetune:
            raise ValueError("the built-in scenes train their own CNN: use --encoder smallvgg "
                             "(or --finetune)")
        train = scenes_imageset(config, "train", config.scenes)
        val = scenes_imageset(config, "val", max(1, config.scenes // 10))
        skipped, source = [], f"{config.scenes:,} built-in scenes"
    else:
        items, skipped = _read_part(config, "")
        if any((config.val_coco, config.val_flickr, config.val_csv)):
            val_items, more = _read_part(config, "val_")
            skipped += more
        else:
            items, val_items = _split(items, config.val_fraction)
        train = files_imageset(items, config, frozen, cache_folder, progress)
        val = files_imageset(val_items, config, frozen, cache_folder, progress)
        source = config.coco or config.flickr or config.csv
    vocab = CaptionVocab.build((c for refs in train.references for c in refs),
                               min_count=config.min_count)
    captions = [[vocab.encode(c, config.max_len) for c in refs] for refs in train.references]
    return CaptionData(vocab, train, val, captions, skipped, source)


# ------------------------------------------------------------------------------------ model
def frozen_encoder(config: CaptionConfig) -> nn.Module:
    """A pretrained torchvision CNN in evaluation mode, without gradients."""
    encoder = build_encoder(config.encoder, pretrained=True).eval()
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    return encoder


@dataclass
class ModelConfig:
    """What rebuilds an :class:`ImageCaptioner`: the encoder inside it (or none) and the
    decoder."""

    decoder: dict  # CaptionerConfig's fields
    encoder: str | None  # None: the model reads cached features
    cnn_width: int = 32
    convs_per_block: int = 2
    flatten: bool = False  # the decoder reads the grid flattened, (B, R*C), not (B, R, C)


class ImageCaptioner(nn.Module):
    """The CNN (when it trains) and the RNN that speaks: ``forward(inputs, captions)``.

    ``inputs`` are pixels ``(B, 3, S, S)`` when the model holds an encoder, else features
    ``(B, R, C)``. With ``flatten`` the decoder's image vector is the whole grid, ``v =
    flatten(grid)`` ``(B, R*C)``, as VGG's fully connected layers read its last feature map:
    which feature is where survives, so "a blue circle and a yellow square" is not confused
    with "a blue square and a yellow circle", as it is after averaging the grid (measured on
    the built-in scenes: most naming errors of a mean-pooled model were such swaps).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.encoder is None:
            self.encoder = None
        elif config.encoder == "smallvgg":
            w = config.cnn_width
            self.encoder = SmallVGG(channels=(w, 2 * w, 4 * w, 8 * w),
                                    convs_per_block=config.convs_per_block)
        else:
            self.encoder = build_encoder(config.encoder, pretrained=True)
        self.decoder = Captioner(CaptionerConfig(**config.decoder))

    def features(self, inputs: Tensor) -> Tensor:
        grid = inputs if self.encoder is None else self.encoder(inputs)  # -> (B, R, C)
        return grid.flatten(1) if self.config.flatten else grid  # (B, R, C) -> (B, R*C)

    def forward(self, inputs: Tensor, captions: Tensor,
                owners: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``owners`` ``(N,)``: the image (row of ``inputs``) of each of the ``N`` captions;
        ``None``: caption ``i`` belongs to image ``i``. Each image goes through the CNN once,
        however many captions it has."""
        features = self.features(inputs)  # (B, R, C) or (B, R*C)
        if owners is not None:
            features = features[owners]  # (B, ...) -> (N, ...)
        return self.decoder(features, captions)

    @torch.no_grad()
    def generate(self, inputs: Tensor, **options) -> list[list[Caption]]:
        with evaluating(self):
            return self.decoder.generate(self.features(inputs), **options)


def model_config(config: CaptionConfig, vocab: CaptionVocab, feature_size: int) -> ModelConfig:
    decoder = CaptionerConfig(
        vocab_size=len(vocab), feature_size=feature_size, embedding_size=config.embedding_size,
        hidden_size=config.hidden_size, cell=config.cell, num_layers=config.num_layers,
        conditioning=config.conditioning, dropout=config.dropout, pad_index=CaptionVocab.PAD,
        unk_index=CaptionVocab.UNK, start_index=CaptionVocab.START,
        end_index=CaptionVocab.END, max_len=config.max_len)
    encoder = config.encoder if config.trains_encoder else None
    return ModelConfig(asdict(decoder), encoder, config.cnn_width, config.convs_per_block,
                       flatten=_flattens(config))


def _flattens(config: CaptionConfig) -> bool:
    if config.image_vector not in ("flatten", "mean"):
        raise ValueError(f"image_vector must be 'flatten' or 'mean', got {config.image_vector!r}")
    return config.image_vector == "flatten" and config.conditioning != "attention"


def _feature_size(config: CaptionConfig, data: CaptionData) -> int:
    """What the decoder reads per image: ``C``, or ``R*C`` for a flattened grid."""
    if not config.trains_encoder:
        R, C = data.train.inputs.shape[1:]
    else:
        if config.encoder == "smallvgg":
            w = config.cnn_width
            encoder = SmallVGG(channels=(w, 2 * w, 4 * w, 8 * w),
                               convs_per_block=config.convs_per_block)
        else:
            encoder = build_encoder(config.encoder, pretrained=False)
        with torch.no_grad():
            R, C = encoder.eval()(torch.zeros(1, 3, config.size, config.size)).shape[1:]
    return int(R * C) if _flattens(config) else int(C)


# ------------------------------------------------------------------------------------- task
def pad_captions(captions: list[list[int]]) -> Tensor:
    """Caption ids of different lengths -> ``(B, T_max)``, ``<PAD>`` after each ``<END>``."""
    out = torch.full((len(captions), max(len(c) for c in captions)), CaptionVocab.PAD)
    for row, ids in enumerate(captions):
        out[row, :len(ids)] = torch.tensor(ids)
    return out


class CaptionTask:
    """The trainer's view of captioning (see :class:`rnnkit.train.trainer.Task`)."""

    kind = KIND
    monitor = "loss"  # validation cross-entropy per word; BLEU and CIDEr are logged beside it

    def __init__(self, config: CaptionConfig, data: CaptionData, device: torch.device,
                 context: distributed.DistContext | None = None) -> None:
        self.settings, self.data, self.device = config, data, device
        self.context = context or distributed.DistContext()
        self.model = ImageCaptioner(model_config(config, data.vocab, _feature_size(config, data)))
        self.steps_per_epoch = max(1, len(data.train) // config.batch_size)
        val_pairs = [(i, data.vocab.encode(c, config.max_len))
                     for i, refs in enumerate(data.val.references[:config.eval_images])
                     for c in refs]
        self.val_pairs = val_pairs
        # the ids' values, once, where the model meets its data: its forward trusts them
        vocab_size = self.model.decoder.config.vocab_size
        check_token_ids([c for refs in data.captions for c in refs], vocab_size,
                        "the training captions")
        check_token_ids([c for _, c in val_pairs], vocab_size, "the validation captions")

    def train_batch(self, step: int):
        # each rank takes every world_size-th batch; an epoch is a fresh permutation of images
        index = step * self.context.world_size + self.context.rank
        epoch, index = divmod(index, self.steps_per_epoch)
        order = torch.randperm(len(self.data.train),
                               generator=torch.Generator().manual_seed(1000 + epoch))
        size = self.settings.batch_size
        images = order[index * size:(index + 1) * size]  # (B,)
        captions, owners = [], []
        for row, image in enumerate(images.tolist()):
            captions += self.data.captions[image]
            owners += [row] * len(self.data.captions[image])
        return (self.data.train.batch(images, self.device), pad_captions(captions).to(self.device),
                torch.tensor(owners, device=self.device))

    def training_step(self, model, batch) -> StepOutput:
        inputs, captions, owners = batch
        _, loss = model(inputs, captions, owners)
        return StepOutput(loss, int((captions[:, 1:] != CaptionVocab.PAD).sum()))

    def validate(self, model: ImageCaptioner) -> dict[str, float]:
        loss = validation_loss(model, self.data.val, self.val_pairs, self.device)
        count = min(len(self.data.val), self.settings.eval_images)
        scores = score_images(model, self.data.val, self.data.vocab, self.device, count=count)
        return {"loss": loss, **scores}

    def describe(self, loss: float) -> dict[str, float]:
        return {"ppl": math.exp(min(loss, 50.0))}

    def config(self) -> dict:
        return {"caption": asdict(self.settings), "vocab": self.data.vocab.to_json(),
                "model": asdict(self.model.config)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@torch.no_grad()
def validation_loss(model: ImageCaptioner, images: ImageSet, pairs: list[tuple[int, list[int]]],
                    device: torch.device, batch_size: int = 128) -> float:
    """The mean cross-entropy per scored word over ``pairs`` (teacher forcing, no dropout)."""
    total, words = 0.0, 0
    with evaluating(model):
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            captions = pad_captions([c for _, c in chunk]).to(device)
            inputs = images.batch(torch.tensor([i for i, _ in chunk]), device)
            _, loss = model(inputs, captions)
            count = int((captions[:, 1:] != CaptionVocab.PAD).sum())
            total, words = total + loss.item() * count, words + count
    return total / max(words, 1)


def caption_imageset(model: ImageCaptioner, images: ImageSet, device: torch.device, *,
                     count: int | None = None, batch_size: int = 100,
                     **options) -> list[list[Caption]]:
    """Generated captions of the first ``count`` images (all by default)."""
    count = len(images) if count is None else min(count, len(images))
    out = []
    for start in range(0, count, batch_size):
        index = torch.arange(start, min(start + batch_size, count))
        out.extend(model.generate(images.batch(index, device), **options))
    return out


def score_images(model: ImageCaptioner, images: ImageSet, vocab: CaptionVocab,
                 device: torch.device, *, count: int | None = None, **options) -> dict[str, float]:
    """BLEU-1..4 and CIDEr-D of the generated captions against each image's references, and
    for built-in scenes the share of captions naming every shape's colour right
    (``objects_correct``)."""
    captions = caption_imageset(model, images, device, count=count, **options)
    words = [vocab.decode(c[0].tokens) for c in captions]
    scores = caption_scores(words, images.references[:len(words)])
    if images.objects:
        right = sum(names_objects_correctly(" ".join(w), objects)
                    for w, objects in zip(words, images.objects, strict=False))
        scores["objects_correct"] = right / len(words)
    return scores


# --------------------------------------------------------------------------------- training
def train(out: str | Path | None = None, *, resume: str | Path | None = None,
          device: str | torch.device = "auto", progress: bool = True,
          time_budget: str | float | None = None, max_steps: int | None = None,
          **options) -> TrainedCaptioner | None:
    """Train a captioner into the run folder ``out`` (or continue the run ``resume``).

    ``options``: fields of :class:`CaptionConfig` and of :class:`rnnkit.train.TrainConfig`.
    Without a time budget or ``max_steps``, ten minutes (early stop may end it sooner).
    """
    run_plan = run.plan(KIND, {f.name for f in fields(CaptionConfig)}, options, out=out,
                        resume=resume, time_budget=time_budget, max_steps=max_steps,
                        train_defaults=TRAIN_DEFAULTS, default_budget=600.0)
    config = CaptionConfig.from_dict(run_plan.task_values)
    skipped: list[str] = []

    def build(device: torch.device, context: distributed.DistContext):
        cache = Path(config.feature_cache) if config.feature_cache else (
            run_plan.run_dir / "features")
        data = load_data(config, cache_folder=cache, progress=progress and context.is_main)
        skipped.extend(data.skipped)
        message = (f"{data.source}: {len(data.train):,} training images "
                   f"({sum(map(len, data.captions)):,} captions), {len(data.val):,} validation "
                   f"images, {len(data.vocab):,} words"
                   + (f"; skipped {len(data.skipped)}, the first: {data.skipped[0]}"
                      if data.skipped else ""))
        return CaptionTask(config, data, device, context), message, {}

    result, device = run.execute(run_plan, build, device=device, progress=progress)
    if result is None:  # a rank other than 0
        return None
    trained = TrainedCaptioner.load(run_plan.run_dir, device)
    trained.result, trained.skipped = result, skipped
    return trained


# ------------------------------------------------------------------------------ prediction
@dataclass
class CaptionResult:
    name: str  # the image's path (or "scene N")
    text: str  # the best caption
    score: float
    alternatives: list[tuple[str, float]]  # n-best: (caption, score), best first
    attention: Tensor | None = None  # (words, R) for the attention decoder
    image: Image.Image | None = None  # what the model saw, for the HTML page


@dataclass
class TrainedCaptioner:
    """A captioner loaded from a run folder (or one of its checkpoint files)."""

    model: ImageCaptioner
    vocab: CaptionVocab
    config: CaptionConfig
    path: Path
    metrics: dict = field(default_factory=dict)
    result: TrainResult | None = None
    skipped: list[str] = field(default_factory=list)
    frozen: nn.Module | None = None  # the pretrained encoder of cached-feature models

    @classmethod
    def load(cls, run: str | Path, device: str | torch.device = "cpu") -> TrainedCaptioner:
        device = resolve_device(device)
        saved_run = open_run(run, KIND, device)
        saved = saved_run.task
        config = CaptionConfig.from_dict(saved["caption"])
        model = ImageCaptioner(ModelConfig(**saved["model"]))
        saved_run.restore(model, device)
        frozen = None if config.trains_encoder else frozen_encoder(config).to(device)
        return cls(model, CaptionVocab.from_json(saved["vocab"]), config, saved_run.path,
                   saved_run.metrics, frozen=frozen)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _inputs(self, images: list[Image.Image]) -> Tensor:
        pixels = torch.stack([image_tensor(i, self.config.size) for i in images]).to(self.device)
        if self.frozen is None:
            return pixels  # (B, 3, S, S)
        with torch.no_grad():
            return self.frozen(pixels)  # (B, R, C)

    def caption_images(self, images: list[Image.Image], names: list[str] | None = None, *,
                       method: str = "greedy", beam_size: int = 5, n_best: int = 1,
                       temperature: float = 1.0, length_penalty: float = 1.0,
                       seed: int | None = None, batch_size: int = 32) -> list[CaptionResult]:
        names = names or [f"image {i}" for i in range(len(images))]
        generator = torch.Generator(self.device).manual_seed(seed) if seed is not None else None
        options = {"method": method, "n_best": n_best, "temperature": temperature}
        if method == "beam":
            options.update(beam_size=beam_size, length_penalty=length_penalty)
        if method == "sample":
            options["generator"] = generator
        results = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            for offset, captions in enumerate(self.model.generate(self._inputs(chunk),
                                                                  **options)):
                texts = [(" ".join(self.vocab.decode(c.tokens)), c.score) for c in captions]
                best = captions[0]
                results.append(CaptionResult(names[start + offset], texts[0][0], best.score,
                                             texts, best.attention, chunk[offset]))
        return results

    def caption_files(self, paths: list[str], **options) -> list[CaptionResult]:
        """Captions of image files; an image that cannot be read is an ``ImageError`` naming
        it (before any work is done)."""
        images = [load_image(p) for p in paths]
        return self.caption_images(images, [str(p) for p in paths], **options)

    def evaluate(self, images: ImageSet, **options) -> dict[str, float]:
        """BLEU-1..4, CIDEr-D (and ``objects_correct`` for scenes) on ``images``."""
        return score_images(self.model, images, self.vocab, self.device, **options)

    def eval_imageset(self, *, coco=None, flickr=None, csv=None, images=None, split=None,
                      scenes: int = 500, progress: bool = True) -> tuple[ImageSet, list[str]]:
        """The evaluation images: from files (the training data's forms), or fresh built-in
        scenes (a seed no training run uses)."""
        if not (coco or flickr or csv):
            if not self.config.uses_scenes:
                raise ValueError("this model was trained on files: give the evaluation data "
                                 "(--coco/--flickr/--csv with --images)")
            return scenes_imageset(self.config, "test", scenes), []
        if images is None:
            raise ValueError("give the image folder: --images DIR")
        report = read_captions(coco=coco, flickr=flickr, csv=csv, images=images, split=split,
                               skip_bad=self.config.skip_bad_records)
        good, bad = check_images(report.items)
        if not good:
            raise ValueError(f"none of the {len(report.items)} evaluation images could be read")
        cache = Path(self.config.feature_cache) if self.config.feature_cache else (
            self.path.parent / "features")
        imageset = files_imageset(good, self.config, self.frozen, cache, progress)
        return imageset, report.skipped + bad


# ----------------------------------------------------------------------------------- pages
def _png_data(image: Image.Image, size: int = 224) -> str:
    shown = image.copy()
    shown.thumbnail((size, size))
    buffer = io.BytesIO()
    shown.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def attention_overlay(image: Image.Image, weights: Tensor, size: int = 112) -> Image.Image:
    """``image`` shaded by one word's attention over the ``R = g x g`` grid: bright where the
    decoder looked, dark elsewhere."""
    R = weights.numel()
    g = int(round(math.sqrt(R)))
    grid = weights.detach().float().cpu().view(g, g).numpy()  # (R,) -> (g, g), row-major
    grid = grid / max(float(grid.max()), 1e-12)
    mask = Image.fromarray(np.uint8(grid * 255), mode="L").resize((size, size), Image.BILINEAR)
    base = image.convert("RGB").resize((size, size), Image.BILINEAR)
    dark = Image.new("RGB", (size, size))
    return Image.composite(base, dark, mask)


def html_page(results: list[CaptionResult]) -> str:
    """A self-contained HTML page: each image with its caption, the n-best, and for the
    attention decoder one small map per word (where it looked while writing it)."""
    rows = []
    for result in results:
        image = (f'<img src="{_png_data(result.image)}" alt="{html.escape(result.name)}">'
                 if result.image is not None else "")
        alternatives = "".join(f"<li>{html.escape(text)} <small>({score:.2f})</small></li>"
                               for text, score in result.alternatives[1:])
        maps = ""
        if result.attention is not None and result.image is not None:
            words = result.text.split()
            cells = "".join(
                f'<figure><img src="{_png_data(attention_overlay(result.image, w), 112)}">'
                f"<figcaption>{html.escape(word)}</figcaption></figure>"
                for word, w in zip(words, result.attention, strict=False))
            maps = f'<div class="maps">{cells}</div>'
        rows.append(f"<section>{image}<div><p class=\"caption\">{html.escape(result.text)}</p>"
                    f"<p class=\"name\">{html.escape(result.name)} &middot; log-prob "
                    f"{result.score:.2f}</p>"
                    + (f"<ol start=\"2\">{alternatives}</ol>" if alternatives else "")
                    + f"{maps}</div></section>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rnnkit caption</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "section{display:flex;gap:16px;padding:12px 0;border-bottom:1px solid #ddd}"
            "section>img{width:224px;image-rendering:pixelated}.caption{font-size:1.3em;"
            "margin:0}.name{color:#777;font-size:.85em}.maps{display:flex;flex-wrap:wrap;"
            "gap:6px}figure{margin:0;text-align:center}figure img{width:112px;"
            "image-rendering:pixelated}</style></head><body><h1>Captions</h1>"
            + "".join(rows) + "</body></html>\n")
