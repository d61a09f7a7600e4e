r"""The lecture's image captioner: one-to-many. CNN features condition an RNN that writes words.

::

    a_1 .. a_R = CNN(image)               a grid of R feature vectors of size C (models.encoders)
    v          = mean_i a_i               the pooled image vector
    x_t        = E[y_{t-1}]               y_0 = <START>
    h_t        = RNN(x_t, h_{t-1} | image)
    p(y_t | y_{<t}, image) = softmax(W_hy h_t + b_y)     ... until <END>, at most 30 words

How the image enters (``conditioning``):

* ``"every_step"``: the lecture's ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + W_ih v)``: the image
  term in every step of every level (:class:`rnnkit.nn.Recurrent` with ``context_size=K``,
  exact on its fast kernels). The image is projected first, ``v' = W_img v`` (``K = E``), so the
  lecture's ``W_ih`` is the product ``W_ch W_img``, shared in part by the levels: fewer weights
  when ``C`` is large (2048 for ResNet-50).
* ``"init_state"``: the image only sets the start, ``h_0 = tanh(W_init v)`` (and ``c_0`` for
  LSTMs, through its own weights), per level.
* ``"first_input"``: Show and Tell (Vinyals et al. 2015): ``W_img v`` is the input of a step
  before ``<START>``, whose output is not scored; then words only.
* ``"attention"``: Show, Attend and Tell (Xu et al. 2015), soft attention: at every step

  .. math::
      e_{ti} = w^T \tanh(W_a a_i + U_a h_{t-1}), \quad \alpha_t = \mathrm{softmax}(e_t), \quad
      z_t = \sum_i \alpha_{ti} a_i, \quad h_t = \mathrm{cell}([E y_{t-1}; z_t], h_{t-1})

  with ``h_{t-1}`` the top level's, and ``h_0``, ``c_0`` from the mean of the grid as in
  ``"init_state"``. The weights ``alpha_t`` (which places the model looked at for each word)
  come back from :meth:`Captioner.attention_weights` and :meth:`Captioner.generate`.

Training is teacher forcing: the inputs are the caption without its last token, the targets the
caption without ``<START>``, and the loss the cross-entropy of the real target tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import (
    check_fields,
    check_ids_shape,
    check_lengths_shape,
    check_special_ids,
    is_integer,
)
from ..config import option
from ..decoding import Sampler, beam_search, check_sampling
from ..errors import RnnkitError
from ..nn import CELL_KINDS, LSTMState, Recurrent, check_cell, evaluating, make_cell

__all__ = ["CONDITIONINGS", "DECODE_METHODS", "Caption", "Captioner", "CaptionerConfig"]

CONDITIONINGS = ("every_step", "init_state", "first_input", "attention")
DECODE_METHODS = ("greedy", "sample", "beam")



@dataclass
class CaptionerConfig:
    """The shape of a :class:`Captioner`. Every field is checked on creation (the sizes that
    come from the data when the model is built).

    The defaults are the built-in scenes' measured recipe (``benchmarks/bench_caption.py``)."""

    vocab_size: int | None = option(
        None, "V: word ids 0 .. V-1, the four special tokens among them; set from the data",
        cli=False)
    feature_size: int | None = option(
        None, "C: features per image the decoder reads (512 for VGG-16's grid); set from the "
              "image encoder", cli=False)
    embedding_size: int = option(128, "E, word vectors; also the size of the projected image "
                                      "W_img v")
    hidden_size: int = option(256, "H, units per level (Show and Tell: 512)")
    cell: str = option("lstm", "the recurrent cell; the LSTM is what the papers use",
                       choices=CELL_KINDS)
    num_layers: int = option(1, "L, levels stacked")
    conditioning: str = option("every_step", "how the image enters: W_ih v at every step, the "
                                             "initial state, the first input, or attention",
                               choices=CONDITIONINGS)
    attention_size: int = option(256, "A, hidden units of the attention's scoring MLP "
                                      "(attention only)")
    dropout: float = option(0.3, "on the word and image vectors, between levels and before "
                                 "W_hy")
    pad_index: int = option(0, "the id that fills short captions: never input that matters, "
                               "never scored", cli=False)
    unk_index: int = option(1, "the id of words outside the vocabulary", cli=False)
    start_index: int = option(2, "<START>: the first input of every caption", cli=False)
    end_index: int = option(3, "<END>: the last target; generation stops there", cli=False)
    max_len: int = option(30, "words kept per training caption and written per generated one, "
                              "<END> not counted (the lecture's 30)")

    def __post_init__(self) -> None:
        check_fields(self, positive=("embedding_size", "hidden_size", "num_layers",
                                     "attention_size", "max_len"),
                     from_data=("vocab_size", "feature_size"))
        check_cell(self.cell)
        check_fields(self, choices={"conditioning": CONDITIONINGS}, rates=("dropout",))
        check_special_ids(self, ("pad_index", "unk_index", "start_index", "end_index"),
                          self.vocab_size, "the vocabulary")
        if self.vocab_size is not None and self.vocab_size < 5:
            raise RnnkitError(f"vocab_size must leave room for words beside the four special "
                              f"tokens (at least 5), got {self.vocab_size}")


