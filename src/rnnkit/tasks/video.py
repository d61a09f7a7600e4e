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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..data.features import FeatureCache
from ..data.labelled import LabelSet
from ..data.video import VideoError, frames_tensor, read_clip
from ..data.video_lists import (
    VideoItem,
    check_videos,
    frame_labels,
    read_class_folders,
    read_segments,
    read_video_csv,
)
from ..metrics import ClassificationReport, classification_report
from ..models.encoders import build_encoder
from ..models.frames import FrameModelConfig, FrameSequenceModel
from ..nn import evaluating
from ..synthetic.motions import write_motion_dataset
from ..train import distributed, run
from ..train.run import open_run
from ..train.runtime import resolve_device
from ..train.trainer import StepOutput, TrainResult

KIND = "video"
TRAIN_DEFAULTS = {"learning_rate": 3e-3, "eval_every": 100, "patience": 15, "warmup_steps": 50}
MOTION_SEEDS = {"train": 0, "val": 1, "test": 2}
BACKGROUND = "background"  # the label of frames outside every segment (per-frame models)


@dataclass
class VideoConfig:
    root: str | None = None  # one folder per class (UCF101 / HMDB layout)
    split: str | None = None  # UCF101 trainlist01.txt-style list of the training videos
    csv: str | None = None  # or a CSV of path,label
    segments: str | None = None  # CSV path,start_s,end_s,label: train a label per frame
    val_root: str | None = None  # validation data in the same forms (None: val_fraction)
    val_split: str | None = None
    val_csv: str | None = None
    val_fraction: float = 0.1
    motions: int = 300  # built-in: clips per motion class to train on (validation: a fifth)
    motions_dir: str | None = None  # where the built-in clips are written (None: RUN_DIR/motions)
    fps: float = 1.0  # frames sampled per second (a frame folder counts as sampled at this rate)
    max_frames: int = 30  # at most this many, spread over the whole clip
    image_size: int | None = None  # frame side (None: 64 for smallvgg, 224 pretrained)
    encoder: str = "smallvgg"  # smallvgg (trained here) | vgg16 | resnet18 | resnet50 (cached)
    feature_cache: str | None = None  # folder for pretrained features (None: RUN_DIR/features)
    cnn_width: int = 16
    convs_per_block: int = 1
    frame_vector: str = "flatten"  # smallvgg: a frame's grid flattened (where things are) or "mean"
    cell: str = "gru"
    projection_size: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    pooling: str = "last"
    order_free: bool = False  # the baseline: no RNN, the mean of the frame features
    dropout: float = 0.3
    batch_size: int = 16  # clips per step

    @classmethod
    def from_dict(cls, values: dict) -> VideoConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown video config keys: {', '.join(unknown)}")
        return cls(**values)

    @property
    def uses_motions(self) -> bool:
        return not (self.root or self.csv)

    @property
    def pretrained(self) -> bool:
        return self.encoder != "smallvgg"

    @property
    def size(self) -> int:
        return self.image_size or (224 if self.pretrained else 64)

    @property
    def per_frame(self) -> bool:
        return self.segments is not None


# ------------------------------------------------------------------------------------- data
@dataclass
class ClipSet:
    """Clips as the model reads them: frames ``(N, T, S, S, 3)`` uint8 (the CNN trains) or
    features ``(N, T, C)`` (cached), padded to ``T``; ``lengths`` ``(N,)``; labels ``(N,)`` or
    ``(N, T)`` per frame."""

    inputs: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    paths: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple:
        inputs = self.inputs[index]
        if inputs.dtype == torch.uint8:  # frames: normalised, channels first
            B, T, S = inputs.shape[:3]
            # (B, T, S, S, 3) -> (B*T, S, S, 3) -> (B*T, 3, S, S) -> (B, T, 3, S, S)
            inputs = frames_tensor(inputs.flatten(0, 1)).view(B, T, 3, S, S)
        return (inputs.to(device), self.lengths[index].to(device),
                self.labels[index].to(device))


@dataclass
class VideoData:
    labels: LabelSet
    train: ClipSet
    val: ClipSet
    skipped: list[str] = field(default_factory=list)
    source: str = ""


