"""The engines' one step against the cells: the scan kernels' step, on the kernels' weight layout.

A cell's step is written twice on purpose: the reference (:mod:`rnnkit.nn.cells`, autograd,
torch's layout) and the kernels' (:mod:`rnnkit.nn.scan`, in place, gates reordered), which the
scan engine runs at every step and the streaming decoder once per token. This test keeps the two
one: :class:`FastStep` is the kernels' step as the decoder calls it.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.nn import CELL_KINDS, LSTMState, gemm, make_cell
from rnnkit.nn.engines import FastStep

B, I, H, K = 3, 4, 5, 2  # batch, input, hidden, context sizes: tiny on purpose


@pytest.mark.parametrize("mm", [gemm.mm_t, gemm.torch_mm_t], ids=["mm_t", "torch_mm_t"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("context_size", [0, K], ids=["plain", "context"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", CELL_KINDS)
def test_fast_step_equals_the_cell(kind, bias, context_size, dtype, mm):
    """``FastStep``'s ``h_t`` (and ``c_t``) are the cell's, for every kind, with and without
    biases and a context, on both products (oneDNN's runs for float32 on the CPU)."""
    cell = make_cell(kind, I, H, bias, context_size).to(dtype)
    with torch.no_grad():
        for p in cell.parameters():  # every parameter random, norm gains and shifts included
            p.normal_(0.0, 0.5)
    x = torch.randn(B, I, dtype=dtype)
    context = torch.randn(B, K, dtype=dtype) if context_size else None
    parts = [torch.randn(B, H, dtype=dtype) for _ in range(2 if cell.has_cell_state else 1)]
    with torch.no_grad():
        h, state = cell(x, LSTMState(*parts) if cell.has_cell_state else parts[0], context)
        fast = FastStep(cell, mm)
        got_h, got_c = fast.step(fast.input_gates(x, context), *parts)
    tolerance = {} if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_h, h, **tolerance)
    if cell.has_cell_state:
        torch.testing.assert_close(got_c, state.c, **tolerance)
    else:
        assert got_c is None
