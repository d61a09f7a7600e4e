"""Parallel text for translation (many-to-many, encoder-decoder): read sentence pairs, drop the
too long ones, batch them by length.

The flow for training a translator::

    report = read_parallel(["train.en", "train.de"])   # Multi30k: two aligned files, en -> de
    report = read_parallel(["fra.txt"], reverse=True)  # Tatoeba: "English<TAB>French", fr -> en
    src = Tokenizer.train("subword", [p.source for p in report.pairs])  # rnnkit.data.subword
    tgt = Tokenizer.train("subword", [p.target for p in report.pairs])
    ids = [(src.encode(p.source), tgt.encode(p.target)) for p in report.pairs]
    kept, too_long = filter_by_length(ids, max_len=50)   # report too_long to the user
    batches = PairBatches([s for s, _ in kept], [t for _, t in kept], batch_size=64, seed=0)
    source, source_lengths, target, target_lengths = batches.batch(epoch, index)

Symbols: ``N`` pairs, ``B`` pairs per batch, ``S`` the longest source of a batch, ``T`` the
longest target of a batch *with* ``<start>`` and ``<end>``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import RnnkitError
from . import files
from .captions import CaptionVocab
from .labelled import BucketBatches

PAD, START, END = CaptionVocab.PAD, CaptionVocab.START, CaptionVocab.END  # ids 0, 2, 3

StrPath = str | os.PathLike[str]  # a file path


class ParallelDataError(RnnkitError):
    """Bad parallel input; the message names the file and line (``path:line``) or both files."""


@dataclass(frozen=True)
class SentencePair:
    """One sentence and its translation; ``origin`` says where it came from, for messages."""

    source: str  # stripped of surrounding whitespace, never empty
    target: str  # likewise
    origin: str  # "path:line" of the source side ("train.en:17"; for a tsv file, its line)


@dataclass
class ParallelReport:
    """What a reader found: the pairs in file order, how many pairs were dropped for an empty
    side, and one message per bad line that was skipped (only with ``skip_bad=True``)."""

    pairs: list[SentencePair]
    empty: int  # pairs dropped because a side is empty or blank (counted, not an error)
    skipped: list[str]  # "path:line: problem" of each bad line skipped


# ------------------------------------------------------------------------------- reading
def read_parallel(paths: StrPath | Sequence[StrPath], *, reverse: bool = False,
                  skip_bad: bool = False, encoding_errors: str = "strict") -> ParallelReport:
    """The sentence pairs of one tab-separated file (:func:`read_tsv_pairs`, the first column
    is the source) or of two aligned files (:func:`read_aligned`, source file first).

    ``reverse=True`` swaps the sides: the second column, or the second file, is the source.
    Tatoeba's ``fra.txt`` is ``English<TAB>French``, so French -> English needs ``reverse``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if len(paths) == 1:
        columns = (1, 0) if reverse else (0, 1)
        return read_tsv_pairs(paths[0], source_column=columns[0], target_column=columns[1],
                              skip_bad=skip_bad, encoding_errors=encoding_errors)
    if len(paths) == 2:
        source, target = reversed(paths) if reverse else paths
        return read_aligned(source, target, skip_bad=skip_bad, encoding_errors=encoding_errors)
    raise ValueError(f"expected 1 path (a tab-separated file) or 2 paths (aligned source and "
                     f"target files), got {len(paths)}")


def read_aligned(source: StrPath, target: StrPath, *, skip_bad: bool = False,
                 encoding_errors: str = "strict") -> ParallelReport:
    """The sentence pairs of two aligned files, line ``i`` of ``target`` translating line ``i``
    of ``source`` (Multi30k's ``train.en`` / ``train.de``).

    Lines end at ``\\n`` only (a ``\\r`` before it is dropped; other Unicode line breaks such
    as U+2028 stay inside the sentence, so the alignment holds). Gzipped files are recognised
    by their first bytes; a UTF-8 byte order mark is dropped. Blank lines at the end of a
    file, after the last line holding text in either file, are ignored (so one file may end
    with an extra empty line); any other pair with an empty or blank side is dropped and
    counted in ``empty``.

    Raises :class:`ParallelDataError` if the files have different numbers of lines (naming both
    files and both counts), and for bytes that are not UTF-8 (file, line and byte offset; with
    ``skip_bad=True`` the pair is skipped and the message kept in ``skipped``;
    ``encoding_errors="replace"`` turns such bytes into U+FFFD instead).
    """
    files.check_encoding_errors(encoding_errors)
    source, target = os.fspath(source), os.fspath(target)
    source_lines, target_lines = _lines(source), _lines(target)
    n = max(_text_length(source_lines), _text_length(target_lines))  # blank lines after: end
    if min(len(source_lines), len(target_lines)) < n:
        raise ParallelDataError(f"expected aligned files with as many lines, got "
                                f"{len(source_lines)} lines in {source} and "
                                f"{len(target_lines)} lines in {target}")
    pairs = _Pairs(f"{source} and {target}", _bad_lines(skip_bad))
    for src, tgt in zip(source_lines[:n], target_lines[:n], strict=True):
        src_text = _text(src, source, encoding_errors, pairs)
        tgt_text = _text(tgt, target, encoding_errors, pairs) if src_text is not None else None
        if tgt_text is not None:
            pairs.add(src_text, tgt_text, f"{source}:{src.number}")
    return pairs.report()


