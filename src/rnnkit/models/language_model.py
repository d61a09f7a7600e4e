r"""The lecture's character-level language model: many-to-many, synced.

At every step the network reads token ``x_t`` and predicts the next one::

    e_t = E[x_t]                       embedding (or the one-hot of x_t itself)
    h_t = RNN(e_t, h_{t-1})            any cell kind, L levels (rnnkit.nn.Recurrent)
    y_t = W_hy h_t + b_y               logits over the vocabulary: a guess at x_{t+1}

trained with the cross-entropy of ``y_t`` against ``x_{t+1}`` (nats per character; divide by
``ln 2`` for bits). Generation feeds each sampled token back as the next input
(:meth:`LanguageModel.sample`), through :class:`StepDecoder`, the same model with its weights
laid out for one step at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_fields, check_ids_shape, check_token_ids, is_integer
from ..config import option
from ..decoding import Sampler
from ..errors import RnnkitError
from ..nn import CELL_KINDS, LSTMState, Recurrent, check_cell, evaluating
from ..nn.cells import State
from ..nn.engines import FastStep
from ..nn.gemm import mm_t, torch_mm_t

__all__ = ["LanguageModel", "LanguageModelConfig", "StepDecoder", "detach_state"]


@dataclass
class LanguageModelConfig:
    """The shape of a :class:`LanguageModel`. Every field is checked on creation.

    The defaults are the character model's measured ones (tiny Shakespeare, 2 CPU cores)."""

    vocab_size: int | None = option(
        None, "V: token ids are 0 .. V-1; set from the data", cli=False)
    cell: str = option("lstm", "the recurrent cell: one of rnnkit.nn.CELL_KINDS",
                       choices=CELL_KINDS)
    num_layers: int = option(1, "L, levels stacked (on 2 CPU cores one learns fastest)")
    hidden_size: int = option(256, "H, units per level (val loss 1.50 on tiny Shakespeare "
                                   "in 75 s on 2 cores; 512: 1.63)")
    embedding_size: int = option(64, "E; 0 = the one-hot input of the lecture")
    dropout: float = option(0.0, "on the embedding, between levels and before W_hy (Zaremba "
                                 "et al. 2014); a short budget underfits: none")
    tie_weights: bool = option(False, "W_hy shares the embedding matrix (Press & Wolf 2017); "
                                      "needs E == H")

    def __post_init__(self) -> None:
        check_fields(self, positive=("num_layers", "hidden_size"), rates=("dropout",),
                     flags=("tie_weights",), from_data=("vocab_size",))
        check_cell(self.cell)
        E = self.embedding_size
        if not is_integer(E) or E < 0:
            raise RnnkitError(f"embedding_size must be an integer >= 0 (0 = one-hot input), "
                              f"got {E!r}")
        if self.tie_weights and E == 0:
            raise RnnkitError("tie_weights needs a learned embedding (embedding_size > 0); the "
                              "one-hot input (embedding_size=0) has no matrix to share")
        if self.tie_weights and self.hidden_size != E:
            raise RnnkitError(f"tie_weights needs embedding_size == hidden_size (W_hy is the "
                              f"(V, E) embedding used as (V, H)), got embedding_size={E}, "
                              f"hidden_size={self.hidden_size}")


def detach_state(state: State | None) -> State | None:
    """The state cut from its graph, to carry across batches (truncated BPTT).

    Works for a tensor ``(L, B, H)`` and an :class:`LSTMState` (each part detached); ``None``
    stays ``None``.
    """
    if state is None:
        return None
    if isinstance(state, LSTMState):
        return LSTMState(state.h.detach(), state.c.detach())
    return state.detach()


