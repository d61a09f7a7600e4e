"""Gradient flow through time: measured norms against plain autograd on torch.nn's cells."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import Tensor, nn

from rnnkit.inspect import (
    GradientFlow,
    compare_cells,
    flow_table,
    gate_saturation,
    gradient_flow,
    hh_spectrum,
    plot_flows,
    set_forget_bias,
)
from rnnkit.nn import Recurrent

B, T, I, H, L = 3, 6, 4, 5, 2  # tiny on purpose
DTYPE = torch.float64


def torch_cells(rnn: Recurrent) -> list[nn.Module]:
    """torch.nn's cells with ``rnn``'s weights, one per level."""
    kind = {"rnn_tanh": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[rnn.cell]
    cells = []
    for cell in rnn.cells:
        reference = kind(cell.input_size, H, dtype=DTYPE)
        reference.load_state_dict(cell.state_dict())
        cells.append(reference)
    return cells


def reference_norms(rnn: Recurrent, x: Tensor, loss: str, readout: nn.Module,
                    targets: Tensor) -> tuple[Tensor, Tensor]:
    """``||dL/dh^l_t||`` by probes: ``h_t + e_t`` with ``e_t = 0`` and ``dL/de_t = dL/dh_t``.

    Returns the norms ``(L, T)`` (mean over the batch) and the top level's outputs.
    """
    probes = torch.zeros(L, T, B, H, dtype=DTYPE, requires_grad=True)
    layer_input = x
    for level, cell in enumerate(torch_cells(rnn)):
        h = c = torch.zeros(B, H, dtype=DTYPE)
        outputs = []
        for t in range(T):
            if isinstance(cell, nn.LSTMCell):
                h, c = cell(layer_input[:, t], (h, c))
            else:
                h = cell(layer_input[:, t], h)
            h = h + probes[level, t]
            outputs.append(h)
        layer_input = torch.stack(outputs, dim=1)
    logits = readout(layer_input)  # (B, T, K)
    if loss == "last":
        total = nn.functional.cross_entropy(logits[:, -1], targets, reduction="sum")
    else:
        total = (logits - targets).pow(2).sum()
    (grad,) = torch.autograd.grad(total, probes)  # (L, T, B, H)
    return grad.norm(dim=3).mean(dim=2), layer_input


@pytest.mark.parametrize("loss", ["last", "every"])
@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_norms_equal_autograd_on_torch_cells(mode: str, loss: str) -> None:
    rnn = Recurrent(mode, I, H, L, engine="loop").to(DTYPE)
    x = torch.randn(B, T, I, dtype=DTYPE)
    if loss == "last":  # cross-entropy of a readout at the last step
        readout, targets = nn.Linear(H, 3, dtype=DTYPE), torch.randint(3, (B,))
    else:  # squared error of a one-number readout at every step
        readout, targets = nn.Linear(H, 1, dtype=DTYPE), torch.randn(B, T, 1, dtype=DTYPE)
    expected, top = reference_norms(rnn, x, loss, readout, targets)
    torch.testing.assert_close(top, rnn(x)[0])  # the reference runs the layer's numbers
    flow = gradient_flow(rnn, x, loss=loss, readout=readout, targets=targets)
    assert (flow.cell, flow.loss, flow.norms.shape) == (mode, loss, (L, T))
    torch.testing.assert_close(flow.norms, expected)


def test_default_loss_is_a_unit_projection_of_h_T() -> None:
    rnn = Recurrent("gru", I, H, engine="loop").to(DTYPE)
    flow = gradient_flow(rnn, torch.randn(B, T, I, dtype=DTYPE))
    # L_b = w . h_T with |w| = 1: dL_b/dh_T = w for every sequence
    assert float(flow.norms[0, -1]) == pytest.approx(1.0)
    every = gradient_flow(rnn, torch.randn(B, T, I, dtype=DTYPE), loss="every")
    assert float(every.norms[0, -1]) == pytest.approx(1.0)  # only the loss at T reaches h_T


def test_vanilla_rnn_gradient_vanishes_faster_than_lstm() -> None:
    """The lecture's argument, measured: T = 100, torch.nn's init, seed 0, float64."""
    flows = compare_cells(("rnn_tanh", "lstm", "gru"), steps=100, seed=0)
    ratio = {f.cell: float(f.norms[0, 0] / f.norms[0, -1]) for f in flows}  # first / last
    assert all(0 < r < 1e-10 for r in ratio.values())  # at init every cell forgets...
    assert ratio["rnn_tanh"] < 1e-3 * ratio["lstm"]  # ...the vanilla RNN by far the most
    assert ratio["rnn_tanh"] < 1e-3 * ratio["gru"]
    # a forget gate held open carries the gradient (Gers et al. 2000, Jozefowicz et al. 2015)
    (lstm,) = compare_cells(("lstm",), steps=100, seed=0, forget_bias=3.0)
    assert float(lstm.norms[0, 0] / lstm.norms[0, -1]) > 1e-3


def test_set_forget_bias() -> None:
    rnn = set_forget_bias(Recurrent("lstm", I, H, 2), 1.0)
    for cell in rnn.cells:
        total = cell.bias_ih + cell.bias_hh
        assert torch.equal(total[H:2 * H], torch.ones(H))
    ln = set_forget_bias(Recurrent("layernorm_lstm", I, H), 2.0)
    assert torch.equal(ln.cells[0].gate_bias[H:2 * H].detach(), torch.full((H,), 2.0))


def test_errors() -> None:
    x = torch.randn(B, T, I)
    with pytest.raises(ValueError, match="unidirectional"):
        gradient_flow(Recurrent("lstm", I, H, bidirectional=True), x)
    with pytest.raises(ValueError, match="expected loss 'last' or 'every', got 'all'"):
        gradient_flow(Recurrent("lstm", I, H), x, loss="all")
    with pytest.raises(ValueError, match="targets need a readout"):
        gradient_flow(Recurrent("lstm", I, H), x, targets=torch.zeros(B))
    with pytest.raises(ValueError, match="expected x of dtype torch.float64"):
        gradient_flow(Recurrent("lstm", I, H).double(), x)


# ------------------------------------------------------------------------------ spectrum
def test_hh_spectrum_matches_svdvals() -> None:
    lstm = Recurrent("lstm", I, H, 2)
    spectra = hh_spectrum(lstm, k=3)
    assert list(spectra) == [f"l{level}.{g}" for level in (0, 1) for g in "ifgo"]
    w = lstm.cells[1].weight_hh.detach()
    torch.testing.assert_close(spectra["l1.g"], torch.linalg.svdvals(w[2 * H:3 * H])[:3])
    rnn = Recurrent("rnn_tanh", I, H, bidirectional=True)
    spectra = hh_spectrum(rnn, k=10)
    assert list(spectra) == ["l0", "l0_reverse"]
    expected = torch.linalg.svdvals(rnn.cells[1].weight_hh.detach())
    torch.testing.assert_close(spectra["l0_reverse"], expected)  # min(k, H) = H values
    assert list(hh_spectrum(Recurrent("gru", I, H))) == ["l0.r", "l0.z", "l0.n"]


# ---------------------------------------------------------------------------- saturation
@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru", "layernorm_lstm"])
def test_gate_saturation_shares_are_shares(mode: str) -> None:
    rnn = Recurrent(mode, I, H, 2)
    stats = gate_saturation(rnn, 3 * torch.randn(B, T, I), bins=10)
    gates = {"rnn_tanh": "h", "lstm": "ifgoc", "gru": "rzn", "layernorm_lstm": "ifgoc"}[mode]
    assert list(stats) == [f"l{level}.{g}" for level in (0, 1) for g in gates]
    for s in stats.values():
        assert 0 <= s.low <= 1 and 0 <= s.high <= 1 and s.low + s.high <= 1
        assert s.unit_low.shape == s.unit_high.shape == (H,)
        assert s.bins.shape == (11,) and s.counts.shape == (10,)
        assert float(s.counts.sum()) == B * T * H  # every value in range: all counted


def test_gate_saturation_exact_on_hand_made_weights() -> None:
    lstm = Recurrent("lstm", 1, 2)
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        lstm.cells[0].bias_ih.copy_(torch.tensor([10.0, 10, -10, -10, 0, 0, 0, 0]))  # i, f, g, o
    stats = gate_saturation(lstm, torch.randn(2, 3, 1))
    assert (stats["l0.i"].high, stats["l0.i"].low) == (1.0, 0.0)  # sigmoid(10) > 0.95
    assert (stats["l0.f"].high, stats["l0.f"].low) == (0.0, 1.0)  # sigmoid(-10) < 0.05
    assert (stats["l0.g"].high, stats["l0.g"].low) == (0.0, 0.0)  # g = tanh(0) = 0
    assert (stats["l0.o"].high, stats["l0.o"].low) == (0.0, 0.0)  # o = 1/2
    assert (stats["l0.c"].high, stats["l0.c"].low) == (0.0, 0.0)  # c = f c + i g = 0
    assert stats["l0.g"].function == "tanh" and stats["l0.i"].function == "sigmoid"

    rnn = Recurrent("rnn_tanh", 1, 2)
    with torch.no_grad():
        for p in rnn.parameters():
            p.zero_()
        rnn.cells[0].weight_ih.copy_(torch.tensor([[10.0], [0.1]]))  # h = tanh(10 x), tanh(x/10)
    x = torch.tensor([[[1.0], [-1.0], [0.01], [2.0]]])  # unit 0: +, -, 0.1, + -> 2 high, 1 low
    s = gate_saturation(rnn, x)["l0.h"]
    torch.testing.assert_close(s.unit_high, torch.tensor([0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(s.unit_low, torch.tensor([0.25, 0.0], dtype=torch.float64))
    assert (s.high, s.low) == (0.25, 0.125)


def test_gate_saturation_refuses_relu() -> None:
    with pytest.raises(ValueError, match="saturating"):
        gate_saturation(Recurrent("rnn_relu", I, H), torch.randn(B, T, I))


# -------------------------------------------------------------------------------- output
def flows() -> list[GradientFlow]:
    steps = torch.arange(12, dtype=torch.float64)
    return [GradientFlow("rnn_tanh", (10.0 ** (steps - 11)).view(1, 12), "last"),
            GradientFlow("lstm", torch.stack([steps + 1, 2 * steps + 1]), "last")]


def test_flow_table() -> None:
    table = flow_table(flows(), every=5)
    lines = table.splitlines()
    assert lines[0].split() == ["steps", "back", "rnn_tanh", "lstm", "l0", "lstm", "l1"]
    assert [line.split()[0] for line in lines[1:]] == ["0", "5", "10", "11"]  # + first step
    assert lines[1].split()[1:] == ["1.00e+00", "1.20e+01", "2.30e+01"]
    assert lines[4].split()[1:] == ["1.00e-11", "1.00e+00", "1.00e+00"]
    assert len({len(line) for line in lines}) == 1  # aligned columns
    short = flow_table([GradientFlow("gru", torch.ones(1, 3), "last"), *flows()], every=5)
    assert short.splitlines()[2].split()[1] == "-"  # 5 steps back: before gru's start


def test_plot_flows(tmp_path, monkeypatch) -> None:
    path = plot_flows([*flows(), GradientFlow("gru", torch.zeros(1, 12), "last")],
                      tmp_path / "flow.png")
    assert path == tmp_path / "flow.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert plot_flows(flows(), tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
