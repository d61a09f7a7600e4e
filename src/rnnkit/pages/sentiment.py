"""A classifier's explanations for people: words shaded by how they moved the decision, as an
HTML page or in a terminal. Both read the rows of ``rnnkit sentiment predict --json --explain``
(:meth:`rnnkit.tasks.sentiment.TrainedClassifier.predict` with ``explain=True``)."""

from __future__ import annotations

import html
import math

__all__ = ["colour_explanation", "html_explanation"]


def _peak(pairs: list) -> float:
    """The largest absolute score of ``[(token, score), ...]`` (1 when all are 0)."""
    return max((abs(s) for _, s in pairs), default=0.0) or 1.0


def colour_explanation(pairs: list) -> str:
    """Tokens coloured for a terminal: green pushed towards the prediction, red against."""
    peak = _peak(pairs)
    out = []
    for token, score in pairs:
        strength = min(5, math.ceil(abs(score) / peak * 5))
        # xterm-256 greens 22, 28, .., 46 and reds 88, 124, .., 196, darker for weaker words
        colour = (22 + 6 * (strength - 1)) if score > 0 else (52 + 36 * min(strength, 4))
        out.append(f"\033[48;5;{colour}m{token}\033[0m" if strength else token)
    return " ".join(out)


def html_explanation(rows: list[dict]) -> str:
    """A self-contained HTML page: each text with its words shaded by their contribution."""
    cells = []
    for row in rows:
        pairs = row["explanation"]
        peak = _peak(pairs)
        words = " ".join(
            f'<span title="{score:+.4f}" style="background: rgba('
            f'{"40,160,60" if score > 0 else "210,50,50"},{abs(score) / peak:.2f})">'
            f"{html.escape(token)}</span>" for token, score in pairs)
        probabilities = ", ".join(f"{html.escape(k)} {v:.2f}"
                                  for k, v in row["probabilities"].items())
        cells.append(f"<tr><td><b>{html.escape(row['label'])}</b><br><small>"
                     f"{probabilities}</small></td><td>{words}</td></tr>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rnnkit sentiment: "
            "why</title><style>body{font-family:sans-serif} td{padding:6px;vertical-align:top;"
            "border-bottom:1px solid #ddd} span{padding:1px 2px;border-radius:3px}</style>"
            "</head><body><p>Green words pushed the score of the predicted label up, red ones "
            "down (gradient x input).</p><table>" + "".join(cells) + "</table></body></html>\n")
