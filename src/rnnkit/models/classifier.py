r"""The lecture's many-to-one classifier: read a sentence word by word, classify at the end.

::

    e_t = E[x_t]                          word embedding (learned, or pretrained and frozen)
    h_t = RNN(e_t, h_{t-1})               any cell kind, L levels, one or two directions
    s   = pool(h_1 .. h_n)                over the n real steps only (padding never counts)
    y   = W_hy s + b_y                    logits over the C classes

trained with the cross-entropy of ``y`` against the sentence's class. The pooling ``s`` is one
of ``"last"`` (the final states: the forward direction after the last real word, the backward
one after reading word 1), ``"max"`` and ``"mean"`` over time (Conneau et al. 2017 found max
pooling of a BiLSTM the strongest sentence encoder), or ``"attention"``: a learned score per
step, softmax over the real steps, the weighted mean (Bahdanau et al. 2015, Yang et al. 2016),
whose weights also say which words the model looked at (:meth:`SequenceClassifier.attention`).
:meth:`SequenceClassifier.explain` scores each word's contribution to a decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import (
    check_fields,
    check_ids_shape,
    check_lengths_shape,
    check_special_ids,
    check_token_ids,
    is_integer,
)
from ..config import option
from ..errors import RnnkitError
from ..nn import CELL_KINDS, LSTMState, Recurrent, check_cell, evaluating

__all__ = ["POOLINGS", "AttentionPooling", "ClassifierConfig", "SequenceClassifier"]

POOLINGS = ("last", "max", "mean", "attention")
EXPLAIN_METHODS = ("grad_x_input", "occlusion")



@dataclass
class ClassifierConfig:
    """The shape of a :class:`SequenceClassifier`. Every field is checked on creation.

    The defaults are the sentiment task's measured ones (SST-2, README)."""

    vocab_size: int | None = option(
        None, "V: token ids are 0 .. V-1 (0 = padding, 1 = <unk> by convention); set from the "
              "data", cli=False)
    num_classes: int | None = option(
        None, "C: labels are 0 .. C-1 (2 for positive/negative sentiment); set from the data",
        cli=False)
    embedding_size: int = option(300, "E (300: the size of word2vec and GloVe vectors); with "
                                      "--vectors their dimension wins")
    cell: str = option("lstm", "the recurrent cell: one of rnnkit.nn.CELL_KINDS",
                       choices=CELL_KINDS)
    hidden_size: int = option(256, "H, units per level and direction")
    num_layers: int = option(1, "L, levels stacked")
    bidirectional: bool = option(True, "read the text both ways: features of size 2H "
                                       "(Schuster 1997)", negative="--unidirectional")
    pooling: str = option("max", "how the states become one vector: last, max (Conneau et al. "
                                 "2017), mean or attention", choices=POOLINGS)
    attention_size: int = option(128, "A, hidden units of the attention's scoring MLP "
                                      "(--pooling attention only)")
    dropout: float = option(0.5, "on the embeddings, between levels and before W_hy (Kim "
                                 "2014: 0.5)")
    word_dropout: float = option(0.3, "chance that a training token is read as <unk>: +1 "
                                      "point on SST-2 (README)")
    unk_index: int = option(1, "the id of unknown words, what word dropout puts in; set from "
                               "the vocabulary", cli=False)
    freeze_embedding: bool = option(False, "keep the (pretrained) embedding fixed during "
                                           "training; set from --freeze-vectors", cli=False)
    padding_index: int = option(0, "the id that fills short sequences; its embedding gets no "
                                   "gradient; set from the vocabulary", cli=False)

    def __post_init__(self) -> None:
        check_fields(self, positive=("embedding_size", "hidden_size", "num_layers",
                                     "attention_size"), from_data=("vocab_size", "num_classes"))
        if self.num_classes is not None and self.num_classes < 2:
            raise RnnkitError(f"num_classes must be at least 2, got {self.num_classes}")
        check_cell(self.cell)
        check_fields(self, choices={"pooling": POOLINGS}, rates=("dropout", "word_dropout"),
                     flags=("bidirectional", "freeze_embedding"))
        check_special_ids(self, ("padding_index", "unk_index"), self.vocab_size,
                          "the vocabulary", distinct=False)

    @property
    def feature_size(self) -> int:
        """The size of the pooled sentence vector: ``D * H``."""
        return (2 if self.bidirectional else 1) * self.hidden_size


