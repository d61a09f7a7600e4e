"""Metrics of the tasks, computed from predictions and targets; no model, no torch needed.

Classification (sentiment, video): :func:`accuracy`, :func:`classification_report` (precision,
recall, F1 per class, macro F1, the confusion matrix) and :func:`plot_confusion`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["ClassificationReport", "accuracy", "classification_report", "plot_confusion"]


def _labels_array(values: object, name: str) -> np.ndarray:
    """Class ids as a 1-D int64 array: a tensor, a NumPy array or a sequence of integers."""
    if hasattr(values, "detach"):  # a torch.Tensor, without importing torch
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"expected {name} as a 1-D sequence of class ids, got shape "
                         f"{array.shape}")
    if array.size and not (np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_):
        raise ValueError(f"expected {name} as integer class ids, got dtype {array.dtype}")
    return array.astype(np.int64)


def _pair(predictions: object, targets: object) -> tuple[np.ndarray, np.ndarray]:
    predicted = _labels_array(predictions, "predictions")
    true = _labels_array(targets, "targets")
    if predicted.shape != true.shape:
        raise ValueError(f"expected as many predictions as targets, got {predicted.size} "
                         f"predictions and {true.size} targets")
    if predicted.size == 0:
        raise ValueError("expected at least one prediction, got none")
    return predicted, true


def accuracy(predictions: object, targets: object) -> float:
    """The fraction of predictions equal to their target, in ``[0, 1]``.

    ``predictions`` and ``targets``: class ids ``(N,)`` (tensors, arrays or lists), ``N >= 1``.
    """
    predicted, true = _pair(predictions, targets)
    return float(np.mean(predicted == true))


@dataclass
class ClassificationReport:
    """Per-class and overall scores of a classifier; see :func:`classification_report`.

    Lists are indexed by class id; ``confusion[i][j]`` counts examples of true class ``i``
    predicted as ``j`` (rows = true class, columns = predicted).
    """

    accuracy: float  # fraction correct
    macro_f1: float  # the unweighted mean of f1 over every class in labels
    precision: list[float]  # TP / (TP + FP) per class; 0.0 if the class was never predicted
    recall: list[float]  # TP / (TP + FN) per class; 0.0 if the class never occurs
    f1: list[float]  # 2 P R / (P + R) per class; 0.0 if P + R = 0
    support: list[int]  # number of examples of each true class
    confusion: list[list[int]]  # (C, C): rows = true class, columns = predicted class
    labels: list[str]  # the class names, by id

    def to_dict(self) -> dict:
        """A JSON-able dict: the fields, by name (``"accuracy"``, ``"macro_f1"``, ...)."""
        return asdict(self)

    def to_text(self, digits: int = 3) -> str:
        """A readable table: precision, recall, F1, support per class, then the confusion
        matrix with the label names (rows = true, columns = predicted)."""
        labels = [str(label) for label in self.labels]
        width = max(len("macro avg"), *(len(label) for label in labels))
        cell = max(digits + 2, 9)
        header = f"{'':<{width}}  " + "".join(f"{h:>{cell}}" for h in
                                              ("precision", "recall", "f1", "support"))
        lines = [header]
        for i, label in enumerate(labels):
            scores = "".join(f"{v:>{cell}.{digits}f}"
                             for v in (self.precision[i], self.recall[i], self.f1[i]))
            lines.append(f"{label:<{width}}  {scores}{self.support[i]:>{cell}d}")
        total = sum(self.support)
        lines.append("")
        lines.append(f"{'accuracy':<{width}}  {'':>{2 * cell}}{self.accuracy:>{cell}.{digits}f}"
                     f"{total:>{cell}d}")
        macro = [sum(values) / len(values) for values in (self.precision, self.recall)]
        lines.append(f"{'macro avg':<{width}}  " + "".join(
            f"{v:>{cell}.{digits}f}" for v in (*macro, self.macro_f1)) + f"{total:>{cell}d}")
        lines.append("")
        lines.append("confusion matrix (rows = true class, columns = predicted class)")
        column = max(max((len(label) for label in labels), default=1),
                     max((len(str(n)) for row in self.confusion for n in row), default=1))
        lines.append(f"{'':<{width}}  " + " ".join(f"{label:>{column}}" for label in labels))
        for label, row in zip(labels, self.confusion, strict=True):
            lines.append(f"{label:<{width}}  " + " ".join(f"{n:>{column}d}" for n in row))
        return "\n".join(lines)


def classification_report(predictions: object, targets: object,
                          labels: Sequence[str]) -> ClassificationReport:
    """Accuracy, per-class precision / recall / F1 / support, macro F1 and the confusion matrix.

    ``predictions`` and ``targets`` are class ids ``(N,)`` in ``[0, C)`` with ``C = len(labels)``;
    ``labels[i]`` names class ``i``. Every class in ``labels`` counts in the macro average, also
    one that never occurs. A ratio whose denominator is 0 (a class never predicted, or never
    present) is 0.0, as scikit-learn's ``zero_division=0``, and no warning is raised.
    """
    predicted, true = _pair(predictions, targets)
    if isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) == 0:
        raise ValueError(f"expected labels as a non-empty sequence of class names, got "
                         f"{labels!r}")
    C = len(labels)
    for name, array in (("predictions", predicted), ("targets", true)):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= C:
            raise ValueError(f"expected {name} in [0, {C}) ({C} labels), got class ids from "
                             f"{low} to {high}")
    # confusion[i, j] = #(true i, predicted j): count the flat index i*C + j
    confusion = np.bincount(true * C + predicted, minlength=C * C).reshape(C, C)
    tp = np.diag(confusion).astype(np.float64)
    predicted_count = confusion.sum(axis=0)  # TP + FP, per class
    support = confusion.sum(axis=1)  # TP + FN, per class
    precision = _divide(tp, predicted_count)
    recall = _divide(tp, support)
    f1 = _divide(2 * precision * recall, precision + recall)
    return ClassificationReport(
        accuracy=float(tp.sum() / true.size), macro_f1=float(f1.mean()),
        precision=precision.tolist(), recall=recall.tolist(), f1=f1.tolist(),
        support=[int(n) for n in support],
        confusion=[[int(n) for n in row] for row in confusion],
        labels=[str(label) for label in labels])


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` elementwise, 0.0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def plot_confusion(report: ClassificationReport, path: str | Path) -> Path | None:
    """Draw ``report``'s confusion matrix into a PNG at ``path``; ``None`` without matplotlib.

    The cells show the counts; their colour is the count divided by its row's total (the
    fraction of each true class predicted as each class, so that rare classes show as clearly
    as common ones). Label names on both axes: rows = true, columns = predicted. The file is
    written atomically (readers see the old file or the new one); its folder must exist.
    """
    try:
        from matplotlib.figure import Figure  # draws without pyplot or a global backend
    except ImportError:
        return None
    from .train.checkpoint import atomic_write_bytes

    counts = np.asarray(report.confusion, dtype=np.int64)  # (C, C)
    C = counts.shape[0]
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows != 0)
    size = 2.5 + 0.6 * C
    figure = Figure(figsize=(size + 1, size))
    axis = figure.add_subplot()
    image = axis.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis, label="fraction of the true class")
    for i in range(C):
        for j in range(C):
            colour = "white" if fractions[i, j] > 0.5 else "black"
            axis.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour)
    ticks = list(range(C))
    axis.set_xticks(ticks, [str(label) for label in report.labels], rotation=45, ha="right")
    axis.set_yticks(ticks, [str(label) for label in report.labels])
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(f"accuracy {report.accuracy:.3f}, macro F1 {report.macro_f1:.3f}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())