class LanguageModel(nn.Module):
    r"""Many-to-many, synced: ``y_t = W_hy h_t`` predicts token ``t+1``.

    Args:
        config: a :class:`LanguageModelConfig`.

    Inputs: ``idx, state=None, targets=None``
        * ``idx`` ``(B, T)`` int64 token ids in ``[0, V)``. Only their shape is checked here;
          their values where they are encoded (:func:`rnnkit.checks.check_token_ids`).
        * ``state``: the recurrent state to start from (``(L, B, H)``, an :class:`LSTMState`
          for LSTMs), e.g. the previous batch's, detached (:func:`detach_state`); zeros if
          ``None``.
        * ``targets`` ``(B, T)``: the next tokens (``idx`` shifted by one). Ids of -100 are
          ignored, as in ``F.cross_entropy``.

    Outputs: ``logits, loss, state``
        * ``logits`` ``(B, T, V)``.
        * ``loss``: the mean cross-entropy over the ``B*T`` targets, in nats per token
          (``None`` without targets).
        * ``state``: the final recurrent state, still attached to the graph.

    Parameters: ``embedding.weight`` ``(V, E)`` (none for one-hot input), ``rnn`` (an
    :class:`rnnkit.nn.Recurrent`), ``head.weight`` ``(V, H)`` = ``W_hy`` and ``head.bias``.

    Example::

        >>> model = LanguageModel(LanguageModelConfig(vocab_size=65, num_layers=1))
        >>> idx = torch.randint(65, (4, 100))
        >>> logits, loss, state = model(idx[:, :-1], targets=idx[:, 1:])
        >>> logits.shape, state.h.shape
        (torch.Size([4, 99, 65]), torch.Size([1, 4, 512]))
        >>> text = torch.cat(list(model.sample(idx[0, :10], 200, temperature=0.8)))  # (200,)
    """

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("LanguageModelConfig.vocab_size is not set: it comes from the data")
        self.config = config
        V, E, H, L = (config.vocab_size, config.embedding_size, config.hidden_size,
                      config.num_layers)
        self.embedding = nn.Embedding(V, E) if E > 0 else None
        self.drop = nn.Dropout(config.dropout)
        # Recurrent's dropout acts between levels only: with one level it has none to act on
        self.rnn = Recurrent(config.cell, E or V, H, L,
                             dropout=config.dropout if L > 1 else 0.0)
        self.head = nn.Linear(H, V)  # W_hy, b_y
        self._init_weights()
        if config.tie_weights:
            self.head.weight = self.embedding.weight  # one (V, H) tensor, two roles

    def _init_weights(self) -> None:
        # Small uniform input and output weights, zero output bias, as in Zaremba et al. 2014 and
        # PyTorch's word_language_model: N(0, 1) embeddings would make a tied W_hy's first
        # logits ~sqrt(H) large. The recurrent weights keep torch.nn's initialisation.
        if self.embedding is not None:
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.head.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)

    def num_parameters(self) -> int:
        """Trainable numbers in the model; a tied matrix counts once."""
        return sum(p.numel() for p in self.parameters())

    # --------------------------------------------------------------------------- forward
    def embed(self, idx: Tensor) -> Tensor:
        """The first level's inputs: ``(B, T)`` ids -> ``(B, T, E)`` (``(B, T, V)`` one-hot)."""
        if self.embedding is not None:
            return self.embedding(idx)
        return F.one_hot(idx, self.config.vocab_size).to(self.head.weight.dtype)

    def forward(self, idx: Tensor, state: State | None = None,
                targets: Tensor | None = None) -> tuple[Tensor, Tensor | None, State]:
        # shapes only: the ids' values are checked where they are encoded (rnnkit.checks)
        idx = check_ids_shape(idx, "idx", "(B, T), non-empty").to(self.head.weight.device)
        x = self.drop(self.embed(idx))  # (B, T) -> (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, E) -> (B, T, H)
        logits = self.head(self.drop(out))  # (B, T, H) -> (B, T, V)
        loss = None
        if targets is not None:
            if not isinstance(targets, Tensor) or targets.shape != idx.shape or (
                    targets.is_floating_point() or targets.is_complex()):
                got = (f"{targets.dtype} of shape {tuple(targets.shape)}"
                       if isinstance(targets, Tensor) else type(targets).__name__)
                raise RnnkitError(f"expected targets as integer ids of the shape of idx "
                                  f"{tuple(idx.shape)}, got {got}")
            # (B, T, V) -> (B*T, V) against (B, T) -> (B*T,): the mean over every target
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                   targets.reshape(-1).long())
        return logits, loss, state

    detach_state = staticmethod(detach_state)


    # ------------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample(self, prime: Tensor, length: int, *, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
               generator: torch.Generator | None = None) -> Iterator[Tensor]:
        """Generate ``length`` tokens after ``prime``, one ``(B,)`` tensor of ids per step.

        ``prime`` ``(P,)`` or ``(B, P)`` int64: ``B`` independent streams (they share only the
        weights), ``P >= 1``; a ``(P,)`` prime is one stream (``B = 1``). The prime runs
        through :meth:`forward` once; then each step picks the next ids with
        a :class:`rnnkit.decoding.Sampler` (``temperature``, ``top_k``, ``top_p``,
        ``greedy``, ``generator``: the distribution of :func:`rnnkit.decoding.next_token`) and
        feeds them back through a :class:`StepDecoder`.

        The arguments are checked here, at the call. The forward over the prime runs in
        evaluation mode (no dropout) when the first step is asked for, and the model's mode is
        restored right after; the steps never look at it. The weights are laid out for the steps
        then, once (:class:`StepDecoder`): do not change them while the iterator is alive.

        Example::

            >>> prime = torch.tensor([[20, 46, 43, 1], [13, 52, 42, 1]])  # two streams (2, 4)
            >>> for ids in model.sample(prime, 500, temperature=0.8, top_p=0.9):
            ...     print(ids)  # (2,): the next token of each stream
        """
        prime = check_ids_shape(prime, "prime", "(P,) or (B, P), non-empty", dims=(1, 2))
        check_token_ids(prime, self.config.vocab_size, "prime")  # once per call, not per step
        prime = prime.to(self.head.weight.device)
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise RnnkitError(f"length must be an integer >= 0, got {length!r}")
        sampler = Sampler(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                          generator=generator)
        return self._generate(prime.reshape(-1, prime.shape[-1]), length, sampler)  # (B, P)

    @torch.no_grad()
    def _generate(self, prime: Tensor, length: int, sampler: Sampler) -> Iterator[Tensor]:
        if length == 0:
            return
        with evaluating(self):
            logits, _, state = self(prime)  # (B, P) -> (B, P, V)
        decoder = StepDecoder(self, state)
        logits = logits[:, -1]  # (B, V): the guess at the first new token
        for t in range(length):
            ids = sampler(logits)  # (B, V) -> (B,)
            yield ids
            if t + 1 < length:
                logits = decoder.step(ids)