def read_tsv_pairs(path: StrPath, *, source_column: int = 0, target_column: int = 1,
                   skip_bad: bool = False, encoding_errors: str = "strict") -> ParallelReport:
    """The sentence pairs of a file with tab-separated columns (Tatoeba's ``fra.txt``:
    ``English<TAB>French<TAB>attribution``); columns by 0-based index, extra columns ignored,
    no quoting. Blank lines are skipped silently; a pair with an empty side is dropped and
    counted in ``empty``.

    Mind the order: ``fra.txt`` is English first, so French -> English is
    ``source_column=1, target_column=0`` (or :func:`read_parallel` with ``reverse=True``).

    ``skip_bad=False`` raises :class:`ParallelDataError` at the first bad line (too few columns:
    ``"fra.txt:7: expected at least 2 tab-separated columns, got 1"``; bytes that are not
    UTF-8); ``True`` records the message in ``skipped`` and goes on.
    """
    files.check_encoding_errors(encoding_errors)
    for name, value in (("source_column", source_column), ("target_column", target_column)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"expected {name} to be a non-negative int, got {value!r}")
    if source_column == target_column:
        raise ValueError(f"expected different source and target columns, got {source_column} "
                         "for both")
    path = os.fspath(path)
    needed = max(source_column, target_column) + 1
    pairs = _Pairs(path, _bad_lines(skip_bad))
    for raw in _lines(path):
        origin = f"{path}:{raw.number}"
        line = _text(raw, path, encoding_errors, pairs)
        if line is None or not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < needed:
            hint = " (tabs replaced by spaces?)" if needed == 2 and "  " in line else ""
            pairs.bad.add(origin, f"expected at least {needed} tab-separated columns, got "
                                  f"{len(columns)}{hint}")
        else:
            pairs.add(columns[source_column], columns[target_column], origin)
    return pairs.report()


@dataclass
class _Pairs:
    """Collects the pairs, the empty count and the bad-line messages of one read."""

    what: str  # the file, or "a and b", for the message when nothing is left
    bad: files.BadRecords
    pairs: list[SentencePair] = field(default_factory=list)
    empty: int = 0

    def add(self, source: str, target: str, origin: str) -> None:
        source, target = source.strip(), target.strip()
        if source and target:
            self.pairs.append(SentencePair(source, target, origin))
        else:
            self.empty += 1

    def report(self) -> ParallelReport:
        skipped = self.bad.messages
        if not self.pairs:
            why = [f"{self.empty} with an empty side"] if self.empty else []
            if skipped:
                why.append(f"{len(skipped)} bad, the first: {skipped[0]}")
            raise ParallelDataError(f"no sentence pairs in {self.what}"
                                    + (f" ({'; '.join(why)})" if why else ""))
        return ParallelReport(self.pairs, self.empty, skipped)


def _bad_lines(skip_bad: bool) -> files.BadRecords:
    return files.BadRecords(skip_bad, ParallelDataError, "pass skip_bad=True to skip bad lines")


def _lines(path: str) -> list[files.Line]:
    """The lines of a file (gzipped or not) split at ``\\n``, without ``\\r\\n``/``\\n``; a
    UTF-8 byte order mark is dropped."""
    path = files.require_file(path, "a text file", ParallelDataError)
    return [files.Line(line.number, line.offset, line.data.rstrip(b"\n").removesuffix(b"\r"))
            for line in files.lines(path, ParallelDataError)]


def _text_length(lines: list[files.Line]) -> int:
    """The number of lines up to the last non-blank one."""
    return next((i + 1 for i in range(len(lines) - 1, -1, -1) if lines[i].data.strip()), 0)


def _text(line: files.Line, path: str, encoding_errors: str, pairs: _Pairs) -> str | None:
    """The text of a line (U+FFFD for bytes that are not UTF-8 with ``"replace"``), or
    ``None`` after reporting it as bad with ``"strict"`` (naming file, line and offset)."""
    problem = files.utf8_problem(line.data, line.offset) if encoding_errors == "strict" else None
    if problem:
        pairs.bad.add(f"{path}:{line.number}", f"{problem} (pass encoding_errors='replace' to "
                                               "replace bad bytes)")
        return None
    return line.data.decode("utf-8", "replace")


