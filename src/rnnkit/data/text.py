"""Text for the character-level language model (char-rnn): read it, map characters to ids, batch.

The flow for training on a user's own text::

    text = read_text("data/")                     # a file or a folder of files, UTF-8
    vocab = CharVocab.from_text(text)             # sorted unique characters; id = index
    ids = vocab.encode(text)                      # (N,) int64
    train_ids, val_ids = split_tail(ids, 0.1)     # the last 10% is validation, contiguous
    batches = StatefulBatches(train_ids, batch_size=32, seq_len=64)
    x, y = batches.batch(step % len(batches))     # (B, T) each; reset the state when
                                                  # batches.starts_epoch(step)
    for x, y, n_targets in windows(val_ids, seq_len=64, batch_size=32): ...

Symbols: ``N`` characters in a stream, ``B`` rows per batch, ``T`` steps per window (``seq_len``),
``L`` characters per row.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..errors import RnnkitError
from . import files
from .vocab import Vocabulary

DEFAULT_CORPUS_NAME = "python-reference"

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UNKNOWN_MODES = ("error", "skip")


class TextDataError(RnnkitError):
    """Bad text input; the message names the file and position."""


# ------------------------------------------------------------------------------- reading
def read_text(path: str | os.PathLike[str], *, errors: str = "strict") -> str:
    """The text of a UTF-8 file, or of every file below a folder, with ``"\\r\\n"`` made ``"\\n"``.

    Args:
        path: a file, or a folder: every regular file below it, recursively, in sorted path order
            (component by component, so a folder's files stay together: ``a/z.txt`` comes before
            ``a.txt``), joined with ``"\\n"`` between files. Hidden files and folders (name
            starting with ``"."``) and empty files are skipped.
        errors: ``"strict"``: bytes that are not UTF-8 raise :class:`TextDataError` naming the
            file and line, the bytes and their offset; ``"replace"``: they become U+FFFD.

    A UTF-8 byte order mark at the start of a file is dropped; a gzipped file is read
    uncompressed (:mod:`rnnkit.data.files`). A file holding a NUL byte is binary
    and raises :class:`TextDataError` in both modes (UTF-16 files land here too), as do a missing
    path, an empty file given by name, and a folder without a non-empty text file.
    """
    files.check_encoding_errors(errors, "errors")
    if os.path.isdir(path):
        return _read_folder(os.fspath(path), errors)
    if not os.path.exists(path):
        raise TextDataError(f"no such file or folder: {os.fspath(path)}")
    text = _read_file(os.fspath(path), errors)
    if not text:
        raise TextDataError(f"expected a non-empty text file, got an empty file: {path}")
    return text


def _read_folder(folder: str, errors: str) -> str:
    """Every non-empty, non-hidden regular file below ``folder``, sorted, joined with ``"\\n"``."""
    texts = [_read_file(file, errors) for file in _text_files(folder)]
    texts = [text for text in texts if text]
    if not texts:
        raise TextDataError(f"no text files in {folder} (hidden and empty files are skipped)")
    return "\n".join(texts)


def _text_files(folder: str) -> list[str]:
    """Paths of the regular files below ``folder`` outside hidden files and folders, sorted by
    their path components relative to ``folder``."""
    found: list[tuple[tuple[str, ...], str]] = []
    for dirpath, dirnames, filenames in os.walk(folder):  # does not follow links to folders
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]  # prune in place
        rel_parts = os.path.relpath(dirpath, folder).split(os.sep)
        rel_parts = [] if rel_parts == ["."] else rel_parts
        for name in filenames:
            file = os.path.join(dirpath, name)
            if not name.startswith(".") and os.path.isfile(file):  # no sockets, broken links
                found.append(((*rel_parts, name), file))
    return [file for _, file in sorted(found)]


def _read_file(path: str, errors: str) -> str:
    """The decoded text of one file ("" if it is empty); see :func:`read_text`."""
    raw = files.read_bytes(path, TextDataError)
    _check_not_binary(raw, path)
    text = files.read_text(path, errors, TextDataError, raw=raw, hint=" (use --encoding-errors "
                           "replace to replace bad bytes)")
    return text.replace("\r\n", "\n")


def _check_not_binary(raw: bytes, path: str) -> None:
    """Raise :class:`TextDataError` if ``raw`` holds a NUL byte: text files never do."""
    offset = raw.find(b"\x00")
    if offset < 0:
        return
    hint = ("; it starts with a UTF-16 byte order mark: save it as UTF-8"
            if raw.startswith(_UTF16_BOMS) else "")
    raise TextDataError(f"expected a UTF-8 text file, got a binary file (NUL byte 0x00 at "
                        f"offset {offset}) in {path}{hint}")


def default_corpus() -> str:
    """English text present wherever CPython is, no download: the Python language reference.

    The topics of ``pydoc_data.topics`` (what ``help("if")`` shows) joined in sorted key order
    with blank lines between them, about 465,000 characters.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise TextDataError(
            f"the default corpus {DEFAULT_CORPUS_NAME!r} (the Python language reference, module "
            "pydoc_data) is missing from this Python installation; pass --text FILE to train on "
            "your own text") from None
    return "\n\n".join(topics[name] for name in sorted(topics))


