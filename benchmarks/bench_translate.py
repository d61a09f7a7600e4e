"""Translation quality and training time on a real corpus, greedy and beam search.

    D=../shared/data/multi30k
    python benchmarks/bench_translate.py --train $D/train.en $D/train.de --val $D/val.en $D/val.de
    python benchmarks/bench_translate.py --train ../shared/data/tatoeba_fra_eng/fra_train.txt \
        --set reverse=True --budget 20m            # fr -> en, 2% of the pairs held out

Trains ``rnnkit translate`` with its defaults (changed by ``--set key=value``, the names of
``rnnkit translate train``'s options) for the budget (training time), then translates the
validation sentences with greedy decoding and with beam search and reports sacreBLEU's corpus
BLEU and chrF on the detokenised output. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnnkit.tasks import translate

sys.path.insert(0, str(Path(__file__).parent))
from bench_sentiment import parse_setting  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", nargs="+", required=True)
    parser.add_argument("--val", nargs="+")
    parser.add_argument("--budget", default="45m")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append",
                        default=[], metavar="KEY=VALUE", help="change one default (repeatable)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--out", help="run folder parent (default: a temporary one)")
    parser.add_argument("--json", help="append the summary as one JSON line to this file")
    args = parser.parse_args(argv)
    options = dict(args.settings)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; settings {options}",
          flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(args.out or scratch) / f"translate-{time.strftime('%H%M%S')}"
        start = time.perf_counter()
        trained = translate.train(run_dir, train=args.train, val=args.val,
                                  time_budget=args.budget, progress=False, **options)
        wall = time.perf_counter() - start
        # the same validation pairs as training
        data = translate.TranslateTask.load_data(trained.config)
        sources, references = data.val_texts
        summary = {"settings": options, "budget": args.budget, "steps": trained.result.steps,
                   "train_seconds": round(trained.result.train_seconds),
                   "wall_seconds": round(wall), "stopped": trained.result.stopped_because,
                   "sentences": len(sources)}
        for name, decoding in (("greedy", {"method": "greedy"}),
                               (f"beam{args.beam_size}",
                                {"method": "beam", "beam_size": args.beam_size})):
            started = time.perf_counter()
            summary[name] = trained.evaluate(sources, references, **decoding)
            summary[name]["seconds"] = round(time.perf_counter() - started, 1)
            print(f"{name}: {summary[name]}", flush=True)
        for output in trained.translate(sources[:5]):
            print(f"  {output.source}\n  -> {output.text}")
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as sink:
            sink.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
