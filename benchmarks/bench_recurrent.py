"""Speed of rnnkit.nn.Recurrent against torch.nn on this machine (run by hand, on a quiet machine).

For each shape (T, B, I, H) and cell kind: a training step (forward + loss + backward) and
inference (forward under no_grad), as milliseconds, GFLOP/s, the ratio to torch.nn measured in
the same run (the two alternate, round by round), and the fraction of this machine's fp32
matrix-multiply peak (torch.mm of 2048 x 2048, measured first).

    python benchmarks/bench_recurrent.py                 # both shapes of the README
    python benchmarks/bench_recurrent.py --quick         # fewer repeats
    python benchmarks/bench_recurrent.py --only lstm gru --json results.json

FLOPs count only the matrix products (2 * B * T * (I + H) * G * H per layer and direction for
the forward pass, three times that for training), the usual convention: elementwise work is free.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from rnnkit.nn import Recurrent, gemm

SHAPES = [(100, 64, 128, 512), (100, 32, 64, 256)]  # (T, B, I, H)
GATES = {"rnn_tanh": 1, "lstm": 4, "gru": 3, "layernorm_lstm": 4}


@dataclass
class Row:
    shape: str
    case: str
    mode: str  # "train" or "infer"
    ms: float
    gflops: float
    vs_torch: float  # median over alternating rounds of reference time / this time
    of_peak: float


def measure(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_against(fn: Callable[[], object], reference: Callable[[], object],
                    rounds: int) -> tuple[float, float, float]:
    """``(seconds of fn, seconds of reference, median of reference/fn per round)``.

    The two alternate, round after round, so that a machine that speeds up or slows down
    (frequency, a neighbour) moves both and the ratio stays honest.
    """
    for _ in range(2):
        fn()
        reference()
    ours, theirs, ratios = [], [], []
    for _ in range(rounds):
        a = measure(fn, 1, warmup=0)
        b = measure(reference, 1, warmup=0)
        ours.append(a)
        theirs.append(b)
        ratios.append(b / a)
    return statistics.median(ours), statistics.median(theirs), statistics.median(ratios)


def matmul_peak(repeats: int) -> tuple[float, float]:
    """fp32 GFLOP/s of a large square product: ``(torch.mm (MKL here), oneDNN)``.

    The larger is this machine's practical peak, the ceiling for any RNN here.
    """
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    flops = 2 * n**3
    return (flops / measure(lambda: a @ b, repeats) / 1e9,
            flops / measure(lambda: gemm.mm_t(a, b), repeats) / 1e9)


def forward_flops(kind: str, T: int, B: int, I: int, H: int) -> float:
    return 2 * B * T * (I + H) * GATES[kind] * H


def torch_module(kind: str, I: int, H: int) -> nn.Module:
    if kind == "lstm":
        return nn.LSTM(I, H, batch_first=True)
    if kind == "gru":
        return nn.GRU(I, H, batch_first=True)
    return nn.RNN(I, H, batch_first=True)


def step_fns(module: nn.Module, x: torch.Tensor, call: Callable) -> tuple[Callable, Callable]:
    def train():
        module.zero_grad(set_to_none=True)
        out = call(module, x)
        out.square().mean().backward()

    def infer():  # evaluation mode: no dropout of any kind
        module.eval()
        with torch.no_grad():
            call(module, x)
        module.train()

    return train, infer


def run(shapes, only, repeats) -> tuple[float, list[Row]]:
    torch.manual_seed(0)
    mkl, onednn = matmul_peak(repeats)
    peak = max(mkl, onednn)
    print(f"fp32 matmul, 2048 x 2048: torch.mm {mkl:.0f} GFLOP/s, oneDNN {onednn:.0f} GFLOP/s "
          f"on {torch.get_num_threads()} threads ({platform.machine()}), torch {torch.__version__}")
    rows: list[Row] = []
    for T, B, I, H in shapes:
        shape = f"T={T} B={B} I={I} H={H}"
        print(f"\n{shape}")
        x = torch.randn(B, T, I)
        context = torch.randn(B, H)
        # (name, kind for the FLOP count, module, how to call it, the case it is compared to)
        cases: list[tuple[str, str, nn.Module, Callable, str]] = []
        plain = lambda m, x: m(x)[0]  # noqa: E731
        conditioned = lambda m, x, v=context: m(x, context=v)[0]  # noqa: E731
        for kind in ("lstm", "gru", "rnn_tanh"):
            reference = f"torch.nn {kind}"
            cases.append((reference, kind, torch_module(kind, I, H), plain, reference))
            cases.append((f"rnnkit {kind}", kind, Recurrent(kind, I, H), plain, reference))
        cases.append(("rnnkit lstm+context", "lstm", Recurrent("lstm", I, H, context_size=H),
                      conditioned, "torch.nn lstm"))
        for name, layer in (("layernorm_lstm", Recurrent("layernorm_lstm", I, H)),
                            ("lstm+recurrent_dropout",
                             Recurrent("lstm", I, H, recurrent_dropout=0.25))):
            kind = "layernorm_lstm" if name == "layernorm_lstm" else "lstm"
            cases.append((f"rnnkit {name}", kind, layer, plain, "torch.nn lstm"))
            loop = Recurrent(layer.cell, I, H, recurrent_dropout=layer.recurrent_dropout,
                             engine="loop")
            loop.load_state_dict(layer.state_dict())
            cases.append((f"naive loop {name}", kind, loop, plain, "torch.nn lstm"))
        if only:
            cases = [c for c in cases if c[0] == c[4] or any(word in c[0] for word in only)]
        functions = {name: dict(zip(("train", "infer"), step_fns(module, x, call), strict=True))
                     for name, _, module, call, _ in cases}
        seconds_of: dict[tuple[str, str], float] = {}
        for name, kind, _, _, reference in cases:
            flops = forward_flops(kind, T, B, I, H)
            for mode, work in (("train", 3 * flops), ("infer", flops)):
                if name == reference:
                    seconds, ratio = measure(functions[name][mode], repeats), 1.0
                else:
                    seconds, _, ratio = measure_against(
                        functions[name][mode], functions[reference][mode], repeats)
                seconds_of[name, mode] = seconds
                gflops = work / seconds / 1e9
                row = Row(shape, name, mode, seconds * 1e3, gflops, ratio, gflops / peak)
                rows.append(row)
                print(f"  {name:34s} {mode}: {row.ms:7.1f} ms {gflops:5.0f} GFLOP/s "
                      f"x{ratio:.2f} vs {reference:17s} {100 * row.of_peak:3.0f}% of peak",
                      flush=True)
        for name in ("layernorm_lstm", "lstm+recurrent_dropout"):
            naive = f"naive loop {name}"
            if naive in functions:
                _, _, speedup = measure_against(functions[f"rnnkit {name}"]["train"],
                                                functions[naive]["train"], repeats)
                print(f"  rnnkit {name} trains x{speedup:.2f} faster than its naive loop")
                rows.append(Row(shape, f"rnnkit {name} vs naive loop", "train", float("nan"),
                                float("nan"), speedup, float("nan")))
    return peak, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--only", nargs="*", help="cases whose name contains one of these words")
    parser.add_argument("--small", action="store_true", help="only the small shape")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    shapes = SHAPES[1:] if args.small else SHAPES
    peak, rows = run(shapes, args.only, 5 if args.quick else 15)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak, "rows": [asdict(r) for r in rows]}, f, indent=1)


if __name__ == "__main__":
    main()
