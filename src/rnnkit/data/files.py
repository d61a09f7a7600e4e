"""Files: what every reader and writer of rnnkit shares.

Reading: UTF-8 text, gzipped or not (recognised by its first bytes, so ``.jsonl.gz`` and
``.csv.gz`` work everywhere), with a byte order mark dropped; lines numbered from 1 with the
offset of their first byte; CSV/TSV rows with the line each starts on. Bytes that are not UTF-8
raise one message everywhere, ``path:line: expected UTF-8 text, got byte 0xff at offset 1042``
(offsets count the uncompressed bytes, byte order mark included), or become U+FFFD with
``encoding_errors="replace"``. Bad records are raised at once or collected (``skip_bad``).

Writing: atomically. A file is written under a hidden temporary name in the same folder
(``os.replace`` is atomic only within one file system), flushed, fsynced, and then renamed over
the target, so readers see the old file or the new one, never half of it, and a crash leaves
no half-written file behind.

A function that fails on the user's input raises ``error``, the reader's own subclass of
:class:`rnnkit.errors.RnnkitError` (a caption file's problem is a ``CaptionDataError``).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import RnnkitError

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
ENCODING_ERRORS = ("strict", "replace")  # what a reader's encoding_errors= accepts

Error = type[RnnkitError]
T = TypeVar("T")
_ESCAPED = re.compile(r"[\udc80-\udcff]+")  # bytes that surrogateescape decoding kept


# ------------------------------------------------------------------------------- reading
def check_encoding_errors(value: str, name: str = "encoding_errors") -> None:
    if value not in ENCODING_ERRORS:
        raise ValueError(f"expected {name} to be 'strict' or 'replace', got {value!r}")


def require_file(path: str | os.PathLike[str], what: str, error: Error) -> str:
    """``path`` as a string, checked to be a file: ``expected a caption file, got a folder:
    path`` (or ``got no such file``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        got = "a folder" if os.path.isdir(path) else "no such file"
        raise error(f"expected {what}, got {got}: {path}")
    return path


@contextlib.contextmanager
def open_bytes(path: str, error: Error) -> Iterator[Any]:
    """``path`` opened for reading bytes, through gzip if it starts with gzip's magic bytes;
    a failure to read (also in the middle: a truncated gzip stream) raises ``error``."""
    try:
        with open(path, "rb") as f:
            gzipped = f.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:  # noqa: SIM115
            yield f
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; EOFError: truncated gzip
        raise error(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from e


def read_bytes(path: str, error: Error) -> bytes:
    """The bytes of a file (gunzipped)."""
    with open_bytes(path, error) as f:
        return f.read()


def read_text(path: str, encoding_errors: str, error: Error, *, raw: bytes | None = None,
              hint: str = "") -> str:
    """The text of a whole file (or of its bytes ``raw``), decoded by :func:`decode`, without
    a UTF-8 byte order mark (offsets still count it)."""
    raw = read_bytes(path, error) if raw is None else raw
    skip = len(UTF8_BOM) if raw.startswith(UTF8_BOM) else 0
    return decode(raw[skip:], path, encoding_errors, error, offset=skip, hint=hint)


def head(path: str, size: int = 16) -> bytes:
    """The first ``size`` bytes of a file (``b""`` if it cannot be read), to show what a file
    that is not what was expected starts with."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def keep_readable(items: Sequence[T], path: Callable[[T], str], check: Callable[[str], object],
                  error: Error, listed: Callable[[T], str]) -> tuple[list[T], list[str]]:
    """The items whose file passes ``check`` (which raises ``error`` naming what is wrong), in
    order, and one message per bad item: ``"path: what is wrong (listed)"``. A file listed by
    several items is checked once."""
    problems: dict[str, str | None] = {}  # file -> problem, None when it is good
    good, bad = [], []
    for item in items:
        file = path(item)
        if file not in problems:
            try:
                check(file)
                problems[file] = None
            except error as e:
                problems[file] = str(e)
        if problems[file] is None:
            good.append(item)
        else:
            bad.append(f"{problems[file]} ({listed(item)})")
    return good, bad


@dataclass(frozen=True)
class Line:
    """One line of a file as bytes, and where it is, for messages."""

    number: int  # from 1
    offset: int  # of its first byte in the (uncompressed) file
    data: bytes  # with its line end


def lines(path: str, error: Error) -> Iterator[Line]:
    """The lines of a file (gunzipped), ends kept (csv needs them inside quoted fields), split
    at ``\\n`` only (U+2028 and friends stay inside a line, so aligned files stay aligned); a
    UTF-8 byte order mark is dropped from the first."""
    offset = 0
    with open_bytes(path, error) as f:
        for number, data in enumerate(f, 1):
            start, offset = offset, offset + len(data)
            if number == 1 and data.startswith(UTF8_BOM):
                data, start = data[len(UTF8_BOM):], len(UTF8_BOM)
            yield Line(number, start, data)


def decode(data: bytes, path: str, encoding_errors: str, error: Error, *, line: int = 1,
           offset: int = 0, hint: str = "") -> str:
    """``data`` (starting on ``line``, at ``offset`` of ``path``) as UTF-8 text.

    ``encoding_errors``: ``"strict"`` raises ``error`` naming ``path:line``, the bytes and
    their offset, then ``hint`` (how to replace them); ``"replace"`` makes them U+FFFD;
    ``"surrogateescape"`` keeps them as lone surrogates for :func:`bad_bytes` to find later,
    so that a reader can report the bad row and go on.
    """
    try:
        return data.decode("utf-8", encoding_errors)
    except UnicodeDecodeError as e:
        line += data.count(b"\n", 0, e.start)
        raise error(f"{path}:{line}: {utf8_problem(data, offset)}{hint}") from None


def utf8_problem(data: bytes, offset: int = 0) -> str | None:
    """``"expected UTF-8 text, got byte 0xff at offset 1042"`` if ``data`` (at ``offset`` of
    its file) is not UTF-8, else ``None``."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = _bytes(data[e.start:e.end])
        return f"expected UTF-8 text, got {bad} at offset {offset + e.start}"
    return None


def text_lines(path: str, encoding_errors: str, error: Error, *,
               hint: str = "") -> Iterator[tuple[int, str]]:
    """``(number, text)`` of each line, decoded by :func:`decode`, line ends kept."""
    for line in lines(path, error):
        yield line.number, decode(line.data, path, encoding_errors, error, line=line.number,
                                  offset=line.offset, hint=hint)


def bad_bytes(text: str) -> str | None:
    """The first bytes that ``surrogateescape`` decoding kept as U+DC80..U+DCFF, as
    ``"byte 0xf0"`` or ``"bytes 0xe2 0x82"``; ``None`` if there are none."""
    escaped = _ESCAPED.search(text)
    return _bytes(bytes(ord(char) - 0xDC00 for char in escaped.group())) if escaped else None


def _bytes(data: bytes) -> str:
    return ("byte " if len(data) == 1 else "bytes ") + " ".join(f"0x{b:02x}" for b in data)


# ------------------------------------------------------------------------------- csv
def csv_rows(lines: Iterable[str], path: str, error: Error, *, delimiter: str = ",",
             quoting: int = csv.QUOTE_MINIMAL) -> Iterator[tuple[int, list[str]]]:
    """``(first line, row)`` of each row that holds a non-blank field (a row may span lines:
    quoted newlines); a malformed row raises ``error`` naming ``path:line``."""
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise error(f"{path}:{reader.line_num}: {e}") from None
        start, end = end + 1, reader.line_num
        if any(cell.strip() for cell in row):
            yield start, row


def header_columns(header: Sequence[str], wanted: Sequence[str], source: str,
                   error: Error) -> tuple[int, ...]:
    """The index of each ``wanted`` column (any case) in a header row."""
    names = [cell.strip().casefold() for cell in header]
    missing = [name for name in wanted if name not in names]
    if missing:
        found = ", ".join(repr(cell.strip()) for cell in header)
        raise error(f"{source}: expected a header row with {_and(wanted)} columns (any case), "
                    f"got columns {found} (no {_and(missing, ' and no ')})")
    return tuple(names.index(name) for name in wanted)


def _and(names: Sequence[str], last: str = " and ") -> str:
    quoted = [repr(name) for name in names]
    return ", ".join(quoted[:-1]) + last + quoted[-1] if len(quoted) > 1 else quoted[0]


@dataclass
class BadRecords:
    """The bad records (rows, lines, entries) of one read: raised at the first, or with
    ``skip`` kept as ``"source: problem"`` messages for the caller to report."""

    skip: bool
    error: Error
    hint: str  # how to skip them, added to the raised message: "pass skip_bad=True to ..."
    messages: list[str] = field(default_factory=list)

    def add(self, source: str, problem: str) -> None:
        message = f"{source}: {problem}"
        if not self.skip:
            raise self.error(f"{message} ({self.hint})")
        self.messages.append(message)


# ------------------------------------------------------------------------------- writing
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write (for writers that need a file
    name: FFmpeg, a download); when the block ends, the file is fsynced and replaces ``path``.
    On any failure the temporary file is removed and ``path`` is untouched. ``suffix`` ends the
    temporary name (FFmpeg picks the container from it). The folder must exist."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{suffix}")
    try:
        yield temp
        descriptor = os.open(temp, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); return the path."""
    with atomic_path(path) as temp:
        # O_EXCL: never clobber another writer's file; 0o666: the umask applies, as with open().
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        with open(os.open(temp, flags, 0o666), "wb") as file:
            file.write(data)
    return Path(path)


def save_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as UTF-8 JSON (indent 2, sorted keys, trailing newline), atomically.

    Plain JSON: tuples come back as lists and int keys as strings (use
    :func:`rnnkit.train.checkpoint.flatten_state` for values that must come back exactly).
    Non-ASCII text is written as is, so a vocabulary stays readable.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; best effort (Windows cannot open a folder, nor needs to)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
