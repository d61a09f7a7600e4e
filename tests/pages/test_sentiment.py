"""The classifier's explanations as a terminal line and as an HTML page, from predict's rows."""

from rnnkit.pages.sentiment import colour_explanation, html_explanation

ROW = {"text": "a <great> film", "label": "pos", "probabilities": {"neg": 0.1, "pos": 0.9},
       "explanation": [["a", 0.0], ["<great>", 0.8], ["film", -0.2]]}


def test_terminal_colours_only_the_words_that_moved_the_score():
    line = colour_explanation(ROW["explanation"])
    assert line.startswith("a \033[48;5;")  # no score, no colour
    assert "\033[48;5;46m<great>\033[0m" in line  # for, the peak: the brightest green
    assert "\033[48;5;124mfilm\033[0m" in line  # against, at a quarter of the peak: red
    assert colour_explanation([["zero", 0.0]]) == "zero"


def test_html_page_shades_and_escapes_every_word():
    page = html_explanation([ROW])
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert "&lt;great&gt;" in page and "<great>" not in page
    assert 'title="+0.8000" style="background: rgba(40,160,60,1.00)"' in page
    assert 'title="-0.2000" style="background: rgba(210,50,50,0.25)"' in page
    assert "<b>pos</b>" in page and "neg 0.10, pos 0.90" in page
