"""``rnnkit video train | eval | predict``: the command line of video classification."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..arguments import add_config_arguments, config_values
from ..metrics import plot_confusion
from . import cli
from .video import EvalOptions, TrainedVideoModel, VideoTask


def add_parser(tasks) -> None:
    actions = cli.add_actions(tasks, "video", "classify video clips (many-to-one over frames)")

    cli.add_train(actions, VideoTask,
                  "train on labelled clips (no data options: the built-in motions)")

    evaluate = cli.add_action(actions, "eval", json="one JSON object on stdout",
                              help="accuracy, per class, confusion (no data options: fresh "
                                   "built-in motions)")
    add_config_arguments(evaluate, EvalOptions)
    evaluate.add_argument("--plot", help="confusion matrix PNG (default: RUN_DIR/confusion.png)")

    predict = cli.add_action(actions, "predict", help="classify video files",
                             json="one JSON object per video")
    predict.add_argument("videos", nargs="+", metavar="VIDEO")


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        return _train(args)
    trained = TrainedVideoModel.load(args.run, args.device)
    return {"eval": _evaluate, "predict": _predict}[args.action](trained, args)


def _train(args: argparse.Namespace) -> int:
    trained = cli.train(VideoTask, args)
    if trained is not None:  # None on ranks other than 0 of a distributed run
        best = trained.metrics
        print(f"validation: accuracy {best['accuracy']:.4f}, macro-F1 {best['macro_f1']:.4f} "
              f"(best checkpoint: {trained.path})")
    return 0


def _evaluate(trained: TrainedVideoModel, args: argparse.Namespace) -> int:
    clips, skipped = trained.eval_clips(progress=not args.json,
                                        **vars(config_values(args, EvalOptions)))
    if skipped:
        print(f"skipped {len(skipped)} videos, the first: {skipped[0]}", file=sys.stderr)
    report = trained.evaluate(clips)
    if Path(args.run).is_dir() or args.plot:  # a checkpoint file alone: only where told
        plot_confusion(report, args.plot or Path(args.run) / "confusion.png")
    scores = {"accuracy": report.accuracy, "macro_f1": report.macro_f1}
    print(json.dumps(scores) if args.json else report.to_text())
    return 0


def _predict(trained: TrainedVideoModel, args: argparse.Namespace) -> int:
    for row in trained.predict(args.videos):
        if args.json:
            print(json.dumps(row))
            continue
        shown = " ".join(f"{k}={v:.3f}" for k, v in row["probabilities"].items())
        print(f"{row['video']}\t{row['label']}\t{shown}")
        for moment in row.get("timeline", []):
            print(f"\t{moment['second']:7.1f}s  {moment['label']}")
    return 0
