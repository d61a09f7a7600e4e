"""The hand-written BPTT kernels: against a plain per-sequence loop, and against finite
differences (``torch.autograd.gradcheck``, float64), directly and through ``Recurrent``."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.func import functional_call

from rnnkit.nn import CELL_KINDS, LSTMState, Recurrent, scan

T, B, H = 4, 3, 3
DTYPE = torch.float64
EPS = 1e-5  # layer-norm epsilon
KERNELS = ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_no_bias", "layernorm_lstm")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_no_bias": 3,
         "layernorm_lstm": 4}
# lengths of a batch sorted longest first: all full; ragged; ragged and all shorter than T
LENGTHS = {"full": None, "ragged": (4, 2, 1), "short": (3, 3, 1)}


# ------------------------------------------------------------------------------- helpers
def steps_for(lengths: tuple[int, ...] | None) -> scan.Steps | None:
    """The :class:`scan.Steps` of a batch sorted by length (as a packed sequence has it)."""
    if lengths is None:
        return None
    batch_sizes = [sum(length > t for length in lengths) for t in range(T)]
    return scan.Steps(batch_sizes, torch.tensor(lengths) - 1)


def random_mask() -> Tensor:
    """A recurrent dropout mask ``(B, H)``: zeros and ``1/(1-p)``, both surely present."""
    mask = torch.randint(0, 2, (B, H)).to(DTYPE) * 2.0
    mask[0, 0], mask[0, 1] = 0.0, 2.0
    return mask


def layer_norm(z: Tensor, gain: Tensor, shift: Tensor | None = None) -> Tensor:
    mean = z.mean(-1, keepdim=True)
    var = ((z - mean) ** 2).mean(-1, keepdim=True)
    out = gain * (z - mean) / torch.sqrt(var + EPS)
    return out if shift is None else out + shift


def reference_step(kind: str, record: list | None = None) -> Callable:
    """One step of one sequence, straight from the kernels' docstrings (LSTM gates i, f, o, g):
    ``(gi_t (G,), state, mask (H,), *weights) -> new state``; the output is ``state[0]``."""
    def rnn(g, state, m, w):
        pre = g + w @ (state[0] * m)
        if record is not None:
            record.append(pre)
        return (torch.relu(pre) if kind == "rnn_relu" else torch.tanh(pre),)

    def lstm(g, state, m, w, *norms):
        h, c = state
        recurrent = w @ (h * m)
        a = g + (recurrent if not norms else layer_norm(recurrent, norms[0]))
        i, f, o = torch.sigmoid(a[:3 * H]).split(H)
        c = f * c + i * torch.tanh(a[3 * H:])
        return o * torch.tanh(c if not norms else layer_norm(c, norms[1], norms[2])), c

    def gru(g, state, m, w, b=None):
        (h,) = state
        gh = w @ (h * m) + (0.0 if b is None else b)
        r = torch.sigmoid(g[:H] + gh[:H])
        z = torch.sigmoid(g[H:2 * H] + gh[H:2 * H])
        n = torch.tanh(g[2 * H:] + r * gh[2 * H:])
        return ((1 - z) * n + z * h,)

    return {"rnn_tanh": rnn, "rnn_relu": rnn, "lstm": lstm, "layernorm_lstm": lstm,
            "gru": gru, "gru_no_bias": gru}[kind]


def reference(kind: str, gi: Tensor, state0: tuple[Tensor, ...], weights: tuple[Tensor, ...],
              mask: Tensor | None, lengths, record: list | None = None) -> tuple[Tensor, ...]:
    """Each sequence alone, one step at a time for its own length, zeros after:
    ``(out (T, B, H), *final state (B, H))``."""
    step = reference_step(kind, record)
    outs, finals = [], []
    for b in range(B):
        state = tuple(s[b] for s in state0)
        m = torch.ones(H, dtype=DTYPE) if mask is None else mask[b]
        length = T if lengths is None else lengths[b]
        seq = []
        for t in range(length):
            state = step(gi[t, b], state, m, *weights)
            seq.append(state[0])
        seq += [torch.zeros(H, dtype=DTYPE)] * (T - length)
        outs.append(torch.stack(seq))
        finals.append(state)
    return (torch.stack(outs, 1), *(torch.stack(part) for part in zip(*finals, strict=True)))


def kernel_case(kind: str, masked: bool, lengths):
    """Random differentiable inputs for ``kind``'s kernel, the kernel as a function of them, and
    the reference as a function of them."""
    G = GATES[kind] * H
    cell_state = kind.endswith("lstm")

    def leaf(*shape: int, scale: float = 1.0) -> Tensor:
        return (scale * torch.randn(*shape, dtype=DTYPE)).requires_grad_()

    gi = leaf(T, B, G)
    state0 = (leaf(B, H), leaf(B, H)) if cell_state else (leaf(B, H),)
    weights = (leaf(G, H, scale=0.5),)
    if kind == "gru":
        weights += (leaf(G, scale=0.5),)
    if kind == "layernorm_lstm":
        weights += (1 + leaf(G, scale=0.3), 1 + leaf(H, scale=0.3), leaf(H, scale=0.3))
        weights = tuple(w.detach().requires_grad_() for w in weights)
    mask = random_mask() if masked else None
    steps = steps_for(lengths)

    def kernel(gi, *rest):
        state, w = rest[:len(state0)], rest[len(state0):]
        if kind in ("rnn_tanh", "rnn_relu"):
            return scan.RNNScan.apply(gi, *state, *w, mask, steps, kind == "rnn_relu")
        if kind == "lstm":
            return scan.LSTMScan.apply(gi, *state, *w, mask, steps)
        if kind == "layernorm_lstm":
            return scan.LayerNormLSTMScan.apply(gi, *state, *w, mask, steps)
        return scan.GRUScan.apply(gi, *state, w[0], w[1] if len(w) > 1 else None, mask, steps)

    def expected(gi, *rest, record: list | None = None):
        return reference(kind, gi, rest[:len(state0)], rest[len(state0):], mask, lengths,
                         record)

    return (gi, *state0, *weights), kernel, expected


CASES = list(itertools.product(KERNELS, [False, True], LENGTHS))
IDS = [f"{kind}-{'mask' if masked else 'nomask'}-{name}" for kind, masked, name in CASES]


# ------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize(("kind", "masked", "lengths"), CASES, ids=IDS)
def test_kernel_matches_reference_loop(kind, masked, lengths):
    """Each kernel computes its recurrence (outputs, zeros past each sequence's end, the state
    at each sequence's last step) and the same vector-Jacobian products as autograd through a
    plain per-sequence loop, for every input."""
    inputs, kernel, expected = kernel_case(kind, masked, LENGTHS[lengths])
    got, want = kernel(*inputs), expected(*inputs)
    torch.testing.assert_close(got, want)
    cotangents = [torch.randn_like(w) for w in want]
    torch.testing.assert_close(torch.autograd.grad(got, inputs, cotangents),
                               torch.autograd.grad(want, inputs, cotangents))


@pytest.mark.parametrize(("kind", "masked", "lengths"), CASES, ids=IDS)
def test_kernel_gradcheck(kind, masked, lengths):
    """The hand-written backward passes agree with finite differences for every input (gates,
    initial state, recurrent weight, GRU's ``b_hh``, the layer-norm gains and shift), also when
    autograd hands them None for unused outputs (``check_undefined_grad``)."""
    inputs, kernel, expected = kernel_case(kind, masked, LENGTHS[lengths])
    if kind == "rnn_relu":  # finite differences need every pre-activation away from relu's kink
        pre_activations = []
        expected(*inputs, record=pre_activations)
        assert torch.stack(pre_activations).abs().min() > 1e-3
    assert torch.autograd.gradcheck(kernel, inputs)


# ------------------------------------------------------------------- through Recurrent
# (cell, engine, dropout, context size): the scan also with recurrent dropout; the torch engine
# has no layer norm and no recurrent dropout, and takes a context narrower than the batch as
# extra input columns and a wider one as per-sequence one-hot columns: both are checked
RECURRENT_CASES = [(cell, "scan", noisy, 2) for cell in CELL_KINDS for noisy in (False, True)]
RECURRENT_CASES += [(cell, "torch", noisy, k) for cell in CELL_KINDS if cell != "layernorm_lstm"
                    for noisy, k in ((False, 2), (True, 2), (False, B + 1))]


@pytest.mark.parametrize(("cell", "engine", "noisy", "context_size"), RECURRENT_CASES,
                         ids=[f"{m}-{i}-{'dropout' if n else 'plain'}-K{k}"
                              for m, i, n, k in RECURRENT_CASES])
def test_recurrent_gradcheck(cell, engine, noisy, context_size):
    """A bidirectional 2-level conditioned layer with lengths, parameters as gradcheck inputs
    through ``torch.func.functional_call``: finite differences agree with the engine's
    gradients for x, the initial state, the context and every weight; with dropout (recurrent
    dropout too for the scan) reseeded so that the masks stay fixed."""
    noise = {}
    if noisy:
        noise = dict(dropout=0.3, recurrent_dropout=0.0 if engine == "torch" else 0.3)
    layer = Recurrent(cell, 2, 2, 2, bidirectional=True, context_size=context_size,
                      engine=engine, **noise).to(DTYPE).train()
    names = [name for name, _ in layer.named_parameters()]
    weights = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(B, T, 2, dtype=DTYPE, requires_grad=True)
    state = [torch.randn(4, B, 2, dtype=DTYPE, requires_grad=True)
             for _ in range(2 if cell.endswith("lstm") else 1)]
    context = torch.randn(B, context_size, dtype=DTYPE, requires_grad=True)
    lengths = torch.tensor([2, 4, 3])

    def forward(x, context, *rest):
        given_state = rest[:len(state)]
        params = dict(zip(names, rest[len(state):], strict=True))
        torch.manual_seed(0)  # the same dropout masks at every evaluation
        out, final = functional_call(
            layer, params, (x, LSTMState(*given_state) if len(given_state) == 2
                            else given_state[0]), {"lengths": lengths, "context": context})
        return (out, *(final if isinstance(final, tuple) else (final,)))

    assert torch.autograd.gradcheck(forward, (x, context, *state, *weights))
