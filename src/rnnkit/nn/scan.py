"""Hand-written backpropagation through time for the recurrences torch has no fused CPU kernel for.

Each kernel runs the recurrent part of one layer and one direction, time-major, over input
gates that were computed for all steps at once (one large matrix multiply, outside)::

    gi      (T, B, G)   W_xh x_t + biases [+ W_ch v], for every t   (G = gates * H)
    h0, c0  (B, H)      initial state
    w_hh    (G, H)      the recurrent weight, the same at every step
    mask    (B, H)      variational recurrent dropout on h_{t-1} (or None)
    steps   Steps       when sequences have different lengths (or None): the batch is sorted by
                        length, longest first, and step t updates only its first
                        ``batch_sizes[t]`` rows, as a packed sequence does
    returns out (T, B, H) (zeros past a sequence's end), and the final state of each sequence

The forward pass saves the activated gates; the backward pass walks time in reverse doing only
what must be sequential (elementwise gate derivatives and one ``(n, G) x (G, H)`` product per
step) and leaves the rest to single large products after the loop::

    dW_hh = sum_t dA_t^T (m * h_{t-1})  =  dA.view(T*B, G)^T @ H_prev.view(T*B, H)
    dgi   = dA                           (autograd turns it into dW_xh and dx outside)

This is how cuDNN organises an RNN; done here in PyTorch ops, it keeps one matrix multiply per
step in each direction instead of autograd's chain of small nodes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .cells import LAYER_NORM_EPS
from .gemm import mm_t, weight_grad


class Steps(NamedTuple):
    """Variable lengths on a batch sorted longest first."""

    batch_sizes: list[int]  # rows still running at each step t, non-increasing
    last: Tensor  # (B,) long: index of each sequence's last step (its length - 1)


def _steps(steps: Steps | None, *buffers: Tensor, reverse: bool = False):
    """``(t, n, buffer[t, :n], ...)`` for every step that runs, in time order or reversed.

    Each ``(T, B, ...)`` buffer is unbound once; a step's views are cut to its ``n`` running
    rows only when some sequences have ended, so the common full batch pays no slicing.
    """
    slabs = [buffer.unbind(0) for buffer in buffers]
    T, B = buffers[0].shape[:2]
    for t in reversed(range(T)) if reverse else range(T):
        n = B if steps is None else steps.batch_sizes[t]
        if n == B:
            yield t, n, *(slab[t] for slab in slabs)
        elif n > 0:
            yield t, n, *(slab[t][:n] for slab in slabs)


def _head(x: Tensor | None, n: int) -> Tensor | None:
    """The first ``n`` rows of ``x`` (itself when it has no more)."""
    return x if x is None or x.shape[0] == n else x[:n]


def _final(buffer: Tensor, steps: Steps | None) -> Tensor:
    """The state each sequence had at its own last step: ``(T, B, H) -> (B, H)``."""
    if steps is None:
        return buffer[-1].clone()
    return buffer[steps.last, torch.arange(buffer.shape[1], device=buffer.device)]


def _new_buffer(steps: Steps | None, *shape: int, like: Tensor) -> Tensor:
    # rows past a sequence's end must read as zeros (outputs, and gradients that feed dW)
    return like.new_zeros(shape) if steps is not None else like.new_empty(shape)


def _previous_hidden(h0: Tensor, out: Tensor, mask: Tensor | None) -> Tensor:
    """``m * h_{t-1}`` for every t: ``(T, B, H)``; rows past a sequence's end are never read."""
    previous = torch.cat([h0.unsqueeze(0), out[:-1]])  # (1, B, H) + (T-1, B, H) -> (T, B, H)
    return previous if mask is None else previous * mask


def _recurrent_weight_grad(d_gates: Tensor, h_prev: Tensor) -> Tensor:
    # (T, B, G) x (T, B, H) -> (G, H): one product over all steps and sequences
    return weight_grad(d_gates, h_prev)


