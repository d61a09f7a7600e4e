"""``Recurrent``: one layer owns time. Deep, bidirectional, variable lengths, conditioning.

The reference loop (:meth:`Recurrent._loop`) is the lecture's picture made code: the same cell,
with the same weights, applied at every step; a deep RNN feeds one level's outputs to the next
as its inputs. The fast paths in :mod:`rnnkit.nn.engines` compute the same numbers (tested).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_lengths
from ..errors import RnnkitError
from . import engines
from .cells import LSTMState, State, check_cell, make_cell
from .engines import ENGINES


class Recurrent(nn.Module):
    r"""A (deep, bidirectional) recurrent layer over batch-first sequences.

    For every level ``l`` and direction, the same cell runs at every step
    (``h^l_t = cell(h^{l-1}_t, h^l_{t-1})``, with ``h^0_t = x_t``); a backward direction reads each
    sequence from its last real step to its first. Between levels, dropout ``p`` (training only).

    Args:
        cell: the cell kind, one of :data:`CELL_KINDS`: ``"rnn_tanh"``, ``"rnn_relu"``,
            ``"lstm"``, ``"gru"`` or ``"layernorm_lstm"`` (Ba et al. 2016).
        input_size: ``I``.  hidden_size: ``H``.  num_layers: ``L``, levels stacked.
        bias: cells with biases.
        dropout: dropout on the outputs of every level but the last (Zaremba et al. 2014).
        bidirectional: ``D = 2`` directions, outputs concatenated ``[forward, backward]``.
        context_size: ``K`` > 0 conditions every step of every level on a per-sequence vector
            ``v`` ``(B, K)`` (the lecture's captioning RNN, ``+ W_ch v`` in every cell).
        recurrent_dropout: variational dropout on ``h_{t-1}`` inside the recurrence, one mask per
            sequence and cell, the same at every step (Gal & Ghahramani 2016). Training only.
        engine: one of :data:`ENGINES`: ``"auto"`` (the fastest exact path), ``"loop"`` (the
            reference loop over cells), ``"torch"`` (torch's fused kernels, plain
            configurations only) or ``"scan"`` (hand-written BPTT, every configuration).
            ``impl=`` is its older name, still accepted.

    Inputs: ``input, state=None, *, lengths=None, context=None``
        * ``input`` ``(B, T, I)``.
        * ``state``: ``(L*D, B, H)`` (an :class:`LSTMState` of two for LSTMs); zeros if ``None``.
          Layer-major like torch.nn: entry ``l * D + d`` is level ``l``, direction ``d``.
        * ``lengths`` ``(B,)``: real lengths, ``1 <= length <= T``. Steps past a sequence's
          length never touch its outputs or final state; their outputs are zeros.
        * ``context`` ``(B, K)`` when ``context_size > 0``.

    Outputs: ``output, final_state``
        * ``output`` ``(B, T, D*H)``: the top level's ``h_t`` at every step.
        * ``final_state``: like ``state``, each sequence's state after its last real step (for
          a backward direction, after reading step 0).

    Example::

        >>> rnn = Recurrent("lstm", 128, 512, num_layers=2, bidirectional=True)
        >>> y, (h, c) = rnn(torch.randn(8, 100, 128), lengths=torch.full((8,), 100))
        >>> y.shape, h.shape
        (torch.Size([8, 100, 1024]), torch.Size([4, 8, 512]))
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 context_size: int = 0, recurrent_dropout: float = 0.0,
                 engine: str = "auto", impl: str | None = None) -> None:
        super().__init__()
        check_cell(cell)
        if impl is not None:  # the older name of ``engine``
            if engine != "auto":
                raise RnnkitError(f"expected engine= or its older name impl=, not both; got "
                                  f"engine={engine!r} and impl={impl!r}")
            engine = impl
        if not isinstance(num_layers, int) or num_layers < 1:
            raise RnnkitError(f"num_layers must be a positive integer, got {num_layers!r}")
        for name, p in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= p < 1.0:
                raise RnnkitError(f"{name} must be in [0, 1), got {p!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout acts between levels; with num_layers=1 it does nothing",
                          stacklevel=2)
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.context_size = context_size
        self.recurrent_dropout = recurrent_dropout
        self.engine = engine
        self.cells = nn.ModuleList(
            make_cell(cell, input_size if layer == 0 else self.num_directions * hidden_size,
                      hidden_size, bias, context_size)
            for layer in range(num_layers) for _ in range(self.num_directions))

    @property
    def engine(self) -> str:
        """How ``forward`` runs, one of :data:`ENGINES`; set it to switch (checked)."""
        return self._engine

    @engine.setter
    def engine(self, value: str) -> None:
        if value not in ENGINES:
            raise RnnkitError(f"unknown engine {value!r}: expected one of "
                              + ", ".join(repr(e) for e in ENGINES))
        self._engine = value

    impl = engine  # the older name, still accepted: ``layer.impl = "loop"``

    def extra_repr(self) -> str:
        text = f"{self.cell!r}, {self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("dropout", 0.0),
                              ("bidirectional", False), ("context_size", 0),
                              ("recurrent_dropout", 0.0), ("engine", "auto")):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text

    # --------------------------------------------------------------------------- forward
    def forward(self, input: Tensor, state: State | None = None, *,
                lengths: Tensor | None = None,
                context: Tensor | None = None) -> tuple[Tensor, State]:
        B, T = self._check_input(input)
        if lengths is not None:  # checked on the host, where the engines need them anyway
            lengths = check_lengths(torch.as_tensor(lengths).cpu(), B, T)
        self._check_context(context, B)
        states = self._split_state(state, B, input)
        layer_masks, recurrent_masks = self._sample_noise(B, T, input)
        engine = self.engine_for(input.device, B, lengths is not None)
        if engine == "loop":
            on_device = None if lengths is None else lengths.to(input.device)
            output, finals = self._loop(input, states, on_device, context, layer_masks,
                                        recurrent_masks)
        else:
            output, finals = engines.run(engine, self.cells, self.num_layers, self.bidirectional,
                                       input, states, lengths, context, layer_masks,
                                       recurrent_masks)
        return output, self._stack_state(finals)

    def engine_for(self, device: torch.device, batch_size: int = 1,
                   has_lengths: bool = False) -> str:
        """The engine ``forward`` will run: ``"loop"``, ``"torch"`` or ``"scan"`` (``"auto"``
        resolved for this device, batch size and training mode)."""
        has_recurrent_dropout = self.training and self.recurrent_dropout > 0
        if self.engine == "torch" and not engines.torch_supports(self.cells[0],
                                                               has_recurrent_dropout):
            raise RnnkitError(f"engine='torch' needs an rnn/lstm/gru cell without recurrent "
                              f"dropout in training; this layer is {self.extra_repr()}")
        if self.engine != "auto":
            return self.engine
        return engines.choose_engine(self.cells[0], has_recurrent_dropout, device, batch_size,
                                   has_lengths)

    def _loop(self, x: Tensor, states: list, lengths: Tensor | None, context: Tensor | None,
              layer_masks: list, recurrent_masks: list) -> tuple[Tensor, list]:
        """The reference: every cell called once per step, exactly the lecture's equations."""
        B, T, _ = x.shape
        layer_input = x  # (B, T, I)
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                cell, state = self.cells[k], states[k]
                # a backward direction is a forward one over each sequence reversed in place
                seq = layer_input if direction == 0 else _reverse_batch_first(layer_input,
                                                                              lengths)
                steps = []
                for t in range(T):
                    h, new_state = cell(seq[:, t], state, context, recurrent_masks[k])
                    if lengths is not None:  # past its end a sequence keeps its state
                        running = (t < lengths).unsqueeze(1)  # (B, 1)
                        new_state = _where(running, new_state, state)
                        h = h * running
                    state = new_state
                    steps.append(h)
                out = torch.stack(steps, dim=1)  # T x (B, H) -> (B, T, H)
                outputs.append(out if direction == 0 else _reverse_batch_first(out, lengths))
                finals.append(state)
            layer_input = torch.cat(outputs, dim=-1)  # (B, T, D*H)
            if layer < self.num_layers - 1 and layer_masks[layer] is not None:
                layer_input = layer_input * layer_masks[layer]
        return layer_input, finals

    # -------------------------------------------------------------------------- one step
    def step(self, x_t: Tensor, state: State | None = None, *,
             context: Tensor | None = None) -> tuple[Tensor, State]:
        """Advance one time step, for generation: ``x_t`` ``(B, I)`` -> ``(h_t (B, H), state)``.

        The same numbers as ``forward`` over the whole sequence, one step at a time.
        """
        if self.bidirectional:
            raise RnnkitError("step() runs forward in time; a bidirectional layer needs the whole "
                              "sequence: call forward()")
        if self.training and self.recurrent_dropout > 0:
            raise RnnkitError("recurrent dropout needs one mask per sequence; step() cannot hold "
                              "it: train with forward(), or call eval() before generating")
        if x_t.dim() != 2 or x_t.shape[1] != self.input_size:
            raise RnnkitError(f"expected x_t of shape (B, {self.input_size}), "
                              f"got {tuple(x_t.shape)}")
        B = x_t.shape[0]
        self._check_context(context, B)
        states = self._split_state(state, B, x_t)
        finals, h = [], x_t
        for layer, cell in enumerate(self.cells):
            if layer > 0 and self.training and self.dropout > 0:
                h = F.dropout(h, self.dropout, training=True)
            h, new_state = cell(h, states[layer], context)
            finals.append(new_state)
        return h, self._stack_state(finals)

    # ------------------------------------------------------------------ checks and state
    def _check_input(self, input: Tensor) -> tuple[int, int]:
        if not isinstance(input, Tensor):
            raise TypeError(f"expected input to be a Tensor, got {type(input).__name__}")
        if input.dim() != 3 or input.shape[2] != self.input_size:
            got = tuple(input.shape)
            if input.dim() == 3:
                got = f"(B={got[0]}, T={got[1]}, {got[2]})"
            raise RnnkitError(f"expected input of shape (B, T, {self.input_size}) (batch first), "
                              f"got {got}")
        B, T, _ = input.shape
        dtype = self.cells[0].weight_hh.dtype
        if input.dtype != dtype and not torch.is_autocast_enabled(input.device.type):
            raise RnnkitError(f"expected input of dtype {dtype} (the layer's parameters), got "
                              f"{input.dtype}: convert one of them (layer.to(dtype))")
        if B == 0 or T == 0:
            raise RnnkitError(f"expected a non-empty batch of non-empty sequences, got "
                              f"{tuple(input.shape)}")
        return B, T

    def _check_context(self, context: Tensor | None, B: int) -> None:
        if self.context_size == 0:
            if context is not None:
                raise RnnkitError("this layer has context_size=0 but a context was passed; "
                                  "build it with context_size=K to condition on a vector")
            return
        if context is None:
            raise RnnkitError(f"this layer is conditioned (context_size={self.context_size}): "
                              f"pass context of shape ({B}, {self.context_size})")
        if context.shape != (B, self.context_size):
            raise RnnkitError(f"expected context of shape (B={B}, {self.context_size}), got "
                              f"{tuple(context.shape)}")

    def _split_state(self, state: State | None, B: int, like: Tensor) -> list:
        """``(L*D, B, H)`` (or an LSTMState of two) -> one state per cell."""
        cell = self.cells[0]
        if state is None:
            return [c.zero_state(B, like) for c in self.cells]
        expected = (len(self.cells), B, self.hidden_size)
        if cell.has_cell_state:
            if not (isinstance(state, tuple) and len(state) == 2):
                raise RnnkitError("expected an LSTMState(h, c) of two (L*D, B, H) tensors for "
                                  f"{self.cell!r}, got {type(state).__name__}")
            parts = state
        else:
            if isinstance(state, tuple):
                raise RnnkitError(f"expected one (L*D, B, H) tensor as the state of {self.cell!r}"
                                  f", got a {type(state).__name__}")
            parts = (state,)
        for part in parts:
            if tuple(part.shape) != expected:
                raise RnnkitError(f"expected a state of shape (L*D={expected[0]}, B={B}, "
                                  f"H={self.hidden_size}), got {tuple(part.shape)}")
        if cell.has_cell_state:
            h, c = state
            return [LSTMState(*hc) for hc in zip(h.unbind(0), c.unbind(0), strict=True)]
        return list(state.unbind(0))

    @staticmethod
    def _stack_state(finals: list) -> State:
        if isinstance(finals[0], LSTMState):
            return LSTMState(torch.stack([s.h for s in finals]), torch.stack([s.c for s in finals]))
        return torch.stack(finals)  # (L*D, B, H)

    def _sample_noise(self, B: int, T: int, like: Tensor) -> tuple[list, list]:
        """Dropout masks for this forward pass, drawn here once so every engine sees the same.

        ``layer_masks[l]`` ``(B, T, D*H)`` after level ``l``; ``recurrent_masks[k]`` ``(B, H)``
        per cell (one per sequence, Gal & Ghahramani 2016). Inverted dropout: kept units are
        scaled by ``1/(1-p)`` so that evaluation needs no rescaling.
        """
        def mask(p: float, *shape: int) -> Tensor:
            return like.new_empty(shape).bernoulli_(1 - p).div_(1 - p)

        width = self.num_directions * self.hidden_size
        layer_masks: list = [None] * (self.num_layers - 1)
        recurrent_masks: list = [None] * len(self.cells)
        if self.training and self.dropout > 0:
            layer_masks = [mask(self.dropout, B, T, width) for _ in layer_masks]
        if self.training and self.recurrent_dropout > 0:
            recurrent_masks = [mask(self.recurrent_dropout, B, self.hidden_size)
                               for _ in recurrent_masks]
        return layer_masks, recurrent_masks

    # ------------------------------------------------------------------- torch.nn interop
    @classmethod
    def from_torch(cls, module: nn.RNNBase) -> Recurrent:
        """A ``Recurrent`` with the weights of a ``torch.nn.RNN/LSTM/GRU`` (copied).

        Any number of layers, bidirectional or not. The result is always batch-first, whatever
        ``module.batch_first`` was.
        """
        if isinstance(module, nn.LSTM):
            if module.proj_size:
                raise RnnkitError("LSTM with proj_size > 0 has no rnnkit equivalent")
            cell = "lstm"
        elif isinstance(module, nn.GRU):
            cell = "gru"
        elif isinstance(module, nn.RNN):
            cell = f"rnn_{module.nonlinearity}"
        else:
            raise TypeError(f"expected a torch.nn.RNN, LSTM or GRU, got {type(module).__name__}")
        reference = module.weight_ih_l0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.nn already warned about dropout, if at all
            layer = cls(cell, module.input_size, module.hidden_size, module.num_layers,
                        bias=module.bias, dropout=module.dropout,
                        bidirectional=module.bidirectional)
        layer = layer.to(device=reference.device, dtype=reference.dtype)
        with torch.no_grad():
            for name, cell in layer._torch_names():
                for param_name, param in cell.named_parameters():
                    param.copy_(getattr(module, f"{param_name}{name}"))
        return layer.train(module.training)

    def to_torch(self, batch_first: bool = True) -> nn.RNNBase:
        """The equivalent ``torch.nn.RNN/LSTM/GRU``, weights copied (plain configurations)."""
        if self.cell == "layernorm_lstm" or self.context_size:
            raise RnnkitError(f"torch.nn has no equivalent of {self.extra_repr()}: layer norm "
                              "and context conditioning exist only in rnnkit")
        if self.recurrent_dropout > 0:
            warnings.warn("torch.nn has no recurrent dropout: the exported module runs without "
                          "it (evaluation gives the same numbers)", stacklevel=2)
        kwargs = dict(num_layers=self.num_layers, bias=self.bias, batch_first=batch_first,
                      dropout=self.dropout, bidirectional=self.bidirectional)
        if self.cell == "lstm":
            module = nn.LSTM(self.input_size, self.hidden_size, **kwargs)
        elif self.cell == "gru":
            module = nn.GRU(self.input_size, self.hidden_size, **kwargs)
        else:
            module = nn.RNN(self.input_size, self.hidden_size, nonlinearity=self.cell[4:],
                            **kwargs)
        reference = self.cells[0].weight_ih
        module = module.to(device=reference.device, dtype=reference.dtype)
        with torch.no_grad():
            for name, cell in self._torch_names():
                for param_name, param in cell.named_parameters():
                    getattr(module, f"{param_name}{name}").copy_(param)
        return module.train(self.training)

    def _torch_names(self):
        """``("_l0", cell), ("_l0_reverse", cell), ...``: torch.nn's parameter name suffixes."""
        for k, cell in enumerate(self.cells):
            layer, direction = divmod(k, self.num_directions)
            yield f"_l{layer}{'_reverse' if direction else ''}", cell


def _where(running: Tensor, new: State, old: State) -> State:
    if isinstance(new, LSTMState):
        return LSTMState(torch.where(running, new.h, old.h), torch.where(running, new.c, old.c))
    return torch.where(running, new, old)


def _reverse_batch_first(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of ``(B, T, F)`` within its own length."""
    return engines.reverse_time(x.transpose(0, 1), lengths).transpose(0, 1)
