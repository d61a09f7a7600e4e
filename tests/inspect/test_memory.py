"""Long-range memory tasks: the data is what the tasks say, an LSTM learns a short copy."""

from __future__ import annotations

import sys

import pytest
import torch

from rnnkit.inspect import MemoryResult, longest_solved, make_batch, plot_sweep, sweep
from rnnkit.inspect.memory import (
    COPY_ALPHABET,
    COPY_SYMBOLS,
    MemoryModel,
    glyphs,
    is_solved,
    train_memory,
)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_copy_batch() -> None:
    k, A, delay = COPY_SYMBOLS, COPY_ALPHABET, 7
    x, y = make_batch("copy", delay, 4, generator())
    assert x.shape == (4, 2 * k + delay, A + 2) and y.shape == (4, k) and y.dtype == torch.long
    assert torch.equal(x.sum(2), torch.ones(4, 2 * k + delay))  # one-hot at every step
    channel = x.argmax(2)  # (B, T)
    assert torch.equal(channel[:, :k], y)  # the target after the delay is the input symbols
    assert (channel[:, k:k + delay] == A).all()  # blanks
    assert (channel[:, k + delay:] == A + 1).all()  # "go": recall now


def test_adding_batch() -> None:
    T = 9
    x, y = make_batch("adding", T, 64, generator())
    assert x.shape == (64, T, 2) and y.shape == (64,)
    values, markers = x.unbind(2)
    assert ((values >= 0) & (values < 1)).all()
    assert torch.equal(markers.sum(1), torch.full((64,), 2.0))  # exactly two markers
    assert torch.equal(markers[:, :T // 2].sum(1), torch.ones(64))  # one in each half
    torch.testing.assert_close(y, (values * markers).sum(1))  # the sum of the marked values


def test_pixel_batches() -> None:
    x, y = make_batch("pixels", 64, 32, generator(3))
    assert x.shape == (32, 64, 1) and y.shape == (32,) and int(y.max()) < 10
    permuted, y2 = make_batch("pixels_permuted", 64, 32, generator(3))
    assert torch.equal(y, y2)
    assert torch.equal(permuted.sort(1).values, x.sort(1).values)  # the same pixels...
    assert not torch.equal(permuted, x)  # ...in another order
    again, _ = make_batch("pixels_permuted", 64, 32, generator(3))
    assert torch.equal(again, permuted)  # one fixed order
    big, _ = make_batch("pixels", 144, 2, generator())
    assert big.shape == (2, 144, 1)
    assert glyphs().shape == (10, 8, 8)
    assert len({g.flatten().tolist().__repr__() for g in glyphs()}) == 10  # distinct glyphs
    with pytest.raises(ValueError, match="square number of pixels"):
        make_batch("pixels", 50, 2)
    with pytest.raises(ValueError, match="unknown task 'sorting'"):
        make_batch("sorting", 5, 2)


@pytest.mark.parametrize("task", ["copy", "adding", "pixels"])
def test_model_shapes(task: str) -> None:
    length = 64 if task == "pixels" else 4
    x, y = make_batch(task, length, 3, generator())
    prediction, loss = MemoryModel(task, "gru", 8)(x, y)
    expected = {"copy": (3, COPY_SYMBOLS, COPY_ALPHABET), "adding": (3,), "pixels": (3, 10)}
    assert prediction.shape == expected[task] and loss.dim() == 0


def test_lstm_learns_a_short_copy() -> None:
    """5 symbols, 5 blank steps: ~900 Adam steps, ~1.5 s on one thread."""
    result = train_memory("copy", "lstm", 5, lr=1e-2, max_steps=2000, eval_every=50,
                          eval_size=500, seed=0)
    assert result.solved and result.metric >= 0.99 and result.metric_name == "accuracy"
    assert result.steps < 2000  # stopped once solved


def test_is_solved() -> None:
    assert is_solved("adding", 0.009) and not is_solved("adding", 0.01)
    assert is_solved("copy", 0.99) and not is_solved("copy", 0.985)
    assert is_solved("pixels_permuted", 0.9) and not is_solved("pixels", 0.89)


def result(cell: str, length: int, solved: bool, task: str = "copy") -> MemoryResult:
    return MemoryResult(task, cell, length, 1.0 if solved else 0.5, "accuracy", solved, 10, 1.0)


def test_longest_solved() -> None:
    results = [result("rnn_tanh", 10, True), result("rnn_tanh", 20, False),
               result("lstm", 10, True), result("lstm", 40, True), result("lstm", 20, False),
               result("gru", 10, False)]
    assert longest_solved(results) == {"rnn_tanh": 10, "lstm": 40, "gru": None}
    assert list(longest_solved(results)) == ["rnn_tanh", "lstm", "gru"]
    assert longest_solved([]) == {}
    with pytest.raises(ValueError, match="one task"):
        longest_solved([result("lstm", 10, True), result("lstm", 10, True, task="adding")])


def test_sweep_runs_every_cell_at_every_length() -> None:
    seen = []
    results = sweep("adding", ["rnn_tanh", "gru"], [6, 2], time_budget_per_run=10,
                    max_steps=2, hidden_size=4, eval_size=8, progress=False,
                    callback=seen.append)
    assert [(r.cell, r.length) for r in results] == [("rnn_tanh", 2), ("rnn_tanh", 6),
                                                     ("gru", 2), ("gru", 6)]
    assert seen == results
    assert all(r.steps == 2 and r.metric_name == "mse" and r.metric >= 0 for r in results)


def test_plot_sweep(tmp_path, monkeypatch) -> None:
    results = [result("lstm", 10, True), result("lstm", 100, False), result("gru", 10, True)]
    path = plot_sweep(results, tmp_path / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert plot_sweep(results, tmp_path / "none.png") is None
