"""``rnnkit charlm hello``: the lecture's slide, trained for real."""

import torch

from rnnkit.cli import main
from rnnkit.synthetic.hello import VOCABULARY, HelloConfig, format_slide, train_hello


def test_the_rnn_learns_hello() -> None:
    """Every step predicts the next character of 'hello', the two 'l's included."""
    result = train_hello(HelloConfig())
    assert result.solved
    assert result.predictions == ["e", "l", "l", "o"] == result.targets
    assert result.loss < 0.1
    assert result.hidden.shape == (4, 3) and result.scores.shape == (4, len(VOCABULARY))
    # the two 'l' inputs are told apart by the hidden state alone
    assert not torch.allclose(result.hidden[2], result.hidden[3], atol=0.1)


def test_the_slide_shows_every_step() -> None:
    result = train_hello(HelloConfig())
    lines = format_slide(result).splitlines()
    rows = [line for line in lines if line.rstrip().endswith("ok")]
    assert len(rows) == 4
    assert rows[0].split()[1] == "'h'" and rows[3].split()[1] == "'l'"


def test_cli_prints_the_table(capsys) -> None:
    assert main(["charlm", "hello"]) == 0
    out = capsys.readouterr().out
    assert "hidden h_t" in out and "'o'" in out


def test_cli_reports_failure_when_it_cannot_learn(capsys) -> None:
    """One update is not enough: the command says so and exits 1."""
    assert main(["charlm", "hello", "--max-steps", "1"]) == 1
    assert "WRONG" in capsys.readouterr().out
