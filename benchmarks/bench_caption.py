"""Image captioning on the built-in scenes: quality on fresh scenes after a training budget.

    python benchmarks/bench_caption.py                       # the shipped recipe, 10 minutes
    python benchmarks/bench_caption.py --budget 5m --set conditioning=attention
    python benchmarks/bench_caption.py --coco ../shared/data/coco_mini/captions.json \
        --images ../shared/data/coco_mini/images --budget 2m    # the real-format path

Trains ``rnnkit caption`` with its defaults (changed only by ``--set key=value``, the names of
``rnnkit caption train``'s options) for the budget (training time: evaluation not counted), then
captions test images no run has seen (scenes from another seed; for files, the validation part)
with greedy decoding and with beam search, and reports BLEU-1..4, CIDEr-D and, for scenes, the
share of captions that name every shape with its colour (``objects_correct``). Wall time counts
everything: data generation, training, evaluations. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.tasks import caption

sys.path.insert(0, str(Path(__file__).parent))
from bench_sentiment import parse_setting  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="10m", help="training time (default 10m)")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append",
                        default=[], metavar="KEY=VALUE", help="change one default (repeatable)")
    parser.add_argument("--coco", help="COCO captions file (with --images) instead of scenes")
    parser.add_argument("--images")
    parser.add_argument("--test-scenes", type=int, default=500)
    parser.add_argument("--beam-size", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="run folder (default: a temporary one)")
    parser.add_argument("--json", help="append the summary as one JSON line to this file")
    args = parser.parse_args(argv)
    options = dict(args.settings)
    if args.coco:
        options.update(coco=args.coco, images=args.images)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; settings {options}",
          flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(args.out or scratch) / f"caption-{time.strftime('%H%M%S')}"
        start = time.perf_counter()
        trained = caption.train(run_dir, time_budget=args.budget, seed=args.seed,
                                progress=False, **options)
        wall = time.perf_counter() - start
        if trained.config.uses_scenes:
            test, _ = trained.eval_imageset(scenes=args.test_scenes, progress=False)
        else:
            test = caption.CaptionTask.load_data(trained.config, run_dir=run_dir).val
        greedy = trained.evaluate(test, method="greedy")
        beam = trained.evaluate(test, method="beam", beam_size=args.beam_size)
        result = trained.result
    summary = {"settings": options, "budget": args.budget, "steps": result.steps,
               "train_seconds": round(result.train_seconds, 1), "wall_seconds": round(wall, 1),
               "stopped": result.stopped_because, "test_images": len(test),
               "greedy": greedy, f"beam{args.beam_size}": beam}
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as sink:
            sink.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
