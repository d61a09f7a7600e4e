"""``rnnkit translate train | eval | predict``: the command line of translation."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from ..data.parallel import read_aligned
from .common_cli import TRAIN_FIELDS, add_run_options, given
from .translate import TrainedTranslator, TranslateConfig, plot_attention, train

_DATA_MODEL = {f.name for f in fields(TranslateConfig)}


def _decode_options(parser) -> None:
    parser.add_argument("--method", choices=["greedy", "beam", "sample"], default="beam")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--no-unk-replace", dest="replace_unknown", action="store_false",
                        help="keep <unk> instead of the attended source word (word level)")
    parser.add_argument("--device", default="auto")


def add_parser(tasks) -> None:
    translate = tasks.add_parser("translate", help="translate sentences (encoder-decoder)")
    actions = translate.add_subparsers(dest="action", metavar="<action>", required=True)

    train_parser = actions.add_parser("train", help="train on parallel sentences")
    data = train_parser.add_argument_group("data")
    data.add_argument("--train", nargs="+", required=True, metavar="FILE",
                      help="PAIRS.tsv (source<TAB>target) or SOURCE TARGET aligned files")
    data.add_argument("--val", nargs="+", metavar="FILE",
                      help="the same forms (default: 2%% of --train held out)")
    data.add_argument("--reverse", action="store_const", const=True,
                      help="swap the sides (fra.txt is English<TAB>French: fr -> en)")
    data.add_argument("--skip-bad-rows", action="store_const", const=True)
    data.add_argument("--encoding-errors", choices=["strict", "replace"])
    data.add_argument("--tokenization", choices=["subword", "word", "char"])
    data.add_argument("--vocab-size", type=int, help="subword pieces per language")
    data.add_argument("--min-freq", type=int, help="word/char: rarer tokens become <unk>")
    data.add_argument("--lowercase", action="store_const", const=True)
    data.add_argument("--max-len", type=int, help="longer training pairs are dropped, counted")
    model = train_parser.add_argument_group("model")
    model.add_argument("--cell", help="gru, lstm, rnn_tanh, ...")
    model.add_argument("--attention", choices=["general", "dot", "bahdanau", "none"])
    for name in ("embedding-size", "hidden-size", "encoder-layers", "decoder-layers",
                 "batch-size", "eval-sentences"):
        model.add_argument(f"--{name}", type=int)
    for name in ("dropout", "label-smoothing", "teacher-forcing"):
        model.add_argument(f"--{name}", type=float)
    model.add_argument("--unidirectional", dest="bidirectional", action="store_const",
                       const=False)
    model.add_argument("--input-feeding", action="store_const", const=True)
    model.add_argument("--reverse-source", action="store_const", const=True)
    model.add_argument("--untied", dest="tie_embeddings", action="store_const", const=False)
    add_run_options(train_parser, "45m")

    evaluate = actions.add_parser("eval", help="corpus BLEU and chrF (sacreBLEU)")
    evaluate.add_argument("run", metavar="RUN_DIR")
    evaluate.add_argument("--src", required=True, help="source sentences, one per line")
    evaluate.add_argument("--ref", required=True, help="reference translations, aligned")
    evaluate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _decode_options(evaluate)

    predict = actions.add_parser("predict", help="translate sentences (arguments or stdin)")
    predict.add_argument("run", metavar="RUN_DIR")
    predict.add_argument("sentences", nargs="*")
    predict.add_argument("--nbest", type=int, default=1)
    predict.add_argument("--json", action="store_true", help="one JSON object per sentence")
    predict.add_argument("--attention-map", metavar="PNG",
                         help="draw the attention of the first sentence")
    _decode_options(predict)


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "eval": _evaluate, "predict": _predict}[args.action](args)


def _train(args: argparse.Namespace) -> int:
    if not 1 <= len(args.train) <= 2 or (args.val and not 1 <= len(args.val) <= 2):
        raise ValueError("--train and --val take PAIRS.tsv or SOURCE TARGET (1 or 2 files)")
    trained = train(args.out, resume=args.resume, device=args.device,
                    progress=not args.no_progress, time_budget=args.time_budget,
                    max_steps=args.max_steps, **given(args, _DATA_MODEL | TRAIN_FIELDS))
    if trained is None:
        return 0
    for note in trained.notes:
        print(note, file=sys.stderr)
    best = trained.metrics
    print(f"validation: loss {best['loss']:.4f}, BLEU {best['bleu']:.2f}, chrF "
          f"{best['chrf']:.2f} (greedy; best checkpoint: {trained.path})")
    return 0


def _options(args: argparse.Namespace, n_best: int = 1) -> dict:
    return {"method": args.method, "beam_size": args.beam_size, "n_best": n_best,
            "length_penalty": args.length_penalty, "temperature": args.temperature,
            "seed": args.seed, "replace_unknown": args.replace_unknown}


def _evaluate(args: argparse.Namespace) -> int:
    trained = TrainedTranslator.load(args.run, args.device)
    report = read_aligned(args.src, args.ref)
    if report.empty:
        print(f"skipped {report.empty} pairs with an empty side", file=sys.stderr)
    sources = [p.source for p in report.pairs]
    scores = trained.evaluate(sources, [p.target for p in report.pairs], **_options(args))
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{len(sources)} sentences, {args.method} decoding: BLEU {scores['bleu']:.2f}, "
              f"chrF {scores['chrf']:.2f}")
    return 0


def _sentences(args: argparse.Namespace) -> list[str]:
    lines = args.sentences or sys.stdin.read().splitlines()
    sentences = [line for line in lines if line.strip()]
    if not sentences:
        raise ValueError("no sentences to translate: pass them as arguments or on stdin")
    return sentences


def _predict(args: argparse.Namespace) -> int:
    trained = TrainedTranslator.load(args.run, args.device)
    outputs = trained.translate(_sentences(args), **_options(args, args.nbest))
    for output in outputs:
        if args.json:
            row = {"source": output.source, "translation": output.text, "score": output.score}
            if args.nbest > 1:
                row["nbest"] = [{"translation": t, "score": s} for t, s in output.nbest]
            print(json.dumps(row, ensure_ascii=False))
            continue
        print(output.text)
        for text, score in output.nbest[1:]:
            print(f"\t{text}\t({score:.3f})")
    if args.attention_map:
        written = plot_attention(outputs[0], Path(args.attention_map))
        print(f"attention map written to {written}" if written else
              "no attention map: the model has no attention, the translation is empty, "
              "or matplotlib is missing",
              file=sys.stderr)
    return 0
