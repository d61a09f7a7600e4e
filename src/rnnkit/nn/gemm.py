"""Matrix products for the hand-written kernels: oneDNN's where it is faster, torch's elsewhere.

On the CPU, torch's float32 ``mm`` goes to the BLAS it was built with (MKL); oneDNN, the library
behind torch.nn.LSTM's fused CPU kernel, multiplies the shapes of an RNN step up to twice as fast
on some processors (measured here, an AMD EPYC with AVX-512: ``(64, 512) x (512, 2048)`` 146 vs
332 GFLOP/s). torch exposes oneDNN's product as ``torch.ops.mkldnn._linear_pointwise`` (the
op its own compiler emits); when that op is missing or oneDNN is switched off
(``torch.backends.mkldnn.enabled = False``), and for every other device and dtype, the products
fall back to ``torch.mm`` with the same results up to float rounding.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


@functools.cache
def _onednn_linear():
    """``torch.ops.mkldnn._linear_pointwise`` if this build has it and it computes ``x @ w.T``."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return None
    try:
        # its own generator: this runs inside the first forward, and drawing from the global
        # one there would change that run's dropout masks (and an exact resume's)
        generator = torch.Generator().manual_seed(0)
        x, w = torch.randn(3, 5, generator=generator), torch.randn(4, 5, generator=generator)
        if not torch.allclose(op(x, w, None, "none", [], ""), x @ w.t(), atol=1e-5):
            return None
        if not torch.allclose(op.binary(x, x @ w.t(), w, None, "add"), 2 * (x @ w.t()),
                              atol=1e-5):
            return None
    except (RuntimeError, TypeError, NotImplementedError):
        return None
    return op


def _onednn_for(t: Tensor):
    if t.device.type != "cpu" or t.dtype != torch.float32 or not torch.backends.mkldnn.enabled:
        return None
    return _onednn_linear()


def mm_t(a: Tensor, b: Tensor, add: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
    """``a @ b.T (+ add) (+ bias)``: ``(..., K) x (N, K) -> (..., N)``; at most one of add/bias.

    ``b`` is used as a linear layer's weight, so pass it contiguous ``(N, K)``.
    """
    onednn = _onednn_for(a)
    if onednn is None:
        return torch_mm_t(a, b, add, bias)
    if add is not None:
        return onednn.binary(a, add, b, None, "add")
    return onednn(a, b, bias, "none", [], "")


def torch_mm_t(a: Tensor, b: Tensor, add: Tensor | None = None,
               bias: Tensor | None = None) -> Tensor:
    """:func:`mm_t` by torch's own products (MKL on the CPU): its fallback, and the faster of
    the two for a single row (see :class:`rnnkit.nn.engines.FastStep`)."""
    if add is not None:
        return torch.addmm(add, a, b.t())
    if bias is not None:
        return torch.nn.functional.linear(a, b, bias)
    return a @ b.t()


def weight_grad(d_out: Tensor, inputs: Tensor) -> Tensor:
    """``sum over rows of d_out^T inputs``: ``(..., N) x (..., K) -> (N, K)``, one product."""
    d_out = d_out.reshape(-1, d_out.shape[-1])
    inputs = inputs.reshape(-1, inputs.shape[-1])
    if _onednn_for(d_out) is not None:
        # (K, rows) x (rows, N) with the small side first runs fastest in oneDNN
        return mm_t(inputs.t(), d_out.t()).t()
    return d_out.t() @ inputs


class Linear(torch.autograd.Function):
    """``x @ W^T + b (+ offset)`` for every step at once, the backward products on oneDNN too.

    ``offset`` broadcasts against the output: ``(1, B, G)`` adds a per-sequence term to every
    step of a time-major ``(T, B, G)`` result, in place, without a second output tensor.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None,
                offset: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.offset_shape = None if offset is None else offset.shape
        out = mm_t(x, weight, bias=bias)
        return out if offset is None else out.add_(offset)

    @staticmethod
    def backward(ctx, d_out: Tensor):
        x, weight = ctx.saved_tensors
        d_x = d_weight = d_bias = d_offset = None
        if ctx.needs_input_grad[0]:
            d_x = mm_t(d_out, weight.t().contiguous())  # (..., N) x (N, K) -> (..., K)
        if ctx.needs_input_grad[1]:
            d_weight = weight_grad(d_out, x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            d_bias = d_out.reshape(-1, d_out.shape[-1]).sum(0)
        if ctx.offset_shape is not None and ctx.needs_input_grad[3]:
            d_offset = d_out.sum_to_size(ctx.offset_shape)
        return d_x, d_weight, d_bias, d_offset


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None,
           offset: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias) + offset``, with oneDNN's products where they are faster."""
    if _onednn_for(x) is None:
        out = torch.nn.functional.linear(x, weight, bias)
        return out if offset is None else out + offset
    return Linear.apply(x, weight, bias, offset)
