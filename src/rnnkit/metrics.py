"""Metrics of the tasks, computed from predictions and targets; no model, no torch needed.

Classification (sentiment, video): :func:`accuracy`, :func:`classification_report` (precision,
recall, F1 per class, macro F1, the confusion matrix) and :func:`plot_confusion`.

Captioning (and later translation): :func:`bleu` (BLEU-1..4), :func:`cider_d` (CIDEr-D) and
:func:`caption_scores`, computed on tokenized text exactly as the COCO caption evaluation
(pycocoevalcap) computes them.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["ClassificationReport", "accuracy", "bleu", "caption_scores", "cider_d",
           "classification_report", "plot_confusion"]


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
    from .data.files import atomic_write_bytes

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



# ---------------------------------------------------------------------------------------------
# Caption metrics: BLEU (Papineni et al. 2002) and CIDEr-D (Vedantam et al. 2015), computed as
# the COCO caption evaluation's pure-Python scorers compute them (pycocoevalcap 1.2,
# bleu/bleu_scorer.py and cider/cider_scorer.py), so that our numbers compare with published ones.
# ---------------------------------------------------------------------------------------------

_BLEU_TINY = 1e-15  # pycocoevalcap's numerator smoothing: a precision with no match is ~0, not 0
_BLEU_SMALL = 1e-9  # pycocoevalcap's denominator smoothing: no candidate n-gram is no 0 / 0
_CIDER_N = 4  # CIDEr-D averages the similarities of 1- to 4-grams


def _short(value: object, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _check_tokens(tokens: object, what: str) -> None:
    """Raise ``ValueError`` unless ``tokens`` is a list (or tuple) of strings."""
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise ValueError(f"expected {what} as a list of string tokens, got "
                         f"{type(tokens).__name__} {_short(tokens)}")
    for token in tokens:
        if not isinstance(token, str):
            raise ValueError(f"expected {what} as a list of string tokens, got a token of type "
                             f"{type(token).__name__}: {_short(token)}")


def _check_corpus(candidates: object, references: object) -> None:
    """Raise ``ValueError`` unless, for the same number ``N >= 1`` of items, ``candidates[i]`` is
    a token list and ``references[i]`` a non-empty list of token lists."""
    for name, value in (("candidates", candidates), ("references", references)):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ValueError(f"expected {name} as a list with one entry per item, got "
                             f"{type(value).__name__} {_short(value)}")
    if len(candidates) != len(references):
        raise ValueError(f"expected one list of references per candidate, got "
                         f"{len(candidates)} candidates and {len(references)} reference lists")
    if len(candidates) == 0:
        raise ValueError("expected at least one candidate, got none")
    for i, (candidate, refs) in enumerate(zip(candidates, references, strict=True)):
        _check_tokens(candidate, f"candidates[{i}]")
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise ValueError(f"expected references[{i}] as a list of token lists, got "
                             f"{type(refs).__name__} {_short(refs)}")
        if len(refs) == 0:
            raise ValueError(f"expected at least one reference for item {i}, got none")
        for j, ref in enumerate(refs):
            if isinstance(ref, str):
                raise ValueError(f"expected references[{i}] as a list of token lists (one per "
                                 f"reference), got a str at references[{i}][{j}]: {_short(ref)}")
            _check_tokens(ref, f"references[{i}][{j}]")


def _ngram_counts(tokens: Sequence[str], max_n: int) -> Counter:
    """How often each n-gram of ``tokens`` occurs, for n = 1..max_n; keys are token tuples."""
    counts: Counter = Counter()
    for n in range(1, max_n + 1):
        for start in range(len(tokens) - n + 1):
            counts[tuple(tokens[start:start + n])] += 1
    return counts


def _max_reference_counts(refs: Sequence[Sequence[str]], max_n: int) -> Counter:
    """BLEU's clipping counts: for each n-gram, the most times it occurs in any one reference."""
    clip: Counter = Counter()
    for ref in refs:
        clip |= _ngram_counts(ref, max_n)  # Counter union keeps the larger count
    return clip


def _closest_length(candidate_length: int, reference_lengths: Sequence[int]) -> int:
    """The reference length closest to the candidate's; a tie goes to the shorter reference."""
    return min((abs(length - candidate_length), length) for length in reference_lengths)[1]


