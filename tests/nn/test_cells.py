"""One step of each cell: against torch.nn's cells, and against the docstrings' formulas."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from rnnkit.nn import LayerNormLSTMCell, LSTMState, RecurrentCell, make_cell

B, I, H, K = 3, 4, 5, 2  # batch, input, hidden, context sizes: tiny on purpose
DTYPE = torch.float64
EPS = 1e-5  # the layer-norm epsilon of LayerNormLSTMCell's docstring

TORCH_KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")  # kinds torch.nn has a cell for
ALL_KINDS = (*TORCH_KINDS, "layernorm_lstm")


# ----------------------------------------------------------------------------------- helpers
def ours(kind: str, input_size: int = I, bias: bool = True, context_size: int = 0
         ) -> RecurrentCell:
    """An rnnkit cell in float64, with every parameter random (norm gains included)."""
    cell = make_cell(kind, input_size, H, bias, context_size).to(DTYPE)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, 0.5)
    return cell


def torch_cell(kind: str, bias: bool = True) -> nn.Module:
    """torch.nn's cell of the same kind, float64, input size ``I``."""
    if kind.startswith("rnn_"):
        return nn.RNNCell(I, H, bias, nonlinearity=kind[4:], dtype=DTYPE)
    return {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](I, H, bias, dtype=DTYPE)


def random_state(cell: RecurrentCell) -> tuple[Tensor, ...]:
    """A random previous state as a tuple of leaves: ``(h,)`` or ``(h, c)``."""
    count = 2 if cell.has_cell_state else 1
    return tuple(torch.randn(B, H, dtype=DTYPE, requires_grad=True) for _ in range(count))


def as_cell_state(parts: tuple[Tensor, ...]):
    """``(h,)`` -> ``h``; ``(h, c)`` -> ``LSTMState(h, c)``: what our cells take."""
    return LSTMState(*parts) if len(parts) == 2 else parts[0]


def step_outputs(h: Tensor, state) -> tuple[Tensor, ...]:
    """Everything a step returns that a loss could use: ``(h,)`` or ``(h, c)``."""
    if isinstance(state, tuple):
        assert state[0] is h, "an LSTM cell must return its new h as the output"
        return tuple(state)
    assert state is h, "an RNN/GRU cell's output is its new state"
    return (h,)


def grads(outputs: tuple[Tensor, ...], inputs: list[Tensor], cotangents: list[Tensor]
          ) -> tuple[Tensor, ...]:
    """``d(sum_k <cotangent_k, output_k>) / d input`` for every input; each must be used."""
    return torch.autograd.grad(outputs, inputs, cotangents)


def named_grads(outputs: tuple[Tensor, ...], inputs: dict[str, Tensor],
                cotangents: list[Tensor]) -> dict[str, Tensor]:
    """:func:`grads` keyed by the inputs' names."""
    return dict(zip(inputs, grads(outputs, list(inputs.values()), cotangents), strict=True))


def random_mask() -> Tensor:
    """A variational dropout mask ``(B, H)`` of zeros and ``1/(1-p)``, both surely present."""
    mask = torch.randint(0, 2, (B, H)).to(DTYPE) / 0.6
    mask[0, 0], mask[0, 1] = 0.0, 1 / 0.6
    return mask


def layer_norm(z: Tensor, gain: Tensor, shift: Tensor | None = None) -> Tensor:
    """``gain * (z - mean) / sqrt(var + eps) + shift`` over the last axis (biased variance)."""
    mean = z.mean(-1, keepdim=True)
    var = ((z - mean) ** 2).mean(-1, keepdim=True)
    out = gain * (z - mean) / torch.sqrt(var + EPS)
    return out if shift is None else out + shift


