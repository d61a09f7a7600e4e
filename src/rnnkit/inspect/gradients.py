r"""Gradient flow through time: why the vanilla RNN forgets and the LSTM and GRU remember.

Backpropagation through time multiplies, at every step back, by the Jacobian of one step::

    dL/dh_{t-1} = (dh_t/dh_{t-1})^T dL/dh_t          (+ the local loss at t-1, if any)
    vanilla RNN:  dh_t/dh_{t-1} = diag(tanh'(a_t)) W_hh,   tanh' <= 1

so ``||dL/dh_{t-k}||`` shrinks like ``(sigma_max(W_hh) * max tanh')^k`` when that is below 1
(and can explode above it; Bengio et al. 1994, Pascanu et al. 2013). Sigmoid gates add factors
``sigma' <= 1/4``. The LSTM's cell path ``dc_t/dc_{t-1} = f`` has no ``W_hh`` and no squashing
derivative: with forget gates near 1 the gradient survives many steps.

* :func:`gradient_flow`: ``||dL/dh_t||`` for every step and level of a layer, measured.
* :func:`compare_cells`: the same for freshly initialised cells of several kinds.
* :func:`hh_spectrum`: the singular values of each ``W_hh`` (per gate block).
* :func:`gate_saturation`: how often gates sit near 0 or 1 (their derivative near 0).
* :func:`flow_table`, :func:`plot_flows`: the measurements as text and as a PNG.

What the measurements show at torch.nn's initialisation (T = 100, H = 64, float64): the
vanilla RNN's ``||dL/dh_0|| / ||dL/dh_T||`` is ~1e-26, the LSTM's ~1e-21 and the GRU's ~1e-20:
every cell forgets at first, since torch's init leaves the forget gate (the GRU's ``z``) near
``sigmoid(0) = 1/2``. With a forget-gate bias of 1 (Gers et al. 2000, Jozefowicz et al. 2015)
the LSTM's ratio is ~1e-8, with 3 it is ~1e-1: the gate the network can hold open is the point.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.files import atomic_write_bytes
from ..nn import GRUCell, LayerNormLSTMCell, LSTMCell, Recurrent, RNNCell, check_cell
from ..nn.cells import LAYER_NORM_EPS

LOSSES = ("last", "every")
GATES = {"rnn_tanh": (), "rnn_relu": (), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"),
         "layernorm_lstm": ("i", "f", "g", "o")}  # the gate blocks of W_hh, torch.nn's order
PROJECTION_SEED = 0  # the fixed random direction w of the default loss L = w . h_T


@dataclass
class GradientFlow:
    """``||dL/dh_t||`` through time, for one layer."""

    cell: str  # the cell kind, one of rnnkit.nn.CELL_KINDS
    norms: Tensor  # (L, T): mean over the batch of ||dL_b/dh^l_{b,t}||, level l, step t
    loss: str  # "last" (a loss on h_T only) or "every" (a loss at every step, summed)


# ------------------------------------------------------------------------- measurement
def gradient_flow(rnn: Recurrent, x: Tensor, *, loss: str = "last",
                  readout: nn.Module | None = None, targets: Tensor | None = None
                  ) -> GradientFlow:
    r"""``||dL/dh^l_t||`` for every level ``l`` and step ``t`` of ``rnn`` over ``x``.

    The layer runs as its reference loop does (every cell once per step, no dropout: evaluation
    semantics), each ``h^l_t`` kept, and autograd gives the total derivative of the loss with
    respect to each of them (every path: through ``h_{t+1}``, through the level above, through
    the loss).

    The loss of one sequence ``b``, summed over the batch (so each sequence's gradient is its
    own, whatever ``B``):

    * ``loss="last"``: ``L_b = w . h_{b,T}`` for a fixed random unit vector ``w`` ``(H,)``;
      with ``readout``, ``loss(readout(h_{b,T}), targets_b)``.
    * ``loss="every"``: the sum over ``t`` of the same at every step (BPTT with a loss at every
      step, as the lecture's language model); ``targets`` then ``(B, T, ...)``.

    With a ``readout``, integer ``targets`` ask for the cross-entropy, float ones for the
    squared error; without ``targets`` the readout's outputs are summed.

    Args:
        rnn: a unidirectional :class:`rnnkit.nn.Recurrent` without context.
        x: ``(B, T, I)``, in the layer's dtype (float64 keeps norms below 1e-38 from flushing
            to zero).

    Returns:
        a :class:`GradientFlow` with ``norms`` ``(L, T)``: the mean over the batch of the
        per-sequence norms ``||dL_b/dh^l_{b,t}||``.
    """
    _check_layer(rnn, x)
    if loss not in LOSSES:
        raise ValueError(f"expected loss 'last' or 'every', got {loss!r}")
    if targets is not None and readout is None:
        raise ValueError("targets need a readout (an nn.Module from h_t to predictions); "
                         "without one the loss is a fixed random projection of h")
    with torch.enable_grad():
        levels = _unroll(rnn, x)  # L lists of T tensors (B, H)
        top = levels[-1]
        steps = [len(top) - 1] if loss == "last" else range(len(top))
        w = _projection(top[0]) if readout is None else None  # (H,)
        total = sum(_step_loss(top[t], t, loss, readout, targets, w) for t in steps)
        every_h = [h for level in levels for h in level]
        grads = torch.autograd.grad(total, every_h, allow_unused=True)
    norms = [torch.zeros((), dtype=h.dtype) if g is None else g.norm(dim=1).mean().cpu()
             for g, h in zip(grads, every_h, strict=True)]  # L*T x (B, H) -> L*T scalars
    L, T = len(levels), len(top)
    return GradientFlow(rnn.cell, torch.stack(norms).view(L, T), loss)  # (L*T,) -> (L, T)


def _check_layer(rnn: Recurrent, x: Tensor) -> None:
    if not isinstance(rnn, Recurrent):
        raise TypeError(f"expected an rnnkit.nn.Recurrent, got {type(rnn).__name__}")
    if rnn.bidirectional or rnn.context_size:
        raise ValueError(f"expected a unidirectional layer without context, got "
                         f"Recurrent({rnn.extra_repr()})")
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[2] != rnn.input_size:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected x of shape (B, T, {rnn.input_size}), got {got}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected a non-empty batch of non-empty sequences, got "
                         f"{tuple(x.shape)}")
    dtype = rnn.cells[0].weight_hh.dtype
    if x.dtype != dtype:
        raise ValueError(f"expected x of dtype {dtype} (the layer's), got {x.dtype}")


def _unroll(rnn: Recurrent, x: Tensor) -> list[list[Tensor]]:
    """The reference loop, every ``h^l_t`` kept: ``levels[l][t]`` ``(B, H)``."""
    levels, layer_input = [], x  # (B, T, I)
    for cell in rnn.cells:
        state, hs = None, []
        for t in range(x.shape[1]):
            h, state = cell(layer_input[:, t], state)
            hs.append(h)
        levels.append(hs)
        layer_input = torch.stack(hs, dim=1)  # T x (B, H) -> (B, T, H)
    return levels


def _projection(like: Tensor) -> Tensor:
    """The fixed random unit vector ``w`` ``(H,)`` of the default loss, like ``like`` (B, H)."""
    generator = torch.Generator().manual_seed(PROJECTION_SEED)
    w = torch.randn(like.shape[1], generator=generator, dtype=torch.float64)
    return (w / w.norm()).to(device=like.device, dtype=like.dtype)


def _step_loss(h: Tensor, t: int, loss: str, readout: nn.Module | None,
               targets: Tensor | None, w: Tensor | None) -> Tensor:
    """The loss at step ``t`` from the top level's ``h_t`` ``(B, H)``, summed over the batch."""
    if readout is None:
        return (h @ w).sum()  # (B, H) . (H,) -> (B,) -> ()
    out = readout(h)  # (B, H) -> (B, K)
    if targets is None:
        return out.sum()
    target = targets if loss == "last" else targets[:, t]  # (B, ...) at step t
    if target.is_floating_point():
        if target.numel() != out.numel():
            raise ValueError(f"expected float targets of {out.numel()} values per step (the "
                             f"readout's {tuple(out.shape)}), got {tuple(target.shape)}")
        return (out - target.reshape(out.shape)).pow(2).sum()
    return F.cross_entropy(out, target.long(), reduction="sum")


