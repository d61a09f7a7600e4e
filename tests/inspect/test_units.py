"""Hidden units: the model's own states, text properties, planted correlations, valid HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
import torch

from rnnkit.inspect import PROPERTIES, correlated_units, unit_activations, units_html, units_page
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig

V, L, H, T = 11, 2, 6, 15


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_activations_are_the_models_own_states(cell: str) -> None:
    model = LanguageModel(LanguageModelConfig(V, cell, L, H, embedding_size=4, dropout=0.5))
    ids = torch.randint(V, (T,))
    acts = unit_activations(model, ids)
    assert acts.shape == (T, L, H)
    assert model.training  # the mode comes back
    model.eval()
    with torch.no_grad():
        out, state = model.rnn(model.embed(ids.unsqueeze(0)))  # (1, T, H), final (L, 1, H)
    torch.testing.assert_close(acts[:, -1], out[0])  # the top level at every step
    h = state.h if cell == "lstm" else state
    torch.testing.assert_close(acts[-1], h[:, 0])  # every level after the last character
    if cell == "lstm":
        torch.testing.assert_close(unit_activations(model, ids, which="c")[-1], state.c[:, 0])
    else:
        with pytest.raises(ValueError, match="expected an LSTM"):
            unit_activations(model, ids, which="c")
    with pytest.raises(ValueError, match=r"expected ids in \[0, 11\)"):
        unit_activations(model, torch.tensor([0, V]))
    with pytest.raises(ValueError, match=r"\(T,\)"):
        unit_activations(model, ids.view(1, T))


TEXT = 'ab "c d" (e [f]) g\nhi\n"j'


def values(name: str) -> list[float]:
    return PROPERTIES[name](TEXT).tolist()


def test_properties_on_hand_made_text() -> None:
    #          a  b  _  "  c  _  d  "  _  (  e  _  [  f  ]  )  _  g  \n h  i  \n "  j
    quotes = [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    depth = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    line = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 0, 1, 2, 0, 1, 2]
    space = [0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0]
    assert len(TEXT) == len(quotes)
    assert values("in_quotes") == quotes
    assert values("bracket_depth") == depth
    assert values("in_brackets") == [float(d > 0) for d in depth]
    assert values("line_position") == pytest.approx([n / 80 for n in line])
    assert values("after_space") == space
    assert values("word_position")[:5] == pytest.approx([0.1, 0.2, 0.0, 0.1, 0.2])
    assert values("is_upper") == [0.0] * len(TEXT)


def test_correlated_units_finds_planted_units() -> None:
    acts = torch.randn(len(TEXT), L, H)
    acts[:, 1, 3] = PROPERTIES["in_quotes"](TEXT)  # a quote detector
    acts[:, 0, 2] = -3 * PROPERTIES["line_position"](TEXT) + 1  # counts the line, negatively
    acts[:, 0, 5] = 0.5  # constant: r = 0, not NaN
    found = correlated_units(acts, TEXT, top=3)
    assert list(found) == list(PROPERTIES)
    level, unit, r = found["in_quotes"][0]
    assert (level, unit) == (1, 3) and r == pytest.approx(1.0)
    level, unit, r = found["line_position"][0]
    assert (level, unit) == (0, 2) and r == pytest.approx(-1.0)
    assert len(found["in_quotes"]) == 3
    assert all(abs(a[2]) >= abs(b[2]) for a, b in zip(found["in_quotes"],
                                                    found["in_quotes"][1:], strict=False))
    is_upper = correlated_units(acts, TEXT, ["is_upper"])["is_upper"]  # constant property
    assert all(r == 0.0 for *_, r in is_upper)
    own = correlated_units(acts, TEXT, {"planted": acts[:, 1, 4]}, top=1)
    assert own["planted"][0][:2] == (1, 4)
    with pytest.raises(ValueError, match="every character"):
        correlated_units(acts[:-1], TEXT)
    with pytest.raises(ValueError, match="unknown properties"):
        correlated_units(acts, TEXT, ["in_parens"])


class StrictParser(HTMLParser):
    """Fails on unbalanced tags; collects the text inside each ``<pre>``."""

    VOID = {"meta", "br"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.pres: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "pre":
            self.pres.append("")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "pre" in self.stack:
            self.pres[-1] += data


def parse(page: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.doctype and parser.stack == []
    return parser


def test_units_html_is_valid_and_escaped() -> None:
    text = 'if (a < b && c > d) {\n  s = "<&>";\n}'
    acts = torch.linspace(-2, 2, len(text))
    page = units_html(text, acts, title="unit <7>", unit="level 0, unit 7")
    parser = parse(page)
    assert parser.pres == [text]  # every character, newlines kept
    for char, escaped in (("<", "&lt;"), ("&", "&amp;"), (">", "&gt;")):
        assert f">{escaped}</span>" in page and f">{char}</span>" not in page
    assert "<title>unit &lt;7&gt;</title>" in page
    assert "background:#0000ff" in page and "background:#ff0000" in page  # -2 blue, +2 red
    with pytest.raises(ValueError, match="one activation per character"):
        units_html(text, acts[:-1], title="t", unit="u")


def test_units_page_has_a_block_per_pick() -> None:
    acts = torch.randn(len(TEXT), L, H)
    page = units_page(TEXT, acts, [(0, 1, "quotes"), (1, 5, "")])
    parser = parse(page)
    assert parser.pres == [TEXT, TEXT]
    assert "level 0, unit 1: quotes" in page and "level 1, unit 5</h2>" in page
    with pytest.raises(ValueError, match="expected a level in"):
        units_page(TEXT, acts, [(2, 0, "")])
