"""Labelled text for classification (many-to-one, e.g. sentiment): read examples, tokenise, map
labels and words to ids, batch by length.

The flow for training on a user's own reviews::

    report = read_labelled("train.csv")                # csv, tsv, jsonl(.gz), sst, imdb folder
    labels = LabelSet.from_examples(report.examples)   # "0", "1", ... or "neg", "pos": id = index
    tokens = [tokenize(ex.text) for ex in report.examples]
    vocab = WordVocab.build(tokens, min_freq=2, max_size=20_000)
    ids = [vocab.encode(t, max_len=400) for t in tokens]
    y = [labels.encode(ex.label, ex.source) for ex in report.examples]
    batches = BucketBatches(ids, y, batch_size=32, seed=0)
    x, lengths, y = batches.batch(epoch, index)        # (B, T), (B,), (B,)

Symbols: ``N`` examples, ``B`` examples per batch, ``T`` the longest sequence of a batch.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..errors import RnnkitError
from . import files
from .vocab import Vocabulary

FORMATS = ("auto", "csv", "tsv", "jsonl", "sst", "imdb")
DEFAULT_TEXT_COLUMNS = ("text", "sentence", "review")  # looked for in this order, any case
DEFAULT_LABEL_COLUMNS = ("label", "sentiment", "polarity")

_EXTENSION_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
                      ".json": "jsonl", ".ndjson": "jsonl"}
_HEADER_SAMPLE_ROWS = 20  # data rows looked at to tell a header row from data
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class LabelledDataError(RnnkitError):
    """Bad labelled input; the message names the file and line (``path:line``)."""


@dataclass(frozen=True)
class Example:
    """One labelled text; ``source`` says where it came from (``"path:line"``, or the file's path
    for a file holding one example), for messages."""

    text: str  # stripped of surrounding whitespace, never empty
    label: str  # as written in the file ("1", "pos", "positive"); ints become decimal strings
    source: str


@dataclass
class ReadReport:
    """What :func:`read_labelled` found: the good examples in file order, and one message per bad
    row that was skipped (only with ``skip_bad_rows=True``)."""

    examples: list[Example]
    skipped: list[str]


# ------------------------------------------------------------------------------- reading
def read_labelled(path: str | os.PathLike[str], *, format: str = "auto",
                  text_column: str | int | None = None, label_column: str | int | None = None,
                  header: bool | None = None, skip_bad_rows: bool = False,
                  encoding_errors: str = "strict") -> ReadReport:
    """The labelled examples of a file or folder.

    Formats (``format="auto"`` picks one as listed):

    * ``"imdb"``: a folder with ``pos/`` and ``neg/`` subfolders; every ``*.txt`` directly in
      them is one example labelled ``"pos"`` / ``"neg"`` (neg first, then pos, files sorted by
      name); other subfolders (``unsup/``) are ignored. ``source`` is the file's path.
    * ``"csv"`` / ``"tsv"`` (``.csv``; ``.tsv``, ``.tab``): read with :mod:`csv`; TSV uses no
      quoting (as GLUE's SST-2 files, whose sentences hold unbalanced quotes). Columns by name
      (needs a header row) or 0-based index; by default the first of ``text``/``sentence``/
      ``review`` and of ``label``/``sentiment``/``polarity`` in the header, in any case.
      ``header=None`` detects a header row: the first row is one if it holds a column name asked
      for or a default name, or if some column is numeric in the next rows but not in it
      (``body,stars`` above ``great,5``). A row with another field count than the first row is
      bad; a row may span lines (quoted newlines), its source is its first line.
    * ``"jsonl"`` (``.jsonl``, ``.json``, ``.ndjson``): one JSON object per line; keys as the
      columns above (names only). Labels may be strings or integers.
    * ``"sst"``: ``<label> <text>`` per line, the label being the first whitespace-separated
      token (SST-2, SST-5, TREC). Any other file whose first line looks so is read as ``"sst"``;
      one whose first line starts with ``{`` as ``"jsonl"``, one holding a tab as ``"tsv"``.

    Gzipped files (any format but imdb) are recognised by their first bytes, so ``.jsonl.gz`` and
    ``.csv.gz`` work. A UTF-8 byte order mark is dropped; blank lines are skipped.

    Args:
        path: a file, or a folder for ``"imdb"``.
        format: one of ``"auto"``, ``"csv"``, ``"tsv"``, ``"jsonl"``, ``"sst"``, ``"imdb"``.
        text_column, label_column: column name or 0-based index (csv/tsv), key (jsonl).
        header: whether a csv/tsv file starts with a header row; ``None`` detects it.
        skip_bad_rows: ``False`` raises :class:`LabelledDataError` at the first bad row (missing
            or empty text or label, wrong field count, invalid JSON, bytes that are not UTF-8),
            naming file, line and problem; ``True`` records the message in ``skipped`` and goes
            on.
        encoding_errors: ``"strict"``: non-UTF-8 bytes make the row bad; ``"replace"``: they
            become U+FFFD (TREC's file holds a few Latin-1 bytes).

    Raises :class:`LabelledDataError` for a missing path, an unknown layout, wrong columns, and
    when no example is left (empty file or folder, or every row bad).
    """
    path = os.fspath(path)
    _check_read_options(format, encoding_errors)
    if not os.path.exists(path):
        raise LabelledDataError(f"no such file or folder: {path}")
    fmt = _detect_format(path, encoding_errors) if format == "auto" else format
    _check_path_kind(path, fmt)
    if fmt in ("sst", "imdb") and (text_column, label_column, header) != (None, None, None):
        raise ValueError(f"text_column, label_column and header apply to csv, tsv and jsonl, "
                         f"not to the {fmt} format of {path}")
    rows = _Rows(path, files.BadRecords(skip_bad_rows, LabelledDataError,
                                       "pass skip_bad_rows=True to skip bad rows"))
    if fmt == "imdb":
        _read_imdb(path, rows, encoding_errors)
    elif fmt == "sst":
        _read_sst(path, rows, encoding_errors)
    elif fmt == "jsonl":
        if header is not None:
            raise ValueError(f"header applies to csv and tsv, not to the jsonl file {path}")
        _read_jsonl(path, rows, text_column, label_column, encoding_errors)
    else:
        columns = _Columns(text_column, label_column, header)
        _read_delimited(path, rows, "," if fmt == "csv" else "\t", columns, encoding_errors)
    return rows.report()


def _check_read_options(format: str, encoding_errors: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"expected format to be one of {', '.join(FORMATS)}, got {format!r}")
    files.check_encoding_errors(encoding_errors)


def _check_path_kind(path: str, fmt: str) -> None:
    """Raise unless ``path`` is a folder for ``"imdb"`` and a file for the other formats."""
    if fmt == "imdb" and not os.path.isdir(path):
        raise LabelledDataError(f"expected a folder with pos/ and neg/ subfolders for the imdb "
                                f"format, got a file: {path}")
    if fmt != "imdb" and os.path.isdir(path):
        raise LabelledDataError(f"expected a file for the {fmt} format, got a folder: {path}")


def _detect_format(path: str, encoding_errors: str) -> str:
    """The format of ``path`` by layout, extension, then first line; see :func:`read_labelled`."""
    if os.path.isdir(path):
        return _detect_folder_format(path)
    name = path.lower().removesuffix(".gz")
    for extension, fmt in _EXTENSION_FORMATS.items():
        if name.endswith(extension):
            return fmt
    first = next((line.strip() for line in _lines(path, encoding_errors) if line.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    if "\t" in first:
        return "tsv"
    if re.match(r"\S+ +\S", first):
        return "sst"
    shown = f"first line {first[:60]!r}" if first else "no text"
    raise LabelledDataError(f"cannot tell the format of {path} ({shown}); expected .csv, .tsv, "
                            "or .jsonl, or lines '<label> <text>'; pass format=")


def _detect_folder_format(path: str) -> str:
    if all(os.path.isdir(os.path.join(path, sub)) for sub in ("pos", "neg")):
        return "imdb"
    splits = [sub for sub in ("train", "test") if os.path.isdir(os.path.join(path, sub, "pos"))]
    hint = f" (it has {', '.join(s + '/' for s in splits)}: pass one of those)" if splits else ""
    raise LabelledDataError(f"expected a folder with pos/ and neg/ subfolders (the IMDB layout), "
                            f"got {path}{hint}")


@dataclass
class _Rows:
    """Collects the examples and bad-row messages of one :func:`read_labelled` call."""

    path: str
    bad: files.BadRecords
    examples: list[Example] = field(default_factory=list)

    def add(self, text: str | None, label: str | None, source: str) -> None:
        """Keep the example, or report the row as bad if its text or label is missing, empty or
        holds bytes that are not UTF-8."""
        problem = _field_problem("text", text) or _field_problem("label", label)
        if problem:
            self.bad.add(source, problem)
        else:
            self.examples.append(Example(text.strip(), label.strip(), source))

    def report(self) -> ReadReport:
        skipped = self.bad.messages
        if not self.examples:
            bad = f": all {len(skipped)} rows are bad, the first: {skipped[0]}" if skipped else ""
            raise LabelledDataError(f"no labelled examples in {self.path}{bad}")
        return ReadReport(self.examples, skipped)


def _field_problem(name: str, value: str | None) -> str | None:
    """What is wrong with a text or label field, or ``None``."""
    if value is None:
        return f"missing {name}"
    bad = files.bad_bytes(value)
    if bad:
        return (f"expected UTF-8 text, got {bad} in the {name} "
                "(pass encoding_errors='replace' to replace bad bytes)")
    if not value.strip():
        return f"empty {name}"
    return None


def _lines(path: str, encoding_errors: str) -> Iterator[str]:
    """The lines of a text file (gzipped or not), line endings kept, UTF-8 byte order mark
    dropped. Bytes that are not UTF-8 become lone surrogates (``"strict"``, found later by
    :func:`rnnkit.data.files.bad_bytes`, so the message can name the row) or U+FFFD
    (``"replace"``)."""
    errors = "surrogateescape" if encoding_errors == "strict" else "replace"
    return (text for _, text in files.text_lines(path, errors, LabelledDataError))


# ------------------------------------------------------------------------------- formats
def _read_imdb(root: str, rows: _Rows, encoding_errors: str) -> None:
    """Every ``*.txt`` directly in ``root/neg`` and ``root/pos``, sorted by name."""
    for label in ("neg", "pos"):
        folder = os.path.join(root, label)
        for name in sorted(os.listdir(folder)):
            file = os.path.join(folder, name)
            if name.endswith(".txt") and not name.startswith(".") and os.path.isfile(file):
                rows.add("".join(_lines(file, encoding_errors)), label, file)


def _read_sst(path: str, rows: _Rows, encoding_errors: str) -> None:
    """``<label> <text>`` per line."""
    for number, line in enumerate(_lines(path, encoding_errors), 1):
        parts = line.split(maxsplit=1)  # [label, text], [label] or []
        if not parts:
            continue
        source = f"{path}:{number}"
        if len(parts) == 1:
            rows.bad.add(source, f"expected '<label> <text>', got only {parts[0]!r}")
        else:
            rows.add(parts[1], parts[0], source)


def _read_jsonl(path: str, rows: _Rows, text_column: str | int | None,
                label_column: str | int | None, encoding_errors: str) -> None:
    """One JSON object per line; the keys are chosen on the first object."""
    for given in (text_column, label_column):
        if given is not None and not isinstance(given, str):
            raise ValueError(f"expected JSON keys as str for the jsonl file {path}, "
                             f"got {given!r}")
    keys: tuple[str, str] | None = None
    for number, line in enumerate(_lines(path, encoding_errors), 1):
        if not line.strip():
            continue
        source = f"{path}:{number}"
        obj = _json_object(line, source, rows)
        if obj is None:
            continue
        if keys is None:
            keys = _pick_columns(list(obj), _Columns(text_column, label_column, True), path,
                                 "keys")
            keys = (list(obj)[keys[0]], list(obj)[keys[1]])
        text, label = _json_field(obj, keys[0], source, rows), None
        if text is not None:
            label = _json_field(obj, keys[1], source, rows)
        if text is not None and label is not None:
            rows.add(text, label, source)


def _json_object(line: str, source: str, rows: _Rows) -> dict | None:
    """The object on ``line``, or ``None`` after reporting the row as bad."""
    if source.endswith(":1") and line.lstrip().startswith("["):
        raise LabelledDataError(f"{source}: expected JSON lines (one object per line), got a "
                                "JSON array; write one object per line")
    try:
        obj = json.loads(line.rstrip())  # no newline: the error column stays on this line
    except json.JSONDecodeError as e:
        rows.bad.add(source, f"invalid JSON: {e.msg} at column {e.colno}")
        return None
    if not isinstance(obj, dict):
        rows.bad.add(source, f"expected a JSON object, got {type(obj).__name__}")
        return None
    return obj


def _json_field(obj: dict, key: str, source: str, rows: _Rows) -> str | None:
    """``obj[key]`` as a string (integers become decimal strings), or ``None`` after reporting
    the row as bad."""
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    if value is None:
        rows.bad.add(source, f"missing {key!r}" if key not in obj else f"{key!r} is null")
    else:
        rows.bad.add(source, f"expected {key!r} to be a string or an integer, got {value!r}")
    return None


@dataclass(frozen=True)
class _Columns:
    """The column choice of a csv/tsv/jsonl read, as given by the caller."""

    text: str | int | None
    label: str | int | None
    header: bool | None


def _read_delimited(path: str, rows: _Rows, delimiter: str, columns: _Columns,
                    encoding_errors: str) -> None:
    """A csv (``","``) or tsv (``"\\t"``, no quoting) file."""
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    numbered = files.csv_rows(_lines(path, encoding_errors), path, LabelledDataError,
                              delimiter=delimiter, quoting=quoting)
    head = list(itertools.islice(numbered, _HEADER_SAMPLE_ROWS + 1))  # [(line, row), ...]
    if not head:
        return  # rows.report() raises: no examples
    has_header = columns.header
    if has_header is None:
        has_header = _looks_like_header([row for _, row in head], columns)
    names = [cell.strip() for cell in head[0][1]] if has_header else None
    data = itertools.chain(head[1:] if has_header else head, numbered)
    width = len(head[0][1])
    text_i, label_i = _pick_columns(names, columns, path, "columns", width)
    for line, row in data:
        source = f"{path}:{line}"
        if len(row) != width:
            rows.bad.add(source, f"expected {width} fields, got {len(row)}")
        else:
            rows.add(row[text_i], row[label_i], source)


def _looks_like_header(head: list[list[str]], columns: _Columns) -> bool:
    """Whether the first of ``head`` (the first rows) is a header: it holds a column name asked
    for or a default name (any case), or some column is numeric in every following row of the
    same width but not in the first."""
    first = [cell.strip() for cell in head[0]]
    asked = {name for name in (columns.text, columns.label) if isinstance(name, str)}
    defaults = {name.casefold() for name in DEFAULT_TEXT_COLUMNS + DEFAULT_LABEL_COLUMNS}
    if any(cell in asked or cell.casefold() in defaults for cell in first):
        return True
    below = [row for row in head[1:] if len(row) == len(first)]
    return bool(below) and any(
        not _NUMBER.fullmatch(first[j]) and all(_NUMBER.fullmatch(row[j].strip()) for row in below)
        for j in range(len(first)))


def _pick_columns(names: list[str] | None, columns: _Columns, path: str, noun: str,
                  width: int | None = None) -> tuple[int, int]:
    """The indices of the text and label columns among ``names`` (``None``: no header row,
    ``width`` columns)."""
    width = len(names) if names is not None else width
    text_i = _pick_column(names, columns.text, DEFAULT_TEXT_COLUMNS, "text", path, noun, width)
    label_i = _pick_column(names, columns.label, DEFAULT_LABEL_COLUMNS, "label", path, noun,
                           width)
    if text_i == label_i:
        raise LabelledDataError(f"the text and label columns of {path} are the same column "
                                f"({text_i}); pass text_column= and label_column=")
    return text_i, label_i


def _pick_column(names: list[str] | None, given: str | int | None, defaults: Sequence[str],
                 role: str, path: str, noun: str, width: int) -> int:
    """The index of one column, by the name or index given, else by the first default name."""
    listing = f"; {noun}: {', '.join(names)}" if names is not None else ""
    if isinstance(given, bool) or not isinstance(given, (str, int, type(None))):
        raise TypeError(f"expected {role}_column to be a str, an int or None, got {given!r}")
    if isinstance(given, int):
        if not 0 <= given < width:
            raise LabelledDataError(f"expected a {role} column index in [0, {width}) for {path},"
                                    f" got {given}{listing}")
        return given
    if names is None:
        shown = f"{role}_column={given!r}" if given is not None else f"no {role}_column"
        raise LabelledDataError(f"{path} has no header row, so columns must be given by 0-based "
                                f"index, got {shown}; pass text_column= and label_column=, "
                                "or header=True if the first row names the columns")
    if given is not None:
        if given in names:
            return names.index(given)
        raise LabelledDataError(f"no column {given!r} in {path}{listing}")
    folded = [name.casefold() for name in names]
    for name in defaults:
        if name in folded:
            return folded.index(name)
    looked = "/".join(defaults)
    raise LabelledDataError(f"no {role} column in {path} (looked for {looked}){listing}; "
                            f"pass {role}_column=")


# ------------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class LabelSet(Vocabulary):
    """The class labels and their ids: ``names[id]`` is the label of ``id``. JSON:
    ``{"names": [...]}``."""

    NOUN, WHAT, KEY, ERROR = "label", "label set", "names", LabelledDataError

    @property
    def names(self) -> tuple[str, ...]:
        """The distinct, non-empty labels; id = index."""
        return self.tokens

    @classmethod
    def from_examples(cls, examples: Iterable[Example]) -> LabelSet:
        """The distinct labels of ``examples``, sorted numerically if all are integers
        (``"2" < "10"``), else alphabetically."""
        distinct = {example.label for example in examples}
        if not distinct:
            raise LabelledDataError("cannot build a label set from no examples")
        if all(_INTEGER.fullmatch(label) for label in distinct):
            return cls(tuple(sorted(distinct, key=lambda label: (int(label), label))))
        return cls(tuple(sorted(distinct)))

    def encode(self, label: str, source: str = "") -> int:
        """The id of ``label``; :class:`LabelledDataError` naming it, ``source`` and the known
        labels if it is unknown."""
        try:
            return self._ids[label]
        except KeyError:
            where = f"{source}: " if source else ""
            raise LabelledDataError(f"{where}unknown label {label!r}; known labels: "
                                    f"{', '.join(self.names)}") from None

    def decode(self, label_id: int) -> str:
        """The label of ``label_id``."""
        if not 0 <= label_id < len(self):
            raise IndexError(f"expected a label id in [0, {len(self)}), got {label_id}")
        return self.names[label_id]


# ------------------------------------------------------------------------------- tokens
_BREAK_TAG = re.compile(r"<br\s*/?\s*>", re.IGNORECASE)  # IMDB's line breaks
_TOKEN = re.compile(r"""
      (?:https?://|www\.)[^\s<>"]*[^\s<>"'.,;:!?)\]}]  # URL, without trailing punctuation
    | \d+(?:[.,]\d+)+                                # number with separators: 3.14, 1,000
    | (?:[^\W\d_]\.){2,}                              # initialisms: u.s., e.t., i.e.
    | \b(?:mr|mrs|ms|dr|jr|sr|st|vs|etc|inc|ltd)\.     # common abbreviations
    | '\d0s\b                                        # decades: '70s
    | \w+?(?=n't\b)                                  # the word before n't: do|n't, wo|n't
    | n't\b                                          # PTB's negation clitic
    | -[lr][rsc]b-                                   # PTB's brackets: -lrb- -rrb- (in SST)
    | \w+(?:-\w+)*                                   # word or number; hyphenated words whole
    | '(?:s|re|ve|ll|d|m)\b                          # clitics: it|'s, we|'ll, i|'m
    | ``|''|\.{2,}|-{2,}                             # PTB quotes, ellipsis, dash
    | [^\w\s]                                        # any other symbol alone
""", re.VERBOSE | re.IGNORECASE)


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """Words, numbers and symbols of ``text``, split as the Penn Treebank does (and SST is).

    * contractions: ``don't`` -> ``do n't``, ``won't`` -> ``wo n't``, ``can't`` -> ``ca n't``,
      ``it's`` -> ``it 's``, ``I'm`` -> ``i 'm``, ``we'll`` -> ``we 'll`` (also with ``’``);
    * numbers with separators stay whole (``3.14``, ``1,000``); hyphenated words too
      (``re-imagining``, ``k-19``); URLs (``http://``, ``https://``, ``www.``) are one token,
      without a trailing ``.``/``,``/``)``;
    * other symbols are one token each, except ``...``, ``--``, ``````, ``''`` and -lrb- style
      brackets; HTML line breaks (``<br />``) are removed; whitespace separates tokens.

    Text is put in Unicode NFC first, so ``e`` + combining accent is one letter; ``\\w`` takes
    the letters and digits of every script. Already tokenised text (SST) comes back unchanged.
    Initialisms (``u.s.``, ``e.t.``), a few abbreviations (``mr.``, ``dr.``, ``vs.``, ``etc.``)
    and decades (``'70s``) stay whole. Known simplifications: other abbreviations and single
    initials split at the dot (``no.`` -> ``no .``), as do names with an apostrophe
    (``o'brien`` -> ``o ' brien``).
    """
    text = unicodedata.normalize("NFC", text).replace("\u2019", "'").replace("\u2018", "'")
    text = _BREAK_TAG.sub(" ", text)
    if lowercase:
        text = text.lower()
    return _TOKEN.findall(text)


# ------------------------------------------------------------------------------- vocabulary
@dataclass(frozen=True)
class WordVocab(Vocabulary):
    """Words and their ids: ``words[id]``; ids 0 and 1 are padding and unknown words. JSON:
    ``{"words": [...]}``."""

    PAD: ClassVar[int] = 0  # the id that fills a batch after the end of a shorter sequence
    UNK: ClassVar[int] = 1  # the id of every word not in the vocabulary
    SPECIALS: ClassVar[tuple[str, ...]] = ("<pad>", "<unk>")
    NOUN, WHAT, KEY, ERROR = "word", "word vocabulary", "words", LabelledDataError

    @property
    def words(self) -> tuple[str, ...]:
        """``"<pad>"``, ``"<unk>"``, then the words (by frequency from :meth:`build`)."""
        return self.tokens

    @classmethod
    def build(cls, token_lists: Iterable[Iterable[str]], *, min_freq: int = 1,
              max_size: int | None = None) -> WordVocab:
        """The words seen at least ``min_freq`` times, most frequent first, after ``<pad>`` and
        ``<unk>``; ``max_size`` caps the size *including* those two, so it is the number of
        rows of the embedding (:meth:`Vocabulary.counted`)."""
        return cls.counted(token_lists, min_freq, max_size, "min_freq")

    def extended(self, words: Iterable[str]) -> WordVocab:
        """This vocabulary (same ids) followed by those of ``words`` it lacks, in their order;
        the special tokens and empty strings are skipped."""
        known = set(self.words)
        extra = []
        for word in words:
            if word and word not in known and word not in self.SPECIALS:
                known.add(word)
                extra.append(word)
        return WordVocab(self.words + tuple(extra))

    def encode(self, tokens: Iterable[str], max_len: int | None = None) -> list[int]:
        """The ids of ``tokens``, :attr:`UNK` for unknown ones; with ``max_len`` only the first
        ``max_len`` tokens are kept (the beginning of a review usually says enough)."""
        return self._lookup(tokens, max_len, self.UNK)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of ``ids``."""
        return [self.words[i] for i in ids]


# ------------------------------------------------------------------------------- batching
class BucketBatches:
    """Batches of similar lengths, so padding stays small; shuffled per epoch with a seed;
    ``batch(epoch, index)`` is a pure function, so training resumes exactly.

    The plan of epoch ``e`` (a generator seeded with ``(seed, e)``):

    1. shuffle the ``N`` examples (``shuffle=False``: keep their order);
    2. cut them into chunks of ``bucket_size * batch_size`` and sort each chunk by length,
       longest first (stable, so ties keep the shuffled order);
    3. cut each chunk into batches of ``batch_size``; only the very last batch can be smaller;
    4. shuffle the order of the batches (``shuffle=False``: keep it).

    Every example is in exactly one batch per epoch; within a batch lengths decrease, as
    ``pack_padded_sequence(enforce_sorted=True)`` wants. A larger ``bucket_size`` gives less
    padding and less random batches. Empty sequences are refused (a recurrent layer cannot read
    zero steps): drop those examples or encode them as ``[WordVocab.UNK]``.

    Args:
        sequences: ``N`` lists of token ids.  labels: ``N`` class ids.
        batch_size: ``B``.  shuffle, seed: see above.  bucket_size: batches per sorted chunk.
    """

    def __init__(self, sequences: Sequence[Sequence[int]], labels: Sequence[int],
                 batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 bucket_size: int = 100) -> None:
        for name, value in (("batch_size", batch_size), ("bucket_size", bucket_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"expected seed to be a non-negative int, got {seed!r}")
        if len(sequences) != len(labels):
            raise ValueError(f"expected one label per sequence, got {len(sequences)} sequences "
                             f"and {len(labels)} labels")
        if not sequences:
            raise ValueError("expected at least one sequence, got none")
        self.lengths = np.array([len(s) for s in sequences], dtype=np.int64)  # (N,)
        empty = np.flatnonzero(self.lengths == 0)
        if empty.size:
            raise ValueError(f"expected non-empty sequences, got {empty.size} empty (the first "
                             f"at index {empty[0]}); drop them or encode them as [UNK]")
        self._offsets = np.concatenate([[0], np.cumsum(self.lengths)])  # (N + 1,)
        self._ids = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64,
                                count=int(self._offsets[-1]))  # (sum of lengths,)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))  # (N,)
        self.batch_size, self.bucket_size = batch_size, bucket_size
        self.shuffle, self.seed = shuffle, seed
        self._plan_cache: tuple[int, list[np.ndarray]] | None = None  # (epoch, its batches)

    def __len__(self) -> int:
        """Batches per epoch, ``ceil(N / B)``."""
        return -(-len(self.lengths) // self.batch_size)

    def indices(self, epoch: int, index: int) -> np.ndarray:
        """The example indices of batch ``index`` of ``epoch``, ``(B,)``, longest first."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"expected epoch to be a non-negative int, got {epoch!r}")
        if not 0 <= index < len(self):
            raise IndexError(f"expected a batch index in [0, {len(self)}), got {index}")
        return self._plan(epoch)[index]

    def batch(self, epoch: int, index: int) -> tuple[Tensor, Tensor, Tensor]:
        """Batch ``index`` of ``epoch``: ``ids (B, T)`` int64 padded with :attr:`WordVocab.PAD`
        after each sequence (``T`` its longest length), ``lengths (B,)`` int64 (>= 1, longest
        first), ``labels (B,)`` int64."""
        rows = self.indices(epoch, index)  # (B,)
        lengths = self.lengths[rows]  # (B,)
        ids = np.full((len(rows), int(lengths.max())), WordVocab.PAD, dtype=np.int64)  # (B, T)
        for row, example in enumerate(rows):
            start = self._offsets[example]
            ids[row, :lengths[row]] = self._ids[start:start + lengths[row]]
        return torch.from_numpy(ids), torch.from_numpy(lengths), self.labels[rows]

    def _plan(self, epoch: int) -> list[np.ndarray]:
        """The batches of ``epoch``, each the example indices; cached for the last epoch."""
        if self._plan_cache is not None and self._plan_cache[0] == epoch:
            return self._plan_cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)  # (N,)
        chunk = self.bucket_size * self.batch_size
        batches = []
        for start in range(0, n, chunk):
            part = order[start:start + chunk]
            part = part[np.argsort(-self.lengths[part], kind="stable")]  # longest first
            batches += [part[i:i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        self._plan_cache = (epoch, batches)
        return batches