def layer_norm_lstm_reference(cell: LayerNormLSTMCell, x: Tensor, h: Tensor, c: Tensor,
                              context: Tensor | None = None, mask: Tensor | None = None
                              ) -> tuple[Tensor, Tensor]:
    """LayerNormLSTMCell's docstring, written out directly: returns ``(h_t, c_t)``."""
    projected = x @ cell.weight_ih.T
    if context is not None:
        projected = projected + context @ cell.weight_ch.T
    h_in = h if mask is None else h * mask
    a = layer_norm(projected, cell.ln_ih_weight) + layer_norm(h_in @ cell.weight_hh.T,
                                                              cell.ln_hh_weight)
    if cell.gate_bias is not None:
        a = a + cell.gate_bias
    a_i, a_f, a_g, a_o = a.split(H, dim=1)
    c_new = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
    h_new = torch.sigmoid(a_o) * torch.tanh(layer_norm(c_new, cell.ln_c_weight, cell.ln_c_bias))
    return h_new, c_new


def gru_reference(cell: RecurrentCell, x: Tensor, h: Tensor, mask: Tensor) -> Tensor:
    """GRUCell's docstring with the recurrent mask on ``W_hh``'s input only."""
    gi = x @ cell.weight_ih.T + cell.bias_ih
    gh = (h * mask) @ cell.weight_hh.T + cell.bias_hh
    r = torch.sigmoid(gi[:, :H] + gh[:, :H])
    z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h  # the interpolation uses the unmasked h


# ------------------------------------------------------------------------ against torch.nn
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_cell_matches_torch_forward_and_gradients(kind: str, bias: bool) -> None:
    """Our cell, with torch's weights, gives torch's outputs and every gradient: the input, the
    previous state (h and c) and each parameter."""
    cell, reference = ours(kind, bias=bias), torch_cell(kind, bias)
    reference.load_state_dict(cell.state_dict())  # ours -> torch, strict
    x = torch.randn(B, I, dtype=DTYPE, requires_grad=True)
    state = random_state(cell)

    outputs = step_outputs(*cell(x, as_cell_state(state)))
    expected = reference(x, state if len(state) == 2 else state[0])
    expected = tuple(expected) if isinstance(expected, tuple) else (expected,)
    torch.testing.assert_close(outputs, expected)

    cotangents = [torch.randn_like(o) for o in outputs]
    leaves = {"x": x, **{f"state[{i}]": s for i, s in enumerate(state)}}
    got = named_grads(outputs, {**leaves, **dict(cell.named_parameters())}, cotangents)
    want = named_grads(expected, {**leaves, **dict(reference.named_parameters())}, cotangents)
    assert list(got) == list(want)  # same parameter names, in the same order
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_cell_without_state_starts_from_zeros_like_torch(kind: str) -> None:
    """``state=None`` is the zero state, as torch.nn's ``hx=None``."""
    cell, reference = ours(kind), torch_cell(kind)
    reference.load_state_dict(cell.state_dict())
    x = torch.randn(B, I, dtype=DTYPE)
    expected = reference(x)
    expected = tuple(expected) if isinstance(expected, tuple) else (expected,)
    torch.testing.assert_close(step_outputs(*cell(x)), expected)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_weights_copy_both_ways_with_torch(kind: str, bias: bool) -> None:
    """The state dicts have the same keys and shapes, and a torch cell's weights loaded into ours
    (strict) give torch's numbers, as ours loaded into torch's do."""
    cell, reference = ours(kind, bias=bias), torch_cell(kind, bias)
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0.0, 0.5)
    assert {k: v.shape for k, v in cell.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}

    cell.load_state_dict(reference.state_dict())  # torch -> ours
    x = torch.randn(B, I, dtype=DTYPE)
    state = tuple(s.detach() for s in random_state(cell))
    expected = reference(x, state if len(state) == 2 else state[0])
    expected = tuple(expected) if isinstance(expected, tuple) else (expected,)
    torch.testing.assert_close(step_outputs(*cell(x, as_cell_state(state))), expected)

    fresh = torch_cell(kind, bias)
    fresh.load_state_dict(cell.state_dict())  # and back: ours -> torch
    for name, p in reference.named_parameters():
        assert torch.equal(getattr(fresh, name), p), name