def _items(config: VideoConfig, prefix: str) -> tuple[list[VideoItem], list[str]]:
    root, split, table = (getattr(config, f"{prefix}{n}") for n in ("root", "split", "csv"))
    report = (read_class_folders(root, split=split) if root else read_video_csv(table))
    good, bad = check_videos(report.items)
    if not good:
        raise VideoError(f"none of the {len(report.items)} videos could be read; the first "
                         f"problem: {(bad or report.skipped)[0]}")
    return good, report.skipped + bad


def motion_items(config: VideoConfig, part: str, folder: Path, per_class: int,
                 progress: bool) -> list[VideoItem]:
    """Built-in motion clips of ``part`` (its own seed), written once into ``folder/part``."""
    return write_motion_dataset(folder / part, per_class=per_class, seed=MOTION_SEEDS[part],
                                progress=progress)


def _frames(items: list[VideoItem], config: VideoConfig) -> tuple[torch.Tensor, torch.Tensor,
                                                                 list]:
    """Frames ``(N, T, S, S, 3)`` uint8, zero-padded, the counts, and each clip's times."""
    clips = [read_clip(item.path, fps=config.fps, max_frames=config.max_frames,
                       size=config.size) for item in items]
    T = max(len(c.frames) for c in clips)
    frames = torch.zeros(len(clips), T, config.size, config.size, 3, dtype=torch.uint8)
    for row, clip in enumerate(clips):
        frames[row, :len(clip.frames)] = clip.frames
    return frames, torch.tensor([len(c.frames) for c in clips]), [c.times for c in clips]


def clipset(items: list[VideoItem], config: VideoConfig, labels: LabelSet,
            segments: dict | None, cache_folder: Path | None, progress: bool) -> ClipSet:
    paths = [item.path for item in items]
    if config.pretrained:
        encoder = frozen_encoder(config)
        cache = FeatureCache(cache_folder, f"{config.encoder}-{config.size}")
        inputs, lengths = cache.clips(
            paths, lambda frames: encoder(frames).mean(dim=1), size=config.size,
            fps=config.fps, max_frames=config.max_frames, progress=progress)
        times = None
        if segments is not None:
            _, _, times = _frames(items, config)
    else:
        inputs, lengths, times = _frames(items, config)
    if segments is None:
        targets = torch.tensor([labels.encode(item.label, item.source) for item in items])
    else:
        targets = torch.full((len(items), inputs.shape[1]), -100, dtype=torch.long)
        for row, item in enumerate(items):
            names = frame_labels(times[row], segments.get(item.path, []), BACKGROUND)
            targets[row, :len(names)] = torch.tensor([labels.encode(n, item.source)
                                                      for n in names])
    return ClipSet(inputs, lengths, targets, paths)


def frozen_encoder(config: VideoConfig) -> torch.nn.Module:
    encoder = build_encoder(config.encoder, pretrained=True).eval()
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    return encoder


