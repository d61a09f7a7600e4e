r"""Long-range memory benchmarks: how far back can each cell remember? Generated data only.

Tasks (``length`` is what a sweep varies):

* ``"copy"``: remember ``k`` = :data:`COPY_SYMBOLS` symbols of an alphabet of
  :data:`COPY_ALPHABET`, wait ``length`` blank steps, then reproduce them while a "go" marker
  is on (after Hochreiter & Schmidhuber 1997, Arjovsky et al. 2016). Input ``(B, 2k + length,
  A + 2)`` one-hot (symbols, blank, go); target ``(B, k)``. Chance accuracy ``1/A``.
* ``"adding"``: the adding problem (Hochreiter & Schmidhuber 1997). Two channels over
  ``length`` steps: values ``U(0, 1)`` and a marker channel with exactly two 1s, one in each
  half; the target is the sum of the two marked values. Always answering 1 gives an MSE of
  ``Var(U1 + U2) = 1/6 ~ 0.167``.
* ``"pixels"``: classify one of 10 glyphs (digits 0-9 drawn in 8x8, shifted by up to one
  pixel, resized to ``side x side`` with ``side^2 = length``, Gaussian noise) read one pixel per
  step (Le et al. 2015's sequential MNIST, small and built in). ``"pixels_permuted"``: the
  pixels in a fixed random order, which spreads each stroke over the whole sequence.

Solved: copy when the recalled symbols are right >= 99% of the time, adding when the MSE is
below 0.01 (6% of the baseline's), pixels when accuracy >= 90% (chance 10%).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import Recurrent
from ..train.runtime import resolve_device
from .gradients import load_pyplot, save_png

TASKS = ("copy", "adding", "pixels", "pixels_permuted")
COPY_SYMBOLS = 5  # k, symbols to remember in the copy task
COPY_ALPHABET = 8  # A, distinct symbols (Arjovsky et al. 2016 use 8)
GLYPH_NOISE = 0.25  # std of the Gaussian noise on the glyphs' pixels (ink is 1, paper 0)
PERMUTATION_SEED = 1234  # the fixed pixel order of "pixels_permuted", per length
SOLVED = {"copy": 0.99, "adding": 0.01, "pixels": 0.9, "pixels_permuted": 0.9}  # see above

_DIGITS = """
..####.. ...##... ..####.. ..####.. ....##.. .######. ..####.. .######. ..####.. ..####..
.#....#. ..###... .#....#. .#....#. ...#.#.. .#...... .#...... ......#. .#....#. .#....#.
.#...##. ...##... ......#. ......#. ..#..#.. .#...... .#...... .....#.. .#....#. .#....#.
.#..#.#. ...##... .....#.. ...###.. .#...#.. .#####.. .#####.. ....#... ..####.. .#....#.
.#.#..#. ...##... ....#... ......#. .######. ......#. .#....#. ...#.... .#....#. ..#####.
.##...#. ...##... ...#.... ......#. .....#.. ......#. .#....#. ...#.... .#....#. ......#.
.#....#. ...##... ..#..... .#....#. .....#.. .#....#. .#....#. ...#.... .#....#. ......#.
..####.. .######. .######. ..####.. .....#.. ..####.. ..####.. ...#.... ..####.. ..####..
"""


def glyphs() -> Tensor:
    """The 10 prototype glyphs (digits 0-9), ``(10, 8, 8)``, ink 1 and paper 0."""
    rows = [line.split() for line in _DIGITS.strip().splitlines()]  # 8 rows x 10 digits
    return torch.tensor([[[c == "#" for c in rows[r][d]] for r in range(8)] for d in range(10)],
                        dtype=torch.float32)


# --------------------------------------------------------------------------------- data
def sequence_length(task: str, length: int) -> int:
    """Steps of one input sequence: ``2k + length`` for the copy task, else ``length``."""
    _check_task(task)
    return 2 * COPY_SYMBOLS + length if task == "copy" else length


def input_size(task: str) -> int:
    """Features per step: one-hot symbols + blank + go; value + marker; one pixel."""
    _check_task(task)
    return {"copy": COPY_ALPHABET + 2, "adding": 2}.get(task, 1)


def output_size(task: str) -> int:
    """The readout's width: logits over the alphabet, one number, logits over 10 glyphs."""
    _check_task(task)
    return {"copy": COPY_ALPHABET, "adding": 1}.get(task, 10)