# ---------------------------------------------------------------------- layer-norm LSTM
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_layer_norm_lstm_cell_matches_its_formula(bias: bool) -> None:
    """LayerNormLSTMCell computes Ba et al.'s equations as its docstring states them (separate
    norms of the input and recurrent projections, a normed cell in the output), gradients
    included; every parameter (norm gains and shifts too) is random."""
    cell = ours("layernorm_lstm", bias=bias)
    x = torch.randn(B, I, dtype=DTYPE, requires_grad=True)
    h, c = random_state(cell)
    outputs = step_outputs(*cell(x, LSTMState(h, c)))
    expected = layer_norm_lstm_reference(cell, x, h, c)
    torch.testing.assert_close(outputs, expected)

    cotangents = [torch.randn_like(o) for o in outputs]
    inputs = [x, h, c, *cell.parameters()]
    torch.testing.assert_close(grads(outputs, inputs, cotangents),
                               grads(expected, inputs, cotangents))


def test_layer_norm_lstm_cell_parameters() -> None:
    """The documented parameter set: one gate bias after the norms, gains start at 1, shifts and
    the gate bias at 0 (the norms start as the identity)."""
    cell = make_cell("layernorm_lstm", I, H)
    shapes = {name: tuple(p.shape) for name, p in cell.named_parameters()}
    assert shapes == {"weight_ih": (4 * H, I), "weight_hh": (4 * H, H), "gate_bias": (4 * H,),
                      "ln_ih_weight": (4 * H,), "ln_hh_weight": (4 * H,), "ln_c_weight": (H,),
                      "ln_c_bias": (H,)}
    for name in ("ln_ih_weight", "ln_hh_weight", "ln_c_weight"):
        assert torch.equal(getattr(cell, name), torch.ones_like(getattr(cell, name))), name
    for name in ("gate_bias", "ln_c_bias"):
        assert torch.equal(getattr(cell, name), torch.zeros_like(getattr(cell, name))), name
    assert "gate_bias" not in dict(make_cell("layernorm_lstm", I, H, bias=False)
                                   .named_parameters())


# ----------------------------------------------------------------------------- context
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_context_is_an_extra_input(kind: str, bias: bool) -> None:
    """``+ W_ch v`` is the same as widening the input: a cell with context equals the cell of
    input size I + K with ``weight_ih = [weight_ih, weight_ch]`` fed ``[x, v]``, gradients of
    ``v`` and ``weight_ch`` included."""
    cell = ours(kind, bias=bias, context_size=K)
    assert tuple(cell.weight_ch.shape) == (cell.gate_count * H, K)
    wide = ours(kind, input_size=I + K, bias=bias)
    with torch.no_grad():
        for name, p in wide.named_parameters():
            p.copy_(torch.cat([cell.weight_ih, cell.weight_ch], 1) if name == "weight_ih"
                    else getattr(cell, name))
    x = torch.randn(B, I, dtype=DTYPE, requires_grad=True)
    v = torch.randn(B, K, dtype=DTYPE, requires_grad=True)
    state = random_state(cell)

    outputs = step_outputs(*cell(x, as_cell_state(state), context=v))
    xv = torch.cat([x, v], 1)
    expected = step_outputs(*wide(xv, as_cell_state(state)))
    torch.testing.assert_close(outputs, expected)

    cotangents = [torch.randn_like(o) for o in outputs]
    leaves = {"x": x, "v": v, **{f"state[{i}]": s for i, s in enumerate(state)}}
    got = named_grads(outputs, {**leaves, **dict(cell.named_parameters())}, cotangents)
    want = named_grads(expected, {**leaves, **dict(wide.named_parameters())}, cotangents)
    torch.testing.assert_close(got["weight_ih"], want["weight_ih"][:, :I])
    torch.testing.assert_close(got.pop("weight_ch"), want["weight_ih"][:, I:])
    want["weight_ih"] = want["weight_ih"][:, :I]
    torch.testing.assert_close(got, want)