# ------------------------------------------------------------------------------- vocabulary
@dataclass(frozen=True)
class CharVocab(Vocabulary):
    """Characters and their ids: ``chars[id]`` is the character of ``id``.

    :meth:`from_text` sorts the characters; any order of distinct, single, non-surrogate
    characters is accepted, so a saved vocabulary always loads back with the same ids. JSON:
    ``{"chars": [...]}``.
    """

    NOUN, KEY, ERROR = "character", "chars", TextDataError
    # code points in increasing order and the id of each, for vectorised lookup in encode
    _sorted_points: np.ndarray = field(init=False, repr=False, compare=False)
    _ids_of_sorted: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        points = np.array([ord(c) for c in self.chars], dtype=np.uint32)  # (V,)
        order = np.argsort(points, kind="stable")  # (V,)
        object.__setattr__(self, "_sorted_points", points[order])
        object.__setattr__(self, "_ids_of_sorted", order.astype(np.int64))

    @property
    def chars(self) -> tuple[str, ...]:
        """The distinct characters (code points); id = index."""
        return self.tokens

    def _check_token(self, char: object, index: int) -> None:
        """Raise unless ``char`` is one character that is not a surrogate (which no UTF-8 file
        can hold)."""
        if not isinstance(char, str) or len(char) != 1:
            raise TextDataError(f"expected each vocabulary entry to be one character, "
                                f"got {char!r} at index {index}")
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise TextDataError(f"expected characters, got the lone surrogate U+{ord(char):04X} "
                                f"at index {index}")

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The sorted distinct characters of ``text``."""
        if not text:
            raise TextDataError("cannot build a character vocabulary from an empty text")
        return cls(tuple(sorted(set(text))))

    def encode(self, text: str, *, unknown: str = "error") -> Tensor:
        """The ids ``(N,)`` int64 of the ``N`` characters of ``text``.

        ``unknown="error"`` raises :class:`TextDataError` naming the first character not in the
        vocabulary and its position; ``unknown="skip"`` drops such characters (find them first
        with :meth:`unknown_chars` to warn the user).
        """
        if unknown not in _UNKNOWN_MODES:
            raise ValueError(f"expected unknown to be 'error' or 'skip', got {unknown!r}")
        ids, known = self._lookup(_code_points(text))  # (N,) each
        if unknown == "skip":
            ids = ids[known]  # (N,) -> (number known,)
        elif not known.all():
            position = int(np.argmin(known))  # the first False
            char = text[position]
            line = text.count("\n", 0, position) + 1
            raise TextDataError(
                f"expected characters of the vocabulary ({len(self)} characters), got "
                f"{char!r} (U+{ord(char):04X}) at position {position} (line {line}); "
                "characters unseen in training cannot be encoded")
        return torch.from_numpy(ids)

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of ``text`` not in the vocabulary, in order of first
        appearance."""
        points = _code_points(text)  # (N,)
        _, known = self._lookup(points)
        unknown_points = points[~known]  # (number unknown,)
        distinct, first = np.unique(unknown_points, return_index=True)
        return [chr(p) for p in distinct[np.argsort(first)]]

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The text of ``ids``: an iterable of ints or a 1-D integer tensor."""
        if isinstance(ids, Tensor):
            if ids.dim() != 1:
                raise ValueError(f"expected a 1-D tensor of ids, got shape {tuple(ids.shape)}")
            if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
                raise TypeError(f"expected integer ids, got a tensor of {ids.dtype}")
            ids = ids.tolist()
        chars, size = self.chars, len(self.chars)
        out = []
        for position, i in enumerate(ids):
            i = operator.index(i)  # ints and integer scalars only, not floats
            if not 0 <= i < size:
                raise ValueError(f"expected ids in [0, {size}), got {i} at position {position}")
            out.append(chars[i])
        return "".join(out)

    def _lookup(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ids of code points ``(N,)`` and whether each is in the vocabulary, ``(N,)`` each
        (the id of an unknown point is meaningless)."""
        slot = np.searchsorted(self._sorted_points, points)  # (N,) insertion points
        slot = np.minimum(slot, len(self) - 1)  # past the largest point -> the largest
        known = self._sorted_points[slot] == points  # (N,)
        return self._ids_of_sorted[slot], known