# ------------------------------------------------------------------------------- lengths
class LengthFilter(NamedTuple):
    """What :func:`filter_by_length` kept and how many it dropped; unpacks as
    ``kept, too_long = filter_by_length(...)``."""

    kept: list[tuple[Sequence[int], Sequence[int]]]  # (source ids, target ids), in input order
    too_long: int  # pairs dropped: source or target longer than max_len


def filter_by_length(pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                     max_len: int) -> LengthFilter:
    """The ``(source ids, target ids)`` pairs whose sides both have at most ``max_len`` tokens
    (without ``<start>``/``<end>``), and the number dropped, for the caller to report: long
    pairs cost memory and time in training. Filter training data only; evaluating on a filtered
    test set would overstate BLEU."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"expected max_len to be a positive int, got {max_len!r}")
    kept = [(s, t) for s, t in pairs if len(s) <= max_len and len(t) <= max_len]
    return LengthFilter(kept, len(pairs) - len(kept))


# ------------------------------------------------------------------------------- batching
class PairBatch(NamedTuple):
    """One batch of :class:`PairBatches`; unpacks as a tuple of four tensors, all int64."""

    source: Tensor  # (B, S) source ids, PAD after each sentence, longest sentence first
    source_lengths: Tensor  # (B,) >= 1, decreasing
    target: Tensor  # (B, T) [START, ids..., END], then PAD
    target_lengths: Tensor  # (B,) with START and END: ids + 2


class PairBatches:
    """Batches of ``(source ids, target ids)`` pairs of similar source lengths, so padding
    stays small; shuffled per epoch with a seed; ``batch(epoch, index)`` is a pure function, so
    training resumes exactly.

    The plan is :class:`rnnkit.data.labelled.BucketBatches` over the sources (shuffle, sort
    chunks of ``bucket_size`` batches by source length, longest first, cut, shuffle the
    batches); every pair is in exactly one batch per epoch. Targets get ``<start>`` and
    ``<end>`` here, so the decoder reads ``target[:, :-1]`` and predicts ``target[:, 1:]``.

    Batches hold ``batch_size`` sentences (not a token budget, as fairseq's ``max_tokens``):
    bucketing by length keeps the token count of batches close anyway, and a fixed ``B`` keeps
    the trainer and the learning rate simple; :func:`filter_by_length` bounds the longest.

    Args:
        sources, targets: ``N`` lists of token ids each, without ``<start>``/``<end>``; sources
            must not be empty (an encoder cannot read zero steps), targets may be.
        batch_size: ``B``.  shuffle, seed, bucket_size: as for ``BucketBatches``.
    """

    def __init__(self, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                 batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 bucket_size: int = 100) -> None:
        if len(sources) != len(targets):
            raise ValueError(f"expected one target per source, got {len(sources)} sources and "
                             f"{len(targets)} targets")
        self._plan = BucketBatches(sources, range(len(sources)), batch_size, shuffle=shuffle,
                                   seed=seed, bucket_size=bucket_size)
        self.target_lengths = np.array([len(t) for t in targets], dtype=np.int64)  # (N,)
        self._offsets = np.concatenate([[0], np.cumsum(self.target_lengths)])  # (N + 1,)
        self._target_ids = np.fromiter(itertools.chain.from_iterable(targets), dtype=np.int64,
                                       count=int(self._offsets[-1]))  # (sum of lengths,)

    def __len__(self) -> int:
        """Batches per epoch, ``ceil(N / B)``."""
        return len(self._plan)

    def indices(self, epoch: int, index: int) -> np.ndarray:
        """The pair indices of batch ``index`` of ``epoch``, ``(B,)``, longest source first
        (to find the reference texts of a batch)."""
        return self._plan.indices(epoch, index)

    def batch(self, epoch: int, index: int) -> PairBatch:
        """Batch ``index`` of ``epoch``; see :class:`PairBatch`."""
        source, source_lengths, rows = self._plan.batch(epoch, index)  # (B, S), (B,), (B,)
        rows = rows.numpy()
        lengths = self.target_lengths[rows] + 2  # (B,) with START and END
        target = np.full((len(rows), int(lengths.max())), PAD, dtype=np.int64)  # (B, T)
        target[:, 0] = START
        for row, pair in enumerate(rows):
            start = self._offsets[pair]
            target[row, 1:lengths[row] - 1] = self._target_ids[start:self._offsets[pair + 1]]
            target[row, lengths[row] - 1] = END
        return PairBatch(source, source_lengths, torch.from_numpy(target),
                         torch.from_numpy(lengths))