def compare_cells(kinds: Sequence[str] = ("rnn_tanh", "lstm", "gru"), *, input_size: int = 16,
                  hidden_size: int = 64, steps: int = 100, batch: int = 16,
                  num_layers: int = 1, seed: int = 0, loss: str = "last",
                  forget_bias: float | None = None,
                  dtype: torch.dtype = torch.float64) -> list[GradientFlow]:
    """:func:`gradient_flow` of freshly initialised layers of each kind, on the same input.

    Each layer gets torch.nn's initialisation from the same seed; ``x`` ``(batch, steps,
    input_size)`` is standard normal. ``forget_bias`` (LSTM kinds only; ``None`` keeps torch's
    init, about 0) sets the forget gate's bias, as Gers et al. 2000 and Jozefowicz et al. 2015
    advise (1.0). float64 by default: the vanilla RNN's norms fall below float32's range
    within 100 steps.
    """
    for kind in kinds:
        check_cell(kind)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, input_size, generator=generator, dtype=dtype)
    flows = []
    for kind in kinds:
        with torch.random.fork_rng(devices=[]):  # the same weights for a seed, global RNG kept
            torch.manual_seed(seed)
            rnn = Recurrent(kind, input_size, hidden_size, num_layers, engine="loop").to(dtype)
        if forget_bias is not None:
            set_forget_bias(rnn, forget_bias)
        flows.append(gradient_flow(rnn, x, loss=loss))
    return flows


