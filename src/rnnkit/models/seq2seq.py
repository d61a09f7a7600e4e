r"""The lecture's encoder-decoder: many-to-many. Read the whole source sentence, then write.

::

    h_1 .. h_S = Encoder(E_src x_1 .. E_src x_S)      the memory, (bidirectional) RNN
    s_0        = tanh(W_bridge [h_fwd_S; h_bwd_1])    per decoder level (c_0 likewise)
    s_t        = Decoder(E_tgt y_{t-1}, s_{t-1})      y_0 = <START>
    p(y_t | y_{<t}, x) = softmax(W_out h~_t + b)      ... until <END>

How the decoder reads the memory (``attention``):

* ``"none"``: Sutskever et al. 2014: the encoder's final state, through the bridge, is all the
  decoder gets; ``h~_t = s_t``.
* ``"dot"``, ``"general"``: Luong et al. 2015, over the decoder's *current* state, after the RNN:

  .. math::
      \mathrm{score}(s_t, h_i) = s_t^T h_i \;\text{(dot)}, \quad s_t^T W_a h_i \;\text{(general)},
      \quad \alpha_t = \mathrm{softmax}_i(\mathrm{score}), \quad c_t = \sum_i \alpha_{ti} h_i,
      \quad \tilde h_t = \tanh(W_c [c_t; s_t])

  Without input feeding the decoder RNN does not depend on the attention, so teacher-forced
  training runs it over the whole target in one fused :class:`rnnkit.nn.Recurrent` call and
  attends for all steps at once with two batched matmuls (the fast path). With
  ``input_feeding`` (Luong's section 3.3) the input is ``[E y_{t-1}; h~_{t-1}]``
  (``h~_0 = 0``), which makes it a step loop.
* ``"bahdanau"``: Bahdanau et al. 2015, additive, over the *previous* state, whose context is
  the decoder's input (a step loop):

  .. math::
      e_{ti} = v^T \tanh(W_a s_{t-1} + U_a h_i + b_a), \quad
      s_t = \mathrm{cell}([E y_{t-1}; c_t], s_{t-1}), \quad \tilde h_t = \tanh(W_c [c_t; s_t])

  (the query is the top level's ``s_{t-1}``; the output layer is Luong's ``h~_t``, a one-layer
  stand-in for the paper's maxout deep output).

Padding in the source never receives attention (a mask) and never changes a result: the
encoder runs with the real lengths. Training is teacher forcing (inputs ``target[:, :-1]``,
targets ``target[:, 1:]``), optionally with scheduled sampling (Bengio et al. 2015).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import (
    check_fields,
    check_ids_shape,
    check_lengths,
    check_lengths_shape,
    check_special_ids,
    check_token_ids,
    is_integer,
)
from ..config import option
from ..decoding import Sampler, beam_search, check_sampling, reorder_state
from ..errors import RnnkitError
from ..nn import CELL_KINDS, LSTMState, Recurrent, check_cell, evaluating

__all__ = ["ATTENTIONS", "DECODE_METHODS", "BahdanauAttention", "LuongAttention", "Seq2Seq",
           "Seq2SeqConfig", "Translation"]

ATTENTIONS = ("bahdanau", "dot", "general", "none")
DECODE_METHODS = ("greedy", "beam", "sample")
MAX_LEN_CAP = 200  # the default max_len (2 * source length + 10) never goes beyond this



@dataclass
class Seq2SeqConfig:
    """The shape of a :class:`Seq2Seq`. Every field is checked on creation (the vocabulary
    sizes, which come from the data, when they are set).

    The defaults are the translation task's measured ones (Multi30k en-de, 2 CPU cores)."""

    source_vocab_size: int | None = option(
        None, "V_src: source word ids 0 .. V_src-1, the special tokens among them; set from "
              "the data", cli=False)
    target_vocab_size: int | None = option(
        None, "V_tgt: target word ids, the special tokens among them; set from the data",
        cli=False)
    embedding_size: int = option(256, "E: word vectors of both languages")
    hidden_size: int = option(512, "H: decoder units per level and the memory's width "
                                   "(bidirectional: H/2 a side)")
    cell: str = option("gru", "the recurrent cell of encoder and decoder: one of "
                              "rnnkit.nn.CELL_KINDS", choices=CELL_KINDS)
    encoder_layers: int = option(1, "levels stacked in the encoder")
    decoder_layers: int = option(1, "levels stacked in the decoder")
    bidirectional_encoder: bool = option(
        True, "the encoder reads the source both ways (Bahdanau et al. 2015)",
        negative="--unidirectional", old_names=("bidirectional",))
    attention: str = option("general", "general | dot (Luong et al. 2015) | bahdanau | none "
                                       "(Sutskever et al. 2014): see rnnkit.models.seq2seq",
                            choices=ATTENTIONS)
    input_feeding: bool = option(False, "Luong's input feeding, h~_{t-1} in the decoder's "
                                        "input (a step loop: slower)")
    reverse_source: bool = option(False, "Sutskever et al. 2014's trick: read the source "
                                         "backwards (pad at the end)")
    dropout: float = option(0.3, "on word vectors, between levels and on h~ before the "
                                 "output layer")
    tie_embeddings: bool = option(True, "the decoder's input embedding is its output layer "
                                        "(Press & Wolf 2017)", negative="--untied")
    pad_index: int = option(0, "fills short sentences: never attended to, never scored",
                            cli=False)
    unk_index: int = option(1, "words outside the vocabulary (replaced via the attention "
                               "when translating)", cli=False)
    start_index: int = option(2, "<START>: the decoder's first input", cli=False)
    end_index: int = option(3, "<END>: the last target; decoding stops there", cli=False)

    def __post_init__(self) -> None:
        check_fields(self, positive=("embedding_size", "hidden_size", "encoder_layers",
                                     "decoder_layers"),
                     from_data=("source_vocab_size", "target_vocab_size"))
        check_cell(self.cell)
        check_fields(self, choices={"attention": ATTENTIONS},
                     flags=("bidirectional_encoder", "input_feeding", "reverse_source",
                            "tie_embeddings"))
        if self.bidirectional_encoder and self.hidden_size % 2:
            raise RnnkitError(f"a bidirectional encoder splits hidden_size between its two "
                              f"directions: expected an even hidden_size, got {self.hidden_size}")
        if self.input_feeding and self.attention not in ("dot", "general"):
            raise RnnkitError(f"input_feeding feeds Luong's attentional vector: expected "
                              f"attention 'dot' or 'general', got {self.attention!r}")
        check_fields(self, rates=("dropout",))
        sizes = (self.source_vocab_size, self.target_vocab_size)
        if None not in sizes and min(sizes) < 5:
            raise RnnkitError(f"the vocabularies must leave room for words beside the four "
                              f"special tokens (at least 5 each), got {self.source_vocab_size} "
                              f"and {self.target_vocab_size}")
        check_special_ids(self, ("pad_index", "unk_index", "start_index", "end_index"),
                          None if None in sizes else min(sizes), "both vocabularies")


