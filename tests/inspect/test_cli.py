"""``rnnkit inspect gradients | memory | units | curves`` as a user runs them."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from rnnkit.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    text = folder / "text.txt"
    text.write_text('He said "hello (there)" and left.\nShe said "no".\n' * 40, encoding="utf-8")
    run_dir = folder / "run"
    assert main(["charlm", "train", "--text", str(text), "--out", str(run_dir), "--max-steps",
                 "5", "--hidden-size", "16", "--embedding-size", "8", "--seq-len", "16",
                 "--batch-size", "4", "--no-progress"]) == 0
    return run_dir, text


def test_gradients_of_fresh_cells_table_and_plot(tmp_path, capsys) -> None:
    out = tmp_path / "flow.png"
    assert main(["inspect", "gradients", "--steps", "30", "--hidden-size", "16", "--out",
                 str(out)]) == 0
    table = capsys.readouterr().out
    assert "rnn_tanh" in table and "lstm" in table and "gru" in table
    assert out.read_bytes()[:8] == PNG


def test_gradients_of_a_trained_model(charlm_run, tmp_path, capsys) -> None:
    run_dir, text = charlm_run
    assert main(["inspect", "gradients", str(run_dir), "--text", str(text), "--steps", "20",
                 "--loss", "every", "--out", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    assert "W_hh l0" in out and "largest singular values" in out
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG


def test_memory_sweep_json_and_plot(tmp_path, capsys) -> None:
    assert main(["inspect", "memory", "--task", "adding", "--cells", "lstm", "--lengths", "5",
                 "--budget", "1s", "--out", str(tmp_path / "m.png"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "adding" and set(report["longest_solved"]) == {"lstm"}
    assert [(r["cell"], r["length"]) for r in report["results"]] == [("lstm", 5)]
    assert (tmp_path / "m.png").read_bytes()[:8] == PNG


def test_units_page_is_html_holding_the_text(charlm_run, tmp_path, capsys) -> None:
    run_dir, text = charlm_run
    page = tmp_path / "units.html"
    assert main(["inspect", "units", str(run_dir), "--text", str(text), "--chars", "200",
                 "--unit", "0", "3", "--out", str(page)]) == 0
    assert "in_quotes" in capsys.readouterr().out
    parser = _Text()
    parser.feed(page.read_text(encoding="utf-8"))
    # every unit shown holds the whole text read (200 characters), character by character
    assert text.read_text(encoding="utf-8")[:200] in "".join(parser.chunks)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def test_curves_redrawn_from_the_log(charlm_run, tmp_path, capsys) -> None:
    run_dir, _ = charlm_run
    assert main(["inspect", "curves", str(run_dir), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    assert main(["inspect", "curves", str(tmp_path)]) == 2
    assert "no metrics log" in capsys.readouterr().err
