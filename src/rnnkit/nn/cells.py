"""Recurrent cells: one time step each, the lecture's equations and nothing else.

The cell contract (written down once, as in Keras' ``layers/rnn``)::

    h_t, new_state = cell(x_t, state, context=None, recurrent_mask=None)

* ``x_t``   ``(B, I)``: the input at step t.
* ``state`` the previous state: a ``(B, H)`` tensor for :class:`RNNCell` and :class:`GRUCell`,
  an :class:`LSTMState` ``(h, c)`` for the LSTM cells; ``None`` means zeros.
* ``context`` ``(B, K)``: an optional per-sequence vector ``v`` (an image feature, say), added to
  the gates at every step through its own weight ``weight_ch``: the lecture's captioning RNN
  ``h = tanh(W_xh x + W_hh h + W_ih v)``.
* ``recurrent_mask`` ``(B, H)``: an optional dropout mask on ``h_{t-1}`` where it enters
  ``W_hh`` (variational recurrent dropout, Gal & Ghahramani 2016: one mask per sequence, the
  same at every step; :class:`rnnkit.nn.Recurrent` samples it).
* returns ``h_t`` ``(B, H)``, the output of the step, and the new state.

Parameters carry torch.nn's names, shapes and gate order (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``; LSTM gates i, f, g, o; GRU gates r, z, n), so weights copy both ways
between these cells and ``torch.nn.RNNCell/LSTMCell/GRUCell``. The lecture's names map as
``W_xh = weight_ih``, ``W_hh = weight_hh``, and its image weight ``W_ih`` (image to hidden)
is ``weight_ch`` here, to keep torch's ``weight_ih`` meaning the input weight.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import RnnkitError

LAYER_NORM_EPS = 1e-5
CELL_KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru", "layernorm_lstm")  # the names of the cells


class LSTMState(NamedTuple):
    """The state of an LSTM: hidden ``h`` and cell ``c``, each ``(..., B, H)``."""

    h: Tensor
    c: Tensor


State = Tensor | LSTMState


class RecurrentCell(nn.Module):
    """What every cell shares: sizes, parameter set-up, input checks, the zero state."""

    gate_count = 1  # how many H-sized gate blocks the weights hold (LSTM 4, GRU 3)
    has_cell_state = False  # True when the state is an LSTMState(h, c)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 context_size: int = 0) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or value < 1:
                raise RnnkitError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(context_size, int) or context_size < 0:
            raise RnnkitError(f"context_size must be an integer >= 0, got {context_size!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.context_size = context_size
        self.bias = bias
        gates = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        if context_size:
            self.weight_ch = nn.Parameter(torch.empty(gates, context_size))
        else:
            self.register_parameter("weight_ch", None)
        self._make_biases(gates)
        self.reset_parameters()

    def _make_biases(self, gates: int) -> None:
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(gates))
            self.bias_hh = nn.Parameter(torch.empty(gates))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: weights and biases uniform in ``(-1/sqrt(H), 1/sqrt(H))``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.context_size:
            text += f", context_size={self.context_size}"
        if not self.bias:
            text += ", bias=False"
        return text

    # ----------------------------------------------------------------- shared pieces
    def zero_state(self, batch_size: int, like: Tensor) -> State:
        """The all-zero state for ``batch_size`` sequences, on ``like``'s device and dtype."""
        h = like.new_zeros(batch_size, self.hidden_size)
        return LSTMState(h, h.clone()) if self.has_cell_state else h

    def input_gates(self, x_t: Tensor, context: Tensor | None) -> Tensor:
        """``W_xh x_t + b_ih (+ W_ch v)``: the part of the gates that does not depend on ``h``."""
        gates = F.linear(x_t, self.weight_ih, self.bias_ih)
        if self.weight_ch is not None:
            if context is None:
                raise RnnkitError(
                    f"this cell was built with context_size={self.context_size}: "
                    "pass context=(B, K)")
            gates = gates + F.linear(context, self.weight_ch)
        elif context is not None:
            raise RnnkitError("this cell was built with context_size=0, but a context was passed")
        return gates

    def _check(self, x_t: Tensor, state: State | None) -> State:
        if x_t.dim() != 2 or x_t.shape[1] != self.input_size:
            raise RnnkitError(f"expected x_t of shape (B, {self.input_size}), "
                              f"got {tuple(x_t.shape)}")
        if state is None:
            return self.zero_state(x_t.shape[0], x_t)
        parts = state if self.has_cell_state else (state,)
        if self.has_cell_state and not isinstance(state, tuple):
            raise TypeError("expected an LSTMState(h, c) as the LSTM state, got a "
                            f"{type(state).__name__}")
        for part in parts:
            if part.shape != (x_t.shape[0], self.hidden_size):
                raise RnnkitError(f"expected a state of shape ({x_t.shape[0]}, {self.hidden_size}),"
                                  f" got {tuple(part.shape)}")
        return LSTMState(*state) if self.has_cell_state else state


