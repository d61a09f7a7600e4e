r"""Video: a CNN sees each sampled frame, an RNN reads the series of frame features.

::

    f_t = flatten(CNN(frame_t))           the frame's features (B, T, R*C): the whole grid
                                          (or its mean over the R positions, (B, T, C))
    x_t = dropout(relu(W_p f_t + b_p))    projected to E
    h_t = RNN(x_t, h_{t-1})               any cell kind, L levels, one or two directions
    many-to-one:  y = W_hy pool(h_1 .. h_n)  one label per clip ("archery")
    per frame:    y_t = W_hy h_t             a label per sampled frame (when the action is)

over each clip's real frames only (short clips are padded and masked). With ``order_free`` the
RNN is left out and a hidden layer of H takes its place after the pooling, a Deep Sets model
(Zaheer et al. 2017) that can compute any function of the set of frames:
``y = W_hy relu(W_s mean_t x_t + b_s)`` (or ``y_t = W_hy relu(W_s x_t + b_s)`` per frame). It is
the baseline that sees which frames a clip holds but not their order, so it cannot tell a
motion from its reverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_fields
from ..config import option
from ..errors import RnnkitError
from ..nn import CELL_KINDS, LSTMState, Recurrent, check_cell, evaluating
from .encoders import ENCODERS, SmallVGG, build_encoder

__all__ = ["FrameModelConfig", "FrameSequenceModel"]

POOLINGS = ("last", "max", "mean")


@dataclass
class FrameModelConfig:
    """The shape of a :class:`FrameSequenceModel`; every field is checked on creation.

    The defaults are the video task's (``rnnkit video train``)."""

    num_classes: int | None = option(None, "K, the classes; set from the data", cli=False)
    feature_size: int | None = option(
        None, "C per frame: R*C (the CNN's grid flattened), C (its mean) or the size of cached "
              "features; set from the data", cli=False)
    encoder: str | None = option(
        "smallvgg", "the CNN over each frame: smallvgg (trained with the RNN), or a frozen "
                    "pretrained vgg16, resnet18 or resnet50 whose features the video task "
                    "caches (its model then holds none, encoder=None, and reads features)",
        choices=ENCODERS)
    flatten: bool = option(True, "the CNN's grid flattened per frame (keeps where things are), "
                                 "or its mean; the video task sets it from --frame-vector",
                           cli=False)
    cnn_width: int = option(16, "smallvgg: channels of the first of 4 blocks, doubled per block")
    convs_per_block: int = option(1, "smallvgg: 3x3 convolutions per block")
    projection_size: int = option(128, "E, frame features projected before the RNN")
    cell: str = option("gru", "the recurrent cell: one of rnnkit.nn.CELL_KINDS",
                       choices=CELL_KINDS)
    hidden_size: int = option(128, "H, units per level")
    num_layers: int = option(1, "L, levels stacked")
    bidirectional: bool = option(False, "read the frames both ways: per-frame labels may look "
                                        "ahead; a clip label needs no more")
    pooling: str = option("last", "many-to-one: the final state, or max / mean over the real "
                                  "frames", choices=POOLINGS)
    per_frame: bool = option(False, "a label for every sampled frame (many-to-many, synced); "
                                    "the video task sets it from --segments", cli=False)
    order_free: bool = option(False, "the baseline: no RNN, the mean of the frame features "
                                     "(Deep Sets)")
    dropout: float = option(0.3, "on the projected frames, between levels and before W_hy")

    def __post_init__(self) -> None:
        check_fields(self, positive=("projection_size", "hidden_size", "num_layers",
                                     "cnn_width"), from_data=("num_classes", "feature_size"))
        if self.num_classes is not None and self.num_classes < 2:
            raise RnnkitError(f"num_classes must be at least 2, got {self.num_classes}")
        check_cell(self.cell)
        check_fields(self, choices={"pooling": POOLINGS}, rates=("dropout",))