def _code_points(text: str) -> np.ndarray:
    """One uint32 code point per character of ``text``, ``(N,)``. Lone surrogates pass through
    (and are unknown to every vocabulary)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


# ------------------------------------------------------------------------------- splitting
def split_tail(ids: Tensor, val_fraction: float) -> tuple[Tensor, Tensor]:
    """``(train, val)``: the last ``round(N * val_fraction)`` ids are validation, the rest
    training; contiguous and unshuffled (the usual 90/10 split of char-rnn and nanoGPT), views of
    ``ids``."""
    _check_stream(ids)
    if not 0 < val_fraction < 1:
        raise ValueError(f"expected 0 < val_fraction < 1, got {val_fraction}")
    n = ids.numel()
    n_val = round(n * val_fraction)
    if not 0 < n_val < n:
        raise TextDataError(
            f"the text has {n} characters: too short to split off {val_fraction:.0%} for "
            f"validation with both parts non-empty (validation would get {n_val}); "
            "use a longer text or another --val-fraction")
    return ids[:n - n_val], ids[n - n_val:]


def _check_stream(ids: object) -> None:
    """Raise unless ``ids`` is a 1-D integer tensor."""
    if not isinstance(ids, Tensor):
        raise TypeError(f"expected ids to be a Tensor, got {type(ids).__name__}")
    if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"expected a 1-D integer tensor of ids, got shape {tuple(ids.shape)} "
                         f"of {ids.dtype}")


def _check_positive(**sizes: int) -> None:
    for name, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"expected {name} to be a positive int, got {size!r}")


def _rows(ids: Tensor, rows: int) -> tuple[Tensor, Tensor]:
    """The stream cut into ``rows`` rows of ``L = (N - 1) // rows`` inputs and their targets,
    the inputs shifted by one character: ``(rows, L)`` each. The last ``(N - 1) % rows`` targets
    are dropped. Row ``r`` holds inputs ``ids[r*L : (r+1)*L]``; its last target is the first
    input of row ``r + 1``."""
    row_len = (ids.numel() - 1) // rows
    inputs = ids[:rows * row_len].long().reshape(rows, row_len)  # (rows * L,) -> (rows, L)
    targets = ids[1:rows * row_len + 1].long().reshape(rows, row_len)  # (rows * L,) -> (rows, L)
    return inputs, targets


# ------------------------------------------------------------------------------- batching
class StatefulBatches:
    """char-rnn's batching for truncated BPTT: the stream is cut into `batch_size` parallel rows
    of contiguous text; batch k+1 continues batch k in every row, so a model can carry its hidden
    state across batches. Targets are the inputs shifted by one character.

    The stream of ``N`` ids is cut into ``R = batch_size * world_size`` rows of
    ``L = (N - 1) // R`` characters (the last ``(N - 1) % R`` characters are dropped); batch
    ``k`` is columns ``[k*T, (k+1)*T)`` of every row, ``len(self) = L // T`` batches (the last
    ``L % T`` columns of each row are dropped). Every epoch sees the same batches.

    Distributed: rank ``r`` takes rows ``[r*batch_size, (r+1)*batch_size)``, so ranks see
    different text and together form the global batch of one process with ``R`` rows; all ranks
    have the same number of batches.

    Epochs and resume: :meth:`batch` is a pure function of its index, so a trainer calls
    ``batch(step % len(self))`` and resumes exactly from a stored step. When
    :meth:`starts_epoch` is true the rows jump back to the start of the text, so the caller must
    reset the hidden state to zeros there (carrying it over would feed the end of a row into its
    beginning).

    Args:
        ids: ``(N,)`` integer ids.  batch_size: ``B``, rows per batch on this rank.
        seq_len: ``T``, steps per batch (the truncation length of BPTT).
        rank, world_size: this process's place among ``world_size`` data-parallel processes.
    """

    def __init__(self, ids: Tensor, batch_size: int, seq_len: int, *, rank: int = 0,
                 world_size: int = 1) -> None:
        _check_stream(ids)
        _check_positive(batch_size=batch_size, seq_len=seq_len, world_size=world_size)
        if not 0 <= rank < world_size:
            raise ValueError(f"expected 0 <= rank < world_size={world_size}, got rank={rank}")
        rows = batch_size * world_size
        needed = rows * seq_len + 1  # one full window in every row, plus the last target
        if ids.numel() < needed:
            batch = (f"batch {batch_size}" if world_size == 1
                     else f"batch {batch_size} per process x {world_size} processes")
            raise TextDataError(
                f"the training text has {ids.numel()} characters: too short for {batch} x "
                f"sequence {seq_len} (needs at least {needed}); use a smaller --batch-size or "
                "--seq-len")
        self.batch_size, self.seq_len = batch_size, seq_len
        self.rank, self.world_size = rank, world_size
        inputs, targets = _rows(ids, rows)  # (R, L) each
        mine = slice(rank * batch_size, (rank + 1) * batch_size)
        self._inputs, self._targets = inputs[mine], targets[mine]  # (R, L) -> (B, L) each
        self.row_len = inputs.shape[1]  # L

    def __len__(self) -> int:
        """Batches per epoch, ``L // T``."""
        return self.row_len // self.seq_len

    def batch(self, index: int) -> tuple[Tensor, Tensor]:
        """Batch ``index`` in ``[0, len(self))``: inputs ``x`` and targets ``y``, ``(B, T)`` int64
        each, new tensors; ``y[:, t]`` is the character after ``x[:, t]``, and row ``r``
        continues row ``r`` of batch ``index - 1``."""
        if not 0 <= index < len(self):
            raise IndexError(f"expected a batch index in [0, {len(self)}), got {index}")
        columns = slice(index * self.seq_len, (index + 1) * self.seq_len)
        x = self._inputs[:, columns].clone(memory_format=torch.contiguous_format)  # (B, T)
        y = self._targets[:, columns].clone(memory_format=torch.contiguous_format)  # (B, T)
        return x, y

    def starts_epoch(self, step: int) -> bool:
        """Whether training step ``step`` (counted from 0 over all epochs) is the first batch of
        an epoch, where the caller must reset the hidden state."""
        return step % len(self) == 0