def _masked(h: Tensor, recurrent_mask: Tensor | None) -> Tensor:
    return h if recurrent_mask is None else h * recurrent_mask


class RNNCell(RecurrentCell):
    r"""The vanilla RNN step of the lecture.

    .. math::
        h_t = \tanh(W_{hh} h_{t-1} + W_{xh} x_t + b_{ih} + b_{hh} [+ W_{ch} v])

    where ``W_xh = weight_ih`` ``(H, I)``, ``W_hh = weight_hh`` ``(H, H)``, the same at every
    step; ``nonlinearity="relu"`` uses ``max(0, .)`` instead of ``tanh``. The output
    ``y_t = W_hy h_t`` belongs to the model on top (a ``nn.Linear``), not to the cell.

    Args:
        input_size: ``I``, features of ``x_t``.
        hidden_size: ``H``, features of ``h_t``.
        bias: with ``bias_ih`` and ``bias_hh`` ``(H,)``.
        nonlinearity: ``"tanh"`` (the lecture's) or ``"relu"``.
        context_size: ``K``; when > 0 the cell takes a per-sequence ``context`` ``(B, K)`` through
            ``weight_ch`` ``(H, K)``.

    Example::

        >>> cell = RNNCell(4, 3)                 # vocabulary [h, e, l, o] one-hot in, H = 3
        >>> h, state = cell(torch.eye(4)[:1])    # "h" at t = 0, from the zero state
        >>> h.shape
        torch.Size([1, 3])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", context_size: int = 0) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise RnnkitError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, context_size)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"

    def forward(self, x_t: Tensor, state: Tensor | None = None, context: Tensor | None = None,
                recurrent_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h_prev = self._check(x_t, state)
        pre = self.input_gates(x_t, context) + F.linear(
            _masked(h_prev, recurrent_mask), self.weight_hh, self.bias_hh)
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, h


class LSTMCell(RecurrentCell):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997), torch.nn's formulation.

    .. math::
        \begin{aligned}
        a_t &= W_{xh} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh} [+ W_{ch} v]
              \quad\text{(4H values, blocks i, f, g, o)} \\
        i &= \sigma(a^i), \quad f = \sigma(a^f), \quad g = \tanh(a^g), \quad o = \sigma(a^o) \\
        c_t &= f \odot c_{t-1} + i \odot g \\
        h_t &= o \odot \tanh(c_t)
        \end{aligned}

    The additive cell update is the answer to vanishing gradients: ``dc_t/dc_{t-1} = f``, a gate
    the network can hold near 1, instead of a product of ``W_hh`` and ``tanh'`` at every step.

    Parameters: ``weight_ih`` ``(4H, I)``, ``weight_hh`` ``(4H, H)``, ``bias_ih``, ``bias_hh``
    ``(4H,)``, ``weight_ch`` ``(4H, K)`` with a context; gate order i, f, g, o as torch.nn.
    The state is :class:`LSTMState` ``(h, c)``.
    """

    gate_count = 4
    has_cell_state = True

    def forward(self, x_t: Tensor, state: LSTMState | None = None,
                context: Tensor | None = None,
                recurrent_mask: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        h_prev, c_prev = self._check(x_t, state)
        gates = self.input_gates(x_t, context) + F.linear(
            _masked(h_prev, recurrent_mask), self.weight_hh, self.bias_hh)
        i, f, g, o = gates.chunk(4, dim=1)  # (B, 4H) -> 4 x (B, H)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, LSTMState(h, c)


class GRUCell(RecurrentCell):
    r"""Gated recurrent unit (Cho et al. 2014), torch.nn's formulation.

    .. math::
        \begin{aligned}
        r &= \sigma(W_{xr} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr} [+ W_{cr} v]) \\
        z &= \sigma(W_{xz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz} [+ W_{cz} v]) \\
        n &= \tanh(W_{xn} x_t + b_{in} [+ W_{cn} v] + r \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1}
        \end{aligned}

    Parameters: ``weight_ih`` ``(3H, I)``, ``weight_hh`` ``(3H, H)``, ``bias_ih``, ``bias_hh``
    ``(3H,)``, ``weight_ch`` ``(3H, K)`` with a context; gate order r, z, n as torch.nn.
    """

    gate_count = 3

    def forward(self, x_t: Tensor, state: Tensor | None = None, context: Tensor | None = None,
                recurrent_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h_prev = self._check(x_t, state)
        gi_r, gi_z, gi_n = self.input_gates(x_t, context).chunk(3, dim=1)  # (B, 3H) -> 3 x (B, H)
        gh_r, gh_z, gh_n = F.linear(
            _masked(h_prev, recurrent_mask), self.weight_hh, self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
        h = (1 - z) * n + z * h_prev
        return h, h


class LayerNormLSTMCell(RecurrentCell):
    r"""LSTM with layer normalisation (Ba, Kiros & Hinton 2016, eqs. 20-22).

    .. math::
        \begin{aligned}
        a_t &= \mathrm{LN}(W_{xh} x_t [+ W_{ch} v];\ \gamma_{ih})
              + \mathrm{LN}(W_{hh} h_{t-1};\ \gamma_{hh}) + b \\
        i, f, o &= \sigma(a^i), \sigma(a^f), \sigma(a^o), \quad g = \tanh(a^g) \\
        c_t &= f \odot c_{t-1} + i \odot g \\
        h_t &= o \odot \tanh(\mathrm{LN}(c_t;\ \gamma_c, \beta_c))
        \end{aligned}

    where ``LN(z; gamma, beta) = gamma * (z - mean(z)) / sqrt(var(z) + 1e-5) + beta`` over the
    features of one sequence and step (all 4H gate values together, as in the paper). Normalising
    the two projections separately keeps the input and the recurrence on the same scale, which
    steadies training of long sequences; the betas of the two gate norms are one bias
    ``b = gate_bias``.

    Parameters: ``weight_ih`` ``(4H, I)``, ``weight_hh`` ``(4H, H)``, ``gate_bias`` ``(4H,)``,
    ``ln_ih_weight``, ``ln_hh_weight`` ``(4H,)``, ``ln_c_weight``, ``ln_c_bias`` ``(H,)``,
    ``weight_ch`` ``(4H, K)`` with a context; gate order i, f, g, o.
    """

    gate_count = 4
    has_cell_state = True

    def _make_biases(self, gates: int) -> None:
        # the gate bias sits after the two norms: one ``gate_bias``, not ``bias_ih`` + ``bias_hh``
        self.register_parameter("bias_ih", None)
        self.register_parameter("bias_hh", None)
        if self.bias:
            self.gate_bias = nn.Parameter(torch.empty(gates))
        else:
            self.register_parameter("gate_bias", None)
        self.ln_ih_weight = nn.Parameter(torch.empty(gates))
        self.ln_hh_weight = nn.Parameter(torch.empty(gates))
        self.ln_c_weight = nn.Parameter(torch.empty(self.hidden_size))
        self.ln_c_bias = nn.Parameter(torch.empty(self.hidden_size))

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, weight in self.named_parameters():
            if name.startswith("weight"):
                nn.init.uniform_(weight, -bound, bound)
            elif name.endswith("_weight"):
                nn.init.ones_(weight)  # the norms start as the identity
            else:
                nn.init.zeros_(weight)

    def input_gates(self, x_t: Tensor, context: Tensor | None) -> Tensor:
        """``LN(W_xh x_t [+ W_ch v]) + b``: the part of ``a_t`` that does not depend on ``h``."""
        projected = super().input_gates(x_t, context)
        gates = F.layer_norm(projected, projected.shape[-1:], self.ln_ih_weight, None,
                             LAYER_NORM_EPS)
        return gates if self.gate_bias is None else gates + self.gate_bias

    def forward(self, x_t: Tensor, state: LSTMState | None = None,
                context: Tensor | None = None,
                recurrent_mask: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        h_prev, c_prev = self._check(x_t, state)
        recurrent = F.linear(_masked(h_prev, recurrent_mask), self.weight_hh)
        gates = self.input_gates(x_t, context) + F.layer_norm(
            recurrent, recurrent.shape[-1:], self.ln_hh_weight, None, LAYER_NORM_EPS)
        i, f, g, o = gates.chunk(4, dim=1)  # (B, 4H) -> 4 x (B, H)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        c_norm = F.layer_norm(c, c.shape[-1:], self.ln_c_weight, self.ln_c_bias, LAYER_NORM_EPS)
        h = torch.sigmoid(o) * torch.tanh(c_norm)
        return h, LSTMState(h, c)


def check_cell(cell: str) -> str:
    """``cell`` if it names a cell kind of :data:`CELL_KINDS`, else an error listing them."""
    if cell not in CELL_KINDS:
        raise RnnkitError(f"unknown cell {cell!r}: expected one of "
                          + ", ".join(repr(k) for k in CELL_KINDS))
    return cell


def make_cell(cell: str, input_size: int, hidden_size: int, bias: bool = True,
              context_size: int = 0) -> RecurrentCell:
    """The cell of a kind in :data:`CELL_KINDS` (``"rnn_tanh"`` and ``"rnn_relu"`` are
    :class:`RNNCell` with that nonlinearity)."""
    if check_cell(cell).startswith("rnn_"):
        return RNNCell(input_size, hidden_size, bias, cell[4:], context_size)
    classes = {"lstm": LSTMCell, "gru": GRUCell, "layernorm_lstm": LayerNormLSTMCell}
    return classes[cell](input_size, hidden_size, bias, context_size)