class FrameSequenceModel(nn.Module):
    """Clips of frames (or of frame features) -> a label per clip, or per frame.

    Inputs: ``inputs, lengths=None, targets=None``
        * ``inputs``: frames ``(B, T, 3, S, S)`` (normalised) when the model holds a CNN, else
          features ``(B, T, C)``. Steps past a clip's length are padding.
        * ``lengths`` ``(B,)``: real frames per clip, in ``[1, T]`` (``None``: all ``T``).
        * ``targets``: ``(B,)`` class ids, or ``(B, T)`` per frame (padding steps ignored).

    Outputs: ``logits, loss``: ``(B, K)`` or ``(B, T, K)``, and the mean cross-entropy over
    clips (or real frames), ``None`` without targets.
    """

    def __init__(self, config: FrameModelConfig) -> None:
        super().__init__()
        for name in ("num_classes", "feature_size"):
            if getattr(config, name) is None:
                raise ValueError(f"FrameModelConfig.{name} is not set: it comes from the data")
        self.config = config
        if config.encoder is None:
            self.cnn = None
        elif config.encoder == "smallvgg":
            w = config.cnn_width
            self.cnn = SmallVGG(channels=(w, 2 * w, 4 * w, 8 * w),
                                convs_per_block=config.convs_per_block)
        else:
            self.cnn = build_encoder(config.encoder, pretrained=True)
        self.project = nn.Linear(config.feature_size, config.projection_size)  # W_p, b_p
        self.drop = nn.Dropout(config.dropout)
        D = 2 if config.bidirectional else 1
        if config.order_free:
            self.rnn = None
            # W_s, b_s: a nonlinear function of the pooled set (a linear head on a mean could
            # not tell, e.g., a spread of positions along a row from one along a column)
            self.set_layer = nn.Linear(config.projection_size, config.hidden_size)
            width = config.hidden_size
        else:
            self.rnn = Recurrent(config.cell, config.projection_size, config.hidden_size,
                                 config.num_layers, bidirectional=config.bidirectional,
                                 dropout=config.dropout if config.num_layers > 1 else 0.0)
            width = D * config.hidden_size
        self.head = nn.Linear(width, config.num_classes)  # W_hy, b_y

    def frame_features(self, inputs: Tensor) -> Tensor:
        """``(B, T, 3, S, S)`` frames -> ``(B, T, C)`` features (or features as they are)."""
        if self.cnn is None:
            return inputs
        B, T = inputs.shape[:2]
        grid = self.cnn(inputs.flatten(0, 1))  # (B*T, 3, S, S) -> (B*T, R, C)
        # where a thing is matters (left vs right): the grid flattened, (B*T, R*C) -> (B, T, R*C)
        vectors = grid.flatten(1) if self.config.flatten else grid.mean(dim=1)
        return vectors.view(B, T, -1)

    def forward(self, inputs: Tensor, lengths: Tensor | None = None,
                targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        features = self.frame_features(inputs)  # (B, T, C)
        B, T, _ = features.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=features.device)
        lengths = lengths.to(features.device)
        mask = torch.arange(T, device=features.device) < lengths.unsqueeze(1)  # (B, T)
        x = self.drop(F.relu(self.project(features)))  # (B, T, C) -> (B, T, E)
        if self.rnn is None:
            if self.config.per_frame:
                pooled = x  # (B, T, E): each frame alone
            else:  # the mean over the real frames: order-free by construction, (B, E)
                pooled = (x * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(1).to(x.dtype)
            out = F.relu(self.set_layer(pooled))  # (..., E) -> (..., H)
        else:
            states, final = self.rnn(x, lengths=lengths)  # (B, T, E) -> (B, T, D*H)
            out = states if self.config.per_frame else self._pool(states, final, mask, lengths)
        logits = self.head(self.drop(out))  # (B, K) or (B, T, K)
        loss = None
        if targets is not None:
            targets = targets.to(logits.device)
            if self.config.per_frame:  # real frames only: (B, T, K) -> (B*T, K)
                loss = F.cross_entropy(logits.reshape(B * T, -1),
                                       targets.masked_fill(~mask, -100).reshape(B * T),
                                       ignore_index=-100)
            else:
                loss = F.cross_entropy(logits, targets)
        return logits, loss

    def _pool(self, states: Tensor, final, mask: Tensor, lengths: Tensor) -> Tensor:
        if self.config.pooling == "last":
            h = final.h if isinstance(final, LSTMState) else final  # (L*D, B, H)
            D = self.rnn.num_directions
            # the top level's directions: (D, B, H) -> (B, D*H)
            return h[-D:].transpose(0, 1).reshape(states.shape[0], -1)
        if self.config.pooling == "max":
            return states.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        return (states * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(1).to(states.dtype)

    @torch.no_grad()
    def predict_proba(self, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Class probabilities, ``(B, K)`` or ``(B, T, K)``, in evaluation mode."""
        with evaluating(self):
            return self(inputs, lengths)[0].softmax(dim=-1)