class StepDecoder:
    """A :class:`LanguageModel` one step at a time, its weights laid out for speed.

    ``logits = decoder.step(ids)`` advances every stream by one token, ``(B,)`` ids ->
    ``(B, V)`` logits, and keeps the state. The same numbers as :meth:`LanguageModel.forward`
    over the whole sequence (tested to float rounding), in evaluation mode (no dropout).
    What makes a step cheap (a 1x512 LSTM step is one 4 MiB weight read, ~40-55 us here;
    everything else is kept to a few microseconds):

    * The first level's input part depends on the token only: ``W_xh E[x] + biases`` is
      computed for the whole vocabulary once, a table ``(V, G)`` (``G = gates * H``), and a
      step looks up one row per stream instead of a product (``table=None``: used while the
      table has at most ``MAX_TABLE`` entries).
    * Per level one :class:`rnnkit.nn.engines.FastStep`: the scan kernels' own step, one
      product ``W_hh h_{t-1}`` with the input part added in the same call; LSTM gates reordered
      ``i, f, o, g`` so that one sigmoid covers three of them; activations in place; no module
      call's checks.
    * For several streams the products run on oneDNN (:func:`rnnkit.nn.gemm.mm_t`), for one
      stream on torch's matrix-vector product (MKL, :func:`rnnkit.nn.gemm.torch_mm_t`).
      Measured here, ``(B, 512) x (512, 2048)``: B = 1, torch 56 us on 1 or 2 threads, oneDNN
      67 us on 1 and 45 us on 2 idle threads, but it splits the row over threads and stalls
      when another process holds a core (a whole sample once ran 7x slower); B = 3, oneDNN
      74-120 us, torch 160-170 us.

    The weights are laid out at construction (some copied, some shared): after the model
    changes, build a new decoder.

    Args:
        model: the language model.
        state: the state to start from (``forward``'s final state); zeros if ``None``.
        batch_size: ``B`` when ``state`` is ``None``.
        table: force the vocabulary table on (``True``) or off (``False``).
    """

    MAX_TABLE = 2**23  # entries (32 MiB in float32): beyond that, one product per step

    def __init__(self, model: LanguageModel, state: State | None = None, batch_size: int = 1,
                 table: bool | None = None) -> None:
        reference = model.head.weight
        H, V = model.config.hidden_size, model.config.vocab_size
        if state is None:
            zeros = reference.new_zeros(model.config.num_layers, batch_size, H)  # (L, B, H)
            state = LSTMState(zeros, zeros) if model.rnn.cells[0].has_cell_state else zeros
        is_lstm = isinstance(state, LSTMState)
        self.h = list((state.h if is_lstm else state).unbind(0))  # (L, B, H) -> L x (B, H)
        self.c = list(state.c.unbind(0)) if is_lstm else None
        mm = torch_mm_t if self.h[0].shape[0] == 1 else mm_t  # see above
        self.head = mm
        self.vocab_size = V
        self.one_hot_dtype = reference.dtype
        with torch.no_grad():
            self.levels = [FastStep(cell, mm) for cell in model.rnn.cells]
            self.head_weight = model.head.weight.detach().contiguous()  # W_hy (V, H)
            self.head_bias = model.head.bias.detach()
            self.embedding = None if model.embedding is None else model.embedding.weight.detach()
            G = self.levels[0].weights.w_hh.shape[0]
            self.table = None
            if table or (table is None and V * G <= self.MAX_TABLE):
                vocabulary = torch.arange(V, device=reference.device)
                self.table = self.levels[0].input_gates(model.embed(vocabulary))  # (V, G)

    @property
    def state(self) -> State:
        """The state after the last step, in the model's layout (``(L, B, H)`` or LSTMState)."""
        h = torch.stack(self.h)  # L x (B, H) -> (L, B, H)
        return h if self.c is None else LSTMState(h, torch.stack(self.c))

    def step(self, ids: Tensor) -> Tensor:
        """Feed ``ids`` ``(B,)``; returns the logits ``(B, V)`` for the token after them."""
        if torch.is_grad_enabled():  # decoding never needs a graph; in-place steps forbid one
            with torch.no_grad():
                return self.step(ids)
        x = gi = None
        if self.table is not None:
            gi = self.table.index_select(0, ids)  # (V, G) -> (B, G)
        elif self.embedding is not None:
            x = self.embedding.index_select(0, ids)  # (V, E) -> (B, E)
        else:
            x = F.one_hot(ids, self.vocab_size).to(self.one_hot_dtype)  # (B,) -> (B, V)
        h, c = self.h, self.c
        for k, level in enumerate(self.levels):
            if x is not None:
                gi = level.input_gates(x)  # (B, I) -> (B, G)
            if c is None:
                h[k], _ = level.step(gi, h[k])
            else:
                h[k], c[k] = level.step(gi, h[k], c[k])
            x = h[k]  # the next level's input
        return self.head(x, self.head_weight, bias=self.head_bias)  # (B, H) -> (B, V)
