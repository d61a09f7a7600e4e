"""``rnnkit sentiment train | eval | predict | download``: the command line of the text
classifier."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..arguments import add_config_arguments, config_values
from ..data.files import atomic_write_bytes
from ..data.labelled_sets import SETS, download_set
from ..metrics import plot_confusion
from ..pages.sentiment import colour_explanation, html_explanation
from . import cli
from .sentiment import PredictOptions, SentimentTask, TrainedClassifier


def add_parser(tasks) -> None:
    actions = cli.add_actions(tasks, "sentiment", "classify texts (many-to-one): sentiment, "
                                                   "topics, intents")

    cli.add_train(actions, SentimentTask, "train on labelled texts")

    evaluate = cli.add_action(actions, "eval", json="one JSON object on stdout",
                              help="accuracy, macro-F1, per class, confusion")
    evaluate.add_argument("file", help="labelled texts in the training data's format")
    evaluate.add_argument("--plot", help="confusion matrix PNG (default: RUN_DIR/confusion.png)")

    predict = cli.add_action(actions, "predict", json="one JSON object per text",
                             help="label texts (arguments, a file or stdin)")
    predict.add_argument("texts", nargs="*", help="texts to label (none: --file or stdin)")
    predict.add_argument("--file", help="one text per line")
    add_config_arguments(predict, PredictOptions)
    predict.add_argument("--html", help="write the explanation as an HTML page here")

    download = actions.add_parser(
        "download", help="fetch SST-2 (sst2: sentences; sst2-phrases: GLUE's copy, every "
                         "labelled phrase too) or IMDB from their official sources "
                         "(sha256-checked, cached)")
    download.add_argument("dataset", choices=sorted(SETS))
    download.add_argument("--cache", metavar="DIR",
                          help="download folder (default: $RNNKIT_DATA or ~/.cache/rnnkit)")


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _evaluate, "predict": _predict,
            "download": _download}[args.action](args)


def _download(args: argparse.Namespace) -> int:
    """Fetch the set, then print the commands that use it."""
    found, out = download_set(args.dataset, args.cache), f"runs/{args.dataset}"
    val = f" --val {found.val}" if found.val else ""
    named = f" --format {found.format}" if found.format else ""
    print(f"rnnkit sentiment train --train {found.train}{val}{named} --out {out}")
    if found.test:
        print(f"rnnkit sentiment eval {out} {found.test}")
    return 0


def _train(args: argparse.Namespace) -> int:
    trained = cli.train(SentimentTask, args)
    if trained is not None:  # None: a rank other than 0 of a distributed run
        accuracy, macro_f1 = trained.metrics["accuracy"], trained.metrics["macro_f1"]
        print(f"validation: accuracy {accuracy:.4f}, macro-F1 {macro_f1:.4f} (best checkpoint: "
              f"{trained.path})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    trained = TrainedClassifier.load(args.run, args.device)
    report = trained.evaluate(args.file)
    if args.plot or Path(args.run).is_dir():  # a checkpoint file alone: no folder to draw in
        plot_confusion(report, args.plot or Path(args.run) / "confusion.png")
    metrics = {"accuracy": report.accuracy, "macro_f1": report.macro_f1}
    print(json.dumps(metrics) if args.json else report.to_text())
    return 0


def _predict(args: argparse.Namespace) -> int:
    options = config_values(args, PredictOptions)
    options.explain = options.explain or bool(args.html)  # the page shows the explanations
    trained = TrainedClassifier.load(args.run, args.device)
    texts = cli.input_lines(args.texts, args.file, "texts to label")
    rows = trained.predict(texts, **vars(options))
    for row in rows:
        if args.json:
            print(json.dumps(row))
            continue
        shown = " ".join(f"{k}={v:.3f}" for k, v in row["probabilities"].items())
        text = colour_explanation(row["explanation"]) if args.explain else row["text"]
        print(f"{row['label']}\t{shown}\t{text}")
    if args.html:
        atomic_write_bytes(args.html, html_explanation(rows).encode("utf-8"))
        print(f"explanations written to {args.html}", file=sys.stderr)
    return 0