def bleu(candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]],
         max_n: int = 4) -> list[float]:
    r"""Corpus BLEU-1..``max_n`` (Papineni et al. 2002) as the COCO caption evaluation computes it.

    .. math::
        p_k = \frac{\sum_i \sum_{g \in G_k(c_i)}
                        \min\big(\#_{c_i}(g),\ \max_{r \in R_i} \#_r(g)\big) + \epsilon}
                   {\sum_i \max(0,\ |c_i| - k + 1) + \delta}, \qquad
        \text{BLEU-}n = \mathrm{BP} \cdot \Big(\prod_{k=1}^{n} p_k\Big)^{1/n}, \qquad
        \mathrm{BP} = \begin{cases} 1 & C \ge R \\ e^{1 - R / C} & C < R \end{cases}

    where ``c_i`` is the candidate of item ``i`` and ``R_i`` its references, ``G_k(c)`` the
    distinct k-grams of ``c``, ``#_x(g)`` how often ``g`` occurs in ``x`` (the min is the
    clipping: a candidate n-gram counts at most as often as in the reference where it is most
    frequent), ``C = sum_i |c_i|`` the corpus candidate length and ``R = sum_i r_i`` the corpus
    reference length, ``r_i`` being the length of the reference of item ``i`` closest to
    ``|c_i|`` (a tie goes to the shorter reference).

    pycocoevalcap's conventions (``Bleu.compute_score``, i.e. ``BleuScorer.compute_score`` with
    ``option="closest"``): the counts are summed over the corpus before any ratio is taken
    (corpus BLEU, not a mean of sentence BLEUs); ``epsilon = 1e-15`` and ``delta = 1e-9`` so that
    a precision without matches is ~0 and no ratio divides by 0; BP compares
    ``(C + 1e-15) / (R + 1e-9)`` with 1. So a corpus without any n-gram of order k (captions
    shorter than k tokens) has ``p_k = 1e-15 / 1e-9``: a 3-token candidate equal to its
    reference scores BLEU-4 ``= (1e-6)^(1/4) ~ 0.032``, not 1.

    Args:
        candidates: one token list per item; an empty one is allowed (it matches nothing).
        references: per item, a non-empty list of reference token lists.
        max_n: the largest n-gram order (4 for BLEU-1..4).

    Returns:
        ``[BLEU-1, ..., BLEU-max_n]``, each in ``[0, 1]``.

    Raises:
        ValueError: different numbers of candidates and reference lists, an item without
            references, a string where a token list belongs, or ``max_n < 1``.

    Example:
        >>> scores = bleu([["a", "cat", "sat"]], [[["a", "cat", "sat"], ["the", "cat"]]], max_n=2)
        >>> [round(score, 6) for score in scores]  # 1 up to the smoothing constants
        [1.0, 1.0]
    """
    _check_corpus(candidates, references)
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"expected max_n as an integer >= 1, got {max_n!r}")
    correct = [0] * max_n  # clipped n-gram matches of each order, summed over the corpus
    guess = [0] * max_n  # candidate n-grams of each order, summed over the corpus
    candidate_length = reference_length = 0  # C and R
    for candidate, refs in zip(candidates, references, strict=True):
        clip = _max_reference_counts(refs, max_n)
        for gram, count in _ngram_counts(candidate, max_n).items():
            correct[len(gram) - 1] += min(count, clip[gram])
        for k in range(max_n):
            guess[k] += max(0, len(candidate) - k)
        candidate_length += len(candidate)
        reference_length += _closest_length(len(candidate), [len(ref) for ref in refs])
    scores, product = [], 1.0
    for k in range(max_n):
        product *= (correct[k] + _BLEU_TINY) / (guess[k] + _BLEU_SMALL)
        scores.append(product ** (1.0 / (k + 1)))  # geometric mean of p_1..p_(k+1)
    ratio = (candidate_length + _BLEU_TINY) / (reference_length + _BLEU_SMALL)
    if ratio < 1:  # brevity penalty: the corpus of candidates is shorter than its references
        scores = [score * math.exp(1 - 1 / ratio) for score in scores]
    return scores


def _document_frequency(reference_counts: Sequence[Sequence[Counter]]) -> Counter:
    """For each n-gram, the number of items with at least one reference that contains it."""
    df: Counter = Counter()
    for counts in reference_counts:  # the n-gram counts of each reference of one item
        df.update(set().union(*counts))
    return df


def _tfidf(counts: Counter, df: Counter, log_items: float) -> tuple[list[dict], list[float]]:
    """CIDEr's tf-idf vector of one sentence, split by n-gram order, and the norm of each part.

    ``g[gram] = count(gram) * (log N - log max(1, df(gram)))``: an n-gram that no reference of
    the corpus contains has ``df = 0`` and weighs as one found in one item's references.
    """
    vectors: list[dict] = [{} for _ in range(_CIDER_N)]
    for gram, count in counts.items():
        vectors[len(gram) - 1][gram] = count * (log_items - math.log(max(1.0, df[gram])))
    norms = [math.sqrt(sum(value * value for value in vector.values())) for vector in vectors]
    return vectors, norms


