"""Attention maps: which source position each output step of an encoder-decoder looked at
(Bahdanau et al. 2015's figure 3), drawn as a PNG."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from .gradients import load_pyplot, save_png

__all__ = ["plot_attention"]


def plot_attention(weights: Tensor | None, source: list[str], output: list[str],
                   path: str | Path) -> Path | None:
    """The attention ``weights`` ``(T, S)`` as a PNG at ``path``: one row per output piece
    (``output``, ``T`` labels), one column per source piece (``source``, ``S`` labels), darker
    for more weight. ``None`` (nothing written) without weights (a model without attention),
    for an empty output, or without matplotlib."""
    if weights is None or not output:
        return None
    pyplot = load_pyplot()
    if pyplot is None:
        return None
    values = weights.detach().float().cpu().numpy()  # (T, S)
    figure, axes = pyplot.subplots(figsize=(0.45 * values.shape[1] + 2,
                                            0.45 * values.shape[0] + 1.5))
    axes.imshow(values, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source)), source, rotation=90)
    axes.set_yticks(range(len(output)), output)
    axes.set_xlabel("source")
    axes.set_ylabel("translation")
    return save_png(figure, path)