def load_data(config: VideoConfig, *, folder: Path, progress: bool = True) -> VideoData:
    """Training and validation clips, their labels, and what was skipped."""
    if config.uses_motions:
        motions = Path(config.motions_dir) if config.motions_dir else folder / "motions"
        train_items = motion_items(config, "train", motions, config.motions, progress)
        val_items = motion_items(config, "val", motions, max(1, config.motions // 5), progress)
        skipped, source = [], f"built-in motions ({config.motions} clips per class)"
    else:
        train_items, skipped = _items(config, "")
        if config.val_root or config.val_csv:
            val_items, more = _items(config, "val_")
            skipped += more
        else:
            order = torch.randperm(len(train_items),
                                   generator=torch.Generator().manual_seed(0)).tolist()
            cut = len(train_items) - max(1, int(len(train_items) * config.val_fraction))
            val_items = [train_items[i] for i in order[cut:]]
            train_items = [train_items[i] for i in order[:cut]]
        source = config.root or config.csv
    segments = read_segments(config.segments) if config.segments else None
    if segments is None:
        labels = LabelSet.from_examples(train_items)
    else:
        names = {s.label for spans in segments.values() for s in spans} | {BACKGROUND}
        labels = LabelSet(sorted(names))
    cache = Path(config.feature_cache) if config.feature_cache else folder / "features"
    return VideoData(labels, clipset(train_items, config, labels, segments, cache, progress),
                     clipset(val_items, config, labels, segments, cache, progress), skipped,
                     source)


def _flattens(config: VideoConfig) -> bool:
    if config.frame_vector not in ("flatten", "mean"):
        raise ValueError(f"frame_vector must be 'flatten' or 'mean', got {config.frame_vector!r}")
    return config.frame_vector == "flatten"


def model_config(config: VideoConfig, labels: LabelSet, feature_size: int) -> FrameModelConfig:
    return FrameModelConfig(
        num_classes=len(labels), feature_size=feature_size, flatten=_flattens(config),
        encoder=None if config.pretrained else "smallvgg", cnn_width=config.cnn_width,
        convs_per_block=config.convs_per_block, projection_size=config.projection_size,
        cell=config.cell, hidden_size=config.hidden_size, num_layers=config.num_layers,
        bidirectional=config.bidirectional, pooling=config.pooling,
        per_frame=config.per_frame, order_free=config.order_free, dropout=config.dropout)


# ------------------------------------------------------------------------------------- task
class VideoTask:
    """The trainer's view of video classification (see :class:`rnnkit.train.trainer.Task`)."""

    kind = KIND
    monitor = "error"  # 1 - accuracy (per clip, or per frame)

    def __init__(self, config: VideoConfig, data: VideoData, device: torch.device,
                 context: distributed.DistContext | None = None) -> None:
        self.settings, self.data, self.device = config, data, device
        self.context = context or distributed.DistContext()
        C = 8 * config.cnn_width  # the small CNN's channels; R = (S / 2^4)^2 positions
        feature_size = (int(data.train.inputs.shape[-1]) if config.pretrained
                        else (config.size // 16) ** 2 * C if _flattens(config) else C)
        self.model = FrameSequenceModel(model_config(config, data.labels, feature_size))
        self.steps_per_epoch = max(1, len(data.train) // config.batch_size)

    def train_batch(self, step: int):
        index = step * self.context.world_size + self.context.rank
        epoch, index = divmod(index, self.steps_per_epoch)
        order = torch.randperm(len(self.data.train),
                               generator=torch.Generator().manual_seed(1000 + epoch))
        size = self.settings.batch_size
        return self.data.train.batch(order[index * size:(index + 1) * size], self.device)

    def training_step(self, model, batch) -> StepOutput:
        inputs, lengths, labels = batch
        _, loss = model(inputs, lengths, labels)
        return StepOutput(loss, int(lengths.sum()))

    def validate(self, model: FrameSequenceModel) -> dict[str, float]:
        report, loss = evaluate_clips(model, self.data.val, self.data.labels, self.device)
        return {"loss": loss, "accuracy": report.accuracy, "macro_f1": report.macro_f1,
                "error": 1.0 - report.accuracy}

    def describe(self, loss: float) -> dict[str, float]:
        return {}

    def config(self) -> dict:
        return {"video": asdict(self.settings), "labels": self.data.labels.to_json(),
                "model": asdict(self.model.config)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@torch.no_grad()
def evaluate_clips(model: FrameSequenceModel, clips: ClipSet, labels: LabelSet,
                   device: torch.device, batch_size: int = 32
                   ) -> tuple[ClassificationReport, float]:
    """The report (per clip, or per real frame) and the mean loss."""
    predicted, gold, total = [], [], 0.0
    with evaluating(model):
        for start in range(0, len(clips), batch_size):
            index = torch.arange(start, min(start + batch_size, len(clips)))
            inputs, lengths, targets = clips.batch(index, device)
            logits, loss = model(inputs, lengths, targets)
            total += loss.item() * len(index)
            if model.config.per_frame:
                real = targets != -100  # (B, T)
                predicted.append(logits.argmax(-1)[real].cpu())
                gold.append(targets[real].cpu())
            else:
                predicted.append(logits.argmax(-1).cpu())
                gold.append(targets.cpu())
    report = classification_report(torch.cat(predicted), torch.cat(gold), labels.names)
    return report, total / len(clips)


# --------------------------------------------------------------------------------- training
def train(out: str | Path | None = None, *, resume: str | Path | None = None,
          device: str | torch.device = "auto", progress: bool = True,
          time_budget: str | float | None = None, max_steps: int | None = None,
          **options) -> TrainedVideoModel | None:
    """Train a video classifier into the run folder ``out`` (or continue the run ``resume``).

    ``options``: fields of :class:`VideoConfig` and of :class:`rnnkit.train.TrainConfig`.
    Without a time budget or ``max_steps``, ten minutes (early stop may end it sooner).
    """
    run_plan = run.plan_fields(KIND, {f.name for f in fields(VideoConfig)}, options, out=out,
                        resume=resume, time_budget=time_budget, max_steps=max_steps,
                        train_defaults=TRAIN_DEFAULTS, default_budget=600.0)
    config = VideoConfig.from_dict(run_plan.task_values)
    skipped: list[str] = []

    def build(device: torch.device, context: distributed.DistContext):
        data = load_data(config, folder=run_plan.run_dir, progress=progress and context.is_main)
        skipped.extend(data.skipped)
        message = (f"{data.source}: {len(data.train):,} training and {len(data.val):,} "
                   f"validation clips, {len(data.labels)} classes"
                   + (f"; skipped {len(data.skipped)}, the first: {data.skipped[0]}"
                      if data.skipped else ""))
        return VideoTask(config, data, device, context), message, {}

    result, device = run.execute(run_plan, build, device=device, progress=progress)
    if result is None:
        return None
    trained = TrainedVideoModel.load(run_plan.run_dir, device)
    trained.result, trained.skipped = result, skipped
    return trained


@dataclass
class VideoPrediction:
    path: str
    label: str
    probabilities: dict[str, float]
    timeline: list[tuple[float, str]]  # (second, label) per sampled frame (per-frame models)


@dataclass
class TrainedVideoModel:
    model: FrameSequenceModel
    labels: LabelSet
    config: VideoConfig
    path: Path
    metrics: dict = field(default_factory=dict)
    result: TrainResult | None = None
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, run: str | Path, device: str | torch.device = "cpu") -> TrainedVideoModel:
        device = resolve_device(device)
        saved_run = open_run(run, KIND, device)
        saved = saved_run.task
        model = FrameSequenceModel(FrameModelConfig(**saved["model"]))
        saved_run.restore(model, device)
        return cls(model, LabelSet.from_json(saved["labels"]),
                   VideoConfig.from_dict(saved["video"]), saved_run.path, saved_run.metrics)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def predict(self, paths: list[str]) -> list[VideoPrediction]:
        out = []
        encoder = frozen_encoder(self.config).to(self.device) if self.config.pretrained else None
        for path in paths:
            clip = read_clip(path, fps=self.config.fps, max_frames=self.config.max_frames,
                             size=self.config.size)
            frames = frames_tensor(clip.frames).to(self.device)  # (T, 3, S, S)
            inputs = (encoder(frames).mean(dim=1) if encoder is not None else frames)[None]
            probabilities = self.model.predict_proba(inputs)[0].cpu()  # (K,) or (T, K)
            names = self.labels.names
            if self.model.config.per_frame:
                timeline = [(t, names[int(p.argmax())])
                            for t, p in zip(clip.times, probabilities, strict=True)]
                mean = probabilities.mean(dim=0)
                named = {n: float(v) for n, v in zip(names, mean, strict=True)}
            else:
                timeline = []
                named = {n: float(v) for n, v in zip(names, probabilities, strict=True)}
            out.append(VideoPrediction(path, max(named, key=named.get), named, timeline))
        return out

    def evaluate(self, clips: ClipSet) -> ClassificationReport:
        report, _ = evaluate_clips(self.model, clips, self.labels, self.device)
        return report

    def eval_clips(self, *, root=None, split=None, csv=None, segments=None, motions: int = 20,
                   progress: bool = True) -> tuple[ClipSet, list[str]]:
        """Evaluation clips from files, or freshly generated built-in motions."""
        if not (root or csv):
            if not self.config.uses_motions:
                raise ValueError("this model was trained on files: give the evaluation data "
                                 "(--root DIR or --csv FILE)")
            folder = Path(tempfile.mkdtemp(prefix="rnnkit-motions-"))
            items = motion_items(self.config, "test", folder, motions, progress)
            return clipset(items, self.config, self.labels, None, folder, progress), []
        report = read_class_folders(root, split=split) if root else read_video_csv(csv)
        good, bad = check_videos(report.items)
        known = set(self.labels.names)
        for item in good:
            if segments is None and item.label not in known:
                raise ValueError(f"{item.source}: label {item.label!r} is not one the model "
                                 f"knows ({', '.join(self.labels.names)})")
        spans = read_segments(segments) if segments else None
        cache = Path(self.config.feature_cache) if self.config.feature_cache else (
            self.path.parent / "features")
        return (clipset(good, self.config, self.labels, spans, cache, progress),
                report.skipped + bad)