def _store(buffer: Tensor, n: int, value: Tensor, steps: Steps | None) -> Tensor:
    """The running gradient buffer after a step: rows past ``n`` keep what they hold."""
    if steps is None:
        return value  # every row ran: no copy
    buffer[:n] = value
    return buffer


# ---------------------------------------------------------------------------------- steps
# One step of each recurrence, what the forward kernels below run at every t and the streaming
# decoder (rnnkit.nn.engines.FastStep) once per token: ``gi_t`` ``(n, G)`` is the step's input
# part, ``h_in`` ``(n, H)`` the previous ``h`` after the recurrent mask; ``mm`` is the product
# ``a @ w.T (+ add) (+ bias)`` (gemm's); ``out`` buffers, when given, receive the new state (the
# kernels' per-step slabs; ``out=None`` is never passed on: torch's ops take a slower path for
# it). Activations run in place. LSTM gates are ordered i, f, o, g (the caller permutes torch's
# i, f, g, o rows), so that one sigmoid covers the three sigmoid gates.
def rnn_step(gi_t: Tensor, h_in: Tensor, w_hh: Tensor, relu: bool, mm=mm_t,
             out: Tensor | None = None) -> Tensor:
    """``h_t = tanh(gi_t + W_hh h_in)`` (or ``relu``)."""
    pre = mm(h_in, w_hh, add=gi_t)  # (n, H) x (H, H) + (n, H)
    if out is None:
        return pre.clamp_min_(0) if relu else pre.tanh_()
    return torch.clamp_min(pre, 0, out=out) if relu else torch.tanh(pre, out=out)


def lstm_step(gi_t: Tensor, h_in: Tensor, c_prev: Tensor, w_hh: Tensor, mm=mm_t,
              h_out: Tensor | None = None, c_out: Tensor | None = None) -> tuple:
    """``[i,f,o,g] = act(gi_t + W_hh h_in)``, ``c_t = f*c_{t-1} + i*g``, ``h_t = o*tanh(c_t)``.

    Returns ``h_t``, ``c_t``, the activated gates ``(n, 4H)`` and ``tanh(c_t)`` (``None``
    without ``h_out``: then ``h_t`` is computed in its place).
    """
    a = mm(h_in, w_hh, add=gi_t)  # (n, H) x (H, 4H) + (n, 4H)
    c, o = _cell_update(a, c_prev, c_out)
    tc = torch.tanh(c)
    if h_out is None:  # one step alone (a decoder's): nothing keeps tanh(c_t)
        return tc.mul_(o), c, a, None
    return torch.mul(o, tc, out=h_out), c, a, tc


def _cell_update(a: Tensor, c_prev: Tensor, c_out: Tensor | None) -> tuple[Tensor, Tensor]:
    """Activate the gates ``a`` ``(n, 4H)`` in place; ``(c_t = f*c_{t-1} + i*g, o)``."""
    H = c_prev.shape[1]
    sig, g = a.split([3 * H, H], dim=1)
    sig.sigmoid_()
    g.tanh_()
    i, f, o = sig.chunk(3, dim=1)
    c = torch.mul(f, c_prev) if c_out is None else torch.mul(f, c_prev, out=c_out)
    return c.addcmul_(i, g), o


def gru_step(gi_t: Tensor, h_prev: Tensor, h_in: Tensor, w_hh: Tensor, b_hh: Tensor | None,
             mm=mm_t, out: Tensor | None = None) -> tuple:
    """torch's GRU: ``[r,z] = sigm(gi+gh)``, ``n = tanh(gi_n + r*gh_n)``, ``h = n + z*(h_{t-1}-n)``.

    ``gh = W_hh h_in + b_hh`` stays whole because ``b_hn`` sits inside ``r * (.)``. Returns
    ``h_t`` and what the backward pass reads: ``(rz, n, gh_n)``.
    """
    H = h_prev.shape[1]
    gh = mm(h_in, w_hh, bias=b_hh)  # (n, H) x (H, 3H) + b_hh
    gi_rz, gi_n = gi_t.split([2 * H, H], dim=1)
    gh_rz, gh_n = gh.split([2 * H, H], dim=1)
    rz = torch.add(gi_rz, gh_rz).sigmoid_()
    r, z = rz.chunk(2, dim=1)
    n = torch.addcmul(gi_n, r, gh_n).tanh_()
    h = torch.sub(h_prev, n) if out is None else torch.sub(h_prev, n, out=out)
    h.mul_(z).add_(n)  # (1 - z) n + z h_{t-1} = n + z (h_{t-1} - n)
    return h, (rz, n, gh_n)


