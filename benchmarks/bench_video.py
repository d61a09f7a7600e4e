"""Video classification on the built-in motions: the RNN against the order-free baseline.

    python benchmarks/bench_video.py                    # the shipped recipe, 10 minutes each
    python benchmarks/bench_video.py --budget 5m --set cell=lstm

Trains ``rnnkit video`` twice with the same settings and data (the built-in motion clips, 1 FPS):
the RNN model, and the order-free baseline (``order_free``: the mean of the same CNN's frame
features, no RNN). Each run's budget counts training time; the wall time printed counts all of
it (writing and reading the clips, training, evaluations). Then both classify fresh test clips
(another seed) and the script prints their accuracy and confusion: the baseline sees which
frames a clip holds but not their order, so it cannot tell a motion from its time reversal
(left from right, up from down, grow from shrink) nor a bounce from a straight move: its
ceiling is about 50%. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.tasks import video

sys.path.insert(0, str(Path(__file__).parent))
from bench_sentiment import parse_setting  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="10m", help="training time per model")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append",
                        default=[], metavar="KEY=VALUE", help="change one default (repeatable)")
    parser.add_argument("--test-clips", type=int, default=25, help="fresh clips per class")
    parser.add_argument("--rnn", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--baseline-budget", help="the baseline's budget (default: --budget)")
    parser.add_argument("--out", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--json", help="append the summary as one JSON line to this file")
    args = parser.parse_args(argv)
    options = dict(args.settings)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; settings {options}",
          flush=True)
    summary = {"settings": options, "budget": args.budget}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out or scratch)
        motions = folder / "motions"  # both runs read the same clips
        for name, order_free in (("rnn", False), ("order_free", True)):
            if (order_free and not args.baseline) or (not order_free and not args.rnn):
                continue
            start = time.perf_counter()
            budget = (args.baseline_budget or args.budget) if order_free else args.budget
            trained = video.train(folder / f"{name}-{time.strftime('%H%M%S')}",
                                  time_budget=budget, progress=False,
                                  motions_dir=str(motions), order_free=order_free, **options)
            wall = time.perf_counter() - start
            clips, _ = trained.eval_clips(motions=args.test_clips, progress=False)
            report = trained.evaluate(clips)
            result = trained.result
            summary[name] = {"budget": budget, "accuracy": report.accuracy,
                             "macro_f1": report.macro_f1, "steps": result.steps,
                             "train_seconds": round(result.train_seconds),
                             "wall_seconds": round(wall), "stopped": result.stopped_because}
            print(f"{name}: test accuracy {report.accuracy:.2%} on {len(clips)} fresh clips; "
                  f"{result.steps} steps, {result.train_seconds:.0f} s training, {wall:.0f} s "
                  f"wall ({result.stopped_because})\n{report.to_text()}", flush=True)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as sink:
            sink.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