def _clipped_cosine(candidate: tuple[list[dict], list[float]],
                    reference: tuple[list[dict], list[float]]) -> np.ndarray:
    """Per n-gram order, ``sum_g min(g_c, g_r) g_r / (|g_c| |g_r|)``; 0 where a norm is 0."""
    candidate_vectors, candidate_norms = candidate
    reference_vectors, reference_norms = reference
    out = np.zeros(_CIDER_N)
    for k in range(_CIDER_N):
        ref = reference_vectors[k]
        dot = sum(min(value, ref.get(gram, 0.0)) * ref.get(gram, 0.0)
                  for gram, value in candidate_vectors[k].items())
        norm = candidate_norms[k] * reference_norms[k]
        out[k] = dot / norm if norm else 0.0
    return out


def cider_d(candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]],
            *, sigma: float = 6.0) -> float:
    r"""Corpus CIDEr-D (Vedantam et al. 2015) as the COCO caption evaluation computes it.

    .. math::
        g^k_x[g] = \#_x(g) \, \big(\log N - \log \max(1, \mathrm{df}(g))\big), \qquad
        \text{CIDEr-D}(c_i, R_i) = \frac{10}{4 |R_i|} \sum_{k=1}^{4} \sum_{r \in R_i}
            e^{-\frac{(|c_i| - |r|)^2}{2 \sigma^2}}
            \frac{\sum_g \min(g^k_{c_i}[g],\ g^k_r[g]) \, g^k_r[g]}{\|g^k_{c_i}\| \, \|g^k_r\|}

    and the score is the mean of ``CIDEr-D(c_i, R_i)`` over the ``N`` items, where ``g^k_x`` is
    the tf-idf vector of the k-grams of sentence ``x``, ``#_x(g)`` how often ``g`` occurs in
    ``x``, ``df(g)`` the number of items having ``g`` in at least one of their references,
    ``|x|`` the length of ``x`` in tokens. The min clips the candidate's weights (an n-gram
    repeated more often than in the reference gains nothing), the Gaussian penalises a length
    different from the reference's: the two changes that make CIDEr-D of CIDEr.

    pycocoevalcap's conventions (``cider/cider_scorer.py``, ``Cider().compute_score``): ``df``
    and ``N`` come from the evaluated corpus itself (the references passed in, not a fixed
    corpus), so the score depends on which items are scored together, and a corpus of one item
    scores 0 (every idf is ``log 1 - log 1 = 0``); tf is the raw n-gram count (the paper divides
    by the sentence's n-gram total, the code does not, and with the clipping it matters); a
    cosine with a zero vector is 0. The scorer measures lengths in bigrams (``|x| - 1``), which
    gives the same penalty as token lengths whenever the cosine is not 0, so tokens are used here.

    Args:
        candidates: one token list per item; an empty one is allowed (it scores 0).
        references: per item, a non-empty list of reference token lists.
        sigma: the standard deviation of the length penalty, in tokens (6 in CIDEr-D).

    Returns:
        CIDEr-D of the corpus, in ``[0, 10]``: each clipped cosine is at most 1 (Cauchy-Schwarz);
        an item whose candidate equals each of its references scores 10 if no idf is 0.

    Raises:
        ValueError: different numbers of candidates and reference lists, an item without
            references, a string where a token list belongs, or ``sigma <= 0``.
    """
    _check_corpus(candidates, references)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < math.inf:
        raise ValueError(f"expected sigma as a positive number, got {sigma!r}")
    reference_counts = [[_ngram_counts(ref, _CIDER_N) for ref in refs] for refs in references]
    df = _document_frequency(reference_counts)
    log_items = math.log(len(candidates))  # log N, the idf of an n-gram in one item's references
    scores = []
    for candidate, refs, counts in zip(candidates, references, reference_counts, strict=True):
        vector = _tfidf(_ngram_counts(candidate, _CIDER_N), df, log_items)
        total = np.zeros(_CIDER_N)  # summed over the references, per n-gram order
        for ref, ref_counts in zip(refs, counts, strict=True):
            penalty = math.exp(-((len(candidate) - len(ref)) ** 2) / (2 * sigma**2))
            total += _clipped_cosine(vector, _tfidf(ref_counts, df, log_items)) * penalty
        scores.append(float(np.mean(total)) / len(refs) * 10.0)
    return float(np.mean(scores))


def caption_scores(candidates: Sequence[Sequence[str]],
                   references: Sequence[Sequence[Sequence[str]]]) -> dict[str, float]:
    """BLEU-1..4 (:func:`bleu`) and CIDEr-D (:func:`cider_d`) of a corpus, by the names used in
    the README and in ``--json`` output: ``bleu1``, ``bleu2``, ``bleu3``, ``bleu4``, ``cider``.

    Example:
        >>> scores = caption_scores([["a", "dog"], ["a", "cat"]],
        ...                         [[["a", "dog"]], [["a", "cat"], ["one", "cat"]]])
        >>> sorted(scores)
        ['bleu1', 'bleu2', 'bleu3', 'bleu4', 'cider']
    """
    scores = {f"bleu{n}": score for n, score in enumerate(bleu(candidates, references), start=1)}
    scores["cider"] = cider_d(candidates, references)
    return scores
