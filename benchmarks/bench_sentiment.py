"""Sentiment classification on a real data set: accuracy and training time, over several seeds.

    python benchmarks/bench_sentiment.py --train ../shared/data/sst2/stsa.binary.train \
        --val ../shared/data/sst2/stsa.binary.dev --seeds 0 1 2
    python benchmarks/bench_sentiment.py --train ../shared/data/imdb/imdb_train.jsonl.gz \
        --seeds 0 --set max_len=400
    python benchmarks/bench_sentiment.py --train ... --set vectors=glove-6b-50d --set dropout=0.4

Trains ``rnnkit sentiment`` with its shipped defaults (changed only by ``--set key=value``, the
same names as ``rnnkit sentiment train``'s options) once per seed, and reports the best
validation accuracy and macro-F1 of each run, their mean and spread, and the training time (the
trainer's clock: evaluation and saving not counted) and wall time. Without ``--val`` the run
holds out its usual shuffled 10% of ``--train``. A dev set of n texts gives accuracies in steps
of 1/n and a seed-to-seed spread of about sqrt(p(1-p)/n) (1.3 points on SST-2's 872): compare
means over seeds, not single runs. Run it on a quiet machine: one benchmark at a time.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.tasks import sentiment


def parse_setting(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as a Python literal when it is one (``0.5``, ``True``,
    ``None``), else kept as text (``lstm``, a path)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="labelled training data")
    parser.add_argument("--val", help="labelled validation data (default: 10%% of --train)")
    parser.add_argument("--format", default="auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", help="time budget per run (default: the task's own)")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append",
                        default=[], metavar="KEY=VALUE", help="change one default (repeatable)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--json", help="append the summary as one JSON line to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = dict(args.settings)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; settings {options}",
          flush=True)

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out or scratch)
        for seed in args.seeds:
            start = time.perf_counter()
            trained = sentiment.train(folder / f"seed{seed}-{time.strftime('%H%M%S')}",
                                      train=args.train, val=args.val, format=args.format,
                                      time_budget=args.budget, seed=seed, progress=False,
                                      **options)
            wall = time.perf_counter() - start
            result = trained.result
            runs.append({"seed": seed, "accuracy": result.best.get("accuracy", float("nan")),
                         "macro_f1": result.best.get("macro_f1", float("nan")),
                         "steps": result.steps, "train_seconds": round(result.train_seconds, 1),
                         "wall_seconds": round(wall, 1), "stopped": result.stopped_because})
            print(json.dumps(runs[-1]), flush=True)

    accuracies = [r["accuracy"] for r in runs]
    summary = {"train": args.train, "val": args.val, "settings": options, "budget": args.budget,
               "runs": runs, "mean_accuracy": statistics.fmean(accuracies),
               "stdev_accuracy": statistics.stdev(accuracies) if len(runs) > 1 else 0.0,
               "mean_train_seconds": statistics.fmean(r["train_seconds"] for r in runs),
               "mean_wall_seconds": statistics.fmean(r["wall_seconds"] for r in runs)}
    print(f"accuracy {summary['mean_accuracy']:.2%} +- {summary['stdev_accuracy']:.2%} over "
          f"{len(runs)} seeds; training {summary['mean_train_seconds']:.0f} s, wall "
          f"{summary['mean_wall_seconds']:.0f} s per run")
    if args.json:
        with open(args.json, "a", encoding="utf-8") as sink:
            sink.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
