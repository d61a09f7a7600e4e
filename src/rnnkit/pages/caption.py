"""The page of ``rnnkit caption predict --html``: each image with its caption, the n-best, and
for the attention decoder one small map per word (where it looked while writing it). It reads
the rows of :meth:`rnnkit.tasks.caption.TrainedCaptioner.predict` (with ``attention=True``)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["attention_overlay", "html_page"]


def _png_data(image: Image.Image, size: int = 224) -> str:
    shown = image.copy()
    shown.thumbnail((size, size))
    buffer = io.BytesIO()
    shown.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def attention_overlay(image: Image.Image, weights: Sequence[float], size: int = 112
                      ) -> Image.Image:
    """``image`` shaded by one word's attention over the ``R = g x g`` grid: bright where the
    decoder looked, dark elsewhere."""
    R = len(weights)
    g = int(round(math.sqrt(R)))
    grid = np.asarray(weights, dtype=np.float32).reshape(g, g)  # (R,) -> (g, g), row-major
    grid = grid / max(float(grid.max()), 1e-12)
    mask = Image.fromarray(np.uint8(grid * 255), mode="L").resize((size, size), Image.BILINEAR)
    base = image.convert("RGB").resize((size, size), Image.BILINEAR)
    dark = Image.new("RGB", (size, size))
    return Image.composite(base, dark, mask)


def html_page(rows: Sequence[dict], images: Sequence[Image.Image]) -> str:
    """A self-contained HTML page of ``predict``'s rows and the images they caption: each image
    with its caption, the n-best, and for the attention decoder one small map per word (where
    it looked while writing it)."""
    sections = []
    for row, image in zip(rows, images, strict=True):
        name, text = html.escape(row["image"]), row["caption"]
        alternatives = "".join(f"<li>{html.escape(alternative['caption'])} "
                               f"<small>({alternative['score']:.2f})</small></li>"
                               for alternative in row.get("nbest", [])[1:])
        maps = ""
        if row.get("attention") is not None:
            cells = "".join(
                f'<figure><img src="{_png_data(attention_overlay(image, w), 112)}">'
                f"<figcaption>{html.escape(word)}</figcaption></figure>"
                for word, w in zip(text.split(), row["attention"], strict=False))
            maps = f'<div class="maps">{cells}</div>'
        sections.append(f'<section><img src="{_png_data(image)}" alt="{name}"><div>'
                        f"<p class=\"caption\">{html.escape(text)}</p>"
                        f"<p class=\"name\">{name} &middot; log-prob {row['score']:.2f}</p>"
                        + (f"<ol start=\"2\">{alternatives}</ol>" if alternatives else "")
                        + f"{maps}</div></section>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rnnkit caption</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "section{display:flex;gap:16px;padding:12px 0;border-bottom:1px solid #ddd}"
            "section>img{width:224px;image-rendering:pixelated}.caption{font-size:1.3em;"
            "margin:0}.name{color:#777;font-size:.85em}.maps{display:flex;flex-wrap:wrap;"
            "gap:6px}figure{margin:0;text-align:center}figure img{width:112px;"
            "image-rendering:pixelated}</style></head><body><h1>Captions</h1>"
            + "".join(sections) + "</body></html>\n")
