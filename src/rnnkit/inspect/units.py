"""Hidden units of a character model, looked at one by one.

After Karpathy, Johnson & Fei-Fei 2015, "Visualizing and understanding recurrent networks":
some units of a trained char-LSTM track interpretable properties of the text (inside quotes,
position in the line, bracket depth). Here:

* :func:`unit_activations`: every level's state after each character, ``(T, L, H)``.
* :data:`PROPERTIES`: functions ``text -> (T,)`` of such properties, each the value *after*
  reading character ``t`` (the moment the activation at ``t`` is taken).
* :func:`correlated_units`: the units whose activation follows each property best (Pearson).
* :func:`units_html`, :func:`units_page`: the text with each character's background coloured
  by a unit's activation (blue negative, white zero, red positive, as the paper's figures).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..models.language_model import LanguageModel
from ..nn import LSTMState, evaluating

OPENING, CLOSING = "([{", ")]}"
LINE_WIDTH = 80  # the scale of line_position: 1.0 at 80 characters into a line


# ----------------------------------------------------------------------------- activations
def unit_activations(model: LanguageModel, ids: Tensor, *, which: str = "h") -> Tensor:
    """The state of every level after each token of ``ids`` ``(T,)``: ``(T, L, H)`` on the CPU.

    ``which="h"``: the hidden state ``h_t`` (what the next level and ``W_hy`` read);
    ``which="c"``: an LSTM's cell ``c_t`` (the paper shows ``tanh(c_t)``). The model runs one
    step at a time from the zero state (the same numbers as its ``forward``), in evaluation
    mode and without gradients; its mode is restored after.
    """
    if which not in ("h", "c"):
        raise ValueError(f"expected which 'h' or 'c', got {which!r}")
    if which == "c" and not model.rnn.cells[0].has_cell_state:
        raise ValueError(f"expected an LSTM for which='c' (the cell state), got a "
                         f"{model.config.cell!r} model, whose only state is h")
    if not isinstance(ids, Tensor) or ids.dim() != 1:
        got = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"expected ids as one sequence of token ids (T,), got {got}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"expected ids as integer token ids, got {ids.dtype}")
    if ids.numel() == 0:
        raise ValueError("expected at least one token id, got an empty sequence")
    V, low, high = model.config.vocab_size, int(ids.min()), int(ids.max())
    if low < 0 or high >= V:
        raise ValueError(f"expected ids in [0, {V}) (the vocabulary), got ids from {low} to "
                         f"{high}")
    ids = ids.to(device=model.head.weight.device, dtype=torch.long)
    with evaluating(model), torch.no_grad():
        x = model.embed(ids.unsqueeze(0))  # (T,) -> (1, T) -> (1, T, E)
        state, rows = None, []
        for t in range(ids.shape[0]):
            _, state = model.rnn.step(x[:, t], state)  # (1, E) -> state (L, 1, H)
            # an LSTM's state is two: its cells c or its outputs h
            part = ((state.c if which == "c" else state.h) if isinstance(state, LSTMState)
                    else state)
            rows.append(part[:, 0])  # (L, 1, H) -> (L, H)
    return torch.stack(rows).cpu()  # T x (L, H) -> (T, L, H)


# ------------------------------------------------------------------------------ properties
def in_quotes(text: str) -> Tensor:
    """1 inside double quotes: from an opening ``"`` to the character before its closing one."""
    inside, values = False, []
    for char in text:
        if char == '"':
            inside = not inside
        values.append(float(inside))
    return torch.tensor(values)


def bracket_depth(text: str) -> Tensor:
    """How many ``( [ {`` are open after each character (never below 0)."""
    depth, values = 0, []
    for char in text:
        if char in OPENING:
            depth += 1
        elif char in CLOSING:
            depth = max(depth - 1, 0)
        values.append(float(depth))
    return torch.tensor(values)


def in_brackets(text: str) -> Tensor:
    """1 while at least one bracket is open (the closing one itself is outside)."""
    return (bracket_depth(text) > 0).float()


def line_position(text: str) -> Tensor:
    """Characters since the last newline, / :data:`LINE_WIDTH` (the newline itself is 0)."""
    position, values = 0, []
    for char in text:
        position = 0 if char == "\n" else position + 1
        values.append(position / LINE_WIDTH)
    return torch.tensor(values)


def after_space(text: str) -> Tensor:
    """1 on whitespace: the next character starts a word."""
    return torch.tensor([float(char.isspace()) for char in text])


def word_position(text: str) -> Tensor:
    """Characters since the start of the current word (0 on whitespace), / 10."""
    position, values = 0, []
    for char in text:
        position = 0 if char.isspace() else position + 1
        values.append(position / 10)
    return torch.tensor(values)


def is_upper(text: str) -> Tensor:
    """1 on upper-case letters."""
    return torch.tensor([float(char.isupper()) for char in text])


PROPERTIES: dict[str, Callable[[str], Tensor]] = {
    "in_quotes": in_quotes,
    "in_brackets": in_brackets,
    "bracket_depth": bracket_depth,
    "line_position": line_position,
    "after_space": after_space,
    "word_position": word_position,
    "is_upper": is_upper,
}