class Caption(NamedTuple):
    """One generated caption.

    * ``tokens``: the word ids, without ``<START>`` and ``<END>``.
    * ``score``: the log-probability of the caption (its words, and ``<END>`` when it ended:
      a caption cut at ``max_len`` did not); for beam search, divided by the length penalty.
    * ``attention``: ``(len(tokens), R)``, the attention weights with which each word was
      predicted (``conditioning="attention"`` only, else ``None``).
    """

    tokens: list[int]
    score: float
    attention: Tensor | None = None


class _DecoderState(NamedTuple):
    """All a step needs, batch first (row ``n`` of every tensor is one caption in the making)."""

    h: Tensor  # (N, L, H)
    c: Tensor | None  # (N, L, H) for LSTM cells
    context: Tensor | None  # (N, E): the projected image, "every_step" only
    grid: Tensor | None  # (N, R, C): the image's grid, "attention" only
    keys: Tensor | None  # (N, R, A): W_a a_i + b, computed once per image, "attention" only


class SoftAttention(nn.Module):
    r"""Show, Attend and Tell's soft attention (Xu et al. 2015, eqs. 4-6, "deterministic").

    ``e_i = w^T tanh(W_a a_i + b_a + U_a h)``, ``alpha = softmax(e)`` over the ``R`` positions,
    ``z = sum_i alpha_i a_i``.

    Inputs: ``keys`` ``(B, R, A)`` = :meth:`keys` of the grid (computed once per image),
    ``grid`` ``(B, R, C)``, ``h`` ``(B, H)``, the query.
    Outputs: ``z`` ``(B, C)`` and ``alpha`` ``(B, R)`` (each row sums to 1).
    Parameters: ``feature_proj`` ``W_a`` ``(A, C)`` and ``b_a``; ``hidden_proj`` ``U_a``
    ``(A, H)``; ``score`` ``w`` ``(1, A)``.
    """

    def __init__(self, feature_size: int, hidden_size: int, attention_size: int) -> None:
        super().__init__()
        self.feature_proj = nn.Linear(feature_size, attention_size)  # W_a, b_a
        self.hidden_proj = nn.Linear(hidden_size, attention_size, bias=False)  # U_a
        self.score = nn.Linear(attention_size, 1, bias=False)  # w

    def keys(self, grid: Tensor) -> Tensor:
        return self.feature_proj(grid)  # (B, R, C) -> (B, R, A)

    def forward(self, keys: Tensor, grid: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        query = self.hidden_proj(h).unsqueeze(1)  # (B, H) -> (B, 1, A)
        scores = self.score(torch.tanh(keys + query)).squeeze(2)  # (B, R, A) -> (B, R)
        alpha = scores.softmax(dim=1)  # (B, R)
        z = torch.bmm(alpha.unsqueeze(1), grid).squeeze(1)  # (B, 1, R) x (B, R, C) -> (B, C)
        return z, alpha


class Captioner(nn.Module):
    r"""One-to-many: a caption from image features, one word per step until ``<END>``.

    Args:
        config: a :class:`CaptionerConfig`.

    Inputs: ``features, captions, lengths=None``
        * ``features``: the image encoder's grid ``(B, R, C)`` or a pooled vector ``(B, C)``
          (the grid's mean is taken; ``"attention"`` needs the grid).
        * ``captions`` ``(B, T)`` int64, ``T >= 2``: ``<START> w_1 .. w_n <END> <PAD> ..``.
          The inputs are ``captions[:, :-1]``, the targets ``captions[:, 1:]`` (teacher
          forcing). Targets after a caption's first ``<END>``, past its length, or equal to
          ``pad_index`` are not scored, whatever their ids.
        * ``lengths`` ``(B,)``: optional, each caption's tokens, ``<START>`` and ``<END>``
          included, in ``[2, T]``.

        Their types and shapes are checked here; the values of the captions and lengths where
        they are encoded (:mod:`rnnkit.checks`).

    Outputs: ``logits, loss``
        * ``logits`` ``(B, T-1, V)``: step ``t`` guesses ``captions[:, t+1]``.
        * ``loss``: the mean cross-entropy per scored target token, in nats.

    Parameters: ``embedding.weight`` ``(V, E)`` (the ``<PAD>`` row stays 0), ``head`` =
    ``W_hy`` ``(V, H)`` and ``b_y``; per conditioning: ``image`` = ``W_img`` ``(E, C)`` and
    ``rnn`` (``"every_step"``: ``context_size=E``; ``"first_input"``); ``init_h``, ``init_c``
    ``(L*H, C)`` (``init_c`` for LSTMs) and ``rnn`` (``"init_state"``); ``init_h``,
    ``init_c``, ``attention`` (a :class:`SoftAttention`) and ``cells``, one per level, the
    first with input ``E + C`` (``"attention"``).

    Example::

        >>> config = CaptionerConfig(vocab_size=10000, feature_size=512, conditioning="attention")
        >>> model = Captioner(config)
        >>> grid = torch.randn(8, 49, 512)  # VGG-16's 7x7 conv features of 8 images
        >>> captions = torch.randint(4, 10000, (8, 17))
        >>> captions[:, 0], captions[:, -1] = config.start_index, config.end_index
        >>> logits, loss = model(grid, captions)
        >>> logits.shape
        torch.Size([8, 16, 10000])
        >>> best = model.generate(grid, method="beam", beam_size=5)  # 8 x 1 Caption
    """

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        if not isinstance(config, CaptionerConfig):
            raise TypeError(f"expected a CaptionerConfig, got {type(config).__name__}")
        for name in ("vocab_size", "feature_size"):
            if getattr(config, name) is None:
                raise ValueError(f"CaptionerConfig.{name} is not set: it comes from the data")
        self.config = config
        V, C, E, H, L = (config.vocab_size, config.feature_size, config.embedding_size,
                         config.hidden_size, config.num_layers)
        mode = config.conditioning
        self.has_cell_state = config.cell in ("lstm", "layernorm_lstm")
        self.embedding = nn.Embedding(V, E, padding_idx=config.pad_index)
        self.drop = nn.Dropout(config.dropout)
        if mode in ("every_step", "first_input"):
            self.image = nn.Linear(C, E)  # W_img: the image in the words' space
        if mode in ("init_state", "attention"):
            self.init_h = nn.Linear(C, L * H)  # W_init: h_0 of every level
            self.init_c = nn.Linear(C, L * H) if self.has_cell_state else None
        if mode == "attention":
            self.attention = SoftAttention(C, H, config.attention_size)
            self.cells = nn.ModuleList(make_cell(config.cell, E + C if level == 0 else H, H)
                                       for level in range(L))
        else:
            # Recurrent's dropout acts between levels only: with one level it has none to act on
            self.rnn = Recurrent(config.cell, E, H, L, dropout=config.dropout if L > 1 else 0.0,
                                 context_size=E if mode == "every_step" else 0)
        self.head = nn.Linear(H, V)  # W_hy, b_y
        # small uniform word vectors and output weights, zero output bias (as the language model)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        with torch.no_grad():
            self.embedding.weight[config.pad_index].zero_()
        nn.init.uniform_(self.head.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)

    def num_parameters(self) -> int:
        """Trainable numbers in the model."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # --------------------------------------------------------------------------- forward
    def forward(self, features: Tensor, captions: Tensor,
                lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        features = self._check_features(features)
        captions = self._check_captions(captions, features.shape[0])
        inputs, targets = captions[:, :-1], captions[:, 1:]  # (B, T) -> (B, T-1) each
        logits, _ = self._teacher_forced(features, inputs)  # (B, T-1, V)
        scored = self._scored(captions, lengths)  # (B, T-1) bool
        # (B, T-1, V) -> (B*(T-1), V) against (B*(T-1),): the mean over the scored targets
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               targets.masked_fill(~scored, -100).reshape(-1), ignore_index=-100)
        return logits, loss

    def _teacher_forced(self, features: Tensor, inputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits ``(B, T, V)`` for input tokens ``(B, T)``, and the attention ``(B, T, R)``."""
        mode = self.config.conditioning
        x = self.drop(self.embedding(inputs))  # (B, T) -> (B, T, E)
        alphas = None
        if mode == "attention":
            state = self._initial_state(features)
            outputs, weights = [], []
            for t in range(x.shape[1]):
                h, state, alpha = self._attend_step(x[:, t], state)
                outputs.append(h)
                weights.append(alpha)
            out = torch.stack(outputs, dim=1)  # T x (B, H) -> (B, T, H)
            alphas = torch.stack(weights, dim=1)  # T x (B, R) -> (B, T, R)
        else:
            pooled = features.mean(dim=1) if features.dim() == 3 else features  # (B, C)
            if mode == "every_step":
                v = self.drop(self.image(pooled))  # (B, C) -> (B, E)
                out, _ = self.rnn(x, context=v)  # (B, T, E) -> (B, T, H)
            elif mode == "init_state":
                out, _ = self.rnn(x, self._project_state(pooled))  # (B, T, E) -> (B, T, H)
            else:  # first_input: the image is the input of step -1
                image = self.drop(self.image(pooled)).unsqueeze(1)  # (B, C) -> (B, 1, E)
                out, _ = self.rnn(torch.cat([image, x], dim=1))  # (B, 1+T, E) -> (B, 1+T, H)
                out = out[:, 1:]  # (B, 1+T, H) -> (B, T, H): the image's own output is unused
        return self.head(self.drop(out)), alphas  # (B, T, H) -> (B, T, V)

    def _scored(self, captions: Tensor, lengths: Tensor | None) -> Tensor:
        """Which targets ``captions[:, 1:]`` count ``(B, T-1)``: up to the first ``<END>``, within
        ``lengths``, and not ``<PAD>``."""
        B, T = captions.shape
        targets = captions[:, 1:]  # (B, T-1)
        ended_before = (targets == self.config.end_index).long().cumsum(dim=1)  # (B, T-1)
        ended_before = ended_before - (targets == self.config.end_index).long()
        scored = (ended_before == 0) & (targets != self.config.pad_index)
        if lengths is not None:  # their values in [2, T]: rnnkit.checks.check_lengths
            lengths = check_lengths_shape(lengths, B)
            steps = torch.arange(1, T, device=captions.device)  # target t+1 sits at position t+1
            scored = scored & (steps < lengths.to(captions.device).unsqueeze(1))
        return scored

    @torch.no_grad()
    def attention_weights(self, features: Tensor, captions: Tensor) -> Tensor:
        """The attention ``(B, T-1, R)`` with which each target ``captions[:, 1:]`` is predicted
        under teacher forcing (rows sum to 1), in evaluation mode. ``"attention"`` only."""
        if self.config.conditioning != "attention":
            raise RnnkitError(f"attention weights need conditioning='attention'; this model "
                              f"uses {self.config.conditioning!r}")
        features = self._check_features(features)
        captions = self._check_captions(captions, features.shape[0])
        with evaluating(self):
            _, alphas = self._teacher_forced(features, captions[:, :-1])
        return alphas

    # ------------------------------------------------------------------- step by step
    def _project_state(self, pooled: Tensor) -> Tensor | LSTMState:
        """``h_0 = tanh(W_init v)`` per level (``c_0`` likewise): ``(B, C)`` -> ``(L, B, H)``."""
        B, L, H = pooled.shape[0], self.config.num_layers, self.config.hidden_size

        def project(linear: nn.Linear) -> Tensor:
            # (B, C) -> (B, L*H) -> (B, L, H) -> (L, B, H)
            return torch.tanh(linear(pooled)).view(B, L, H).transpose(0, 1).contiguous()

        h = project(self.init_h)
        return LSTMState(h, project(self.init_c)) if self.init_c is not None else h

    def _initial_state(self, features: Tensor) -> _DecoderState:
        """The decoder's state before ``<START>`` is read, for ``B`` images."""
        mode = self.config.conditioning
        pooled = features.mean(dim=1) if features.dim() == 3 else features  # (B, C)
        context = grid = keys = None
        if mode in ("init_state", "attention"):
            state = self._project_state(pooled)  # (L, B, H)
            if mode == "attention":
                grid, keys = features, self.attention.keys(features)  # (B, R, C), (B, R, A)
        elif mode == "every_step":
            state = None
            context = self.drop(self.image(pooled))  # (B, C) -> (B, E)
        else:  # first_input: one step on the image
            _, state = self.rnn.step(self.drop(self.image(pooled)))  # (B, E) -> (L, B, H)
        if state is None:
            zeros = pooled.new_zeros(pooled.shape[0], self.config.num_layers,
                                     self.config.hidden_size)  # (B, L, H)
            return _DecoderState(zeros, zeros if self.has_cell_state else None, context,
                                 grid, keys)
        h, c = (state.h, state.c) if isinstance(state, LSTMState) else (state, None)
        # (L, B, H) -> (B, L, H): batch first, so that beam search can pick rows
        return _DecoderState(h.transpose(0, 1), None if c is None else c.transpose(0, 1),
                             context, grid, keys)

    def _attend_step(self, x_t: Tensor, state: _DecoderState
                     ) -> tuple[Tensor, _DecoderState, Tensor]:
        """Show, Attend and Tell's step: ``x_t`` ``(B, E)`` -> top ``h_t`` ``(B, H)``, state,
        ``alpha_t`` ``(B, R)``."""
        z, alpha = self.attention(state.keys, state.grid, state.h[:, -1])  # query: top h_{t-1}
        inp = torch.cat([x_t, z], dim=1)  # (B, E + C)
        hs, cs = [], []
        for level, cell in enumerate(self.cells):
            if level > 0:
                inp = self.drop(inp)  # between levels (Zaremba et al. 2014)
            prev = state.h[:, level] if state.c is None else LSTMState(state.h[:, level],
                                                                       state.c[:, level])
            inp, new = cell(inp, prev)  # (B, I) -> (B, H)
            hs.append(inp)
            if state.c is not None:
                cs.append(new.c)
        h = torch.stack(hs, dim=1)  # L x (B, H) -> (B, L, H)
        c = None if state.c is None else torch.stack(cs, dim=1)  # (B, L, H)
        return inp, state._replace(h=h, c=c), alpha

    def _step(self, tokens: Tensor, state: _DecoderState
              ) -> tuple[Tensor, _DecoderState, Tensor | None]:
        """Feed ``tokens`` ``(N,)``: logits ``(N, V)`` for the next, the new state, and the
        attention ``(N, R)`` (or ``None``)."""
        x = self.drop(self.embedding(tokens))  # (N,) -> (N, E)
        if self.config.conditioning == "attention":
            h, state, alpha = self._attend_step(x, state)
            return self.head(self.drop(h)), state, alpha
        # (N, L, H) -> (L, N, H): Recurrent's layout
        h_all = state.h.transpose(0, 1)
        prev = h_all if state.c is None else LSTMState(h_all, state.c.transpose(0, 1))
        h, new = self.rnn.step(x, prev, context=state.context)  # (N, E) -> (N, H)
        if isinstance(new, LSTMState):  # (L, N, H) -> (N, L, H)
            state = state._replace(h=new.h.transpose(0, 1), c=new.c.transpose(0, 1))
        else:
            state = state._replace(h=new.transpose(0, 1))
        return self.head(self.drop(h)), state, None

    # ------------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, features: Tensor, *, method: str = "greedy", temperature: float = 1.0,
                 top_k: int | None = None, beam_size: int = 5, length_penalty: float = 1.0,
                 n_best: int = 1, max_len: int | None = None,
                 generator: torch.Generator | None = None) -> list[list[Caption]]:
        """Captions for ``B`` images: a list per image of ``n_best`` :class:`Caption`, best first.

        ``features``: as in :meth:`forward`. Runs in evaluation mode (no dropout); the model's
        mode is restored afterwards. Every caption starts from ``<START>`` and stops at
        ``<END>`` or after ``max_len`` words (default ``config.max_len``); all ``B`` images
        advance together, and a finished caption stops growing.

        * ``"greedy"``: the likeliest word at every step; deterministic.
        * ``"sample"``: a word drawn from ``softmax(logits / temperature)``, the ``top_k``
          likeliest only if given, from ``generator`` (reproducible). ``n_best`` independent
          samples per image, ranked by their log-probability under the model (temperature 1).
        * ``"beam"``: :func:`rnnkit.decoding.beam_search` with ``beam_size``,
          ``length_penalty`` (GNMT's ``alpha``; the score is the log-probability divided by
          ``((5 + len) / 6) ** alpha``, ``len`` counting ``<END>``) and ``n_best``.

        The words' log-probabilities are those of :meth:`forward` under teacher forcing with
        the same prefix (tested).
        """
        if method not in DECODE_METHODS:
            raise RnnkitError(f"unknown method {method!r}: expected one of "
                              + ", ".join(repr(m) for m in DECODE_METHODS))
        check_sampling(temperature, top_k)
        max_len = self.config.max_len if max_len is None else max_len
        if not is_integer(max_len) or max_len < 1:
            raise RnnkitError(f"max_len must be a positive integer, got {max_len!r}")
        if not is_integer(n_best) or n_best < 1:
            raise RnnkitError(f"n_best must be a positive integer, got {n_best!r}")
        if method == "greedy" and n_best != 1:
            raise RnnkitError(f"greedy decoding has one caption per image: n_best must be 1, "
                              f"got {n_best} (use method='beam' or 'sample')")
        features = self._check_features(features)
        with evaluating(self):
            if method == "beam":
                return self._beam(features, beam_size, length_penalty, n_best, max_len)
            sampler = Sampler(temperature=temperature, top_k=top_k, greedy=method == "greedy",
                              generator=generator)
            return self._sample(features, sampler, n_best, max_len)

    def _sample(self, features: Tensor, sampler: Sampler, n: int,
                max_len: int) -> list[list[Caption]]:
        B = features.shape[0]
        # n samples per image, image-major: (B, ...) -> (B*n, ...)
        features = features.repeat_interleave(n, dim=0)
        N = B * n
        state = self._initial_state(features)
        tokens = torch.full((N,), self.config.start_index, dtype=torch.long,
                            device=features.device)
        words: list[list[int]] = [[] for _ in range(N)]
        weights: list[list[Tensor]] = [[] for _ in range(N)]
        scores = [0.0] * N
        live = list(range(N))
        for _ in range(max_len):
            logits, state, alpha = self._step(tokens, state)  # (N, V)
            tokens = sampler(logits)  # (N, V) -> (N,)
            log_probs = logits.log_softmax(dim=-1).gather(1, tokens.unsqueeze(1))  # (N, 1)
            picked, chosen = log_probs.squeeze(1).tolist(), tokens.tolist()
            still = []
            for row in live:
                scores[row] += picked[row]
                if chosen[row] == self.config.end_index:
                    continue
                words[row].append(chosen[row])
                if alpha is not None:
                    weights[row].append(alpha[row])
                still.append(row)
            live = still
            if not live:
                break
        captions = [Caption(words[row], scores[row],
                            _stack_rows(weights[row], features) if alpha is not None else None)
                    for row in range(N)]
        return [sorted(captions[b * n:(b + 1) * n], key=lambda c: -c.score) for b in range(B)]

    def _beam(self, features: Tensor, beam_size: int, length_penalty: float, n_best: int,
              max_len: int) -> list[list[Caption]]:
        def step(tokens: Tensor, state: _DecoderState) -> tuple[Tensor, _DecoderState]:
            logits, state, _ = self._step(tokens, state)
            return logits.log_softmax(dim=-1), state  # (N, V)

        found = beam_search(step, self._initial_state(features), batch_size=features.shape[0],
                            start_index=self.config.start_index,
                            end_index=self.config.end_index, beam_size=beam_size,
                            max_len=max_len, length_penalty=length_penalty, n_best=n_best)
        attention: Iterator[Tensor | None] = iter(())
        if self.config.conditioning == "attention":
            attention = iter(self._attention_of(features, found))
        return [[Caption(tokens, score, next(attention, None)) for tokens, score in hypotheses]
                for hypotheses in found]

    def _attention_of(self, features: Tensor,
                      found: list[list[tuple[list[int], float]]]) -> list[Tensor]:
        """The attention of each found caption, in order, by one teacher-forced pass."""
        images = [b for b, hypotheses in enumerate(found) for _ in hypotheses]
        words = [tokens for hypotheses in found for tokens, _ in hypotheses]
        T = max(len(w) for w in words) + 1
        inputs = torch.full((len(words), T), self.config.pad_index, dtype=torch.long,
                            device=features.device)  # (M, T): <START> w_1 .. w_n <PAD> ..
        inputs[:, 0] = self.config.start_index
        for m, w in enumerate(words):
            inputs[m, 1:len(w) + 1] = torch.tensor(w, dtype=torch.long)
        grid = features.index_select(0, torch.tensor(images, device=features.device))
        _, alphas = self._teacher_forced(grid, inputs)  # (M, T, R)
        return [alphas[m, :len(w)] for m, w in enumerate(words)]  # word j from step j-1

    # ---------------------------------------------------------------------------- checks
    def _check_features(self, features: Tensor) -> Tensor:
        C = self.config.feature_size
        grid_only = self.config.conditioning == "attention"
        shapes = f"(B, R, {C})" if grid_only else f"(B, R, {C}) or (B, {C})"
        if not isinstance(features, Tensor) or not features.is_floating_point() or (
                features.dim() not in ((3,) if grid_only else (2, 3))) or (
                features.shape[-1] != C) or 0 in features.shape:
            got = (f"{features.dtype} of shape {tuple(features.shape)}"
                   if isinstance(features, Tensor) else type(features).__name__)
            needs = " (attention needs the grid)" if grid_only else ""
            raise RnnkitError(f"expected features as a float tensor {shapes}{needs}, got {got}")
        return features.to(self.head.weight)

    def _check_captions(self, captions: Tensor, B: int) -> Tensor:
        """``captions`` ``(B, T >= 2)`` as int64 on the model's device (types and shapes: their
        values are checked where they are encoded)."""
        captions = check_ids_shape(captions, "captions", f"(B={B}, T >= 2) (<START> and at least "
                                   "one target)", batch_size=B, min_steps=2)
        return captions.to(self.head.weight.device)

def _stack_rows(rows: list[Tensor], like: Tensor) -> Tensor:
    """Attention rows ``len x (R,)`` -> ``(len, R)``; ``(0, R)`` for a caption with no words."""
    if rows:
        return torch.stack(rows)
    return like.new_zeros(0, like.shape[1])