class Translation(NamedTuple):
    """One translation of one source sentence.

    * ``tokens``: the target word ids, without ``<START>`` and ``<END>``.
    * ``score``: the log-probability of the translation (its words, and ``<END>`` when it ended:
      one cut at ``max_len`` did not); for beam search, divided by the length penalty.
    * ``attention``: ``(len(tokens), S_real)``, the attention with which each word was
      predicted, over the sentence's real source positions in the order given (also with
      ``reverse_source``); ``None`` for ``attention="none"``.
    """

    tokens: list[int]
    score: float
    attention: Tensor | None = None


class _DecoderState(NamedTuple):
    """All a decoder step needs, batch first (row ``n`` of every tensor is one hypothesis)."""

    h: Tensor  # (N, L, H)
    c: Tensor | None  # (N, L, H) for LSTM cells
    feed: Tensor | None  # (N, H): h~_{t-1}, input feeding only
    memory: Tensor | None  # (N, S, H): the encoder's outputs (None without attention)
    keys: Tensor | None  # (N, S, K): the memory's part of the scores, computed once
    mask: Tensor | None  # (N, S) bool: True at real source positions


# ------------------------------------------------------------------------------ attention
def _read(scores: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Masked softmax over the source and the weighted sum: ``(B, T, S)`` -> ``(B, T, H)``."""
    alpha = scores.masked_fill(~mask.unsqueeze(1), float("-inf")).softmax(dim=-1)  # (B, T, S)
    context = torch.bmm(alpha, memory)  # (B, T, S) x (B, S, H) -> (B, T, H)
    return context, alpha


class LuongAttention(nn.Module):
    r"""Luong et al. 2015's multiplicative scores: ``s^T h_i`` (dot) or ``s^T W_a h_i`` (general).

    Inputs: ``query`` ``(B, T, H)``, the decoder's states (``T = 1`` for a step), ``keys``
    ``(B, S, H)`` = :meth:`keys` of the memory (computed once per sentence), ``memory``
    ``(B, S, H)``, ``mask`` ``(B, S)`` bool (True at real positions).
    Outputs: ``context`` ``(B, T, H)`` and ``alpha`` ``(B, T, S)`` (each row sums to 1, 0 on
    padding).
    Parameters: ``weight`` = ``W_a`` ``(H, H)`` (general only).
    """

    def __init__(self, kind: str, size: int) -> None:
        super().__init__()
        if kind not in ("dot", "general"):
            raise RnnkitError(f"expected kind 'dot' or 'general', got {kind!r}")
        self.kind = kind
        self.weight = nn.Parameter(torch.empty(size, size)) if kind == "general" else None
        if self.weight is not None:
            nn.init.uniform_(self.weight, -size ** -0.5, size ** -0.5)

    def keys(self, memory: Tensor) -> Tensor:
        # general: s^T W_a h_i = s . (W_a h_i): W_a applied once to the memory, not per step
        return memory if self.weight is None else F.linear(memory, self.weight)  # (B, S, H)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor,
                mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, H) x (B, H, S) -> (B, T, S)
        return _read(scores, memory, mask)


class BahdanauAttention(nn.Module):
    r"""Bahdanau et al. 2015's additive scores: ``e_i = v^T tanh(W_a s + U_a h_i + b_a)``.

    Inputs and outputs as :class:`LuongAttention`'s; ``keys`` ``(B, S, A)`` = ``U_a h_i + b_a``.
    Parameters: ``memory_proj`` = ``U_a`` ``(A, H)`` and ``b_a``; ``query_proj`` = ``W_a``
    ``(A, H)``; ``score`` = ``v`` ``(1, A)``.
    """

    def __init__(self, query_size: int, memory_size: int, attention_size: int) -> None:
        super().__init__()
        self.memory_proj = nn.Linear(memory_size, attention_size)  # U_a, b_a
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)  # W_a
        self.score = nn.Linear(attention_size, 1, bias=False)  # v

    def keys(self, memory: Tensor) -> Tensor:
        return self.memory_proj(memory)  # (B, S, H) -> (B, S, A)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor,
                mask: Tensor) -> tuple[Tensor, Tensor]:
        q = self.query_proj(query).unsqueeze(2)  # (B, T, H) -> (B, T, 1, A)
        # (B, 1, S, A) + (B, T, 1, A) -> (B, T, S, A) -> (B, T, S)
        scores = self.score(torch.tanh(keys.unsqueeze(1) + q)).squeeze(3)
        return _read(scores, memory, mask)


# ---------------------------------------------------------------------------------- model
class Seq2Seq(nn.Module):
    r"""An encoder-decoder translation model, with or without attention (see the module doc).

    Args:
        config: a :class:`Seq2SeqConfig`.

    Inputs: ``source, source_lengths, target, *, teacher_forcing=1.0, label_smoothing=0.0,
    generator=None``
        * ``source`` ``(B, S)`` int64: source ids, each sentence's ``source_lengths[b]`` real
          tokens first; whatever follows them is padding and never read.
        * ``source_lengths`` ``(B,)``: real lengths in ``[1, S]``.
        * ``target`` ``(B, T)`` int64, ``T >= 2``: ``<START> y_1 .. y_n <END> <PAD> ..``. The
          inputs are ``target[:, :-1]``, the targets ``target[:, 1:]``; targets equal to
          ``pad_index`` are not scored.
        * ``teacher_forcing``: the chance that a step's input is the gold token; below 1 the
          other steps read the decoder's own previous argmax (scheduled sampling, Bengio et al.
          2015; a coin per sentence and step, from ``generator``). Needs the step loop.
        * ``label_smoothing``: ``epsilon`` of Szegedy et al. 2016 (``F.cross_entropy``'s).

        Types and shapes are checked here; the ids' values where they are encoded
        (:mod:`rnnkit.checks`), the lengths' by the encoder.

    Outputs: ``logits, loss``
        * ``logits`` ``(B, T-1, V_tgt)``: step ``t`` guesses ``target[:, t+1]``.
        * ``loss``: the mean (label-smoothed) cross-entropy per scored target token, in nats.

    Parameters: ``source_embedding`` ``(V_src, E)`` and ``target_embedding`` ``(V_tgt, E)``
    (``<PAD>`` rows start at 0); ``encoder``, a :class:`rnnkit.nn.Recurrent` with ``H/2``
    units a direction when bidirectional (so that the memory is ``H`` wide, as in OpenNMT's
    ``brnn``, and dot scores are defined); ``bridge_h`` (``bridge_c`` for LSTMs): one
    ``W_bridge`` ``(H, H)`` and bias per decoder level, which reads the final states of
    encoder level ``max(0, l + L_enc - L_dec)`` (levels aligned at the top); ``decoder``, a
    :class:`rnnkit.nn.Recurrent` with input ``E`` (``E + H`` with input feeding or Bahdanau's
    context); ``attention`` (:class:`LuongAttention` or :class:`BahdanauAttention` with
    ``A = H``) and ``combine`` = ``W_c`` ``(H, 2H)``; ``head`` = ``W_out`` ``(V_tgt, E or H)``.
    With ``tie_embeddings``, ``head.weight`` *is* ``target_embedding.weight``, and when
    ``H != E`` a ``projection`` ``(E, H)`` (no bias) first maps ``h~_t`` to ``E``.

    Example::

        >>> config = Seq2SeqConfig(source_vocab_size=8000, target_vocab_size=8000)
        >>> model = Seq2Seq(config)
        >>> source = torch.randint(4, 8000, (64, 14))
        >>> lengths = torch.full((64,), 14)
        >>> target = torch.randint(4, 8000, (64, 15))
        >>> target[:, 0], target[:, -1] = config.start_index, config.end_index
        >>> logits, loss = model(source, lengths, target, label_smoothing=0.1)
        >>> logits.shape
        torch.Size([64, 14, 8000])
        >>> best = model.translate(source, lengths, method="beam", beam_size=5)  # 64 x 1
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"expected a Seq2SeqConfig, got {type(config).__name__}")
        if None in (config.source_vocab_size, config.target_vocab_size):
            raise ValueError("Seq2SeqConfig's source_vocab_size and target_vocab_size are not "
                             "set: they come from the data")
        self.config = config
        E, H = config.embedding_size, config.hidden_size
        L_enc, L_dec = config.encoder_layers, config.decoder_layers
        directions = 2 if config.bidirectional_encoder else 1
        kind = config.attention
        self.has_cell_state = config.cell in ("lstm", "layernorm_lstm")
        self.source_embedding = nn.Embedding(config.source_vocab_size, E,
                                             padding_idx=config.pad_index)
        self.target_embedding = nn.Embedding(config.target_vocab_size, E,
                                             padding_idx=config.pad_index)
        self.drop = nn.Dropout(config.dropout)
        # Recurrent's dropout acts between levels only: with one level it has none to act on
        self.encoder = Recurrent(config.cell, E, H // directions, L_enc,
                                 dropout=config.dropout if L_enc > 1 else 0.0,
                                 bidirectional=config.bidirectional_encoder)
        self.bridge_h = nn.ModuleList(nn.Linear(H, H) for _ in range(L_dec))
        self.bridge_c = (nn.ModuleList(nn.Linear(H, H) for _ in range(L_dec))
                         if self.has_cell_state else None)
        feeds_context = kind == "bahdanau" or config.input_feeding
        self.decoder = Recurrent(config.cell, E + H if feeds_context else E, H, L_dec,
                                 dropout=config.dropout if L_dec > 1 else 0.0)
        if kind == "bahdanau":
            self.attention = BahdanauAttention(H, H, H)
        elif kind in ("dot", "general"):
            self.attention = LuongAttention(kind, H)
        else:
            self.attention = None
        self.combine = nn.Linear(2 * H, H, bias=False) if self.attention is not None else None
        # tying needs the output layer's input to be E wide: a projection H -> E when H != E
        self.projection = (nn.Linear(H, E, bias=False) if config.tie_embeddings and H != E
                           else None)
        self.head = nn.Linear(E if config.tie_embeddings else H, config.target_vocab_size)
        # small uniform word vectors and output weights, zero output bias (as the captioner)
        for embedding in (self.source_embedding, self.target_embedding):
            nn.init.uniform_(embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.head.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)
        if config.tie_embeddings:
            self.head.weight = self.target_embedding.weight  # Press & Wolf 2017: one matrix
        with torch.no_grad():
            self.source_embedding.weight[config.pad_index].zero_()
            self.target_embedding.weight[config.pad_index].zero_()
        self._use_fast_path = True  # tests turn it off to check the fast path against the loop

    def num_parameters(self) -> int:
        """Trainable numbers in the model; a tied matrix counts once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def has_fast_path(self) -> bool:
        """Whether teacher-forced training can run the decoder RNN in one call (no step loop)."""
        return self.config.attention in ("dot", "general", "none") and (
            not self.config.input_feeding)

    # --------------------------------------------------------------------------- forward
    def forward(self, source: Tensor, source_lengths: Tensor, target: Tensor, *,
                teacher_forcing: float = 1.0, label_smoothing: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        for name, value, closed in (("teacher_forcing", teacher_forcing, True),
                                    ("label_smoothing", label_smoothing, False)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    0 <= value <= 1 if closed else 0 <= value < 1):
                raise RnnkitError(f"{name} must be in [0, 1{']' if closed else ')'}, got "
                                  f"{value!r}")
        memory, mask, initial = self.encode(source, source_lengths)
        target = self._check_target(target, memory.shape[0])
        inputs, targets = target[:, :-1], target[:, 1:]  # (B, T) -> (B, T-1) each
        logits, _ = self._decode(memory, mask, initial, inputs, teacher_forcing, generator)
        # (B, T-1, V) -> (B*(T-1), V) against (B*(T-1),): the mean over the real targets
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=self.config.pad_index,
                               label_smoothing=label_smoothing)
        return logits, loss

    def encode(self, source: Tensor,
               source_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor | LSTMState]:
        """Read the source: ``memory`` ``(B, S, H)``, ``mask`` ``(B, S)`` bool (True at real
        positions) and the decoder's initial state ``(L_dec, B, H)`` (an :class:`LSTMState` for
        LSTMs). The memory's positions are the source's as given, also with
        ``reverse_source`` (the encoder reads it backwards; its outputs are put back in order),
        and 0 on padding."""
        source, lengths = self._check_source(source, source_lengths)
        B, S = source.shape
        if self.config.reverse_source:  # Sutskever et al. 2014: the first words read last
            source = _reverse_within(source, lengths)
        x = self.drop(self.source_embedding(source))  # (B, S) -> (B, S, E)
        memory, final = self.encoder(x, lengths=lengths)  # (B, S, H), (L_enc*D, B, H/D)
        if self.config.reverse_source:  # back to the given order: attention lines up with it
            memory = _reverse_within(memory, lengths)
        mask = torch.arange(S, device=source.device) < lengths.unsqueeze(1)  # (B, S)
        return memory, mask, self._bridge(final)

    def _bridge(self, final: Tensor | LSTMState) -> Tensor | LSTMState:
        """``s_0 = tanh(W_bridge [h_fwd; h_bwd])`` per decoder level: ``(L_enc*D, B, H/D)`` ->
        ``(L_dec, B, H)`` (and ``c_0`` from the encoder's ``c`` for LSTMs)."""
        D = self.encoder.num_directions
        L_enc, L_dec = self.config.encoder_layers, self.config.decoder_layers

        def project(states: Tensor, bridges: nn.ModuleList) -> Tensor:
            levels = []
            for level, bridge in enumerate(bridges):
                k = max(0, level + L_enc - L_dec) * D  # levels aligned at the top
                both = torch.cat(list(states[k:k + D]), dim=-1)  # D x (B, H/D) -> (B, H)
                levels.append(torch.tanh(bridge(both)))
            return torch.stack(levels)  # L_dec x (B, H) -> (L_dec, B, H)

        if isinstance(final, LSTMState):
            return LSTMState(project(final.h, self.bridge_h), project(final.c, self.bridge_c))
        return project(final, self.bridge_h)

    def _decode(self, memory: Tensor, mask: Tensor, initial: Tensor | LSTMState, inputs: Tensor,
                teacher_forcing: float = 1.0, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor | None]:
        """Logits ``(B, T, V)`` for the input tokens ``(B, T)``, and the attention ``(B, T, S)``
        (``None`` without): the fast path when it applies, else the step loop."""
        if teacher_forcing == 1 and self.has_fast_path and self._use_fast_path:
            return self._teacher_forced(memory, mask, initial, inputs)
        return self._step_loop(memory, mask, initial, inputs, teacher_forcing, generator)

    def _teacher_forced(self, memory: Tensor, mask: Tensor, initial: Tensor | LSTMState,
                        inputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """The fast path: the decoder RNN over all steps at once, then attention for all."""
        x = self.drop(self.target_embedding(inputs))  # (B, T) -> (B, T, E)
        out, _ = self.decoder(x, initial)  # (B, T, E) -> (B, T, H): s_1 .. s_T
        alpha = None
        if self.attention is not None:  # Luong: (B, T, H) x (B, S, H) -> (B, T, S) -> (B, T, H)
            context, alpha = self.attention(out, self.attention.keys(memory), memory, mask)
            out = torch.tanh(self.combine(torch.cat([context, out], dim=-1)))  # (B, T, H)
        return self._logits(self.drop(out)), alpha

    def _step_loop(self, memory: Tensor, mask: Tensor, initial: Tensor | LSTMState,
                   inputs: Tensor, teacher_forcing: float,
                   generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        """One decoder step at a time (every attention kind; scheduled sampling)."""
        B, T = inputs.shape
        state = self._initial_state(memory, mask, initial)
        sampling = teacher_forcing < 1
        outputs, logits, weights = [], [], []
        tokens = inputs[:, 0]
        for t in range(T):
            if t > 0:
                tokens = inputs[:, t]
                if sampling:  # Bengio et al. 2015: the gold token with chance teacher_forcing
                    coins = torch.rand(B, generator=generator,
                                       device=generator.device if generator else None)
                    gold = coins.to(inputs.device) < teacher_forcing  # (B,)
                    tokens = torch.where(gold, tokens, logits[-1].detach().argmax(dim=-1))
            out, state, alpha = self._step_output(tokens, state)
            if sampling:  # the next input needs this step's prediction
                logits.append(self._logits(out))
            outputs.append(out)
            weights.append(alpha)
        if sampling:
            result = torch.stack(logits, dim=1)  # T x (B, V) -> (B, T, V)
        else:  # one large output product instead of T small ones
            result = self._logits(torch.stack(outputs, dim=1))  # T x (B, H) -> (B, T, V)
        alphas = torch.stack(weights, dim=1) if self.attention is not None else None  # (B, T, S)
        return result, alphas

    def _logits(self, out: Tensor) -> Tensor:
        """``h~`` ``(..., H)`` -> logits ``(..., V)`` (through the tying projection, if any)."""
        if self.projection is not None:
            out = self.projection(out)  # (..., H) -> (..., E)
        return self.head(out)

    # ------------------------------------------------------------------- step by step
    def _initial_state(self, memory: Tensor, mask: Tensor,
                       initial: Tensor | LSTMState) -> _DecoderState:
        """The decoder's state before ``<START>`` is read, batch first (beam search picks rows)."""
        h, c = (initial.h, initial.c) if isinstance(initial, LSTMState) else (initial, None)
        feed = memory.new_zeros(memory.shape[0], self.config.hidden_size) if (
            self.config.input_feeding) else None  # (B, H): h~_0 = 0
        keys = None
        if self.attention is None:
            memory = mask = None  # nothing to carry (and reorder) through the steps
        else:
            keys = self.attention.keys(memory)  # (B, S, K)
        # (L, B, H) -> (B, L, H)
        return _DecoderState(h.transpose(0, 1), None if c is None else c.transpose(0, 1), feed,
                             memory, keys, mask)

    def _step_output(self, tokens: Tensor, state: _DecoderState
                     ) -> tuple[Tensor, _DecoderState, Tensor | None]:
        """Feed ``tokens`` ``(N,)``: ``h~_t`` ``(N, H)`` (after dropout), the new state and the
        attention ``(N, S)`` (or ``None``)."""
        x = self.drop(self.target_embedding(tokens))  # (N,) -> (N, E)
        kind = self.config.attention
        context = alpha = None
        if kind == "bahdanau":  # the query is the top level's s_{t-1}: (N, H) -> (N, 1, H)
            context, alpha = self.attention(state.h[:, -1:], state.keys, state.memory,
                                            state.mask)  # (N, 1, H), (N, 1, S)
            x = torch.cat([x, context.squeeze(1)], dim=1)  # (N, E + H)
        elif self.config.input_feeding:
            x = torch.cat([x, state.feed], dim=1)  # (N, E + H): Luong's h~_{t-1}
        # (N, L, H) -> (L, N, H): Recurrent's layout
        h_all = state.h.transpose(0, 1)
        prev = h_all if state.c is None else LSTMState(h_all, state.c.transpose(0, 1))
        out, new = self.decoder.step(x, prev)  # (N, I) -> (N, H)
        if isinstance(new, LSTMState):  # (L, N, H) -> (N, L, H)
            state = state._replace(h=new.h.transpose(0, 1), c=new.c.transpose(0, 1))
        else:
            state = state._replace(h=new.transpose(0, 1))
        if kind in ("dot", "general"):  # over s_t: (N, 1, H) -> (N, 1, H), (N, 1, S)
            context, alpha = self.attention(out.unsqueeze(1), state.keys, state.memory,
                                            state.mask)
        if context is not None:
            out = torch.tanh(self.combine(torch.cat([context.squeeze(1), out], dim=1)))
        out = self.drop(out)  # (N, H)
        if self.config.input_feeding:
            state = state._replace(feed=out)
        return out, state, None if alpha is None else alpha.squeeze(1)

    def _step(self, tokens: Tensor, state: _DecoderState
              ) -> tuple[Tensor, _DecoderState, Tensor | None]:
        """Feed ``tokens`` ``(N,)``: logits ``(N, V)`` for the next, the state, the attention."""
        out, state, alpha = self._step_output(tokens, state)
        return self._logits(out), state, alpha

    # ----------------------------------------------------------------------- translation
    @torch.no_grad()
    def translate(self, source: Tensor, source_lengths: Tensor, *, method: str = "greedy",
                  beam_size: int = 5, length_penalty: float = 1.0, n_best: int = 1,
                  max_len: int | None = None, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> list[list[Translation]]:
        """Translations of ``B`` sentences: per sentence a list of ``n_best``
        :class:`Translation`, best first.

        ``source``, ``source_lengths``: as in :meth:`forward`. Runs in evaluation mode (no
        dropout); the model's modes are restored afterwards. Every translation starts from
        ``<START>`` and stops at ``<END>`` or after ``max_len`` words (default, per sentence:
        ``2 * its length + 10``, at most 200), so that a sentence's result does not depend on
        the others in its batch.

        * ``"greedy"``: the likeliest word at every step; deterministic; ``n_best=1``.
        * ``"sample"``: words drawn from ``softmax(logits / temperature)`` with ``generator``;
          ``n_best`` independent samples per sentence, ranked by their log-probability.
        * ``"beam"``: :func:`rnnkit.decoding.beam_search` with ``beam_size``,
          ``length_penalty`` (GNMT's ``alpha``) and ``n_best``; the attention comes from one
          teacher-forced pass over the words found.

        The words' log-probabilities are those of :meth:`forward` under teacher forcing with
        the same prefix (tested).
        """
        if method not in DECODE_METHODS:
            raise RnnkitError(f"unknown method {method!r}: expected one of "
                              + ", ".join(repr(m) for m in DECODE_METHODS))
        check_sampling(temperature)
        if max_len is not None and (not is_integer(max_len) or max_len < 1):
            raise RnnkitError(f"max_len must be a positive integer (or None), got {max_len!r}")
        if not is_integer(n_best) or n_best < 1:
            raise RnnkitError(f"n_best must be a positive integer, got {n_best!r}")
        if method == "greedy" and n_best != 1:
            raise RnnkitError(f"greedy decoding has one translation per sentence: n_best must be "
                              f"1, got {n_best} (use method='beam' or 'sample')")
        # the values too, once per call: the lengths, then the real source ids
        source, source_lengths = self._check_source(source, source_lengths)
        check_lengths(source_lengths, *source.shape, "source_lengths")
        check_token_ids(source, self.config.source_vocab_size, "source ids")
        with evaluating(self):
            memory, mask, initial = self.encode(source, source_lengths)
            lengths = mask.sum(dim=1)  # (B,)
            limits = [min(2 * n + 10, MAX_LEN_CAP) if max_len is None else max_len
                      for n in lengths.tolist()]
            if method == "beam":
                return self._beam(memory, mask, initial, limits, beam_size, length_penalty,
                                  n_best)
            sampler = Sampler(temperature=temperature, greedy=method == "greedy",
                              generator=generator)
            return self._sample(memory, mask, initial, limits, sampler, n_best)

    def _sample(self, memory: Tensor, mask: Tensor, initial: Tensor | LSTMState,
                limits: list[int], sampler: Sampler, n: int) -> list[list[Translation]]:
        B = memory.shape[0]
        # n samples per sentence, sentence-major: (B, ...) -> (B*n, ...)
        rows = torch.arange(B, device=memory.device).repeat_interleave(n)
        state = reorder_state(self._initial_state(memory, mask, initial), rows)
        limits = [limits[b] for b in rows.tolist()]
        N = B * n
        tokens = torch.full((N,), self.config.start_index, dtype=torch.long,
                            device=memory.device)
        words: list[list[int]] = [[] for _ in range(N)]
        weights: list[list[Tensor]] = [[] for _ in range(N)]
        scores = [0.0] * N
        live = list(range(N))  # the translations still growing, in the order of state's rows
        for _ in range(max(limits)):
            logits, state, alpha = self._step(tokens, state)  # (N', V)
            chosen = sampler(logits)  # (N', V) -> (N',)
            log_probs = logits.log_softmax(dim=-1).gather(1, chosen.unsqueeze(1))  # (N', 1)
            picked, ids = log_probs.squeeze(1).tolist(), chosen.tolist()
            keep = []
            for i, row in enumerate(live):
                scores[row] += picked[i]
                if ids[i] == self.config.end_index:
                    continue
                words[row].append(ids[i])
                if alpha is not None:
                    weights[row].append(alpha[i])
                if len(words[row]) < limits[row]:
                    keep.append(i)
            if not keep:
                break
            if len(keep) < len(live):  # finished rows leave the batch
                index = torch.tensor(keep, device=memory.device)
                state, chosen = reorder_state(state, index), chosen.index_select(0, index)
                live = [live[i] for i in keep]
            tokens = chosen
        sizes = mask.sum(dim=1).tolist()
        found = []
        for row in range(N):
            attention = None
            if self.attention is not None:
                size = sizes[row // n]
                attention = (torch.stack(weights[row])[:, :size] if weights[row]
                             else memory.new_zeros(0, size))  # (len, S_real)
            found.append(Translation(words[row], scores[row], attention))
        return [sorted(found[b * n:(b + 1) * n], key=lambda t: -t.score) for b in range(B)]

    def _beam(self, memory: Tensor, mask: Tensor, initial: Tensor | LSTMState,
              limits: list[int], beam_size: int, length_penalty: float,
              n_best: int) -> list[list[Translation]]:
        def step(tokens: Tensor, state: _DecoderState) -> tuple[Tensor, _DecoderState]:
            logits, state, _ = self._step(tokens, state)
            return logits.log_softmax(dim=-1), state  # (N, V)

        state = self._initial_state(memory, mask, initial)
        found: list = [None] * memory.shape[0]
        # beam_search takes one max_len: one search per distinct limit (few in a batch of
        # sentences of similar lengths), so that every sentence gets its own
        for limit in sorted(set(limits)):
            group = [b for b, lim in enumerate(limits) if lim == limit]
            index = torch.tensor(group, device=memory.device)
            results = beam_search(step, reorder_state(state, index), batch_size=len(group),
                                  start_index=self.config.start_index,
                                  end_index=self.config.end_index, beam_size=beam_size,
                                  max_len=limit, length_penalty=length_penalty, n_best=n_best)
            for b, hypotheses in zip(group, results, strict=True):
                found[b] = hypotheses
        attention: list = [None] * sum(len(h) for h in found)
        if self.attention is not None:
            attention = self._attention_of(memory, mask, initial, found)
        flat = iter(attention)
        return [[Translation(tokens, score, next(flat)) for tokens, score in hypotheses]
                for hypotheses in found]

    def _attention_of(self, memory: Tensor, mask: Tensor, initial: Tensor | LSTMState,
                      found: list[list[tuple[list[int], float]]]) -> list[Tensor]:
        """The attention of each found translation, in order, by one teacher-forced pass."""
        sentences = [b for b, hypotheses in enumerate(found) for _ in hypotheses]
        words = [tokens for hypotheses in found for tokens, _ in hypotheses]
        T = max(len(w) for w in words) + 1
        inputs = torch.full((len(words), T), self.config.pad_index, dtype=torch.long,
                            device=memory.device)  # (M, T): <START> y_1 .. y_n <PAD> ..
        inputs[:, 0] = self.config.start_index
        for m, w in enumerate(words):
            inputs[m, 1:len(w) + 1] = torch.tensor(w, dtype=torch.long)
        index = torch.tensor(sentences, device=memory.device)
        if isinstance(initial, LSTMState):  # (L, B, H) -> (L, M, H): one row per translation
            initial = LSTMState(initial.h.index_select(1, index), initial.c.index_select(1, index))
        else:
            initial = initial.index_select(1, index)
        _, alphas = self._decode(memory.index_select(0, index), mask.index_select(0, index),
                                 initial, inputs)  # (M, T, S)
        sizes = mask.sum(dim=1).tolist()
        # word j was predicted at step j-1: rows :len(w); real source positions only
        return [alphas[m, :len(w), :sizes[b]] for m, (w, b) in enumerate(
            zip(words, sentences, strict=True))]

    # ---------------------------------------------------------------------------- checks
    def _check_source(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``source`` ``(B, S)`` and ``lengths`` ``(B,)`` as int64 on the model's device, the
        padding read as ``<PAD>``. Types and shapes only: the ids' values are checked where
        they are encoded (and by :meth:`translate`), the lengths' by the encoder."""
        source = check_ids_shape(source, "source", "(B, S), non-empty")
        B, S = source.shape
        lengths = check_lengths_shape(lengths, B, "source_lengths")
        device = self.head.weight.device
        source, lengths = source.to(device), lengths.to(device)
        real = torch.arange(S, device=device) < lengths.unsqueeze(1)  # (B, S)
        # padding is never read (lengths), but embedding it must not fail
        return source.masked_fill(~real, self.config.pad_index), lengths

    def _check_target(self, target: Tensor, B: int) -> Tensor:
        """``target`` ``(B, T >= 2)`` as int64 on the model's device (types and shapes only)."""
        target = check_ids_shape(target, "target", f"(B={B}, T >= 2) (<START> and at least "
                                 "one target)", batch_size=B, min_steps=2)
        return target.to(self.head.weight.device)

def _reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first ``lengths[b]`` entries of ``(B, S, ...)``; the rest stay."""
    B, S = x.shape[:2]
    t = torch.arange(S, device=x.device).unsqueeze(0)  # (1, S)
    # a length past S is the encoder's to refuse, after this: clamped, it cannot index past S
    last = lengths.clamp(max=S).unsqueeze(1) - 1  # (B, 1)
    index = torch.where(t <= last, last - t, t)  # (B, S): position read at each position
    index = index.view(B, S, *([1] * (x.dim() - 2))).expand_as(x)  # (B, S) -> (B, S, ...)
    return x.gather(1, index)
