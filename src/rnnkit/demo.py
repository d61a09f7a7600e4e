"""``rnnkit demo``: the layers at work (``make layers``), every fast path against the loop.

For each cell kind: run one batch through the fast path and through the reference loop (the
lecture's equations, one cell call per step), show that they agree, and how fast each is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .nn import CELL_KINDS, Recurrent


@dataclass
class DemoConfig:
    batch_size: int = 32  # B: sequences per batch
    seq_len: int = 100  # T: steps per sequence
    input_size: int = 64  # I: features per step
    hidden_size: int = 256  # H: hidden units
    num_layers: int = 2  # L: stacked levels (the lecture's deep RNN)
    bidirectional: bool = True
    repeats: int = 3  # training steps timed per engine
    seed: int = 0


@dataclass
class DemoRow:
    kind: str
    engine: str
    max_difference: float  # largest |fast - loop| / max |loop| over outputs and gradients
    fast_ms: float  # one training step (forward + backward), fast path
    loop_ms: float  # the same through the reference loop


def _training_step(layer: Recurrent, x: torch.Tensor, lengths: torch.Tensor):
    layer.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    output, _ = layer(x, lengths=lengths)
    output.square().mean().backward()
    return [output.detach(), x.grad, *(p.grad for p in layer.parameters())]


def _time_ms(layer: Recurrent, x: torch.Tensor, lengths: torch.Tensor, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        _training_step(layer, x, lengths)
    return (time.perf_counter() - start) / repeats * 1e3


def run_demo(config: DemoConfig) -> list[DemoRow]:
    torch.manual_seed(config.seed)
    c = config
    x = torch.randn(c.batch_size, c.seq_len, c.input_size)
    lengths = torch.randint(c.seq_len // 2, c.seq_len + 1, (c.batch_size,))
    rows = []
    for kind in CELL_KINDS:
        layer = Recurrent(kind, c.input_size, c.hidden_size, c.num_layers,
                          bidirectional=c.bidirectional)
        engine = layer.engine_for(x.device, c.batch_size, has_lengths=True)
        fast = _training_step(layer, x, lengths)
        layer.engine = "loop"
        loop = _training_step(layer, x, lengths)
        difference = max(((a - b).abs().max() / b.abs().max()).item()
                         for a, b in zip(fast, loop, strict=True))
        loop_ms = _time_ms(layer, x, lengths, c.repeats)
        layer.engine = "auto"
        fast_ms = _time_ms(layer, x, lengths, c.repeats)
        rows.append(DemoRow(kind, engine, difference, fast_ms, loop_ms))
    return rows


def format_rows(config: DemoConfig, rows: list[DemoRow]) -> str:
    c = config
    lines = [
        f"Recurrent(kind, I={c.input_size}, H={c.hidden_size}, num_layers={c.num_layers}, "
        f"bidirectional={c.bidirectional}) on a batch of {c.batch_size} sequences of up to "
        f"{c.seq_len} steps (variable lengths)",
        "one training step (forward + backward), fast path vs the reference loop:",
        "",
        f"{'cell kind':16s} {'fast path':9s} {'relative diff.':>18s} {'fast ms':>9s} "
        f"{'loop ms':>9s} {'speed-up':>9s}",
    ]
    for r in rows:
        lines.append(f"{r.kind:16s} {r.engine:9s} {r.max_difference:18.2e} {r.fast_ms:9.1f} "
                     f"{r.loop_ms:9.1f} {r.loop_ms / r.fast_ms:8.1f}x")
    lines += ["",
              "relative diff.: the largest |fast - loop| / max |loop| over outputs and gradients.",
              "Both paths compute the lecture's equations; the differences are float32 rounding."]
    return "\n".join(lines)
