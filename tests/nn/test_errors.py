"""Misuse fails early with a message that says what was expected and what came."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.nn import CELL_KINDS, ENGINES, LSTMState, Recurrent, RNNCell, check_cell, make_cell

B, T, I, H, K = 3, 5, 128, 4, 2


def layer(cell: str = "gru", **kwargs) -> Recurrent:
    return Recurrent(cell, I, H, **kwargs)


def x(*shape: int) -> torch.Tensor:
    return torch.randn(*(shape or (B, T, I)))


# ------------------------------------------------------------------------------- input
@pytest.mark.parametrize(("shape", "got"), [
    ((B, T, 64), "(B=3, T=5, 64)"),  # wrong feature size
    ((T, I), "(5, 128)"),  # a single unbatched sequence
    ((B, T, I, 1), "(3, 5, 128, 1)"),
])
def test_wrong_input_shape(shape, got):
    """The message gives the expected batch-first shape with the layer's input size, and the
    shape that came."""
    with pytest.raises(ValueError, match=re.escape(
            f"expected input of shape (B, T, {I}) (batch first), got {got}")):
        layer()(x(*shape))


def test_input_must_be_a_tensor():
    with pytest.raises(TypeError, match="expected input to be a Tensor, got list"):
        layer()([[0.0] * I])


@pytest.mark.parametrize("shape", [(0, T, I), (B, 0, I)])
def test_empty_input(shape):
    with pytest.raises(ValueError, match=re.escape("non-empty batch of non-empty sequences")):
        layer()(x(*shape))


# ----------------------------------------------------------------------------- lengths
@pytest.mark.parametrize(("lengths", "message"), [
    ([2, T + 1, 1], f"expected every length in [1, T={T}], got lengths from 1 to {T + 1}"),
    ([2, 0, 1], f"expected every length in [1, T={T}], got lengths from 0 to 2"),
    ([-1, 2, 3], f"expected every length in [1, T={T}], got lengths from -1 to 3"),
])
def test_lengths_out_of_range(lengths, message):
    """Lengths must lie in ``[1, T]``; the message gives the range that came."""
    with pytest.raises(ValueError, match=re.escape(message)):
        layer()(x(), lengths=torch.tensor(lengths))


@pytest.mark.parametrize(("lengths", "got"), [
    (torch.tensor([2, 3]), "torch.int64 of shape (2,)"),  # too few
    (torch.tensor([[2, 3, 1]]), "torch.int64 of shape (1, 3)"),  # not (B,)
    (torch.tensor([2.0, 3.0, 1.0]), "torch.float32 of shape (3,)"),  # not integers
])
def test_lengths_of_wrong_shape_or_dtype(lengths, got):
    with pytest.raises(ValueError, match=re.escape(f"expected lengths as {B} integers (B,), "
                                                   f"got {got}")):
        layer()(x(), lengths=lengths)


def test_lengths_as_a_list_are_accepted():
    """A plain list of ints is as good as a LongTensor (the check converts it)."""
    rnn, inputs = layer(), x()
    out, _ = rnn(inputs, lengths=[2, T, 1])
    expected, _ = rnn(inputs, lengths=torch.tensor([2, T, 1]))
    torch.testing.assert_close(out, expected)
    assert torch.all(out[0, 2:] == 0) and torch.all(out[2, 1:] == 0)


# ----------------------------------------------------------------------------- context
def test_context_of_wrong_size():
    with pytest.raises(ValueError, match=re.escape(
            f"expected context of shape (B={B}, {K}), got ({B}, {K + 1})")):
        layer(context_size=K)(x(), context=torch.randn(B, K + 1))


def test_context_for_the_wrong_batch():
    with pytest.raises(ValueError, match=re.escape(
            f"expected context of shape (B={B}, {K}), got ({B + 1}, {K})")):
        layer(context_size=K)(x(), context=torch.randn(B + 1, K))


def test_context_given_to_an_unconditioned_layer():
    with pytest.raises(ValueError, match="this layer has context_size=0 but a context was "
                                         "passed"):
        layer()(x(), context=torch.randn(B, K))


def test_context_missing_for_a_conditioned_layer():
    with pytest.raises(ValueError, match=re.escape(
            f"this layer is conditioned (context_size={K}): pass context of shape ({B}, {K})")):
        layer(context_size=K)(x())


def test_cell_context_errors():
    """The cells check the context the same way."""
    conditioned, plain = make_cell("lstm", I, H, context_size=K), make_cell("lstm", I, H)
    with pytest.raises(ValueError, match=f"built with context_size={K}: pass context"):
        conditioned(torch.randn(B, I))
    with pytest.raises(ValueError, match="built with context_size=0, but a context was passed"):
        plain(torch.randn(B, I), context=torch.randn(B, K))


# ------------------------------------------------------------------- kinds and engines
@pytest.mark.parametrize("build", [lambda: Recurrent("lstmm", I, H),
                                   lambda: make_cell("lstmm", I, H),
                                   lambda: check_cell("lstmm")], ids=["layer", "cell", "check"])
def test_unknown_cell_kind(build):
    """One check for every place that takes a cell kind: the message names the bad kind and
    lists every valid one."""
    with pytest.raises(RnnkitError, match="unknown cell 'lstmm'") as error:
        build()
    for kind in CELL_KINDS:
        assert repr(kind) in str(error.value)


def test_unknown_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'gelu'"):
        RNNCell(I, H, nonlinearity="gelu")


def test_unknown_engine():
    """At construction and when set later, the message names the bad engine and the valid ones."""
    with pytest.raises(ValueError, match="unknown engine 'cuda'") as error:
        layer(engine="cuda")
    for engine in ENGINES:
        assert repr(engine) in str(error.value)
    rnn = layer()
    with pytest.raises(ValueError, match="unknown engine 'fast'"):
        rnn.engine = "fast"
    assert rnn.engine == "auto", "a rejected engine must leave the old one in place"


def test_impl_is_the_older_name_of_engine():
    """``impl=`` (and ``layer.impl``) still choose the engine; both names at once are refused."""
    rnn = layer(impl="loop")
    assert rnn.engine == "loop" and rnn.impl == "loop"
    rnn.impl = "scan"
    assert rnn.engine == "scan"
    with pytest.raises(RnnkitError, match="unknown engine 'fast'"):
        layer(impl="fast")
    with pytest.raises(RnnkitError, match="engine= or its older name impl=, not both"):
        layer(engine="scan", impl="loop")


def test_torch_engine_on_layer_norm_lstm():
    """torch has no layer-norm LSTM kernel: asking for it fails at forward, by name."""
    rnn = layer("layernorm_lstm", engine="torch")
    with pytest.raises(ValueError, match="engine='torch' needs an rnn/lstm/gru cell"):
        rnn(x())
    with pytest.raises(ValueError, match="engine='torch'"):
        rnn.engine_for(torch.device("cpu"))


def test_torch_engine_with_recurrent_dropout_only_in_training():
    """torch's kernels have no recurrent dropout: engine="torch" refuses it in training and runs
    in eval mode, where that dropout does not apply."""
    rnn = layer("lstm", engine="torch", recurrent_dropout=0.3).train()
    with pytest.raises(ValueError, match="engine='torch' needs .* without recurrent dropout"):
        rnn(x())
    out, _ = rnn.eval()(x())
    assert out.shape == (B, T, H)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(num_layers=0), "num_layers must be a positive integer, got 0"),
    (dict(num_layers=1.5), "num_layers must be a positive integer, got 1.5"),
    (dict(dropout=1.0, num_layers=2), "dropout must be in [0, 1), got 1.0"),
    (dict(dropout=-0.1, num_layers=2), "dropout must be in [0, 1), got -0.1"),
    (dict(recurrent_dropout=1.0), "recurrent_dropout must be in [0, 1), got 1.0"),
    (dict(context_size=-1), "context_size must be an integer >= 0, got -1"),
])
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(**kwargs)


@pytest.mark.parametrize(("input_size", "hidden_size", "name"), [(0, H, "input_size"),
                                                                 (I, 0, "hidden_size")])
def test_bad_sizes(input_size, hidden_size, name):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got 0"):
        Recurrent("gru", input_size, hidden_size)


# -------------------------------------------------------------------------------- state
@pytest.mark.parametrize(("cell", "shape"), [
    ("gru", (1, B, H + 1)), ("gru", (2, B, H)), ("gru", (1, B + 1, H)), ("lstm", (1, B, H + 1)),
])
def test_state_of_wrong_shape(cell, shape):
    """The message gives the expected ``(L*D, B, H)`` and the shape that came."""
    state = torch.randn(*shape)
    if cell == "lstm":
        state = LSTMState(state, state)
    with pytest.raises(ValueError, match=re.escape(
            f"expected a state of shape (L*D=1, B={B}, H={H}), got {shape}")):
        layer(cell)(x(), state)


def test_lstm_given_a_bare_tensor_state():
    with pytest.raises(ValueError, match=re.escape("expected an LSTMState(h, c) of two")):
        layer("lstm")(x(), torch.zeros(1, B, H))


def test_gru_given_a_tuple_state():
    with pytest.raises(ValueError, match=re.escape("expected one (L*D, B, H) tensor as the "
                                                   "state of 'gru', got a tuple")):
        layer("gru")(x(), (torch.zeros(1, B, H), torch.zeros(1, B, H)))


def test_cell_state_errors():
    """The cells check their state too: the shape, and an LSTMState for the LSTMs."""
    with pytest.raises(ValueError, match=re.escape(f"expected a state of shape ({B}, {H}), got "
                                                   f"({B}, {H + 1})")):
        make_cell("gru", I, H)(torch.randn(B, I), torch.zeros(B, H + 1))
    with pytest.raises(TypeError, match="expected an LSTMState"):
        make_cell("lstm", I, H)(torch.randn(B, I), torch.zeros(B, H))
    with pytest.raises(ValueError, match=re.escape(f"expected x_t of shape (B, {I}), got "
                                                   f"({B}, {I + 1})")):
        make_cell("gru", I, H)(torch.randn(B, I + 1))


# --------------------------------------------------------------------------------- step
def test_step_on_bidirectional():
    with pytest.raises(ValueError, match="step\\(\\) runs forward in time; a bidirectional"):
        layer(bidirectional=True).eval().step(torch.randn(B, I))


def test_step_with_recurrent_dropout_in_training():
    rnn = layer(recurrent_dropout=0.2).train()
    with pytest.raises(ValueError, match="recurrent dropout needs one mask per sequence"):
        rnn.step(torch.randn(B, I))
    h, _ = rnn.eval().step(torch.randn(B, I))  # fine once in eval mode
    assert h.shape == (B, H)


def test_step_with_wrong_input_shape():
    with pytest.raises(ValueError, match=re.escape(f"expected x_t of shape (B, {I}), got "
                                                   f"({B}, 1, {I})")):
        layer().eval().step(torch.randn(B, 1, I))


# ------------------------------------------------------------------------------ warnings
def test_dropout_with_one_layer_warns():
    """Dropout acts between levels: with a single level it would silently do nothing."""
    with pytest.warns(UserWarning, match="dropout acts between levels; with num_layers=1"):
        layer(dropout=0.3)


def test_dropout_with_two_layers_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(dropout=0.3, num_layers=2)


# ------------------------------------------------------------------------- torch interop
@pytest.mark.parametrize("kwargs", [dict(cell="layernorm_lstm"), dict(context_size=K)],
                         ids=["layernorm", "context"])
def test_to_torch_without_equivalent(kwargs):
    """torch.nn has neither layer norm nor context conditioning: exporting them fails."""
    with pytest.raises(ValueError, match="torch.nn has no equivalent of"):
        layer(**kwargs).to_torch()


def test_to_torch_warns_about_recurrent_dropout():
    with pytest.warns(UserWarning, match="torch.nn has no recurrent dropout"):
        module = layer(recurrent_dropout=0.3).to_torch()
    assert isinstance(module, nn.GRU)


def test_from_torch_rejects_others():
    with pytest.raises(ValueError, match="proj_size > 0 has no rnnkit equivalent"):
        Recurrent.from_torch(nn.LSTM(I, H, proj_size=2))
    with pytest.raises(TypeError, match="expected a torch.nn.RNN, LSTM or GRU, got Linear"):
        Recurrent.from_torch(nn.Linear(I, H))


def test_input_dtype_must_match_the_parameters() -> None:
    """A float64 batch into a float32 layer is named as such, not a matmul error."""
    layer = Recurrent("lstm", 3, 4)
    with pytest.raises(ValueError, match=r"expected input of dtype torch.float32 .* got "
                                         r"torch.float64"):
        layer(torch.randn(2, 5, 3, dtype=torch.float64))
