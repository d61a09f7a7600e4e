"""The engines of :class:`rnnkit.nn.Recurrent`: the same numbers as the reference loop, sooner.

``Recurrent(engine=...)`` takes one of :data:`ENGINES`: ``"loop"`` (the reference,
:meth:`Recurrent._loop`), one of the two fast engines here, or ``"auto"``, which
:func:`choose_engine` resolves per configuration:

* ``"torch"``: torch's fused kernels (``torch.lstm`` / ``torch.gru`` / ``torch.rnn_*``: oneDNN
  on the CPU, cuDNN on the GPU) for the cells torch.nn itself has, conditioned or not: the
  context term rides on the kernel's input product (see :func:`_with_context`).
* ``"scan"``: our hand-written BPTT (:mod:`rnnkit.nn.scan`) for everything else (layer norm,
  recurrent dropout) and wherever it is faster (GRU and vanilla RNN on the CPU, where torch
  runs one autograd node per operation and step), over the cells' weights in the kernels'
  layout (:func:`kernel_weights`).

Both run layer by layer, time-major inside, with the inter-layer dropout and recurrent masks
sampled by the caller, so that every engine and the loop see the same noise. :class:`FastStep`
is the scan kernels' step alone, for generation. Proven: the engines against the loop and
torch.nn (tests/nn/test_recurrent.py, test_scan.py), the fast step against the cells
(tests/nn/test_engines.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import gemm, scan
from .cells import GRUCell, LayerNormLSTMCell, LSTMCell, LSTMState, RecurrentCell, RNNCell

ENGINES = ("auto", "loop", "torch", "scan")  # what Recurrent(engine=...) takes


def torch_supports(cell: RecurrentCell, has_recurrent_dropout: bool) -> bool:
    """Whether torch's fused kernels compute this cell exactly."""
    return type(cell) in (RNNCell, LSTMCell, GRUCell) and not has_recurrent_dropout


def choose_engine(cell: RecurrentCell, has_recurrent_dropout: bool, device: torch.device,
                  batch_size: int, has_lengths: bool) -> str:
    """The faster engine for this configuration (measured: see benchmarks/bench_recurrent.py)."""
    if not torch_supports(cell, has_recurrent_dropout):
        return "scan"
    if device.type == "cuda":
        return "torch"  # cuDNN fuses every cell kind; a Python loop of small kernels cannot win
    if not isinstance(cell, LSTMCell) or has_lengths:
        # CPU: oneDNN fuses only the LSTM, and only over padded input: torch runs GRU, RNN and
        # packed (variable-length) sequences op by op
        return "scan"
    # a context widens the kernel's input by min(K, B) columns: worth it while that is small
    extra = min(cell.context_size, batch_size)
    return "torch" if extra <= (cell.input_size + cell.hidden_size) / 4 else "scan"