class AttentionPooling(nn.Module):
    r"""A weighted mean over time, the weights learned (Bahdanau et al. 2015, Yang et al. 2016).

    ``score_t = v^T tanh(W h_t + b)``, ``a = softmax(score)`` over the real steps (padding gets
    weight 0), ``s = sum_t a_t h_t``.

    Inputs: ``h`` ``(B, T, F)``, ``mask`` ``(B, T)`` bool (True at real steps).
    Outputs: ``s`` ``(B, F)`` and the weights ``a`` ``(B, T)`` (each row sums to 1).
    Parameters: ``proj`` ``W`` ``(A, F)`` and ``b``; ``score`` ``v`` ``(1, A)``.
    """

    def __init__(self, feature_size: int, attention_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(feature_size, attention_size)  # W, b
        self.score = nn.Linear(attention_size, 1, bias=False)  # v

    def forward(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1)  # (B, T, F) -> (B, T)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)  # (B, T)
        pooled = torch.bmm(weights.unsqueeze(1), h).squeeze(1)  # (B, 1, T) x (B, T, F) -> (B, F)
        return pooled, weights


class SequenceClassifier(nn.Module):
    r"""Many-to-one: one label per sequence of token ids.

    Args:
        config: a :class:`ClassifierConfig`.
        embedding: an optional pretrained ``(V, E)`` float matrix (word2vec, GloVe), copied into
            the embedding; frozen when ``config.freeze_embedding``.

    Inputs: ``ids, lengths=None, targets=None``
        * ``ids`` ``(B, T)`` int64 token ids in ``[0, V)``; steps past a sequence's length are
          padding, whatever their ids.
        * ``lengths`` ``(B,)``: real lengths in ``[1, T]``; ``None``: every sequence is ``T``
          long.
        * ``targets`` ``(B,)``: class ids in ``[0, C)``.

        Their types and shapes are checked here; the values of the ids and targets where they
        are encoded (:mod:`rnnkit.checks`), the lengths' by :class:`rnnkit.nn.Recurrent`.

    Outputs: ``logits, loss``
        * ``logits`` ``(B, C)``.
        * ``loss``: the mean cross-entropy over the batch (``None`` without targets).

    Parameters: ``embedding.weight`` ``(V, E)``, ``rnn`` (an :class:`rnnkit.nn.Recurrent`),
    ``attention`` (an :class:`AttentionPooling`, for ``pooling="attention"`` only),
    ``head.weight`` ``(C, D*H)`` = ``W_hy`` and ``head.bias``.

    Example::

        >>> model = SequenceClassifier(ClassifierConfig(vocab_size=5000, num_classes=2))
        >>> ids, lengths = torch.randint(2, 5000, (8, 40)), torch.randint(1, 41, (8,))
        >>> logits, loss = model(ids, lengths, targets=torch.randint(2, (8,)))
        >>> logits.shape
        torch.Size([8, 2])
        >>> model.explain(ids[0, :lengths[0]])  # (T,): each word's part in the decision
    """

    def __init__(self, config: ClassifierConfig, embedding: Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(config, ClassifierConfig):
            raise TypeError(f"expected a ClassifierConfig, got {type(config).__name__}")
        for name in ("vocab_size", "num_classes"):
            if getattr(config, name) is None:
                raise ValueError(f"ClassifierConfig.{name} is not set: it comes from the data")
        self.config = config
        V, E, H, L = (config.vocab_size, config.embedding_size, config.hidden_size,
                      config.num_layers)
        self.embedding = nn.Embedding(V, E, padding_idx=config.padding_index)
        if embedding is not None:
            self._load_embedding(embedding)
        if config.freeze_embedding:
            self.embedding.weight.requires_grad_(False)
        self.drop = nn.Dropout(config.dropout)
        # Recurrent's dropout acts between levels only: with one level it has none to act on
        self.rnn = Recurrent(config.cell, E, H, L, dropout=config.dropout if L > 1 else 0.0,
                             bidirectional=config.bidirectional)
        self.attention = (AttentionPooling(config.feature_size, config.attention_size)
                          if config.pooling == "attention" else None)
        self.head = nn.Linear(config.feature_size, config.num_classes)  # W_hy, b_y

    def _load_embedding(self, matrix: Tensor) -> None:
        expected = tuple(self.embedding.weight.shape)
        if not isinstance(matrix, Tensor) or not matrix.is_floating_point():
            got = matrix.dtype if isinstance(matrix, Tensor) else type(matrix).__name__
            raise RnnkitError(f"expected a pretrained embedding as a float tensor (V, E) = "
                              f"{expected}, got {got}")
        if tuple(matrix.shape) != expected:
            raise RnnkitError(f"expected a pretrained embedding of shape (V, E) = {expected} "
                              f"(vocab_size, embedding_size), got {tuple(matrix.shape)}")
        with torch.no_grad():
            self.embedding.weight.copy_(matrix)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Numbers in the model (by default those that train: a frozen embedding is left out)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # --------------------------------------------------------------------------- forward
    def forward(self, ids: Tensor, lengths: Tensor | None = None,
                targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        ids = self._check_ids(ids)
        lengths = None if lengths is None else check_lengths_shape(lengths, ids.shape[0])
        logits, _ = self._classify(self.embedding(self._drop_words(ids)), lengths)  # -> (B, C)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits, self._check_targets(targets, ids.shape[0]))
        return logits, loss

    def encode(self, ids: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The pooled sentence vectors ``(B, D*H)`` and the attention weights ``(B, T)`` (those
        for ``pooling="attention"`` only, else ``None``). Dropout acts as in ``forward``."""
        ids = self._check_ids(ids)
        lengths = None if lengths is None else check_lengths_shape(lengths, ids.shape[0])
        return self._encode(self.embedding(ids), lengths)

    def _drop_words(self, ids: Tensor) -> Tensor:
        """Word dropout (Iyyer et al. 2015; Bowman et al. 2016), in training only: each token
        becomes ``unk_index`` with probability ``word_dropout``. The model learns to read around
        words it does not know, and ``<unk>`` gets a trained embedding, which it lacks when every
        training word is in the vocabulary. Padding may be hit too; it is never read."""
        if not self.training or self.config.word_dropout == 0:
            return ids
        hit = torch.rand(ids.shape, device=ids.device) < self.config.word_dropout  # (B, T)
        return ids.masked_fill(hit, self.config.unk_index)

    def _classify(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Embedded inputs ``(B, T, E)`` -> logits ``(B, C)`` and the attention weights."""
        features, weights = self._encode(x, lengths)
        return self.head(self.drop(features)), weights  # (B, D*H) -> (B, C)

    def _encode(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        B, T, _ = x.shape
        # the layer checks the lengths' values (on the host, where it packs them)
        out, final = self.rnn(self.drop(x), lengths=lengths)  # (B, T, E) -> (B, T, D*H)
        pooling = self.config.pooling
        if pooling == "last":
            h = final.h if isinstance(final, LSTMState) else final  # (L*D, B, H)
            D = self.rnn.num_directions
            # the top level's directions, [forward, backward] as in out: (D, B, H) -> (B, D*H)
            return h[-D:].transpose(0, 1).reshape(B, D * self.config.hidden_size), None
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        lengths = lengths.to(x.device)
        mask = torch.arange(T, device=x.device) < lengths.unsqueeze(1)  # (B, T): real steps
        if pooling == "max":
            # padding is -inf, never the max (out's zeros there could beat negative units)
            return out.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1), None
        if pooling == "mean":
            total = (out * mask.unsqueeze(-1)).sum(dim=1)  # (B, T, D*H) -> (B, D*H)
            return total / lengths.unsqueeze(1).to(out.dtype), None
        return self.attention(out, mask)

    # ------------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict_proba(self, ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Class probabilities ``(B, C)``, in evaluation mode (no dropout); the model's mode is
        restored afterwards."""
        with evaluating(self):
            logits, _ = self(ids, lengths)
        return logits.softmax(dim=-1)

    @torch.no_grad()
    def predict(self, ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The most probable class of each sequence ``(B,)`` (evaluation mode, as above)."""
        return self.predict_proba(ids, lengths).argmax(dim=-1)

    @torch.no_grad()
    def attention_weights(self, ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The attention pooling's weights ``(B, T)`` (0 at padding, rows sum to 1), in
        evaluation mode: which steps the sentence vector is made of."""
        if self.attention is None:
            raise RnnkitError(f"attention weights need pooling='attention'; this model pools "
                              f"with {self.config.pooling!r}")
        with evaluating(self):
            _, weights = self.encode(ids, lengths)
        return weights

    def explain(self, ids: Tensor, *, method: str = "grad_x_input", target: int | None = None,
                unk_index: int | None = 1) -> Tensor:
        """Each token's contribution to the score of class ``target``: ``(T,)``.

        ``ids`` is one sequence, ``(T,)`` or ``(1, T)``, every step real. ``target`` defaults to
        the predicted class. Runs in evaluation mode; the model's mode, ``requires_grad`` flags
        and ``.grad`` fields are left as they were.

        * ``"grad_x_input"``: ``sum_e (d y_target / d e_t)_e * (e_t)_e``, the gradient of the
          target's logit with respect to the embedded token times that embedding, summed over
          the embedding dimension (Shrikumar et al. 2016; Denil et al. 2014). The gradient is
          taken at the embedded inputs, so it works with a frozen embedding too.
        * ``"occlusion"``: ``log p(target | x) - log p(target | x without token t)``, the drop
          of the target's log-probability when token ``t`` is replaced with ``unk_index``
          (``None``: removed; the sequence gets shorter). Positive: the token spoke for the
          target (Zeiler & Fergus 2014; Li et al. 2016). All ``T`` variants run as one batch.
        """
        if method not in EXPLAIN_METHODS:
            raise RnnkitError(f"unknown method {method!r}: expected one of "
                              + ", ".join(repr(m) for m in EXPLAIN_METHODS))
        if isinstance(ids, Tensor) and ids.dim() == 1:
            ids = ids.unsqueeze(0)  # (T,) -> (1, T)
        ids = self._check_ids(ids)
        check_token_ids(ids, self.config.vocab_size, "ids")  # once per call
        if ids.shape[0] != 1:
            raise RnnkitError(f"explain takes one sequence, (T,) or (1, T), got "
                              f"{tuple(ids.shape)}")
        with evaluating(self):
            if method == "grad_x_input":
                return self._grad_x_input(ids, target)
            return self._occlusion(ids, target, unk_index)

    def _grad_x_input(self, ids: Tensor, target: int | None) -> Tensor:
        with torch.enable_grad():
            x = self.embedding(ids).detach().requires_grad_(True)  # (1, T, E)
            logits, _ = self._classify(x, None)  # (1, C)
            target = self._check_target_class(target, logits)
            # only x's gradient is computed: the parameters' .grad stay untouched
            (grad,) = torch.autograd.grad(logits[0, target], x)
        return (grad * x).sum(dim=-1)[0].detach()  # (1, T, E) -> (T,)

    @torch.no_grad()
    def _occlusion(self, ids: Tensor, target: int | None, unk_index: int | None) -> Tensor:
        T = ids.shape[1]
        logits, _ = self._classify(self.embedding(ids), None)  # (1, C)
        target = self._check_target_class(target, logits)
        full = logits.log_softmax(dim=-1)[0, target]
        if unk_index is None:
            if T == 1:
                raise RnnkitError("occlusion by removal needs at least two tokens; pass "
                                  "unk_index to replace the token instead")
            keep = ~torch.eye(T, dtype=torch.bool, device=ids.device)  # (T, T): row t drops t
            variants = ids.expand(T, T)[keep].view(T, T - 1)  # (T, T-1)
        else:
            if not is_integer(unk_index) or not 0 <= unk_index < self.config.vocab_size:
                raise RnnkitError(f"unk_index must be an id in [0, {self.config.vocab_size}) or "
                                  f"None (remove the token), got {unk_index!r}")
            variants = ids.repeat(T, 1)  # (1, T) -> (T, T): row t has token t replaced
            variants.fill_diagonal_(unk_index)
        occluded, _ = self._classify(self.embedding(variants), None)  # (T, C)
        return full - occluded.log_softmax(dim=-1)[:, target]  # (T,)

    # ---------------------------------------------------------------------------- checks
    def _check_ids(self, ids: Tensor) -> Tensor:
        """``ids`` ``(B, T)`` as int64 on the model's device, or an error saying what is wrong
        with their type or shape (their values are checked where they are encoded)."""
        return check_ids_shape(ids, "ids", "(B, T), non-empty").to(self.head.weight.device)

    def _check_targets(self, targets: Tensor, B: int) -> Tensor:
        """``targets`` ``(B,)`` as int64 on the model's device; their values (class ids in
        ``[0, C)``) are checked where they are encoded."""
        if not isinstance(targets, Tensor) or targets.shape != (B,) or (
                targets.is_floating_point() or targets.is_complex() or
                targets.dtype == torch.bool):
            got = (f"{targets.dtype} of shape {tuple(targets.shape)}"
                   if isinstance(targets, Tensor) else type(targets).__name__)
            raise RnnkitError(f"expected targets as {B} integer class ids (B,), got {got}")
        return targets.to(device=self.head.weight.device, dtype=torch.long)

    def _check_target_class(self, target: int | None, logits: Tensor) -> int:
        if target is None:
            return int(logits[0].argmax())
        C = self.config.num_classes
        if not is_integer(target) or not 0 <= target < C:
            raise RnnkitError(f"target must be a class id in [0, {C}) or None (the predicted "
                              f"class), got {target!r}")
        return int(target)