def set_forget_bias(rnn: Recurrent, value: float) -> Recurrent:
    """Set the LSTM forget gate's total bias to ``value`` in every cell (others unchanged).

    ``b_f = value`` makes ``f = sigmoid(value + ...)``: 1.0 keeps ~73% of the cell per step at
    the start (Jozefowicz et al. 2015). Returns ``rnn``.
    """
    H = rnn.hidden_size
    with torch.no_grad():
        for cell in rnn.cells:
            if isinstance(cell, LayerNormLSTMCell) and cell.gate_bias is not None:
                cell.gate_bias[H:2 * H] = value  # blocks i, f, g, o: f is the second
            elif isinstance(cell, LSTMCell) and cell.bias_ih is not None:
                cell.bias_ih[H:2 * H] = value  # b_ih + b_hh is the bias: put it all in one
                cell.bias_hh[H:2 * H] = 0.0
    return rnn


# ----------------------------------------------------------------------------- weights
def hh_spectrum(rnn: Recurrent, k: int = 10) -> dict[str, Tensor]:
    """The ``k`` largest singular values of every ``W_hh``, per gate block for gated cells.

    Keys name the cell as torch.nn's parameter suffixes do, then the gate: ``"l0"`` for a
    vanilla RNN, ``"l0.i"``, ``"l0.f"``, ``"l0.g"``, ``"l0.o"`` for an LSTM, ``"l1.r"``,
    ``"l1.z"``, ``"l1.n"`` for a GRU's second level, ``"l0_reverse.i"`` for a backward
    direction. Values ``(min(k, H),)``, largest first.

    ``sigma_max < 1`` is enough for the vanilla RNN's gradient to shrink at every step (tanh'
    <= 1 cannot make up for it), but not needed: torch's init (entries uniform in
    ``+-1/sqrt(H)``) gives ``sigma_max ~ 2/sqrt(3) ~ 1.15``, yet a typical direction is scaled
    by the root-mean-square singular value ``1/sqrt(3) ~ 0.58``, and the measured norms shrink
    by ~0.53 per step (H = 64).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"expected k, the number of singular values, >= 1, got {k!r}")
    gates = GATES[rnn.cell]
    spectra = {}
    for index, cell in enumerate(rnn.cells):
        level, direction = divmod(index, rnn.num_directions)
        name = f"l{level}{'_reverse' if direction else ''}"
        weight = cell.weight_hh.detach()
        blocks = weight.chunk(len(gates), dim=0) if gates else (weight,)  # (G*H, H) -> G x (H, H)
        for gate, block in zip(gates or ("",), blocks, strict=True):
            key = f"{name}.{gate}" if gate else name
            spectra[key] = torch.linalg.svdvals(block)[:k].cpu()
    return spectra


# ---------------------------------------------------------------------------- saturation
@dataclass
class Saturation:
    """How often one gate (or unit kind) of one level sits at the ends of its range."""

    function: str  # "sigmoid" (range [0, 1]) or "tanh" (range [-1, 1])
    low: float  # share of all values below `low` (sigmoid) or below -`high` (tanh)
    high: float  # share of all values above `high`
    unit_low: Tensor  # (H,): the share per unit (Karpathy et al. 2015's scatter plot)
    unit_high: Tensor  # (H,)
    bins: Tensor  # (n + 1,): histogram edges over the range
    counts: Tensor  # (n,): values per bin


def gate_saturation(rnn: Recurrent, x: Tensor, *, low: float = 0.05, high: float = 0.95,
                    bins: int = 20) -> dict[str, Saturation]:
    """How saturated each gate of each level is over ``x`` ``(B, T, I)`` (no dropout).

    ``rnn`` is unidirectional and without context, as for :func:`gradient_flow`.

    A saturated unit passes almost no gradient: ``sigma'(a) = s (1 - s)`` is below 0.05 when
    ``s < 0.05`` or ``s > 0.95``; ``tanh'(a) = 1 - h^2`` is below 0.1 when ``|h| > 0.95``.

    Keys ``"l{level}.{gate}"``: the sigmoid gates ``i``, ``f``, ``o`` and the tanh candidate
    ``g`` and ``c`` (``tanh(c_t)``, what ``h_t`` reads) of an LSTM; ``r``, ``z`` and the tanh
    candidate ``n`` of a GRU; ``h`` of a tanh RNN. Sigmoid gates count values below ``low``
    and above ``high``; tanh units below ``-high`` and above ``high``.
    """
    _check_layer(rnn, x)
    if rnn.cell == "rnn_relu":
        raise ValueError("expected a cell with saturating units (tanh or sigmoid), got "
                         "'rnn_relu': a ReLU never saturates above")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"expected 0 <= low < high <= 1, got low={low}, high={high}")
    values: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        layer_input = x  # (B, T, I)
        for level, cell in enumerate(rnn.cells):
            state, hs = None, []
            for t in range(x.shape[1]):
                h, new_state = cell(layer_input[:, t], state)
                for gate, value in _gate_values(cell, layer_input[:, t], state, new_state):
                    values.setdefault(f"l{level}.{gate}", []).append(value)  # (B, H)
                state = new_state
                hs.append(h)
            layer_input = torch.stack(hs, dim=1)  # T x (B, H) -> (B, T, H)
    result = {}
    for key, parts in values.items():
        function = "tanh" if key.split(".")[1] in ("g", "c", "n", "h") else "sigmoid"
        v = torch.cat(parts).double().cpu()  # T x (B, H) -> (T*B, H)
        bottom = -high if function == "tanh" else low
        unit_low, unit_high = (v < bottom).double().mean(0), (v > high).double().mean(0)
        start = -1.0 if function == "tanh" else 0.0
        result[key] = Saturation(function, float(unit_low.mean()), float(unit_high.mean()),
                                 unit_low, unit_high, torch.linspace(start, 1.0, bins + 1),
                                 torch.histc(v, bins, start, 1.0))
    return result


def _gate_values(cell: nn.Module, x_t: Tensor, state, new_state) -> list[tuple[str, Tensor]]:
    """The activations of one step's gates, ``(B, H)`` each, recomputed from the cell's weights.

    ``state`` is the state before the step (``None``: zeros), ``new_state`` the cell's result.
    """
    if isinstance(cell, RNNCell):
        return [("h", new_state)]
    if state is None:
        state = cell.zero_state(x_t.shape[0], x_t)
    if isinstance(cell, GRUCell):
        gi_r, gi_z, gi_n = cell.input_gates(x_t, None).chunk(3, dim=1)  # (B, 3H) -> 3 x (B, H)
        gh_r, gh_z, gh_n = F.linear(state, cell.weight_hh, cell.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(gi_r + gh_r)
        return [("r", r), ("z", torch.sigmoid(gi_z + gh_z)), ("n", torch.tanh(gi_n + r * gh_n))]
    recurrent = F.linear(state.h, cell.weight_hh, None)  # (B, H) -> (B, 4H)
    c = new_state.c
    if isinstance(cell, LayerNormLSTMCell):
        recurrent = F.layer_norm(recurrent, recurrent.shape[-1:], cell.ln_hh_weight, None,
                                 LAYER_NORM_EPS)
        c = F.layer_norm(c, c.shape[-1:], cell.ln_c_weight, cell.ln_c_bias, LAYER_NORM_EPS)
    elif cell.bias_hh is not None:
        recurrent = recurrent + cell.bias_hh
    i, f, g, o = (cell.input_gates(x_t, None) + recurrent).chunk(4, dim=1)  # 4 x (B, H)
    return [("i", torch.sigmoid(i)), ("f", torch.sigmoid(f)), ("g", torch.tanh(g)),
            ("o", torch.sigmoid(o)), ("c", torch.tanh(c))]


# ------------------------------------------------------------------------------ output
def _columns(flows: Sequence[GradientFlow]) -> list[tuple[str, Tensor]]:
    """One ``(name, norms (T,))`` per cell and level; the level is named when there are several."""
    columns = []
    for flow in flows:
        L = flow.norms.shape[0]
        for level in range(L):
            name = flow.cell if L == 1 else f"{flow.cell} l{level}"
            columns.append((name, flow.norms[level]))
    return columns


def flow_table(flows: Sequence[GradientFlow], every: int = 10) -> str:
    """A text table of ``||dL/dh_t||``: one row per ``every`` steps back from the end.

    Row ``k`` holds ``norms[:, T-1-k]``; the last row is the first step (``k = T-1``). A cell
    with fewer steps shows ``-`` past its start. Example::

        steps back      rnn_tanh          lstm
                 0      1.00e+00      1.00e+00
                10      2.74e-03      2.46e-03
    """
    if not flows:
        raise ValueError("expected at least one GradientFlow, got none")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"expected every >= 1, got {every!r}")
    columns = _columns(flows)
    T = max(norms.shape[0] for _, norms in columns)
    width = max(12, *(len(name) + 2 for name, _ in columns))
    rows = [f"{'steps back':>10}" + "".join(f"{name:>{width}}" for name, _ in columns)]
    backs = list(range(0, T, every))
    if backs[-1] != T - 1:
        backs.append(T - 1)
    for k in backs:
        cells = [f"{float(n[n.shape[0] - 1 - k]):.2e}" if k < n.shape[0] else "-"
                 for _, n in columns]
        rows.append(f"{k:>10}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(rows) + "\n"


def plot_flows(flows: Sequence[GradientFlow], path: str | Path) -> Path | None:
    """``||dL/dh_t||`` against steps before the end, log scale, one colour per cell.

    The top level is a solid line, the levels below it dashed. Writes a PNG at ``path`` and
    returns it; ``None`` (nothing written) when matplotlib is not installed.
    """
    if not flows:
        raise ValueError("expected at least one GradientFlow, got none")
    pyplot = load_pyplot()
    if pyplot is None:
        return None
    figure, axis = pyplot.subplots(figsize=(8, 5))
    for index, flow in enumerate(flows):
        colour = f"C{index % 10}"
        L, T = flow.norms.shape
        for level in range(L):
            norms = flow.norms[level].flip(0).double()  # k steps before the end at index k
            norms = torch.where(norms > 0, norms, torch.nan)  # a log axis cannot show 0
            label = flow.cell if L == 1 else f"{flow.cell} level {level}"
            axis.plot(range(T), norms.tolist(), color=colour, lw=1.5,
                      ls="-" if level == L - 1 else "--", label=label)
    loss = "a loss at every step" if flows[0].loss == "every" else "a loss at the end"
    axis.set_yscale("log")
    axis.set_xlabel("steps before the end (k: t = T - 1 - k)")
    axis.set_ylabel("mean ||dL/dh_t||")
    axis.set_title(f"Gradient flow through time, {loss}")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    return save_png(figure, path)


def load_pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or ``None`` when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        from matplotlib import pyplot
    except ImportError:
        return None
    return pyplot


def save_png(figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` (atomically) and close it."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    from matplotlib import pyplot

    pyplot.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
