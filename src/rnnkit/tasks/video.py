"""Video classification: the lecture's many-to-one over frames (and a label for every frame).

A clip is sampled at 1 frame per second (at most 30 frames, spread over the whole clip); a CNN
turns each frame into features; an RNN reads the series and names the class. The small CNN
trains with the RNN end to end (small frames), or a pretrained torchvision CNN's features are
computed once and cached on disk. With no data, the built-in motions
(:mod:`rnnkit.synthetic.motions`): clips whose class is in the order of the frames, so that the
order-free baseline (``order_free``: the mean of the frame features) cannot solve them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..config import option
from ..data import clipsets
from ..data.clipsets import ClipFiles, ClipSet
from ..data.features import FeatureCache
from ..data.labelled import LabelSet
from ..data.video_lists import read_segments
from ..metrics import ClassificationReport, classification_report
from ..models.encoders import build_encoder
from ..models.frames import FrameModelConfig, FrameSequenceModel
from ..nn import evaluating
from ..train.trainer import StepOutput
from . import base


@dataclass
class VideoConfig(ClipFiles):
    """What a video run reads and how (the model's shape in ``model``)."""

    val_root: str | None = option(None, "validation clips in the same forms (default: "
                                        "--val-fraction of the training clips)", metavar="DIR")
    val_split: str | None = option(None, "the list of the validation videos in --val-root",
                                   metavar="LIST.txt")
    val_csv: str | None = option(None, "or a CSV of the validation clips", metavar="FILE")
    val_fraction: float = option(0.1, "the share of the training clips held out for validation")
    motions: int = option(300, "built-in: clips per motion class to train on (validation: a "
                               "fifth)")
    motions_dir: str | None = option(None, "where the built-in clips are written (default: "
                                           "RUN_DIR/motions)", metavar="DIR")
    fps: float = option(1.0, "frames sampled per second of video (a frame folder counts as "
                               "sampled at this rate)")
    max_frames: int = option(30, "at most this many per clip, spread over the whole clip")
    image_size: int | None = option(None, "frame side (default: 64 for smallvgg, 224 for a "
                                          "pretrained CNN)")
    feature_cache: str | None = option(None, "folder for a pretrained CNN's features (default: "
                                             "RUN_DIR/features)", metavar="DIR")
    frame_vector: str = option("flatten", "smallvgg: a frame's CNN grid flattened (where things "
                                          "are) or its mean", choices=("flatten", "mean"))
    batch_size: int = option(16, "clips per step")
    model: FrameModelConfig = option(factory=FrameModelConfig)

    def __post_init__(self) -> None:
        if self.frame_vector not in ("flatten", "mean"):
            raise ValueError(f"frame_vector must be 'flatten' or 'mean', got {self.frame_vector!r}")
        # what the model does follows from the data options: keep the saved copy true to them
        self.model = replace(self.model, flatten=self.frame_vector == "flatten",
                             per_frame=self.segments is not None)

    @property
    def uses_motions(self) -> bool:
        return not (self.root or self.csv)

    @property
    def pretrained(self) -> bool:
        return self.model.encoder != "smallvgg"

    @property
    def size(self) -> int:
        return self.image_size or (224 if self.pretrained else 64)


@dataclass
class VideoData:
    labels: LabelSet
    train: ClipSet
    val: ClipSet
    skipped: list[str] = field(default_factory=list)
    source: str = ""


def frozen_encoder(name: str) -> torch.nn.Module:
    """The pretrained CNN ``name``, in evaluation mode and without gradients."""
    return build_encoder(name, pretrained=True).eval().requires_grad_(False)


def clips_of(config: VideoConfig, items: list, labels: LabelSet, segments: dict | None,
             cache_folder: Path, progress: bool) -> ClipSet:
    """The clips of ``items`` as ``config`` samples them: frames, or a pretrained CNN's
    features (cached in ``cache_folder``)."""
    encoder = frozen_encoder(config.model.encoder) if config.pretrained else None
    cache = FeatureCache(cache_folder, f"{config.model.encoder}-{config.size}")
    return clipsets.read_clips(items, labels, fps=config.fps, max_frames=config.max_frames,
                      size=config.size, segments=segments, encoder=encoder, cache=cache,
                      progress=progress)


class VideoTask(base.Task):
    """Clips of a fresh random order each epoch; the loss per clip (or per real frame)."""

    kind = "video"
    Config = VideoConfig
    Model = FrameSequenceModel
    vocabularies = {"labels": LabelSet}
    skipped_what = "videos"
    monitor = "error"  # 1 - accuracy (per clip, or per frame)
    train_defaults = {"learning_rate": 3e-3, "eval_every": 100, "patience": 15,
                      "warmup_steps": 50}
    default_budget = 600.0  # early stop may end it sooner

    @classmethod
    def load_data(cls, config: VideoConfig, *, run_dir: Path | None = None,
                  progress: bool = False) -> VideoData:
        """Training and validation clips, their labels, and what was skipped."""
        if config.uses_motions:
            motions = Path(config.motions_dir) if config.motions_dir else run_dir / "motions"
            train_items = clipsets.motion_items("train", motions, config.motions, progress)
            val_items = clipsets.motion_items("val", motions, max(1, config.motions // 5), progress)
            skipped, source = [], f"built-in motions ({config.motions} clips per class)"
        else:
            train_items, skipped = clipsets.read_items(config.root, config.split, config.csv)
            if config.val_root or config.val_csv:
                val_items, more = clipsets.read_items(config.val_root, config.val_split,
                                                      config.val_csv)
                skipped += more
            else:
                train_items, val_items = base.held_out(train_items, config.val_fraction)
            source = config.root or config.csv
        segments = read_segments(config.segments) if config.segments else None
        labels = clipsets.clip_labels(train_items, segments)
        cache = Path(config.feature_cache) if config.feature_cache else run_dir / "features"
        return VideoData(labels, clips_of(config, train_items, labels, segments, cache, progress),
                         clips_of(config, val_items, labels, segments, cache, progress), skipped,
                         source)

    def build_model(self) -> FrameSequenceModel:
        config = self.settings
        C = 8 * config.model.cnn_width  # the small CNN's channels; R = (S / 2^4)^2 positions
        feature_size = (int(self.data.train.inputs.shape[-1]) if config.pretrained
                        else (config.size // 16) ** 2 * C if config.model.flatten else C)
        return FrameSequenceModel(replace(
            config.model, num_classes=len(self.data.labels), feature_size=feature_size,
            encoder=None if config.pretrained else "smallvgg"))  # pretrained: features cached

    def summary(self) -> str:
        data = self.data
        return (f"{data.source}: {len(data.train):,} training and {len(data.val):,} "
                f"validation clips, {len(data.labels)} classes"
                + (f"; skipped {len(data.skipped)}, the first: {data.skipped[0]}"
                   if data.skipped else ""))

    def train_batch(self, step: int):
        index = self.shuffled(step, len(self.data.train), self.settings.batch_size)
        return self.data.train.batch(index, self.device)

    def training_step(self, model, batch) -> StepOutput:
        inputs, lengths, labels = batch
        _, loss = model(inputs, lengths, labels)
        return StepOutput(loss, int(lengths.sum()))

    def validate(self, model: FrameSequenceModel) -> dict[str, float]:
        report, loss = evaluate_clips(model, self.data.val, self.data.labels, self.device)
        return {"loss": loss, "accuracy": report.accuracy, "macro_f1": report.macro_f1,
                "error": 1.0 - report.accuracy}


@torch.no_grad()
def evaluate_clips(model: FrameSequenceModel, clips: ClipSet, labels: LabelSet,
                   device: torch.device, batch_size: int = 32
                   ) -> tuple[ClassificationReport, float]:
    """The report (per clip, or per real frame) and the mean loss."""
    predicted, gold, total = [], [], 0.0
    with evaluating(model):
        for inputs, lengths, targets in clips.batches(batch_size, device):
            logits, loss = model(inputs, lengths, targets)
            total += loss.item() * len(targets)
            real = targets != -100  # (B, T) per frame: the real frames; (B,) per clip: all
            predicted.append(logits.argmax(-1)[real].cpu())
            gold.append(targets[real].cpu())
    report = classification_report(torch.cat(predicted), torch.cat(gold), labels.names)
    return report, total / len(clips)


# --------------------------------------------------------------------------- trained runs
def train(out: str | Path | None = None, **options) -> TrainedVideoModel | None:
    """Train a video classifier into the run folder ``out`` (see
    :func:`rnnkit.tasks.base.train` for the options). Without a budget or ``max_steps``, ten
    minutes (early stop may end it sooner)."""
    return base.train(VideoTask, out, **options)


@dataclass
class EvalOptions(ClipFiles):
    """What to evaluate on: ``rnnkit video eval``'s data options and
    :meth:`TrainedVideoModel.eval_clips`'."""

    motions: int = option(20, "fresh built-in clips per class (motion models)")


@dataclass(kw_only=True)
class TrainedVideoModel(base.Trained):
    """A video classifier loaded from a run folder (or one of its checkpoint files)."""

    task = VideoTask
    labels: LabelSet

    def predict(self, inputs: list[str], **options) -> list[dict]:
        """For each video file of ``inputs``: its likeliest label and every label's probability
        (per-frame models: their mean, and a ``timeline`` of each sampled frame's label)."""
        if options:
            raise ValueError(f"video predict takes no options, got {', '.join(options)}")
        pretrained = self.config.pretrained
        encoder = frozen_encoder(self.config.model.encoder).to(self.device) if pretrained else None
        names, rows = self.labels.names, []
        for path in inputs:
            features, times = clipsets.clip_input(path, fps=self.config.fps, size=self.config.size,
                                        max_frames=self.config.max_frames, encoder=encoder,
                                        device=self.device)
            probabilities = self.model.predict_proba(features[None])[0].cpu()  # (K,) | (T, K)
            per_frame = self.model.config.per_frame
            mean = probabilities.mean(dim=0) if per_frame else probabilities  # (K,)
            named = {n: float(v) for n, v in zip(names, mean, strict=True)}
            row = {"video": path, "label": max(named, key=named.get), "probabilities": named}
            if per_frame:
                row["timeline"] = [{"second": t, "label": names[int(p.argmax())]}
                                   for t, p in zip(times, probabilities, strict=True)]
            rows.append(row)
        return rows

    def evaluate(self, clips: ClipSet) -> ClassificationReport:
        report, _ = evaluate_clips(self.model, clips, self.labels, self.device)
        return report

    def eval_clips(self, *, progress: bool = True, **options) -> tuple[ClipSet, list[str]]:
        """Evaluation clips from files, or freshly generated built-in motions (options:
        :class:`EvalOptions`), and the files skipped."""
        where = EvalOptions(**options)
        if not (where.root or where.csv):
            if not self.config.uses_motions:
                raise ValueError("this model was trained on files: give the evaluation data "
                                 "(--root DIR or --csv FILE)")
            folder = Path(tempfile.mkdtemp(prefix="rnnkit-motions-"))
            items = clipsets.motion_items("test", folder, where.motions, progress)
            return clips_of(self.config, items, self.labels, None, folder, progress), []
        items, skipped = clipsets.read_items(where.root, where.split, where.csv)
        for item in items:
            if where.segments is None and item.label not in self.labels.names:
                raise ValueError(f"{item.source}: label {item.label!r} is not one the model "
                                 f"knows ({', '.join(self.labels.names)})")
        spans = read_segments(where.segments) if where.segments else None
        cache = Path(self.config.feature_cache) if self.config.feature_cache else (
            self.path.parent / "features")
        return clips_of(self.config, items, self.labels, spans, cache, progress), skipped


TASK = VideoTask
VideoTask.Trained = TrainedVideoModel
