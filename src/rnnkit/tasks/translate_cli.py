"""``rnnkit translate train | eval | predict``: the command line of translation."""

from __future__ import annotations

import argparse
import json
import sys

from ..arguments import add_config_arguments, config_values
from ..data.parallel import read_aligned
from . import cli
from .translate import DecodeOptions, TrainedTranslator, TranslateTask


def add_parser(tasks) -> None:
    actions = cli.add_actions(tasks, "translate", "translate sentences (encoder-decoder)")

    cli.add_train(actions, TranslateTask, "train on parallel sentences")

    evaluate = cli.add_action(actions, "eval", json="one JSON object on stdout",
                              help="corpus BLEU and chrF (sacreBLEU)")
    evaluate.add_argument("--src", required=True, help="source sentences, one per line")
    evaluate.add_argument("--ref", required=True, help="reference translations, aligned")
    add_config_arguments(evaluate, DecodeOptions, skip=("n_best",))

    predict = cli.add_action(actions, "predict", json="one JSON object per sentence",
                             help="translate sentences (arguments or stdin)")
    predict.add_argument("sentences", nargs="*", help="default: --file or stdin")
    predict.add_argument("--file", help="one sentence per line")
    predict.add_argument("--attention-map", metavar="PNG",
                         help="draw the attention of the first sentence")
    add_config_arguments(predict, DecodeOptions)


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _evaluate, "predict": _predict}[args.action](args)


def _train(args: argparse.Namespace) -> int:
    trained = cli.train(TranslateTask, args)
    if trained is None:  # a rank other than 0 of a distributed run
        return 0
    best = trained.metrics
    print(f"validation: loss {best['loss']:.4f}, BLEU {best['bleu']:.2f}, chrF "
          f"{best['chrf']:.2f} (greedy; best checkpoint: {trained.path})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    trained, options = _loaded(args)
    report = read_aligned(args.src, args.ref)
    if report.empty:
        print(f"skipped {report.empty} pairs with an empty side", file=sys.stderr)
    sources = [p.source for p in report.pairs]
    scores = trained.evaluate(sources, [p.target for p in report.pairs], **vars(options))
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{len(sources)} sentences, {options.method} decoding: BLEU "
              f"{scores['bleu']:.2f}, chrF {scores['chrf']:.2f}")
    return 0


def _loaded(args: argparse.Namespace) -> tuple[TrainedTranslator, DecodeOptions]:
    """The run of ``eval`` and ``predict``, and how to decode (checked before loading)."""
    options = config_values(args, DecodeOptions)
    return TrainedTranslator.load(args.run, args.device), options


def _predict(args: argparse.Namespace) -> int:
    trained, options = _loaded(args)
    sentences = cli.input_lines(args.sentences, args.file, "sentences to translate")
    outputs = trained.translate(sentences, **vars(options))
    for output in outputs:
        if args.json:  # the rows of TrainedTranslator.predict
            print(json.dumps(output.to_json(options.n_best > 1), ensure_ascii=False))
            continue
        print(output.text)
        for text, score in output.nbest[1:]:
            print(f"\t{text}\t({score:.3f})")
    if args.attention_map:
        from ..inspect.attention import plot_attention

        first = outputs[0]
        written = plot_attention(first.attention, first.source_pieces, first.target_pieces,
                                 args.attention_map)
        print(f"attention map written to {written}" if written else
              "no attention map: the model has no attention, the translation is empty, "
              "or matplotlib is missing", file=sys.stderr)
    return 0
