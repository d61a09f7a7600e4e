"""``rnnkit inspect gradients | memory | units | curves``: look inside recurrent networks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..data.files import atomic_write_bytes
from ..train.runtime import parse_duration

CELLS = ("rnn_tanh", "lstm", "gru")


def add_parser(tasks) -> None:
    inspect = tasks.add_parser("inspect", help="see inside: gradient flow through time, "
                                               "memory benchmarks, hidden units, curves")
    actions = inspect.add_subparsers(dest="action", metavar="<action>", required=True)

    gradients = actions.add_parser(
        "gradients", help="||dL/dh_t|| through time (no run: fresh RNN vs LSTM vs GRU)")
    gradients.add_argument("run", nargs="?", metavar="RUN_DIR",
                           help="a character model's run (default: fresh layers compared)")
    gradients.add_argument("--text", help="the input for a run's model (default: its prime "
                                          "of the built-in corpus)")
    gradients.add_argument("--steps", type=int, default=100, help="T, steps of the input")
    gradients.add_argument("--loss", choices=["last", "every"], default="last",
                           help="a loss at the last step only, or at every step")
    gradients.add_argument("--cells", nargs="+", default=list(CELLS))
    gradients.add_argument("--hidden-size", type=int, default=64)
    gradients.add_argument("--forget-bias", type=float,
                           help="LSTM forget-gate bias for the fresh layers (torch's init: ~0)")
    gradients.add_argument("--out", default="gradients.png", help="the plot (PNG)")

    memory = actions.add_parser("memory", help="train each cell at each length on a memory "
                                               "task; accuracy or MSE against length")
    memory.add_argument("--task", dest="memory_task", default="adding",
                        choices=["copy", "adding", "pixels", "pixels_permuted"])
    memory.add_argument("--cells", nargs="+", default=list(CELLS))
    memory.add_argument("--lengths", nargs="+", type=int, default=[10, 25, 50, 100, 200])
    memory.add_argument("--budget", default="60s", help="training time per cell and length")
    memory.add_argument("--hidden-size", type=int, default=64)
    memory.add_argument("--learning-rate", type=float, default=1e-3)
    memory.add_argument("--seed", type=int, default=0)
    memory.add_argument("--out", default="memory.png", help="the plot (PNG)")
    memory.add_argument("--json", action="store_true", help="one JSON object on stdout")

    units = actions.add_parser("units", help="a character model's hidden units on a text, "
                                             "as an HTML page")
    units.add_argument("run", metavar="RUN_DIR")
    units.add_argument("--text", help="a text file (default: the start of the validation text "
                                      "or the built-in corpus)")
    units.add_argument("--chars", type=int, default=3000, help="characters read")
    units.add_argument("--unit", nargs=2, type=int, action="append", metavar=("LEVEL", "UNIT"),
                       help="show this unit too (repeatable)")
    units.add_argument("--top", type=int, default=2, help="best units shown per property")
    units.add_argument("--out", default="units.html")

    curves = actions.add_parser("curves", help="a run's training curves as PNG")
    curves.add_argument("run", metavar="RUN_DIR")
    curves.add_argument("--out", help="the PNG (default: RUN_DIR/curves.png)")


def run(args: argparse.Namespace) -> int:
    return {"gradients": _gradients, "memory": _memory, "units": _units,
            "curves": _curves}[args.action](args)


def _gradients(args: argparse.Namespace) -> int:
    from .gradients import compare_cells, flow_table, gradient_flow, hh_spectrum, plot_flows

    if args.run is None:
        flows = compare_cells(args.cells, hidden_size=args.hidden_size, steps=args.steps,
                              loss=args.loss, forget_bias=args.forget_bias)
        title = (f"fresh layers, H={args.hidden_size}, T={args.steps}, loss at "
                 f"{'the last step' if args.loss == 'last' else 'every step'}")
        spectra = {}
    else:
        model, ids = _charlm_input(args.run, args.text, args.steps)
        rnn = model.model.rnn
        with torch.no_grad():
            x = model.model.embedding(ids[None])  # (1, T) -> (1, T, E)
        flows = [gradient_flow(rnn, x, loss=args.loss)]
        title = f"{args.run}: {rnn.cell}, T={args.steps}"
        spectra = hh_spectrum(rnn, k=5)
    print(title)
    print(flow_table(flows))
    for name, values in spectra.items():
        print(f"W_hh {name}: largest singular values "
              + ", ".join(f"{v:.3f}" for v in values.tolist()))
    written = plot_flows(flows, args.out)
    print(f"plot written to {written}" if written else "no plot: matplotlib is not installed",
          file=sys.stderr)
    return 0


def _charlm_input(run_dir: str, text: str | None, steps: int):
    from ..data.text import default_corpus, read_text
    from ..tasks.charlm import TrainedModel

    model = TrainedModel.load(run_dir)
    source = read_text(text) if text else default_corpus()
    ids = model.vocab.encode(source[:steps], unknown="skip")
    if len(ids) < steps:
        raise ValueError(f"expected at least {steps} characters of input, got {len(ids)}")
    return model, ids


def _memory(args: argparse.Namespace) -> int:
    from .memory import longest_solved, plot_sweep, sweep

    budget = parse_duration(args.budget)
    results = sweep(args.memory_task, args.cells, args.lengths, time_budget_per_run=budget,
                    hidden_size=args.hidden_size, lr=args.learning_rate, seed=args.seed,
                    progress=not args.json)
    longest = longest_solved(results)
    if args.json:
        print(json.dumps({"task": args.memory_task, "longest_solved": longest,
                          "results": [r.__dict__ for r in results]}))
    else:
        name = results[0].metric_name
        print(f"{args.memory_task}: {name} per cell and length ({args.budget} per run)")
        print("length  " + "".join(f"{c:>12}" for c in args.cells))
        for length in sorted(args.lengths):
            row = {r.cell: r for r in results if r.length == length}
            print(f"{length:>6}  " + "".join(
                f"{row[c].metric:>11.4f}{'*' if row[c].solved else ' '}" for c in args.cells))
        print("* solved; longest solved: " + ", ".join(
            f"{c} {longest[c] if longest[c] is not None else '-'}" for c in args.cells))
    written = plot_sweep(results, args.out)
    if written:
        print(f"plot written to {written}", file=sys.stderr)
    return 0


def _units(args: argparse.Namespace) -> int:
    from ..data.text import default_corpus, read_text
    from ..tasks.charlm import TrainedModel
    from .units import correlated_units, unit_activations, units_page

    model = TrainedModel.load(args.run)
    text = (read_text(args.text) if args.text else default_corpus())[:args.chars]
    ids = model.vocab.encode(text, unknown="skip")  # characters the model never saw: dropped
    text = model.vocab.decode(ids)
    activations = unit_activations(model.model, ids)  # (T, L, H)
    best = correlated_units(activations, text, top=args.top)
    picks = [(level, unit, f"{name}: r = {r:+.2f}") for name, found in best.items()
             for level, unit, r in found]
    picks += [(level, unit, "chosen") for level, unit in (args.unit or [])]
    for name, found in best.items():
        shown = ", ".join(f"level {level} unit {unit} (r = {r:+.2f})" for level, unit, r in found)
        print(f"{name:>14}: {shown}")
    atomic_write_bytes(args.out, units_page(text, activations, picks).encode("utf-8"))
    print(f"page written to {args.out}", file=sys.stderr)
    return 0


def _curves(args: argparse.Namespace) -> int:
    from ..train.plots import training_curves
    from ..train.trainer import CURVES, METRICS

    log = Path(args.run) / METRICS
    if not log.is_file():
        raise FileNotFoundError(f"{log}: no metrics log (is {args.run} a run folder?)")
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
    written = training_curves(rows, args.out or Path(args.run) / CURVES)
    print(f"curves written to {written}" if written else "no plot: matplotlib is not installed")
    return 0
