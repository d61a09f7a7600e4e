"""``rnnkit caption train | eval | predict | scenes``: the command line of image captioning."""

from __future__ import annotations

import argparse
import json
import sys

from ..arguments import add_config_arguments, config_values
from ..data.files import atomic_write_bytes
from ..data.image_sets import write_scenes
from ..data.images import load_image
from ..models.image_captioner import CaptionOptions
from ..pages.caption import html_page
from . import cli
from .caption import CaptionTask, EvalOptions, TrainedCaptioner


def add_parser(tasks) -> None:
    actions = cli.add_actions(tasks, "caption", "describe images in words (one-to-many)")

    cli.add_train(actions, CaptionTask, "train on captioned images (no data options: the "
                                        "built-in scenes)")
    evaluate = cli.add_action(
        actions, "eval", help="BLEU-1..4 and CIDEr-D (no data options: fresh built-in scenes)",
        json="one JSON object on stdout")
    add_config_arguments(evaluate, EvalOptions)
    add_config_arguments(evaluate, CaptionOptions, skip=("n_best", "attention"))

    predict = cli.add_action(actions, "predict", help="caption image files",
                             json="one JSON object per image")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--html", help="write a page of images, captions (and attention maps)")
    add_config_arguments(predict, CaptionOptions)

    scenes = actions.add_parser("scenes", help="write built-in scenes as PNG files and a CSV "
                                               "of their captions (to look at, or to predict)")
    scenes.add_argument("--out", required=True, help="folder for the images and captions.csv")
    scenes.add_argument("--count", type=int, default=10)
    scenes.add_argument("--seed", type=int, default=12345)
    scenes.add_argument("--scene-objects", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _evaluate, "predict": _predict,
            "scenes": _scenes}[args.action](args)


def _train(args: argparse.Namespace) -> int:
    trained = cli.train(CaptionTask, args)
    if trained is None:  # a rank other than 0 of a distributed run
        return 0
    best = trained.metrics
    shown = ", ".join(f"{k} {best[k]:.4f}" for k in ("loss", "bleu4", "cider",
                                                     "objects_correct") if k in best)
    print(f"validation: {shown} (best checkpoint: {trained.path})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    trained = TrainedCaptioner.load(args.run, args.device)
    images, skipped = trained.eval_imageset(progress=not args.json,
                                            **vars(config_values(args, EvalOptions)))
    if skipped:
        print(f"skipped {len(skipped)} bad records or images, the first: {skipped[0]}",
              file=sys.stderr)
    options = config_values(args, CaptionOptions)
    scores = trained.evaluate(images, **vars(options))
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{len(images)} images, {options.method} decoding")
        for name, value in scores.items():
            print(f"{name:>16} {value:.4f}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    trained = TrainedCaptioner.load(args.run, args.device)
    options = config_values(args, CaptionOptions)
    options.attention |= args.html is not None  # the page draws each word's attention
    rows = trained.predict(args.images, **vars(options))
    for row in rows:
        if args.json:
            print(json.dumps(row))
            continue
        print(f"{row['image']}\t{row['caption']}")
        for alternative in row.get("nbest", [])[1:]:
            print(f"\t{alternative['caption']}\t({alternative['score']:.3f})")
    if args.html:
        page = html_page(rows, [load_image(path) for path in args.images])
        atomic_write_bytes(args.html, page.encode("utf-8"))
        print(f"page written to {args.html}", file=sys.stderr)
    return 0


def _scenes(args: argparse.Namespace) -> int:
    table = write_scenes(args.out, args.count, args.seed, args.scene_objects)
    print(f"{args.count} scenes and their captions written to {table.parent} (captions.csv: "
          f"--csv {table} --images {table.parent})")
    return 0