def windows(ids: Tensor, seq_len: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor, int]]:
    """Evaluation batches over a whole stream (validation or a test file): ``(x, y, n_targets)``.

    The layout is :class:`StatefulBatches`' (rows continue across batches, so the model carries
    its state from one batch to the next and starts each call from zeros), except that the last
    window of the rows is kept even when shorter than ``seq_len``, so nothing is padded:

    * the stream of ``N >= 2`` ids is cut into ``R = min(batch_size, N - 1)`` rows of
      ``L = (N - 1) // R`` characters; there are ``ceil(L / seq_len)`` batches, ``x`` and ``y``
      ``(R, t)`` int64 each, with ``t = seq_len`` except in the last batch, which holds the
      remaining columns (``1 <= t <= seq_len``).
    * ``n_targets = R * t`` is the number of targets of the batch, so a mean loss over the stream
      is ``sum(loss_sum) / sum(n_targets)``.
    * Covered: the targets are exactly ``ids[1 : R*L + 1]``, each once, so
      ``sum(n_targets) = R * L``. Not predicted: ``ids[0]`` (no context) and the last
      ``(N - 1) % R`` ids, fewer than ``batch_size``. With ``batch_size=1`` every id after the
      first is predicted, all with the state of the whole text before it; with more rows, the
      first step of each row starts from a zero state.
    """
    _check_stream(ids)  # checked here, not at the first next(): windows is not a generator
    _check_positive(seq_len=seq_len, batch_size=batch_size)
    n = ids.numel()
    if n < 2:
        raise TextDataError(f"the evaluation text has {n} characters: at least 2 are needed "
                            "(one to read and one to predict)")
    inputs, targets = _rows(ids, min(batch_size, n - 1))  # (R, L) each
    return _windows_of_rows(inputs, targets, seq_len)


def _windows_of_rows(inputs: Tensor, targets: Tensor,
                     seq_len: int) -> Iterator[tuple[Tensor, Tensor, int]]:
    """Consecutive column windows of ``seq_len`` (the last one possibly shorter) of ``(R, L)``
    rows."""
    for start in range(0, inputs.shape[1], seq_len):
        columns = slice(start, start + seq_len)
        x = inputs[:, columns].clone(memory_format=torch.contiguous_format)  # (R, t)
        y = targets[:, columns].clone(memory_format=torch.contiguous_format)  # (R, t)
        yield x, y, y.numel()
