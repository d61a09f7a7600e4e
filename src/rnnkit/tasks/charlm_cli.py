"""``rnnkit charlm train | sample | eval | hello``: the command line of the character model."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from ..train.runtime import resolve_device
from ..train.trainer import TrainConfig
from .charlm import CharLMConfig, TrainedModel, train
from .common_cli import duration, given

# options of CharLMConfig and TrainConfig as the command line spells them (None = default)
_DATA_MODEL = {f.name for f in fields(CharLMConfig)}
_TRAIN = {f.name for f in fields(TrainConfig)} - {"time_budget", "max_steps"}


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a value in (0, 1], got {text}")
    return value


def add_parser(tasks) -> None:
    charlm = tasks.add_parser("charlm", help="character-level language model (char-rnn)")
    actions = charlm.add_subparsers(dest="action", metavar="<action>", required=True)

    train = actions.add_parser("train", help="train on a text file or folder (or the built-in "
                                             "corpus)")
    data = train.add_argument_group("data")
    data.add_argument("--text", help="UTF-8 text file or folder (default: the built-in corpus, "
                                     "the Python language reference shipped with Python)")
    data.add_argument("--val", help="validation text (default: the last --val-fraction of the "
                                    "training text)")
    data.add_argument("--val-fraction", type=float)
    data.add_argument("--encoding-errors", choices=["strict", "replace"],
                      help="what to do with bytes that are not UTF-8 (default: strict)")
    model = train.add_argument_group("model")
    model.add_argument("--cell", help="rnn_tanh, rnn_relu, lstm, gru or layernorm_lstm")
    for name in ("num-layers", "hidden-size", "embedding-size", "seq-len", "batch-size"):
        model.add_argument(f"--{name}", type=int)
    model.add_argument("--dropout", type=float)
    model.add_argument("--tie-weights", action="store_const", const=True)
    run = train.add_argument_group("run")
    run.add_argument("--out", help="run folder (checkpoints, metrics, curves)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    run.add_argument("--time-budget", type=duration,
                     help="training time, e.g. 75s, 10m, 2h (evaluation not counted)")
    run.add_argument("--max-steps", type=int)
    for name, kind in (("learning-rate", float), ("min-learning-rate", float),
                       ("warmup-steps", int), ("weight-decay", float), ("grad-clip", float),
                       ("eval-every", int), ("patience", int), ("log-every", int),
                       ("seed", int)):
        run.add_argument(f"--{name}", type=kind)
    run.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    run.add_argument("--no-amp", dest="amp", action="store_const", const=False,
                     help="no mixed precision on GPUs")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--sample-length", type=int, default=300,
                     help="characters to sample when training ends (0: none)")

    sample = actions.add_parser("sample", help="generate text from a trained run")
    sample.add_argument("run", metavar="RUN_DIR", help="run folder or checkpoint file")
    sample.add_argument("--prime", default="", help="text to start from")
    sample.add_argument("--length", type=int, default=500, help="characters to generate")
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--top-k", type=int)
    sample.add_argument("--top-p", type=_probability)
    sample.add_argument("--greedy", action="store_true", help="always the likeliest character")
    sample.add_argument("--seed", type=int)
    sample.add_argument("--num-samples", type=int, default=1, help="independent samples, "
                                                                   "generated as one batch")
    sample.add_argument("--skip-unknown", action="store_true",
                        help="drop prime characters the model never saw (with a warning)")
    sample.add_argument("--device", default="auto")

    evaluate = actions.add_parser("eval", help="loss, bits per char and perplexity on a file")
    evaluate.add_argument("run", metavar="RUN_DIR", help="run folder or checkpoint file")
    evaluate.add_argument("file", help="UTF-8 text file or folder")
    evaluate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    evaluate.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict")
    evaluate.add_argument("--device", default="auto")

    hello = actions.add_parser(
        "hello", help="the lecture's slide: a vanilla RNN learns 'hello' over [h, e, l, o]")
    hello.add_argument("--hidden-size", type=int, default=3, help="hidden units (the slide: 3)")
    hello.add_argument("--max-steps", type=int, default=2000, help="give up after this many")
    hello.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        return _train(args)
    if args.action == "sample":
        return _sample(args)
    if args.action == "eval":
        return _evaluate(args)
    from .hello import HelloConfig, format_slide, train_hello

    result = train_hello(HelloConfig(hidden_size=args.hidden_size, max_steps=args.max_steps,
                                     seed=args.seed))
    print(format_slide(result))
    return 0 if result.solved else 1


def _train(args: argparse.Namespace) -> int:
    options = given(args, _DATA_MODEL | _TRAIN)
    trained = train(args.out, resume=args.resume, device=args.device,
                    progress=not args.no_progress, time_budget=args.time_budget,
                    max_steps=args.max_steps, **options)
    if trained is None:  # a rank other than 0 of a distributed run
        return 0
    result, best = trained.result, trained.metrics
    print(f"stopped after {result.steps} steps ({result.stopped_because}), "
          f"{result.train_seconds:.0f} s of training", file=sys.stderr)
    if args.sample_length > 0:
        print("".join(trained.sample("", args.sample_length, temperature=0.8, seed=0)))
    print(f"validation: loss {best['loss']:.4f} nats/char, {best['bpc']:.4f} bits/char, "
          f"perplexity {best['perplexity']:.2f} (best checkpoint: {trained.path})")
    return 0


def _sample(args: argparse.Namespace) -> int:
    if args.length < 0 or args.num_samples < 1:
        raise ValueError("--length must be >= 0 and --num-samples >= 1")
    trained = TrainedModel.load(args.run, resolve_device(args.device))
    unknown = trained.vocab.unknown_chars(args.prime)
    if unknown and args.skip_unknown:
        print(f"warning: skipping prime characters the model never saw: "
              f"{', '.join(repr(c) for c in unknown)}", file=sys.stderr)
    options = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                   greedy=args.greedy, seed=args.seed, skip_unknown=args.skip_unknown)
    if args.num_samples > 1:
        for text in trained.sample_many(args.prime, args.length, args.num_samples, **options):
            print(args.prime + text)
            print()
        return 0
    out = sys.stdout
    out.write(args.prime)
    for i, char in enumerate(trained.sample(args.prime, args.length, **options)):
        out.write(char)
        if char == "\n" or i % 32 == 31:
            out.flush()  # stream as the characters come
    out.write("\n")
    out.flush()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    trained = TrainedModel.load(args.run, resolve_device(args.device))
    metrics = trained.evaluate(args.file, args.encoding_errors)
    if args.json:
        print(json.dumps({k: metrics[k] for k in ("loss", "bpc", "perplexity")}))
    else:
        print(f"{args.file}: loss {metrics['loss']:.4f} nats/char, {metrics['bpc']:.4f} "
              f"bits/char, perplexity {metrics['perplexity']:.2f}")
    return 0