# ---------------------------------------------------------------------- recurrent mask
@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm"])
def test_recurrent_mask_multiplies_h_where_it_enters_w_hh(kind: str) -> None:
    """For RNN and LSTM cells ``h_{t-1}`` is read only through ``W_hh``: the masked cell equals
    torch's cell fed ``(h * m, c)`` (the cell state c is not masked), gradients included."""
    cell, reference = ours(kind), torch_cell(kind)
    reference.load_state_dict(cell.state_dict())
    x = torch.randn(B, I, dtype=DTYPE, requires_grad=True)
    state = random_state(cell)
    mask = random_mask()

    outputs = step_outputs(*cell(x, as_cell_state(state), recurrent_mask=mask))
    masked = (state[0] * mask, *state[1:])
    expected = reference(x, masked if len(masked) == 2 else masked[0])
    expected = tuple(expected) if isinstance(expected, tuple) else (expected,)
    torch.testing.assert_close(outputs, expected)

    cotangents = [torch.randn_like(o) for o in outputs]
    torch.testing.assert_close(grads(outputs, [x, *state, *cell.parameters()], cotangents),
                               grads(expected, [x, *state, *reference.parameters()],
                                     cotangents))


def test_gru_recurrent_mask_only_on_w_hh_input() -> None:
    """In the GRU the mask applies to ``h_{t-1}`` where it enters ``W_hh`` only; the
    interpolation ``z * h_{t-1}`` uses the unmasked state. That is not torch's cell fed
    ``h * m`` (which would mask the interpolation too)."""
    cell, reference = ours("gru"), torch_cell("gru")
    reference.load_state_dict(cell.state_dict())
    x = torch.randn(B, I, dtype=DTYPE, requires_grad=True)
    (h,) = random_state(cell)
    mask = random_mask()

    out, _ = cell(x, h, recurrent_mask=mask)
    expected = gru_reference(cell, x, h, mask)
    torch.testing.assert_close(out, expected)
    cotangent = torch.randn_like(out)
    inputs = [x, h, *cell.parameters()]
    torch.testing.assert_close(grads((out,), inputs, [cotangent]),
                               grads((expected,), inputs, [cotangent]))

    masked_everywhere = reference(x, h * mask)
    assert not torch.allclose(out, masked_everywhere), "z * h must use the unmasked h"


def test_layer_norm_lstm_recurrent_mask_and_context() -> None:
    """LayerNormLSTMCell with a context and a recurrent mask follows its formula: the context
    inside the input norm, the mask on ``W_hh``'s input."""
    cell = ours("layernorm_lstm", context_size=K)
    x = torch.randn(B, I, dtype=DTYPE, requires_grad=True)
    v = torch.randn(B, K, dtype=DTYPE, requires_grad=True)
    h, c = random_state(cell)
    mask = random_mask()
    outputs = step_outputs(*cell(x, LSTMState(h, c), context=v, recurrent_mask=mask))
    expected = layer_norm_lstm_reference(cell, x, h, c, context=v, mask=mask)
    torch.testing.assert_close(outputs, expected)

    cotangents = [torch.randn_like(o) for o in outputs]
    inputs = [x, v, h, c, *cell.parameters()]
    torch.testing.assert_close(grads(outputs, inputs, cotangents),
                               grads(expected, inputs, cotangents))


# -------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_cell_gradcheck_with_context_and_mask(kind: str) -> None:
    """Finite differences agree with autograd for every input and parameter of each cell kind,
    conditioned and with a recurrent mask (float64)."""
    cell = ours(kind, context_size=K)
    names = [name for name, _ in cell.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in cell.parameters())
    x = torch.randn(B, I, dtype=DTYPE, requires_grad=True)
    v = torch.randn(B, K, dtype=DTYPE, requires_grad=True)
    state = random_state(cell)
    mask = random_mask()

    def step(x, v, *rest):
        state, weights = rest[:-len(names)], rest[-len(names):]
        h, new_state = functional_call(cell, dict(zip(names, weights, strict=True)),
                                       (x, as_cell_state(state)),
                                       {"context": v, "recurrent_mask": mask})
        return step_outputs(h, new_state)

    assert torch.autograd.gradcheck(step, (x, v, *state, *params))