# ----------------------------------------------------------------------------- correlation
def correlated_units(activations: Tensor, text: str,
                     properties: Sequence[str] | Mapping[str, Callable | Tensor] | None = None,
                     top: int = 5) -> dict[str, list[tuple[int, int, float]]]:
    """For each property, the ``top`` units by absolute Pearson correlation with it over time.

    Args:
        activations: ``(T, L, H)`` from :func:`unit_activations`.
        text: the ``T`` characters they were taken on.
        properties: names in :data:`PROPERTIES` (``None``: all of them), or a mapping from a
            name to a function ``text -> (T,)`` or to ``(T,)`` values.

    Returns:
        ``{property: [(level, unit, r), ...]}``, ``|r|`` decreasing; ``r`` keeps its sign (a
        unit can track a property by going negative). A constant unit or property has r = 0.
    """
    if not isinstance(activations, Tensor) or activations.dim() != 3:
        got = tuple(activations.shape) if isinstance(activations, Tensor) else type(
            activations).__name__
        raise ValueError(f"expected activations of shape (T, L, H), got {got}")
    T, L, H = activations.shape
    if len(text) != T:
        raise ValueError(f"expected activations for every character of the text (T={len(text)}"
                         f"), got T={T}")
    if properties is None:
        properties = PROPERTIES
    if not isinstance(properties, Mapping):
        unknown = [name for name in properties if name not in PROPERTIES]
        if unknown:
            raise ValueError(f"unknown properties {unknown}: expected names in "
                             + ", ".join(PROPERTIES) + ", or a mapping name -> function")
        properties = {name: PROPERTIES[name] for name in properties}
    units = _centred(activations.reshape(T, L * H).double())  # (T, L, H) -> (T, L*H)
    result = {}
    for name, prop in properties.items():
        values = prop if isinstance(prop, Tensor) else prop(text)
        if values.shape != (T,):
            raise ValueError(f"expected property {name!r} as (T={T},) values, got "
                             f"{tuple(values.shape)}")
        p = _centred(values.double().unsqueeze(1))  # (T,) -> (T, 1)
        r = (units * p).sum(0)  # (T, L*H) x (T, 1) -> (L*H,): unit vectors, so r = cos
        order = r.abs().argsort(descending=True, stable=True)[:top]
        result[name] = [(int(k) // H, int(k) % H, float(r[k])) for k in order]
    return result


def _centred(columns: Tensor) -> Tensor:
    """Each column minus its mean, scaled to norm 1 (constant columns stay 0): ``(T, N)``."""
    centred = columns - columns.mean(0)
    norm = centred.norm(dim=0)
    return centred / torch.where(norm > 0, norm, torch.ones_like(norm))


# ---------------------------------------------------------------------------------- pages
_STYLE = """body { font-family: sans-serif; margin: 2em; }
h2 { font-size: 1em; margin: 1.5em 0 0.3em; }
pre { font-family: monospace; font-size: 14px; line-height: 1.4; white-space: pre-wrap; }
"""


def units_html(text: str, activations: Tensor, *, title: str = "rnnkit: one unit",
               unit: str = "", scale: float | None = None) -> str:
    """A self-contained HTML page: ``text`` with each character coloured by one unit.

    ``activations`` ``(T,)``, one value per character; ``unit`` labels the block (e.g. "level
    1, unit 42: in quotes"). Colours go from blue (``-scale``) over white (0) to red
    (``+scale``); ``scale=None`` takes the largest ``|value|``. Each character's value shows
    on hover; newlines are kept.
    """
    return _page(title, [_block(text, activations, unit, scale)])


def units_page(text: str, activations: Tensor, picks: Sequence[tuple[int, int, str]], *,
               title: str = "rnnkit: hidden units") -> str:
    """One page with a block per pick ``(level, unit, label)`` of ``activations`` ``(T, L, H)``.

    Each block is coloured on its own scale (its largest ``|value|``).
    """
    if not isinstance(activations, Tensor) or activations.dim() != 3:
        raise ValueError("expected activations of shape (T, L, H), got "
                         f"{getattr(activations, 'shape', type(activations).__name__)}")
    _, L, H = activations.shape
    blocks = []
    for level, unit, label in picks:
        if not (0 <= level < L and 0 <= unit < H):
            raise ValueError(f"expected a level in [0, {L}) and a unit in [0, {H}), got "
                             f"({level}, {unit})")
        heading = f"level {level}, unit {unit}" + (f": {label}" if label else "")
        blocks.append(_block(text, activations[:, level, unit], heading, None))
    return _page(title, blocks)


def _block(text: str, values: Tensor, heading: str, scale: float | None) -> str:
    if not isinstance(values, Tensor) or values.shape != (len(text),):
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"expected one activation per character ({len(text)},), got {got}")
    values = values.detach().double().cpu()
    if scale is None:
        scale = float(values.abs().max()) if values.numel() else 1.0
    scale = scale if scale > 0 else 1.0
    spans = []
    for char, value in zip(text, values.tolist(), strict=True):
        if char == "\n":  # a coloured newline shows nothing: keep the line break plain
            spans.append("\n")
            continue
        spans.append(f'<span style="background:{_colour(value / scale)}" '
                     f'title="{value:.3f}">{html.escape(char)}</span>')
    label = f"<h2>{html.escape(heading)}</h2>\n" if heading else ""
    return f"{label}<pre>{''.join(spans)}</pre>\n"


def _colour(v: float) -> str:
    """-1 -> blue, 0 -> white, +1 -> red (clipped), as ``#rrggbb``."""
    v = max(-1.0, min(1.0, v))
    fade = round(255 * (1 - abs(v)))  # the other two channels fade as |v| grows
    return f"#ff{fade:02x}{fade:02x}" if v >= 0 else f"#{fade:02x}{fade:02x}ff"


def _page(title: str, blocks: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{''.join(blocks)}</body>\n</html>\n")