def ln_lstm_step(gi_t: Tensor, h_in: Tensor, c_prev: Tensor, w_hh: Tensor, ln_hh_w: Tensor,
                 ln_c_w: Tensor, ln_c_b: Tensor, mm=mm_t, h_out: Tensor | None = None,
                 c_out: Tensor | None = None) -> tuple:
    """Layer-norm LSTM: ``a_t = gi_t + LN(W_hh h_in; g_hh)``; ``c_t`` as the LSTM's;
    ``h_t = o*tanh(LN(c_t; g_c, b_c))``.

    Returns ``h_t``, ``c_t`` and what the backward pass reads: ``y = W_hh h_in`` and its norm's
    statistics, the activated gates, ``LN(c_t)``'s statistics and ``tanh(LN(c_t))`` (``None``
    without ``h_out``: then ``h_t`` is computed in place of the last).
    """
    y = mm(h_in, w_hh)  # (n, H) x (H, 4H)
    y_norm, y_mean, y_rstd = _layer_norm(y, ln_hh_w, None)
    a = y_norm.add_(gi_t)
    c, o = _cell_update(a, c_prev, c_out)
    c_norm, c_mean, c_rstd = _layer_norm(c, ln_c_w, ln_c_b)
    tc = c_norm.tanh_()
    if h_out is None:  # one step alone (a decoder's): nothing keeps what backward reads
        return tc.mul_(o), c, None
    return torch.mul(o, tc, out=h_out), c, (y, y_mean, y_rstd, a, c_mean, c_rstd, tc)