def run(engine: str, cells: Sequence[RecurrentCell], num_layers: int, bidirectional: bool,
        x: Tensor, states: list, lengths: Tensor | None, context: Tensor | None,
        layer_masks: list, recurrent_masks: list) -> tuple[Tensor, list]:
    """All layers over ``x`` ``(B, T, I)``; returns ``(B, T, D*H)`` and each cell's final state.

    ``lengths`` ``(B,)``, checked, best on the host (they are packed there);
    ``states``, ``recurrent_masks``: one entry per cell (``layer * D + direction``);
    ``layer_masks``: the dropout mask ``(B, T, D*H)`` after each layer but the last (or None).
    """
    directions = 2 if bidirectional else 1
    B, T, _ = x.shape
    steps = order = host_lengths = None
    if lengths is not None:
        # Sort longest first, so that step t updates the first batch_sizes[t] rows (packing).
        # The step counts are Python ints: worked out on the CPU, once.
        host_lengths, order = torch.sort(lengths.cpu(), descending=True)
        batch_sizes = (host_lengths.unsqueeze(0) > torch.arange(T).unsqueeze(1)).sum(1)  # (T,)
        steps = scan.Steps(batch_sizes.tolist(), (host_lengths - 1).to(x.device))
        lengths, order = host_lengths.to(x.device), order.to(x.device)
        x = x.index_select(0, order)
        context = None if context is None else context.index_select(0, order)
        states = [_index_state(s, order) for s in states]
        recurrent_masks = [None if m is None else m.index_select(0, order)
                           for m in recurrent_masks]
        layer_masks = [None if m is None else m.index_select(0, order) for m in layer_masks]

    layer_input = x.transpose(0, 1)  # (B, T, I) -> (T, B, I): one step is one contiguous slab
    finals = []
    for layer in range(num_layers):
        layer_cells = cells[layer * directions:(layer + 1) * directions]
        layer_states = states[layer * directions:(layer + 1) * directions]
        if engine == "torch":
            output, layer_finals = _torch_layer(layer_cells, layer_input, layer_states,
                                                host_lengths, context)
        else:
            outputs, layer_finals = [], []
            for direction, cell in enumerate(layer_cells):
                k = layer * directions + direction
                seq = layer_input if direction == 0 else reverse_time(layer_input, lengths)
                out, final = _scan_direction(cell, seq, layer_states[direction], context,
                                             recurrent_masks[k], steps)
                outputs.append(out if direction == 0 else reverse_time(out, lengths))
                layer_finals.append(final)
            output = torch.cat(outputs, dim=-1) if directions == 2 else outputs[0]  # (T, B, D*H)
        finals.extend(layer_finals)
        if layer < num_layers - 1 and layer_masks[layer] is not None:
            output = output * layer_masks[layer].transpose(0, 1)  # mask (B, T, DH) -> (T, B, DH)
        layer_input = output

    output = layer_input.transpose(0, 1)  # (T, B, D*H) -> (B, T, D*H)
    if order is not None:
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(B, device=order.device)
        output = output.index_select(0, inverse)
        finals = [_index_state(s, inverse) for s in finals]
    return output, finals


