"""``rnnkit video train | eval | predict``: the command line of video classification."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from ..metrics import plot_confusion
from .common_cli import TRAIN_FIELDS, add_run_options, given
from .video import TrainedVideoModel, VideoConfig, train

_DATA_MODEL = {f.name for f in fields(VideoConfig)}


def _data_options(group) -> None:
    group.add_argument("--root", metavar="DIR", help="one folder per class (UCF101 layout)")
    group.add_argument("--split", metavar="LIST.txt", help="UCF101-style list of videos to use")
    group.add_argument("--csv", metavar="FILE", help="CSV with columns path,label")
    group.add_argument("--segments", metavar="FILE",
                       help="CSV path,start_s,end_s,label: a label for every sampled frame")


def add_parser(tasks) -> None:
    video = tasks.add_parser("video", help="classify video clips (many-to-one over frames)")
    actions = video.add_subparsers(dest="action", metavar="<action>", required=True)

    train_parser = actions.add_parser(
        "train", help="train on labelled clips (no data options: the built-in motions)")
    data = train_parser.add_argument_group("data")
    _data_options(data)
    data.add_argument("--val-root", metavar="DIR")
    data.add_argument("--val-split", metavar="LIST.txt")
    data.add_argument("--val-csv", metavar="FILE")
    data.add_argument("--motions", type=int, help="built-in clips per class (default 300)")
    data.add_argument("--motions-dir", metavar="DIR", help="where built-in clips are written")
    data.add_argument("--fps", type=float, help="frames sampled per second (default 1)")
    data.add_argument("--max-frames", type=int, help="at most this many per clip (default 30)")
    model = train_parser.add_argument_group("model")
    model.add_argument("--encoder", choices=["smallvgg", "vgg16", "resnet18", "resnet50"])
    model.add_argument("--feature-cache", metavar="DIR")
    model.add_argument("--frame-vector", choices=["flatten", "mean"],
                       help="a frame's CNN grid flattened (default) or averaged")
    model.add_argument("--cell", help="rnn_tanh, rnn_relu, lstm, gru or layernorm_lstm")
    model.add_argument("--pooling", choices=["last", "max", "mean"])
    model.add_argument("--order-free", action="store_const", const=True,
                       help="the baseline: no RNN, the mean of the frame features")
    model.add_argument("--bidirectional", action="store_const", const=True)
    for name in ("image-size", "cnn-width", "convs-per-block", "projection-size",
                 "hidden-size", "num-layers", "batch-size"):
        model.add_argument(f"--{name}", type=int)
    model.add_argument("--dropout", type=float)
    add_run_options(train_parser, "10m")

    evaluate = actions.add_parser("eval", help="accuracy, per class, confusion (no data "
                                               "options: fresh built-in motions)")
    evaluate.add_argument("run", metavar="RUN_DIR")
    _data_options(evaluate)
    evaluate.add_argument("--motions", type=int, default=20,
                          help="fresh built-in clips per class (motion models)")
    evaluate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    evaluate.add_argument("--plot", help="confusion matrix PNG (default: RUN_DIR/confusion.png)")
    evaluate.add_argument("--device", default="auto")

    predict = actions.add_parser("predict", help="classify video files")
    predict.add_argument("run", metavar="RUN_DIR")
    predict.add_argument("videos", nargs="+", metavar="VIDEO")
    predict.add_argument("--json", action="store_true", help="one JSON object per video")
    predict.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _evaluate, "predict": _predict}[args.action](args)


def _train(args: argparse.Namespace) -> int:
    trained = train(args.out, resume=args.resume, device=args.device,
                    progress=not args.no_progress, time_budget=args.time_budget,
                    max_steps=args.max_steps, **given(args, _DATA_MODEL | TRAIN_FIELDS))
    if trained is None:
        return 0
    if trained.skipped:
        print(f"skipped {len(trained.skipped)} videos, the first: {trained.skipped[0]}",
              file=sys.stderr)
    best = trained.metrics
    print(f"validation: accuracy {best['accuracy']:.4f}, macro-F1 {best['macro_f1']:.4f} "
          f"(best checkpoint: {trained.path})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    trained = TrainedVideoModel.load(args.run, args.device)
    clips, skipped = trained.eval_clips(root=args.root, split=args.split, csv=args.csv,
                                        segments=args.segments, motions=args.motions,
                                        progress=not args.json)
    if skipped:
        print(f"skipped {len(skipped)} videos, the first: {skipped[0]}", file=sys.stderr)
    report = trained.evaluate(clips)
    plot = Path(args.plot) if args.plot else Path(args.run) / "confusion.png"
    if Path(args.run).is_dir() or args.plot:
        plot_confusion(report, plot)
    if args.json:
        print(json.dumps({"accuracy": report.accuracy, "macro_f1": report.macro_f1}))
    else:
        print(report.to_text())
    return 0


def _predict(args: argparse.Namespace) -> int:
    trained = TrainedVideoModel.load(args.run, args.device)
    for prediction in trained.predict(args.videos):
        if args.json:
            row = {"video": prediction.path, "label": prediction.label,
                   "probabilities": prediction.probabilities}
            if prediction.timeline:
                row["timeline"] = [{"second": t, "label": label}
                                   for t, label in prediction.timeline]
            print(json.dumps(row))
            continue
        shown = " ".join(f"{k}={v:.3f}" for k, v in prediction.probabilities.items())
        print(f"{prediction.path}\t{prediction.label}\t{shown}")
        for second, label in prediction.timeline:
            print(f"\t{second:7.1f}s  {label}")
    return 0
