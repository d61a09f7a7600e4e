"""``rnnkit charlm train | sample | eval | hello``: the command line of the character model."""

from __future__ import annotations

import argparse
import json
import sys

from ..arguments import add_config_arguments, config_values
from . import cli
from .charlm import CharLMTask, SampleOptions, TrainedModel


def add_parser(tasks) -> None:
    actions = cli.add_actions(tasks, "charlm", "character-level language model (char-rnn)")

    train = cli.add_train(actions, CharLMTask,
                          "train on a text file or folder (or the built-in corpus)")
    train.add_argument("--sample-length", type=int, default=300,
                       help="characters to sample when training ends (0: none)")

    sample = cli.add_action(actions, "sample", aliases=("predict",),
                            help="generate text from a trained run")
    sample.add_argument("--prime", default="", help="text to start from")
    add_config_arguments(sample, SampleOptions)
    sample.add_argument("--num-samples", type=int, default=1, help="independent samples, "
                                                                   "generated as one batch")

    evaluate = cli.add_action(actions, "eval", json="one JSON object on stdout",
                              help="loss, bits per char and perplexity on a file")
    evaluate.add_argument("file", help="UTF-8 text file or folder")
    evaluate.add_argument("--encoding-errors", choices=["strict", "replace"], default="strict")

    hello = actions.add_parser(
        "hello", help="the lecture's slide: a vanilla RNN learns 'hello' over [h, e, l, o]")
    hello.add_argument("--hidden-size", type=int, default=3, help="hidden units (the slide: 3)")
    hello.add_argument("--max-steps", type=int, default=2000, help="give up after this many")
    hello.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        return _train(args)
    if args.action in ("sample", "predict"):
        return _sample(args)
    if args.action == "eval":
        return _evaluate(args)
    from ..synthetic.hello import HelloConfig, format_slide, train_hello

    result = train_hello(HelloConfig(hidden_size=args.hidden_size, max_steps=args.max_steps,
                                     seed=args.seed))
    print(format_slide(result))
    return 0 if result.solved else 1


def _train(args: argparse.Namespace) -> int:
    trained = cli.train(CharLMTask, args)
    if trained is None:  # a rank other than 0 of a distributed run
        return 0
    best = trained.metrics
    if args.sample_length > 0:
        print("".join(trained.sample("", args.sample_length, temperature=0.8, seed=0)))
    print(f"validation: loss {best['loss']:.4f} nats/char, {best['bpc']:.4f} bits/char, "
          f"perplexity {best['perplexity']:.2f} (best checkpoint: {trained.path})")
    return 0


def _sample(args: argparse.Namespace) -> int:
    options = config_values(args, SampleOptions)
    if args.num_samples < 1:
        raise ValueError("--num-samples must be >= 1")
    trained = TrainedModel.load(args.run, args.device)
    unknown = trained.vocab.unknown_chars(args.prime)
    if unknown and options.skip_unknown:
        print(f"warning: skipping prime characters the model never saw: "
              f"{', '.join(repr(c) for c in unknown)}", file=sys.stderr)
    settings = vars(options)
    length = settings.pop("length")
    if args.num_samples > 1:
        for text in trained.sample_many(args.prime, length, args.num_samples, **settings):
            print(args.prime + text)
            print()
        return 0
    out = sys.stdout
    out.write(args.prime)
    for i, char in enumerate(trained.sample(args.prime, length, **settings)):
        out.write(char)
        if char == "\n" or i % 32 == 31:
            out.flush()  # stream as the characters come
    out.write("\n")
    out.flush()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    trained = TrainedModel.load(args.run, args.device)
    metrics = trained.evaluate(args.file, args.encoding_errors)
    if args.json:
        print(json.dumps({k: metrics[k] for k in ("loss", "bpc", "perplexity")}))
    else:
        print(f"{args.file}: loss {metrics['loss']:.4f} nats/char, {metrics['bpc']:.4f} "
              f"bits/char, perplexity {metrics['perplexity']:.2f}")
    return 0