def _layer_norm(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(LN(x; weight, bias), mean, rstd)``: torch's own kernel, its statistics kept."""
    return torch.native_layer_norm(x, x.shape[-1:], weight, bias, LAYER_NORM_EPS)


# ------------------------------------------------------------------------------ vanilla RNN
def rnn_forward(gi: Tensor, h0: Tensor, w_hh: Tensor, mask: Tensor | None,
                steps: Steps | None, relu: bool) -> tuple[Tensor, Tensor]:
    """``h_t = tanh(gi_t + W_hh (m * h_{t-1}))`` for every t (or ``relu``)."""
    T, B, H = gi.shape
    out = _new_buffer(steps, T, B, H, like=gi)
    h_prev = h0 if mask is None else h0 * mask
    for _, n, gi_t, out_t in _steps(steps, gi, out):
        rnn_step(gi_t, _head(h_prev, n), w_hh, relu, out=out_t)
        h_prev = out_t if mask is None else out_t * _head(mask, n)
    return out, _final(out, steps)


def rnn_backward(h0: Tensor, w_hh: Tensor, mask: Tensor | None, steps: Steps | None,
                 relu: bool, out: Tensor, d_out: Tensor,
                 d_final: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    d_pre = _new_buffer(steps, *out.shape, like=out)  # dL/d(pre-activation), = dL/dgi
    d_next = d_final.clone()  # dL/dh_t from step t+1; rows not yet running hold d_final
    w_hh_t = w_hh.t().contiguous()  # (H, H): d_prev = d_pre @ W_hh = d_pre @ w_hh_t^T
    activation_backward = _relu_backward if relu else _tanh_backward
    for _, n, d_out_t, h, d_pre_t in _steps(steps, d_out, out, d_pre, reverse=True):
        activation_backward(d_out_t + _head(d_next, n), h, out=d_pre_t)
        d_prev = mm_t(d_pre_t, w_hh_t)
        if mask is not None:
            d_prev.mul_(_head(mask, n))
        d_next = _store(d_next, n, d_prev, steps)
    d_w_hh = _recurrent_weight_grad(d_pre, _previous_hidden(h0, out, mask))
    return d_pre, d_next, d_w_hh


class RNNScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi, h0, w_hh, mask, steps, relu):
        out, h_final = rnn_forward(gi, h0, w_hh, mask, steps, relu)
        ctx.save_for_backward(h0, w_hh, mask, out)
        ctx.steps, ctx.relu = steps, relu
        return out, h_final

    @staticmethod
    def backward(ctx, d_out, d_final):
        h0, w_hh, mask, out = ctx.saved_tensors
        d_gi, d_h0, d_w_hh = rnn_backward(h0, w_hh, mask, ctx.steps, ctx.relu, out,
                                          _dense(d_out, out), _dense(d_final, h0))
        return d_gi, d_h0, d_w_hh, None, None, None


# ------------------------------------------------------------------------------------ LSTM
def lstm_forward(gi: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, mask: Tensor | None,
                 steps: Steps | None, keep: bool) -> tuple:
    """``c_t = f*c_{t-1} + i*g``, ``h_t = o*tanh(c_t)``; ``[i,f,o,g] = act(gi_t + W_hh m*h_{t-1})``.

    ``keep`` keeps each step's activated gates and ``tanh(c_t)`` for the backward pass.
    """
    T, B, G = gi.shape
    H = G // 4
    out = _new_buffer(steps, T, B, H, like=gi)
    cells = _new_buffer(steps, T, B, H, like=gi)  # c_t (all of them: the final c is read off it)
    gates, tanh_cells = [], []  # per step: (n, 4H) activated i, f, o, g; (n, H) tanh(c_t)
    h_prev, c_prev = (h0 if mask is None else h0 * mask), c0
    for _, n, gi_t, out_t, c in _steps(steps, gi, out, cells):
        _, _, a, tc = lstm_step(gi_t, _head(h_prev, n), _head(c_prev, n), w_hh, h_out=out_t,
                                c_out=c)
        if keep:
            gates.append(a)
            tanh_cells.append(tc)
        h_prev = out_t if mask is None else out_t * _head(mask, n)
        c_prev = c
    return out, _final(out, steps), _final(cells, steps), (cells, gates, tanh_cells)


def lstm_backward(h0, c0, w_hh, mask, steps, out, saved, d_out, d_h_final, d_c_final):
    cells, gates, tanh_cells = saved
    H = out.shape[2]
    d_gates = _new_buffer(steps, *out.shape[:2], 4 * H, like=out)  # dL/d(pre-act) = dL/dgi
    d_h = d_h_final.clone()  # dL/dh_t arriving from step t+1 (or the final state)
    d_c = d_c_final.clone()  # dL/dc_t arriving from step t+1 (or the final state)
    w_hh_t = w_hh.t().contiguous()  # (H, 4H)
    c_slabs = cells.unbind(0)
    for t, n, d_out_t, da in _steps(steps, d_out, d_gates, reverse=True):
        sig, g = gates[t].split([3 * H, H], dim=1)
        i, f, o = sig.chunk(3, dim=1)
        tc = tanh_cells[t]
        c_prev = _head(c_slabs[t - 1] if t > 0 else c0, n)
        d_sig, d_g = da.split([3 * H, H], dim=1)
        d_i, d_f, d_o = d_sig.chunk(3, dim=1)

        dh = d_out_t + _head(d_h, n)
        torch.mul(dh, tc, out=d_o)  # h = o * tanh(c)
        dc = _tanh_backward(dh * o, tc).add_(_head(d_c, n))  # + dL/dc_t from step t+1
        torch.mul(dc, g, out=d_i)  # c = f * c_prev + i * g
        torch.mul(dc, c_prev, out=d_f)
        torch.mul(dc, i, out=d_g)
        d_c = _store(d_c, n, dc.mul_(f), steps)  # dL/dc_{t-1}
        _sigmoid_backward(d_sig, sig, out=d_sig)  # through the activations, in place
        _tanh_backward(d_g, g, out=d_g)
        d_prev = mm_t(da, w_hh_t)  # (n, 4H) x (4H, H)
        if mask is not None:
            d_prev.mul_(_head(mask, n))
        d_h = _store(d_h, n, d_prev, steps)
    d_w_hh = _recurrent_weight_grad(d_gates, _previous_hidden(h0, out, mask))
    return d_gates, d_h, d_c, d_w_hh


class LSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi, h0, c0, w_hh, mask, steps):
        out, h_final, c_final, saved = lstm_forward(gi, h0, c0, w_hh, mask, steps, keep=True)
        ctx.save_for_backward(h0, c0, w_hh, mask, out)
        ctx.saved, ctx.steps = saved, steps  # per-step intermediates, not inputs or outputs
        return out, h_final, c_final

    @staticmethod
    def backward(ctx, d_out, d_h_final, d_c_final):
        h0, c0, w_hh, mask, out = ctx.saved_tensors
        d_gi, d_h0, d_c0, d_w_hh = lstm_backward(
            h0, c0, w_hh, mask, ctx.steps, out, ctx.saved, _dense(d_out, out),
            _dense(d_h_final, h0), _dense(d_c_final, c0))
        return d_gi, d_h0, d_c0, d_w_hh, None, None


