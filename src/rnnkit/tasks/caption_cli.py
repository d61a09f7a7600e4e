"""``rnnkit caption train | eval | predict | scenes``: the command line of image captioning."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import fields
from pathlib import Path

from ..data.files import atomic_write_bytes
from ..synthetic.scenes import SceneConfig, generate_scenes
from .caption import CaptionConfig, TrainedCaptioner, html_page, train
from .common_cli import TRAIN_FIELDS, add_run_options, given

_DATA_MODEL = {f.name for f in fields(CaptionConfig)}


def _data_options(group, prefix: str = "") -> None:
    group.add_argument(f"--{prefix}coco", metavar="ANNOTATIONS.json",
                       help="COCO captions file (with --images)")
    group.add_argument(f"--{prefix}flickr", metavar="TOKENS.txt",
                       help="Flickr8k/30k token file (with --images, optionally --split)")
    group.add_argument(f"--{prefix}csv", metavar="FILE", help="CSV with columns image,caption")
    group.add_argument(f"--{prefix}images", metavar="DIR", help="folder of the image files")
    group.add_argument(f"--{prefix}split", metavar="LIST.txt",
                       help="Flickr: the image names to use, one per line")


def _decode_options(parser) -> None:
    parser.add_argument("--method", choices=["greedy", "beam", "sample"], default="greedy")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, help="sampling seed (reproducible samples)")
    parser.add_argument("--device", default="auto")


def add_parser(tasks) -> None:
    caption = tasks.add_parser("caption", help="describe images in words (one-to-many)")
    actions = caption.add_subparsers(dest="action", metavar="<action>", required=True)

    train_parser = actions.add_parser(
        "train", help="train on captioned images (no data options: the built-in scenes)")
    data = train_parser.add_argument_group("data")
    _data_options(data)
    data.add_argument("--val-coco", metavar="ANNOTATIONS.json")
    data.add_argument("--val-flickr", metavar="TOKENS.txt")
    data.add_argument("--val-csv", metavar="FILE")
    data.add_argument("--val-images", metavar="DIR", help="(default: --images)")
    data.add_argument("--val-split", metavar="LIST.txt")
    data.add_argument("--skip-bad-records", action="store_const", const=True,
                      help="skip bad caption records and report how many (default: stop)")
    data.add_argument("--scenes", type=int, help="built-in scenes to train on (default 6000)")
    data.add_argument("--scene-objects", type=int, help="most shapes per scene (1-4)")
    data.add_argument("--min-count", type=int, help="rarer words become <unk> (default 5)")
    data.add_argument("--max-len", type=int, help="words per caption (default 30)")
    model = train_parser.add_argument_group("model")
    model.add_argument("--encoder", choices=["smallvgg", "vgg16", "resnet18", "resnet50"],
                       help="the CNN: smallvgg trains here; the others are pretrained "
                            "(pip install \"rnnkit[vision]\")")
    model.add_argument("--finetune", action="store_const", const=True,
                       help="train the pretrained CNN too (slow on a CPU)")
    model.add_argument("--feature-cache", metavar="DIR",
                       help="where pretrained features are cached (default: RUN_DIR/features)")
    model.add_argument("--conditioning",
                       choices=["every_step", "init_state", "first_input", "attention"])
    model.add_argument("--image-vector", choices=["flatten", "mean"],
                       help="the image vector v: the CNN's grid flattened (default) or averaged")
    model.add_argument("--cell", help="rnn_tanh, rnn_relu, lstm, gru or layernorm_lstm")
    for name in ("image-size", "cnn-width", "convs-per-block", "embedding-size", "hidden-size",
                 "num-layers", "batch-size", "eval-images"):
        model.add_argument(f"--{name}", type=int)
    model.add_argument("--dropout", type=float)
    add_run_options(train_parser, "10m")

    evaluate = actions.add_parser("eval", help="BLEU-1..4 and CIDEr-D (no data options: "
                                               "fresh built-in scenes)")
    evaluate.add_argument("run", metavar="RUN_DIR")
    _data_options(evaluate)
    evaluate.add_argument("--scenes", type=int, default=500,
                          help="fresh built-in scenes to evaluate on (scene models)")
    evaluate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _decode_options(evaluate)

    predict = actions.add_parser("predict", help="caption image files")
    predict.add_argument("run", metavar="RUN_DIR")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--nbest", type=int, default=1, help="captions per image")
    predict.add_argument("--json", action="store_true", help="one JSON object per image")
    predict.add_argument("--html", help="write a page of images, captions (and attention maps)")
    _decode_options(predict)

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
    trained = train(args.out, resume=args.resume, device=args.device,
                    progress=not args.no_progress, time_budget=args.time_budget,
                    max_steps=args.max_steps, **given(args, _DATA_MODEL | TRAIN_FIELDS))
    if trained is None:
        return 0
    if trained.skipped:
        print(f"skipped {len(trained.skipped)} bad records or images, the first: "
              f"{trained.skipped[0]}", file=sys.stderr)
    best = trained.metrics
    shown = ", ".join(f"{k} {best[k]:.4f}" for k in ("loss", "bleu4", "cider",
                                                     "objects_correct") if k in best)
    print(f"validation: {shown} (best checkpoint: {trained.path})")
    return 0


def _decoding(args: argparse.Namespace, n_best: int = 1) -> dict:
    return {"method": args.method, "beam_size": args.beam_size, "n_best": n_best,
            "length_penalty": args.length_penalty, "temperature": args.temperature,
            "seed": args.seed}


def _evaluate(args: argparse.Namespace) -> int:
    trained = TrainedCaptioner.load(args.run, args.device)
    images, skipped = trained.eval_imageset(coco=args.coco, flickr=args.flickr, csv=args.csv,
                                            images=args.images, split=args.split,
                                            scenes=args.scenes, progress=not args.json)
    if skipped:
        print(f"skipped {len(skipped)} bad records or images, the first: {skipped[0]}",
              file=sys.stderr)
    options = _decoding(args)
    options.pop("n_best")
    scores = trained.evaluate(images, **_model_options(options))
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{len(images)} images, {args.method} decoding")
        for name, value in scores.items():
            print(f"{name:>16} {value:.4f}")
    return 0


def _model_options(options: dict) -> dict:
    """TrainedCaptioner.caption_images' options -> Captioner.generate's."""
    import torch

    seed = options.pop("seed", None)
    if options["method"] == "sample":
        options["generator"] = torch.Generator().manual_seed(seed if seed is not None else 0)
    if options["method"] != "beam":
        options.pop("beam_size", None)
        options.pop("length_penalty", None)
    return options


def _predict(args: argparse.Namespace) -> int:
    trained = TrainedCaptioner.load(args.run, args.device)
    results = trained.caption_files(args.images, **_decoding(args, args.nbest))
    for result in results:
        if args.json:
            row = {"image": result.name, "caption": result.text, "score": result.score}
            if args.nbest > 1:
                row["nbest"] = [{"caption": t, "score": s} for t, s in result.alternatives]
            print(json.dumps(row))
            continue
        print(f"{result.name}\t{result.text}")
        for text, score in result.alternatives[1:]:
            print(f"\t{text}\t({score:.3f})")
    if args.html:
        atomic_write_bytes(args.html, html_page(results).encode("utf-8"))
        print(f"page written to {args.html}", file=sys.stderr)
    return 0


def _scenes(args: argparse.Namespace) -> int:
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    scenes = generate_scenes(args.count, args.seed, SceneConfig(max_objects=args.scene_objects))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["image", "caption"])
    for index, scene in enumerate(scenes):
        name = f"scene{index:04d}.png"
        scene.image.save(folder / name)
        writer.writerows([name, caption] for caption in scene.captions)
    atomic_write_bytes(folder / "captions.csv", table.getvalue().encode("utf-8"))
    print(f"{args.count} scenes and their captions written to {folder} (captions.csv: "
          f"--csv {folder / 'captions.csv'} --images {folder})")
    return 0
