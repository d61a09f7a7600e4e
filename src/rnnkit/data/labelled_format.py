"""How a file of labelled texts is read, as a config: the options of
:func:`rnnkit.data.labelled.read_labelled`, each with its help, written once for every task that
reads such files (a task nests :class:`LabelledFormat` in its config; the command line gives
them as ``--format``, ``--text-column``, ...).

    report = LabelledFormat(text_column="review", skip_bad_rows=True).read("reviews.csv")
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import option
from .labelled import ReadReport, read_labelled

__all__ = ["FORMATS", "LabelledFormat"]

FORMATS = ("auto", "csv", "tsv", "jsonl", "sst", "imdb")


def _column(value: str | None) -> str | int | None:
    """A column as the command line gives it: a name, or a 0-based index written as digits."""
    return int(value) if value is not None and value.isdigit() else value


@dataclass
class LabelledFormat:
    """:func:`rnnkit.data.labelled.read_labelled`'s options (see there for each format)."""

    format: str = option("auto", "csv, tsv, jsonl, sst (label and text per line) or imdb "
                                 "(pos/, neg/ folders); auto: from the name or the first line",
                         choices=FORMATS)
    text_column: str | None = option(None, "name or 0-based index of the text column")
    label_column: str | None = option(None, "name or 0-based index of the label column")
    header: bool | None = option(None, "the first row names the columns (default: detect)")
    skip_bad_rows: bool = option(False, "skip malformed rows and report how many (default: "
                                        "stop)")
    encoding_errors: str = option("strict", "what to do with bytes that are not UTF-8: "
                                            "replace turns them into U+FFFD",
                                  choices=("strict", "replace"))

    def read(self, path: str | os.PathLike[str]) -> ReadReport:
        """The examples of the file or folder ``path``, and the bad rows skipped."""
        return read_labelled(path, format=self.format, text_column=_column(self.text_column),
                             label_column=_column(self.label_column), header=self.header,
                             skip_bad_rows=self.skip_bad_rows,
                             encoding_errors=self.encoding_errors)