# ------------------------------------------------------------------------------------- GRU
def gru_forward(gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, mask: Tensor | None,
                steps: Steps | None, keep: bool) -> tuple:
    """:func:`gru_step` for every t, ``gh_t = W_hh (m * h_{t-1}) + b_hh``."""
    T, B, G = gi.shape
    H = G // 3
    out = _new_buffer(steps, T, B, H, like=gi)
    saved = []  # per step: activated r, z (rows, 2H); n (rows, H); gh_n (rows, H)
    h_prev = h0
    for _, rows, gi_t, out_t in _steps(steps, gi, out):
        h_prev = _head(h_prev, rows)
        h_in = h_prev if mask is None else h_prev * _head(mask, rows)
        _, per_step = gru_step(gi_t, h_prev, h_in, w_hh, b_hh, out=out_t)
        if keep:
            saved.append(per_step)
        h_prev = out_t
    return out, _final(out, steps), saved


def gru_backward(h0, w_hh, mask, steps, out, saved, d_out, d_final):
    T, B, H = out.shape
    d_hidden = _new_buffer(steps, T, B, 3 * H, like=out)  # dL/dgh
    d_input_new = _new_buffer(steps, T, B, H, like=out)  # dL/dgi_n (dL/dgi_rz = dL/dgh_rz)
    d_h = d_final.clone()
    w_hh_t = w_hh.t().contiguous()  # (H, 3H)
    h_slabs = out.unbind(0)
    for t, rows, d_out_t, dgh, dn in _steps(steps, d_out, d_hidden, d_input_new, reverse=True):
        rz, n, gh_n = saved[t]
        r, z = rz.chunk(2, dim=1)
        h_prev = _head(h_slabs[t - 1] if t > 0 else h0, rows)
        d_rz, dgh_n = dgh.split([2 * H, H], dim=1)
        d_r, d_z = d_rz.chunk(2, dim=1)

        dh = d_out_t + _head(d_h, rows)
        torch.mul(dh, h_prev - n, out=d_z)  # h = n + z * (h_prev - n)
        dh_z = dh * z
        torch.sub(dh, dh_z, out=dn)  # dL/dn = dh (1 - z)
        _tanh_backward(dn, n, out=dn)  # dL/d(pre-tanh of n)
        torch.mul(dn, gh_n, out=d_r)
        _sigmoid_backward(d_rz, rz, out=d_rz)
        torch.mul(dn, r, out=dgh_n)
        d_prev = mm_t(dgh, w_hh_t)  # (rows, 3H) x (3H, H)
        if mask is not None:
            d_prev.mul_(_head(mask, rows))
        d_h = _store(d_h, rows, d_prev.add_(dh_z), steps)
    d_gi = torch.cat([d_hidden[..., :2 * H], d_input_new], dim=-1)  # (T, B, 2H) + (T, B, H)
    d_w_hh = _recurrent_weight_grad(d_hidden, _previous_hidden(h0, out, mask))
    return d_gi, d_h, d_w_hh, d_hidden


class GRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi, h0, w_hh, b_hh, mask, steps):
        out, h_final, saved = gru_forward(gi, h0, w_hh, b_hh, mask, steps, keep=True)
        ctx.save_for_backward(h0, w_hh, b_hh, mask, out)
        ctx.saved, ctx.steps = saved, steps
        return out, h_final

    @staticmethod
    def backward(ctx, d_out, d_final):
        h0, w_hh, b_hh, mask, out = ctx.saved_tensors
        d_gi, d_h0, d_w_hh, d_hidden = gru_backward(
            h0, w_hh, mask, ctx.steps, out, ctx.saved, _dense(d_out, out), _dense(d_final, h0))
        d_b_hh = None if b_hh is None else d_hidden.sum(dim=(0, 1))
        return d_gi, d_h0, d_w_hh, d_b_hh, None, None


# ------------------------------------------------------------------------ layer-norm LSTM
def _layer_norm_backward(d_y, x, mean, rstd, weight, bias):
    """``(dL/dx, dL/dweight, dL/dbias)`` of ``y = LN(x; weight, bias)``: torch's own kernel."""
    return torch.ops.aten.native_layer_norm_backward(
        d_y, x, x.shape[-1:], mean, rstd, weight, bias, [True, True, bias is not None])


def ln_lstm_forward(gi, h0, c0, w_hh, ln_hh_w, ln_c_w, ln_c_b, mask, steps, keep):
    """Layer-norm LSTM: ``a_t = gi_t + LN(W_hh m*h_{t-1}; g_hh)``; ``h_t = o*tanh(LN(c_t))``.

    ``gi`` already holds ``LN(W_xh x_t [+ W_ch v]; g_ih) + b``. Gate order i, f, o, g.
    """
    T, B, G = gi.shape
    H = G // 4
    out = _new_buffer(steps, T, B, H, like=gi)
    cells = _new_buffer(steps, T, B, H, like=gi)
    saved = []  # per step: y = W_hh m*h_{t-1} and its norm's statistics, gates, LN(c) stats
    h_prev, c_prev = (h0 if mask is None else h0 * mask), c0
    for _, n, gi_t, out_t, c in _steps(steps, gi, out, cells):
        _, _, per_step = ln_lstm_step(gi_t, _head(h_prev, n), _head(c_prev, n), w_hh, ln_hh_w,
                                      ln_c_w, ln_c_b, h_out=out_t, c_out=c)
        if keep:
            saved.append(per_step)
        h_prev = out_t if mask is None else out_t * _head(mask, n)
        c_prev = c
    return out, _final(out, steps), _final(cells, steps), (cells, saved)


