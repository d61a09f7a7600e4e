"""Classification metrics: against their definitions, counted by hand, and the confusion plot."""

import json
import sys

import numpy as np
import pytest
import torch

from rnnkit.metrics import ClassificationReport, accuracy, classification_report, plot_confusion

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _by_counting(predictions: list[int], targets: list[int], C: int) -> dict:
    """Every score from its definition, by plain loops over the examples (zero division: 0)."""
    confusion = [[0] * C for _ in range(C)]
    for p, t in zip(predictions, targets, strict=True):
        confusion[t][p] += 1
    precision, recall, f1 = [], [], []
    for c in range(C):
        tp = sum(1 for p, t in zip(predictions, targets, strict=True) if p == c and t == c)
        fp = sum(1 for p, t in zip(predictions, targets, strict=True) if p == c and t != c)
        fn = sum(1 for p, t in zip(predictions, targets, strict=True) if p != c and t == c)
        precision.append(tp / (tp + fp) if tp + fp else 0.0)
        recall.append(tp / (tp + fn) if tp + fn else 0.0)
        # F1 = 2TP / (2TP + FP + FN), the harmonic mean of P and R written without them
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    correct = sum(1 for p, t in zip(predictions, targets, strict=True) if p == t)
    return {"accuracy": correct / len(targets), "macro_f1": sum(f1) / C,
            "precision": precision, "recall": recall, "f1": f1,
            "support": [targets.count(c) for c in range(C)], "confusion": confusion}


def _assert_matches(report: ClassificationReport, expected: dict) -> None:
    for key, value in expected.items():
        got = getattr(report, key)
        if key in ("support", "confusion"):
            assert got == value, key
        else:
            np.testing.assert_allclose(got, value, rtol=1e-12, atol=0, err_msg=key)


def test_accuracy_counts_the_matches():
    predictions, targets = [0, 1, 2, 2, 1], [0, 2, 2, 2, 0]
    assert accuracy(predictions, targets) == 3 / 5
    assert accuracy(torch.tensor(predictions), np.array(targets)) == 3 / 5
    assert isinstance(accuracy(torch.tensor(predictions), torch.tensor(targets)), float)


def test_a_small_example_checked_by_hand():
    # true:  a a a b b c        predicted: a b a b c c
    predictions, targets = [0, 1, 0, 1, 2, 2], [0, 0, 0, 1, 1, 2]
    report = classification_report(predictions, targets, ["a", "b", "c"])
    # class a: TP 2 (examples 0, 2), FP 0, FN 1 (example 1, called b)
    # class b: TP 1 (example 3), FP 1 (example 1), FN 1 (example 4, called c)
    # class c: TP 1 (example 5), FP 1 (example 4), FN 0
    precision = [2 / (2 + 0), 1 / (1 + 1), 1 / (1 + 1)]
    recall = [2 / (2 + 1), 1 / (1 + 1), 1 / (1 + 0)]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall, strict=True)]
    _assert_matches(report, {
        "accuracy": (2 + 1 + 1) / 6, "precision": precision, "recall": recall, "f1": f1,
        "macro_f1": sum(f1) / 3, "support": [3, 2, 1],
        "confusion": [[2, 1, 0], [0, 1, 1], [0, 0, 1]]})
    _assert_matches(report, _by_counting(predictions, targets, 3))
    assert report.labels == ["a", "b", "c"]


@pytest.mark.parametrize("seed", range(5))
def test_random_examples_match_an_independent_count(seed):
    rng = np.random.default_rng(seed)
    C = int(rng.integers(2, 6))
    targets = rng.integers(0, C, 50)
    # mostly right, so that every cell of the matrix is exercised with uneven counts
    predictions = np.where(rng.random(50) < 0.6, targets, rng.integers(0, C, 50))
    report = classification_report(torch.from_numpy(predictions), targets,
                                   [f"class {c}" for c in range(C)])
    _assert_matches(report, _by_counting(predictions.tolist(), targets.tolist(), C))
    assert report.accuracy == accuracy(predictions, targets)


def test_zero_division_gives_zero():
    # class 2 never occurs and is never predicted; class 1 occurs but is never predicted
    predictions, targets = [0, 0, 0, 0], [0, 0, 1, 1]
    report = classification_report(predictions, targets, ["x", "y", "z"])
    assert report.precision == [2 / 4, 0.0, 0.0]
    assert report.recall == [2 / 2, 0.0, 0.0]
    p, r = 2 / 4, 1.0
    assert report.f1 == [2 * p * r / (p + r), 0.0, 0.0]
    assert report.macro_f1 == pytest.approx((2 * p * r / (p + r)) / 3)  # every label counts
    assert report.support == [2, 2, 0]
    _assert_matches(report, _by_counting(predictions, targets, 3))


def test_text_and_dict():
    labels = ["negative", "neutral", "positive"]
    report = classification_report([0, 1, 2, 1], [0, 2, 2, 1], labels)
    text = report.to_text()
    for label in labels:
        assert text.count(label) == 3  # its row of scores, a column and a row of the matrix
    assert "precision" in text and "confusion" in text and "macro avg" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["accuracy"] == report.accuracy and data["macro_f1"] == report.macro_f1
    assert data["confusion"] == report.confusion and data["labels"] == labels


@pytest.mark.parametrize(("predictions", "targets", "labels", "match"), [
    ([0, 1], [0], ["a", "b"], "as many predictions as targets"),
    ([], [], ["a", "b"], "at least one prediction"),
    ([0, 2], [0, 1], ["a", "b"], r"predictions in \[0, 2\)"),
    ([0, 1], [0, -1], ["a", "b"], r"targets in \[0, 2\)"),
    ([0.0, 1.0], [0, 1], ["a", "b"], "integer class ids"),
    ([[0, 1]], [[0, 1]], ["a", "b"], "1-D"),
    ([0, 1], [0, 1], "ab", "sequence of class names"),
])
def test_bad_inputs_say_what_was_expected(predictions, targets, labels, match):
    with pytest.raises(ValueError, match=match):
        classification_report(predictions, targets, labels)


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    report = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    path = plot_confusion(report, tmp_path / "confusion.png")
    assert path == tmp_path / "confusion.png"
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["confusion.png"]  # no temporary file left


def test_plot_without_matplotlib_returns_none(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    report = classification_report([0, 1], [0, 1], ["a", "b"])
    assert plot_confusion(report, tmp_path / "confusion.png") is None
    assert not (tmp_path / "confusion.png").exists()
