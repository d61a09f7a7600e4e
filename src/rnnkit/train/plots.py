"""Training curves as a PNG: loss (train and validation), learning rate, gradient norm.

matplotlib draws them when it is installed (``pip install rnnkit[plots]``; the set-up of this
repository installs it); without it the metrics log stays the record and no PNG is written.
"""

from __future__ import annotations

import io
from pathlib import Path

from ..data.files import atomic_write_bytes


def training_curves(rows: list[dict], path: str | Path) -> Path | None:
    """Plot the rows of a metrics log into ``path``; ``None`` when matplotlib is missing.

    Training rows carry ``loss``, ``lr`` and ``grad_norm``; evaluation rows ``val_<metric>``.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        from matplotlib import pyplot
    except ImportError:
        return None
    train = [r for r in rows if "loss" in r]
    evaluations = [r for r in rows if any(k.startswith("val_") for k in r)]
    figure, (loss_axis, lr_axis, norm_axis) = pyplot.subplots(
        3, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1, 1]})
    if train:
        steps = [r["step"] for r in train]
        loss_axis.plot(steps, [r["loss"] for r in train], label="training loss", lw=1)
        lr_axis.plot(steps, [r["lr"] for r in train], color="tab:green", lw=1)
        norm_axis.plot(steps, [r["grad_norm"] for r in train], color="tab:red", lw=1)
    for key in sorted({k for r in evaluations for k in r if k.startswith("val_")}):
        points = [(r["step"], r[key]) for r in evaluations if key in r]
        if key == "val_loss":
            loss_axis.plot(*zip(*points, strict=True), "o-", label="validation loss", lw=1.5)
    loss_axis.set_ylabel("loss (nats per token)")
    loss_axis.legend(loc="upper right")
    loss_axis.grid(alpha=0.3)
    lr_axis.set_ylabel("learning rate")
    lr_axis.grid(alpha=0.3)
    norm_axis.set_ylabel("gradient norm")
    norm_axis.set_yscale("log")
    norm_axis.set_xlabel("step")
    norm_axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