def ln_lstm_backward(h0, c0, w_hh, ln_hh_w, ln_c_w, ln_c_b, mask, steps, out, saved, d_out,
                     d_h_final, d_c_final):
    cells, per_step = saved
    T, B, H = out.shape
    d_gates = _new_buffer(steps, T, B, 4 * H, like=out)  # = dL/dgi = dL/dLN_hh(y)
    d_recurrent = _new_buffer(steps, T, B, 4 * H, like=out)  # dL/dy, y = W_hh m*h_{t-1}
    d_ln_hh_w = torch.zeros_like(ln_hh_w)
    d_ln_c_w = torch.zeros_like(ln_c_w)
    d_ln_c_b = torch.zeros_like(ln_c_b)
    d_h = d_h_final.clone()
    d_c = d_c_final.clone()
    w_hh_t = w_hh.t().contiguous()  # (H, 4H)
    c_slabs = cells.unbind(0)
    for t, n, d_out_t, da, dy_t in _steps(steps, d_out, d_gates, d_recurrent, reverse=True):
        y, y_mean, y_rstd, a, c_mean, c_rstd, tc = per_step[t]
        sig, g = a.split([3 * H, H], dim=1)
        i, f, o = sig.chunk(3, dim=1)
        c = _head(c_slabs[t], n)
        c_prev = _head(c_slabs[t - 1] if t > 0 else c0, n)
        d_sig, d_g = da.split([3 * H, H], dim=1)
        d_i, d_f, d_o = d_sig.chunk(3, dim=1)

        dh = d_out_t + _head(d_h, n)
        torch.mul(dh, tc, out=d_o)  # h = o * tanh(LN(c))
        d_c_norm = _tanh_backward(dh * o, tc)
        dc, dw, db = _layer_norm_backward(d_c_norm, c, c_mean, c_rstd, ln_c_w, ln_c_b)
        d_ln_c_w += dw
        d_ln_c_b += db
        dc += _head(d_c, n)
        torch.mul(dc, g, out=d_i)  # c = f * c_prev + i * g
        torch.mul(dc, c_prev, out=d_f)
        torch.mul(dc, i, out=d_g)
        d_c = _store(d_c, n, dc.mul_(f), steps)
        _sigmoid_backward(d_sig, sig, out=d_sig)
        _tanh_backward(d_g, g, out=d_g)
        dy, dw, _ = _layer_norm_backward(da, y, y_mean, y_rstd, ln_hh_w, None)
        d_ln_hh_w += dw
        dy_t.copy_(dy)
        d_prev = mm_t(dy, w_hh_t)  # (n, 4H) x (4H, H)
        if mask is not None:
            d_prev.mul_(_head(mask, n))
        d_h = _store(d_h, n, d_prev, steps)
    d_w_hh = _recurrent_weight_grad(d_recurrent, _previous_hidden(h0, out, mask))
    return d_gates, d_h, d_c, d_w_hh, d_ln_hh_w, d_ln_c_w, d_ln_c_b


class LayerNormLSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gi, h0, c0, w_hh, ln_hh_w, ln_c_w, ln_c_b, mask, steps):
        out, h_final, c_final, saved = ln_lstm_forward(
            gi, h0, c0, w_hh, ln_hh_w, ln_c_w, ln_c_b, mask, steps, keep=True)
        ctx.save_for_backward(h0, c0, w_hh, ln_hh_w, ln_c_w, ln_c_b, mask, out)
        ctx.saved, ctx.steps = saved, steps
        return out, h_final, c_final

    @staticmethod
    def backward(ctx, d_out, d_h_final, d_c_final):
        h0, c0, w_hh, ln_hh_w, ln_c_w, ln_c_b, mask, out = ctx.saved_tensors
        grads = ln_lstm_backward(h0, c0, w_hh, ln_hh_w, ln_c_w, ln_c_b, mask, ctx.steps, out,
                                 ctx.saved, _dense(d_out, out), _dense(d_h_final, h0),
                                 _dense(d_c_final, c0))
        return (*grads, None, None)


# Elementwise derivatives from the activations' outputs, each one op (torch's own backward
# kernels): sigmoid' = y (1 - y), tanh' = 1 - y^2, relu' = [y > 0]; ``out`` may alias ``grad``.
def _sigmoid_backward(grad: Tensor, y: Tensor, out: Tensor) -> Tensor:
    return torch.ops.aten.sigmoid_backward.grad_input(grad, y, grad_input=out)


def _tanh_backward(grad: Tensor, y: Tensor, out: Tensor | None = None) -> Tensor:
    if out is None:
        return torch.ops.aten.tanh_backward(grad, y)
    return torch.ops.aten.tanh_backward.grad_input(grad, y, grad_input=out)


def _relu_backward(grad: Tensor, y: Tensor, out: Tensor) -> Tensor:
    return torch.ops.aten.threshold_backward.grad_input(grad, y, 0, grad_input=out)


def _dense(grad: Tensor | None, like: Tensor) -> Tensor:
    """autograd passes None for an output nobody used: read it as zeros."""
    return torch.zeros_like(like) if grad is None else grad
