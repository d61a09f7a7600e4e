"""The engines of :class:`rnnkit.nn.Recurrent`: the same numbers as the reference loop, sooner.

Two engines, chosen per configuration by :func:`choose_engine`:

* ``"torch"``: torch's fused kernels (``torch.lstm`` / ``torch.gru`` / ``torch.rnn_*``: oneDNN
  on the CPU, cuDNN on the GPU) for the cells torch.nn itself has, conditioned or not: the
  context term rides on the kernel's input product (see :func:`_with_context`).
* ``"scan"``: our hand-written BPTT (:mod:`rnnkit.nn.scan`) for everything else (layer norm,
  recurrent dropout) and wherever it is faster (GRU and vanilla RNN on the CPU, where torch
  runs one autograd node per operation and step).

Both run layer by layer, time-major inside, with the inter-layer dropout and recurrent masks
sampled by the caller, so that every engine and the loop see the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence

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

    ``states``, ``recurrent_masks``: one entry per cell (``layer * D + direction``);
    ``layer_masks``: the dropout mask ``(B, T, D*H)`` after each layer but the last (or None).
    """
    directions = 2 if bidirectional else 1
    B, T, _ = x.shape
    steps = order = None
    if lengths is not None:
        # Sort longest first, so that step t updates the first batch_sizes[t] rows (packing).
        # The step counts are Python ints: worked out on the CPU, once.
        lengths, order = torch.sort(lengths.cpu(), descending=True)
        batch_sizes = (lengths.unsqueeze(0) > torch.arange(T).unsqueeze(1)).sum(1)  # (T,)
        steps = scan.Steps(batch_sizes.tolist(), (lengths - 1).to(x.device))
        lengths, order = lengths.to(x.device), order.to(x.device)
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
            output, layer_finals = _torch_layer(layer_cells, layer_input, layer_states, lengths,
                                                context)
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
def _lstm_order(hidden: int, device: torch.device) -> Tensor:
    """Rows of torch's i, f, g, o blocks rearranged as i, f, o, g (sigmoid gates contiguous)."""
    blocks = torch.arange(4 * hidden, device=device).view(4, hidden)
    return blocks[[0, 1, 3, 2]].reshape(-1)


def _rows(weight: Tensor | None, order: Tensor | None) -> Tensor | None:
    if weight is None or order is None:
        return weight
    return weight.index_select(0, order)


def _input_gates(cell: RecurrentCell, seq: Tensor, context: Tensor | None,
                 order: Tensor | None) -> Tensor:
    """The gates' input part for every step at once: ``(T, B, I) -> (T, B, G)``.

    ``W_xh x_t`` is one large product over all steps; the per-sequence term ``W_ch v`` is
    ``(B, G)``, computed once and added to every step's slab in place: conditioning costs one
    small product and one pass over the gates, not a longer input.
    """
    weight = _rows(cell.weight_ih, order)
    if isinstance(cell, LayerNormLSTMCell):
        bias = None
    elif isinstance(cell, GRUCell):
        bias = cell.bias_ih  # b_hh stays in the kernel: b_hn sits inside r * (.)
    else:
        bias = None if cell.bias_ih is None else cell.bias_ih + cell.bias_hh  # both outside act
    bias = _rows(bias, order)
    per_sequence = None
    if context is not None:  # (B, K) -> (1, B, G), the same at every step
        per_sequence = F.linear(context, _rows(cell.weight_ch, order)).unsqueeze(0)
    gates = gemm.linear(seq, weight, bias, per_sequence)  # (T, B, I) x (I, G) -> (T, B, G)
    if isinstance(cell, LayerNormLSTMCell):
        gates = F.layer_norm(gates, gates.shape[-1:], _rows(cell.ln_ih_weight, order), None,
                             scan.LAYER_NORM_EPS)
        if cell.gate_bias is not None:
            gates = gates + _rows(cell.gate_bias, order)
    return gates


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
    is_lstm = cell.has_cell_state
    order = _lstm_order(cell.hidden_size, seq.device) if is_lstm else None
    gi = _input_gates(cell, seq, context, order)
    w_hh = _rows(cell.weight_hh, order)
    # the autograd path whenever any tensor a kernel reads needs a gradient (biases and norm
    # weights go into the kernels apart from gi and w_hh)
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (gi, *(state if is_lstm else (state,)), *cell.parameters()))
    if isinstance(cell, RNNCell):
        relu = cell.nonlinearity == "relu"
        if grad:
            return scan.RNNScan.apply(gi, state, w_hh, mask, steps, relu)
        return scan.rnn_forward(gi, state, w_hh, mask, steps, relu)
    if isinstance(cell, GRUCell):
        if grad:
            return scan.GRUScan.apply(gi, state, w_hh, cell.bias_hh, mask, steps)
        out, h, _ = scan.gru_forward(gi, state, w_hh, cell.bias_hh, mask, steps, keep=False)
        return out, h
    if isinstance(cell, LayerNormLSTMCell):
        ln = (_rows(cell.ln_hh_weight, order), cell.ln_c_weight, cell.ln_c_bias)
        if grad:
            out, h, c = scan.LayerNormLSTMScan.apply(gi, state.h, state.c, w_hh, *ln, mask, steps)
        else:
            out, h, c, _ = scan.ln_lstm_forward(gi, state.h, state.c, w_hh, *ln, mask, steps,
                                                keep=False)
        return out, LSTMState(h, c)
    if grad:
        out, h, c = scan.LSTMScan.apply(gi, state.h, state.c, w_hh, mask, steps)
    else:
        out, h, c, _ = scan.lstm_forward(gi, state.h, state.c, w_hh, mask, steps, keep=False)
    return out, LSTMState(h, c)


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
    """One layer, all directions, by ``torch.lstm/gru/rnn_*``: ``(T, B, I) -> (T, B, D*H)``."""
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
        packed = pack_padded_sequence(seq, lengths.cpu(), enforce_sorted=True)
        out, *finals = function(packed.data, packed.batch_sizes, hx, params, *flags)
        out, _ = pad_packed_sequence(packed._replace(data=out), total_length=seq.shape[0])
    if first.has_cell_state:
        h, c = finals
        return out, [LSTMState(h[d], c[d]) for d in range(len(layer_cells))]
    return out, list(finals[0].unbind(0))