def reverse_time(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence within its own length; ``x`` is time-major ``(T, B, F)``.

    Padding stays where it is, so a backward direction starts at each sequence's real last step.
    """
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    lengths = lengths.unsqueeze(0)  # (1, B)
    source = torch.where(t < lengths, lengths - 1 - t, t)  # (T, B): step read for each output
    return x.gather(0, source.unsqueeze(-1).expand_as(x))


def _index_state(state, index: Tensor):
    if isinstance(state, LSTMState):
        return LSTMState(state.h.index_select(0, index), state.c.index_select(0, index))
    return state.index_select(0, index)


# ------------------------------------------------------------------------------ scan engine
class KernelWeights(NamedTuple):
    """A cell's parameters laid out for the scan kernels and :class:`FastStep`.

    LSTM gate rows are reordered i, f, o, g in every weight and bias (the three sigmoid gates
    contiguous: one sigmoid covers them). The biases outside the nonlinearity are one vector in
    the input product; the GRU's ``b_hn`` sits inside ``r * (.)``, so its ``b_hh`` stays whole.
    """

    w_ih: Tensor  # (G, I), G = gates * H
    w_hh: Tensor  # (G, H)
    b_in: Tensor | None  # (G,) in the input product: b_ih + b_hh (RNN, LSTM), b_ih (GRU)
    b_hh: Tensor | None  # (G,) GRU only
    w_ch: Tensor | None  # (G, K) with a context
    gate_bias: Tensor | None  # (G,) layer-norm LSTM: b, added after the input's norm
    ln_ih: Tensor | None  # (G,) layer-norm LSTM: the gains of the two gate norms
    ln_hh: Tensor | None  # (G,)
    ln_c_w: Tensor | None  # (H,) layer-norm LSTM: the cell norm's gain and shift
    ln_c_b: Tensor | None  # (H,)


def kernel_weights(cell: RecurrentCell) -> KernelWeights:
    """``cell``'s parameters in the kernels' layout (copies where reordered or summed; autograd
    sees through them, so gradients reach the cell's parameters)."""
    order = None
    if cell.has_cell_state:  # rows of torch's i, f, g, o blocks as i, f, o, g
        blocks = torch.arange(4 * cell.hidden_size, device=cell.weight_hh.device)
        order = blocks.view(4, cell.hidden_size)[[0, 1, 3, 2]].reshape(-1)

    def rows(weight: Tensor | None) -> Tensor | None:
        return weight if weight is None or order is None else weight.index_select(0, order)

    if isinstance(cell, LayerNormLSTMCell):
        return KernelWeights(rows(cell.weight_ih), rows(cell.weight_hh), None, None,
                             rows(cell.weight_ch), rows(cell.gate_bias), rows(cell.ln_ih_weight),
                             rows(cell.ln_hh_weight), cell.ln_c_weight, cell.ln_c_bias)
    if isinstance(cell, GRUCell):
        b_in, b_hh = cell.bias_ih, cell.bias_hh
    else:
        b_in, b_hh = (None if cell.bias_ih is None else cell.bias_ih + cell.bias_hh), None
    return KernelWeights(rows(cell.weight_ih), rows(cell.weight_hh), rows(b_in), b_hh,
                         rows(cell.weight_ch), None, None, None, None, None)


def normed_input_gates(weights: KernelWeights, gates: Tensor) -> Tensor:
    """The layer-norm LSTM's input part ``LN(W_xh x [+ W_ch v]; g_ih) + b`` from the product
    ``W_xh x [+ W_ch v]`` ``(..., G)``; the other cells' gates as they are."""
    if weights.ln_ih is None:
        return gates
    gates = F.layer_norm(gates, gates.shape[-1:], weights.ln_ih, None, scan.LAYER_NORM_EPS)
    return gates if weights.gate_bias is None else gates.add_(weights.gate_bias)


def _input_gates(weights: KernelWeights, seq: Tensor, context: Tensor | None) -> Tensor:
    """The gates' input part for every step at once: ``(T, B, I) -> (T, B, G)``.

    ``W_xh x_t`` is one large product over all steps; the per-sequence term ``W_ch v`` is
    ``(B, G)``, computed once and added to every step's slab in place: conditioning costs one
    small product and one pass over the gates, not a longer input.
    """
    per_sequence = None
    if context is not None:  # (B, K) -> (1, B, G), the same at every step
        per_sequence = F.linear(context, weights.w_ch).unsqueeze(0)
    # (T, B, I) x (I, G) -> (T, B, G)
    gates = gemm.linear(seq, weights.w_ih, weights.b_in, per_sequence)
    return normed_input_gates(weights, gates)


def _scan_direction(cell: RecurrentCell, seq: Tensor, state, context: Tensor | None,
                    mask: Tensor | None, steps: scan.Steps | None):
    """One layer, one direction, through the hand-written kernels: ``(T, B, I) -> (T, B, H)``.

    The kernels compute in the parameters' dtype. Under autocast the inputs are cast to it and
    autocast is paused: its per-op casts would mix dtypes inside the hand-written loops (the
    recurrence is also where low precision hurts most).
    """
    if _autocast_on(seq.device):
        dtype = cell.weight_hh.dtype
        with torch.autocast(seq.device.type, enabled=False):
            cast = (lambda t: None if t is None else t.to(dtype))  # noqa: E731
            state = LSTMState(cast(state.h), cast(state.c)) if cell.has_cell_state else cast(
                state)
            return _scan_direction(cell, cast(seq), state, cast(context), cast(mask), steps)
    w = kernel_weights(cell)
    gi = _input_gates(w, seq, context)
    # the autograd path whenever any tensor a kernel reads needs a gradient (biases and norm
    # weights go into the kernels apart from gi and w_hh)
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (gi, *(state if cell.has_cell_state else (state,)),
                                  *cell.parameters()))
    if isinstance(cell, RNNCell):
        relu = cell.nonlinearity == "relu"
        if grad:
            return scan.RNNScan.apply(gi, state, w.w_hh, mask, steps, relu)
        return scan.rnn_forward(gi, state, w.w_hh, mask, steps, relu)
    if isinstance(cell, GRUCell):
        if grad:
            return scan.GRUScan.apply(gi, state, w.w_hh, w.b_hh, mask, steps)
        out, h, _ = scan.gru_forward(gi, state, w.w_hh, w.b_hh, mask, steps, keep=False)
        return out, h
    if isinstance(cell, LayerNormLSTMCell):
        norms = (w.ln_hh, w.ln_c_w, w.ln_c_b)
        if grad:
            out, h, c = scan.LayerNormLSTMScan.apply(gi, state.h, state.c, w.w_hh, *norms, mask,
                                                     steps)
        else:
            out, h, c, _ = scan.ln_lstm_forward(gi, state.h, state.c, w.w_hh, *norms, mask,
                                                steps, keep=False)
        return out, LSTMState(h, c)
    if grad:
        out, h, c = scan.LSTMScan.apply(gi, state.h, state.c, w.w_hh, mask, steps)
    else:
        out, h, c, _ = scan.lstm_forward(gi, state.h, state.c, w.w_hh, mask, steps, keep=False)
    return out, LSTMState(h, c)


# ------------------------------------------------------------------- one step, generating
class FastStep:
    """One cell's step for generation: the scan kernels' own step over the cell's weights in
    their layout (:func:`kernel_weights`, detached), without a module call's checks.

    ``gi = fast.input_gates(x)`` is the part of the gates that does not depend on ``h``
    (``(N, I) -> (N, G)``, so a decoder may compute it for a whole vocabulary once); then
    ``h_t, c_t = fast.step(gi, h, c)`` (``c`` and ``c_t`` are ``None`` but for LSTMs). The same
    numbers as ``cell(x_t, state, context)`` in evaluation (tested to float rounding). The
    weights are laid out at construction: after the cell changes, build a new one.

    Args:
        cell: the cell.
        mm: the product ``a @ w.T (+ add) (+ bias)``: :func:`rnnkit.nn.gemm.mm_t` (oneDNN where
            it is faster) or :func:`rnnkit.nn.gemm.torch_mm_t` (faster for a single row).
    """

    def __init__(self, cell: RecurrentCell, mm: Callable[..., Tensor] = gemm.mm_t) -> None:
        with torch.no_grad():
            self.weights = KernelWeights(*(None if t is None else t.detach().contiguous()
                                           for t in kernel_weights(cell)))
        self.mm = mm
        self.relu = isinstance(cell, RNNCell) and cell.nonlinearity == "relu"
        steps = {LSTMCell: self._lstm, LayerNormLSTMCell: self._layer_norm_lstm,
                 GRUCell: self._gru, RNNCell: self._rnn}
        self.step = next(step for kind, step in steps.items() if isinstance(cell, kind))

    def input_gates(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``W_xh x + b [+ W_ch v]`` (normed for the layer-norm LSTM): ``(N, I) -> (N, G)``."""
        w = self.weights
        gates = self.mm(x, w.w_ih, bias=w.b_in)  # (N, I) x (I, G) -> (N, G)
        if context is not None:
            gates += F.linear(context, w.w_ch)  # (N, K) x (K, G)
        return normed_input_gates(w, gates)

    def _rnn(self, gi: Tensor, h: Tensor, c: None = None) -> tuple[Tensor, None]:
        return scan.rnn_step(gi, h, self.weights.w_hh, self.relu, self.mm), None

    def _gru(self, gi: Tensor, h: Tensor, c: None = None) -> tuple[Tensor, None]:
        h, _ = scan.gru_step(gi, h, h, self.weights.w_hh, self.weights.b_hh, self.mm)
        return h, None

    def _lstm(self, gi: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        h, c, _, _ = scan.lstm_step(gi, h, c, self.weights.w_hh, self.mm)
        return h, c

    def _layer_norm_lstm(self, gi: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weights
        h, c, _ = scan.ln_lstm_step(gi, h, c, w.w_hh, w.ln_hh, w.ln_c_w, w.ln_c_b, self.mm)
        return h, c


def _autocast_on(device: torch.device) -> bool:
    if device.type not in ("cpu", "cuda"):
        return False
    return torch.is_autocast_enabled(device.type)


# ----------------------------------------------------------------------------- torch engine
def _with_context(layer_cells: Sequence[RecurrentCell], seq: Tensor,
                  context: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Let the per-sequence term ``W_ch v`` ride on a fused kernel's input product.

    The kernel computes ``W_ih' x'_t`` for every step; with ``x'_t = [x_t, z]`` and
    ``W_ih' = [W_ih, W_z]`` that is ``W_ih x_t + W_z z``. Two exact choices of ``(z, W_z)``:

    * ``z = v`` ``(K,)`` and ``W_z = W_ch``: ``K`` more input columns;
    * ``z = e_b`` (sequence b's one-hot, ``(B,)``) and ``W_z = (W_ch V^T)`` ``(G, B)``, whose
      column b is sequence b's term: ``B`` more columns, whatever ``K`` is.

    The narrower one is used. Returns ``x'`` ``(T, B, I + min(K, B))`` and each cell's ``W_ih'``.
    """
    T, B, _ = seq.shape
    if context.shape[1] <= B:
        extra = context  # (B, K)
        weights = [torch.cat([c.weight_ih, c.weight_ch], dim=1) for c in layer_cells]
    else:
        extra = torch.eye(B, dtype=seq.dtype, device=seq.device)  # (B, B)
        weights = [torch.cat([c.weight_ih, F.linear(context, c.weight_ch).t()], dim=1)
                   for c in layer_cells]  # (G, I) + (G, B)
    seq = torch.cat([seq, extra.unsqueeze(0).expand(T, -1, -1)], dim=2)  # (T, B, I + extra)
    return seq, weights


def _torch_layer(layer_cells: Sequence[RecurrentCell], seq: Tensor, states: list,
                 lengths: Tensor | None, context: Tensor | None):
    """One layer, all directions, by ``torch.lstm/gru/rnn_*``: ``(T, B, I) -> (T, B, D*H)``;
    ``lengths`` sorted, on the host."""
    first = layer_cells[0]
    bidirectional = len(layer_cells) == 2
    input_weights = [cell.weight_ih for cell in layer_cells]
    if context is not None:
        seq, input_weights = _with_context(layer_cells, seq, context)
    params = []
    for cell, weight_ih in zip(layer_cells, input_weights, strict=True):
        params += [weight_ih, cell.weight_hh]
        if cell.bias:
            params += [cell.bias_ih, cell.bias_hh]
    if first.has_cell_state:
        hx = [torch.stack([s.h for s in states]), torch.stack([s.c for s in states])]  # (D, B, H)
        function = torch.lstm
    else:
        hx = torch.stack(states)  # (D, B, H)
        function = torch.gru if isinstance(first, GRUCell) else (
            torch.rnn_relu if first.nonlinearity == "relu" else torch.rnn_tanh)
    # flags: has_biases, num_layers, dropout, train, bidirectional (, batch_first)
    # train=True whenever a backward pass may follow: oneDNN keeps its workspace only then
    flags = (first.bias, 1, 0.0, torch.is_grad_enabled(), bidirectional)
    if lengths is None:
        out, *finals = function(seq, hx, params, *flags, False)
    else:
        packed = pack_padded_sequence(seq, lengths, enforce_sorted=True)
        out, *finals = function(packed.data, packed.batch_sizes, hx, params, *flags)
        out, _ = pad_packed_sequence(packed._replace(data=out), total_length=seq.shape[0])
    if first.has_cell_state:
        h, c = finals
        return out, [LSTMState(h[d], c[d]) for d in range(len(layer_cells))]
    return out, list(finals[0].unbind(0))