def make_batch(task: str, length: int, batch_size: int,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A batch of ``task`` at ``length``: ``x`` ``(B, T, I)`` float32 and the targets.

    Targets: ``(B, k)`` int64 symbols (copy), ``(B,)`` float32 sums (adding), ``(B,)`` int64
    classes (pixels). On the CPU; draws from ``generator`` (torch's global one if ``None``).
    """
    _check_task(task)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"expected length >= 1, got {length!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size!r}")
    if task == "copy":
        return _copy(length, batch_size, generator)
    if task == "adding":
        return _adding(length, batch_size, generator)
    return _pixels(length, batch_size, generator, permuted=task == "pixels_permuted")


def _copy(delay: int, B: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    k, A = COPY_SYMBOLS, COPY_ALPHABET
    symbols = torch.randint(A, (B, k), generator=generator)  # (B, k)
    blank, go = A, A + 1
    channels = torch.cat([symbols,  # steps [0, k): the symbols, then `delay` blanks, then
                          torch.full((B, delay), blank),  # k steps of "go": recall now
                          torch.full((B, k), go)], dim=1)  # (B, 2k + delay)
    return F.one_hot(channels, A + 2).float(), symbols  # (B, T) -> (B, T, A + 2)


def _adding(T: int, B: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    if T < 2:
        raise ValueError(f"expected length >= 2 for the adding problem (two markers), got {T}")
    values = torch.rand(B, T, generator=generator)  # (B, T), U(0, 1)
    half = T // 2  # one marker in [0, half), the other in [half, T)
    first = torch.randint(half, (B,), generator=generator)
    second = half + torch.randint(T - half, (B,), generator=generator)
    markers = torch.zeros(B, T)
    rows = torch.arange(B)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]  # (B,)
    return torch.stack([values, markers], dim=2), target  # 2 x (B, T) -> (B, T, 2)


def _pixels(length: int, B: int, generator: torch.Generator | None,
            permuted: bool) -> tuple[Tensor, Tensor]:
    side = math.isqrt(length)
    if side * side != length or side < 4:
        raise ValueError(f"expected a square number of pixels >= 16 for the pixel tasks (64 = "
                         f"8x8, 144 = 12x12, 784 = 28x28), got length {length}")
    labels = torch.randint(10, (B,), generator=generator)  # (B,)
    padded = F.pad(glyphs(), (1, 1, 1, 1))  # (10, 8, 8) -> (10, 10, 10)
    dy, dx = torch.randint(3, (2, B, 1), generator=generator)  # crop offsets: shifts -1, 0, 1
    rows = (torch.arange(8) + dy).unsqueeze(2)  # (B, 8, 1)
    cols = (torch.arange(8) + dx).unsqueeze(1)  # (B, 1, 8)
    images = padded[labels.view(B, 1, 1), rows, cols]  # (B, 8, 8), each shifted
    if side != 8:
        images = F.interpolate(images.unsqueeze(1), size=(side, side), mode="bilinear",
                               align_corners=False).squeeze(1)  # (B, 8, 8) -> (B, side, side)
    images = images + GLYPH_NOISE * torch.randn(images.shape, generator=generator)
    x = images.reshape(B, length, 1)  # (B, side, side) -> (B, side^2, 1), row by row
    if permuted:
        order = torch.randperm(length, generator=torch.Generator().manual_seed(PERMUTATION_SEED))
        x = x[:, order]
    return x, labels


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: expected one of "
                         + ", ".join(repr(t) for t in TASKS))


# -------------------------------------------------------------------------------- model
class MemoryModel(nn.Module):
    """A :class:`rnnkit.nn.Recurrent` and a linear readout of the shape the task asks.

    * copy: logits ``(B, k, A)`` from the last ``k`` steps' ``h_t`` (the "go" steps).
    * adding: one number ``(B,)`` from ``h_T``.
    * pixels: logits ``(B, 10)`` from ``h_T``.

    ``forward(x, targets=None) -> (predictions, loss)``: cross-entropy (copy, pixels) or mean
    squared error (adding).
    """

    def __init__(self, task: str, cell: str, hidden_size: int = 64, num_layers: int = 1
                 ) -> None:
        super().__init__()
        _check_task(task)
        self.task = task
        self.rnn = Recurrent(cell, input_size(task), hidden_size, num_layers)
        self.readout = nn.Linear(hidden_size, output_size(task))

    def forward(self, x: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        out, _ = self.rnn(x)  # (B, T, I) -> (B, T, H)
        if self.task == "copy":
            prediction = self.readout(out[:, -COPY_SYMBOLS:])  # (B, k, H) -> (B, k, A)
        else:
            prediction = self.readout(out[:, -1])  # (B, H) -> (B, 10) or (B, 1)
        if self.task == "adding":
            prediction = prediction.squeeze(1)  # (B, 1) -> (B,)
        if targets is None:
            return prediction, None
        if self.task == "adding":
            return prediction, F.mse_loss(prediction, targets)
        # copy: (B, k, A) -> (B*k, A) against (B, k) -> (B*k,); pixels: (B, 10) against (B,)
        return prediction, F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]),
                                           targets.reshape(-1))


def metric(task: str, prediction: Tensor, targets: Tensor) -> float:
    """Accuracy (copy: over every recalled symbol; pixels) or mean squared error (adding)."""
    if task == "adding":
        return float(F.mse_loss(prediction, targets))
    return float((prediction.argmax(-1) == targets).float().mean())


def is_solved(task: str, value: float) -> bool:
    """Whether ``value`` of :func:`metric` meets the task's bar (:data:`SOLVED`)."""
    _check_task(task)
    if task == "adding":
        return value < SOLVED[task]
    return value >= SOLVED[task]


# ----------------------------------------------------------------------------- training
@dataclass
class MemoryResult:
    """How one cell did on one task at one length."""

    task: str
    cell: str
    length: int
    metric: float  # at the end, on held-out examples: accuracy (copy, pixels) or MSE (adding)
    metric_name: str  # "accuracy" or "mse"
    solved: bool  # the metric meets the task's bar (SOLVED)
    steps: int  # updates made
    seconds: float  # wall time, evaluations included


def train_memory(task: str, cell: str, length: int, *, hidden_size: int = 64,
                 num_layers: int = 1, batch_size: int = 64, time_budget: float = 60.0,
                 max_steps: int = 10_000, lr: float = 1e-3, grad_clip: float = 1.0,
                 eval_every: int = 100, eval_size: int = 1000, seed: int = 0,
                 device: str | torch.device = "cpu") -> MemoryResult:
    """Train a :class:`MemoryModel` on fresh batches; stop when solved or out of time/steps.

    Adam at ``lr``, the global gradient norm clipped to ``grad_clip`` (Pascanu et al. 2013;
    0 = off). Every ``eval_every`` updates the model is measured on ``eval_size`` held-out
    examples (drawn once, from ``seed + 1``); training stops as soon as the task is solved,
    after ``max_steps`` updates, past ``time_budget`` seconds, or when the loss stops being
    finite (a vanilla RNN can explode). torch's global random state is left as it was.
    """
    _check_task(task)
    device = resolve_device(device)
    with torch.random.fork_rng(devices=[]):  # the weights depend on the seed only
        torch.manual_seed(seed)
        model = MemoryModel(task, cell, hidden_size, num_layers).to(device)
    x_eval, y_eval = make_batch(task, length, eval_size, torch.Generator().manual_seed(seed + 1))
    x_eval, y_eval = x_eval.to(device), y_eval.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start, step, measured_at, diverged = time.perf_counter(), 0, -1, False

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            prediction, _ = model(x_eval)
        model.train()
        return metric(task, prediction, y_eval)

    while step < max_steps and time.perf_counter() - start < time_budget:
        x, y = make_batch(task, length, batch_size, generator)
        _, loss = model(x.to(device), y.to(device))
        if not torch.isfinite(loss):
            diverged = True
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        step += 1
        if step % eval_every == 0:
            value, measured_at = evaluate(), step
            if is_solved(task, value):
                break
    if diverged:
        value = math.nan
    elif measured_at != step:
        value = evaluate()
    name = "mse" if task == "adding" else "accuracy"
    solved = not math.isnan(value) and is_solved(task, value)
    return MemoryResult(task, cell, length, value, name, solved, step,
                        time.perf_counter() - start)


def sweep(task: str, cells: Sequence[str], lengths: Sequence[int], *,
          time_budget_per_run: float = 60.0, progress: bool = True,
          callback: Callable[[MemoryResult], None] | None = None,
          **options) -> list[MemoryResult]:
    """:func:`train_memory` for every cell at every length (shortest first).

    ``options`` go to :func:`train_memory` (``hidden_size``, ``max_steps``, ``lr``, ``seed``,
    ``device``, ...). A progress bar goes to stderr (``progress=False``: none);
    ``callback(result)`` is called after each run, e.g. to log or save as results come.
    """
    from tqdm import tqdm

    runs = [(cell, length) for cell in cells for length in sorted(lengths)]
    results = []
    with tqdm(total=len(runs), desc=task, file=sys.stderr, disable=not progress) as bar:
        for cell, length in runs:
            bar.set_postfix_str(f"{cell} at {length}")
            result = train_memory(task, cell, length, time_budget=time_budget_per_run,
                                  **options)
            results.append(result)
            if callback is not None:
                callback(result)
            bar.update()
    return results


def longest_solved(results: Sequence[MemoryResult]) -> dict[str, int | None]:
    """The longest length each cell solved (``None``: none), cells in order of appearance.

    The longest solved, not the longest up to which every length was solved: a failure at a
    shorter length (a bad run) does not hide a success beyond it.
    """
    tasks = sorted({r.task for r in results})
    if len(tasks) > 1:
        raise ValueError(f"expected the results of one task, got {', '.join(tasks)}")
    best: dict[str, int | None] = {}
    for r in results:
        best.setdefault(r.cell, None)
        if r.solved and (best[r.cell] is None or r.length > best[r.cell]):
            best[r.cell] = r.length
    return best


def plot_sweep(results: Sequence[MemoryResult], path: str | Path) -> Path | None:
    """The metric against length, one line per cell; filled markers where solved.

    A dashed line marks the bar (:data:`SOLVED`); MSE on a log scale. Writes a PNG at ``path``
    and returns it; ``None`` (nothing written) when matplotlib is not installed.
    """
    if not results:
        raise ValueError("expected at least one MemoryResult, got none")
    pyplot = load_pyplot()
    if pyplot is None:
        return None
    task, name = results[0].task, results[0].metric_name
    figure, axis = pyplot.subplots(figsize=(7, 4.5))
    cells = list(dict.fromkeys(r.cell for r in results))
    for index, cell in enumerate(cells):
        runs = sorted((r for r in results if r.cell == cell), key=lambda r: r.length)
        colour = f"C{index % 10}"
        axis.plot([r.length for r in runs], [r.metric for r in runs], color=colour, lw=1.5,
                  label=cell)
        for r in runs:
            axis.plot([r.length], [r.metric], "o", color=colour,
                      markerfacecolor=colour if r.solved else "white")
    axis.axhline(SOLVED[task], color="gray", ls="--", lw=1, label="solved")
    if name == "mse":
        axis.set_yscale("log")
    if max(r.length for r in results) >= 10 * min(r.length for r in results):
        axis.set_xscale("log")
    axis.set_xlabel("length" if task != "copy" else "delay (blank steps)")
    axis.set_ylabel(name)
    axis.set_title(f"{task}: {name} against length")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    return save_png(figure, path)
