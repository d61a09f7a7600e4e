"""The standard sets of labelled texts, fetched (:func:`rnnkit.data.download.fetch`) and
unpacked: SST-2 as Kim's sentence files (``sst2``) or GLUE's copy with every labelled phrase
(``sst2-phrases``), and IMDB's reviews (``imdb``).

    files = download_set("sst2")   # files.train, files.val: ready for `--train` and `--val`
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .download import extract_tar, extract_zip, fetch

__all__ = ["SETS", "LabelledSet", "download_set"]

# the files of each set (names in rnnkit.data.download.RESOURCES)
SETS = {"sst2": ("sst2-train", "sst2-dev"), "sst2-phrases": ("sst2-phrases",),
        "imdb": ("imdb",)}


@dataclass
class LabelledSet:
    """Where a set's parts lie once fetched."""

    train: Path
    val: Path | None = None  # the validation (dev) part, when the set has one
    test: Path | None = None  # the test part, when the set has one
    format: str | None = None  # the format to name, where the files' names do not say it


def download_set(name: str, cache: str | Path | None = None) -> LabelledSet:
    """Fetch the set ``name`` (one of :data:`SETS`) into ``cache`` (default:
    ``$RNNKIT_DATA`` or ``~/.cache/rnnkit``), unpacked."""
    paths = [fetch(resource, cache) for resource in SETS[name]]
    if name == "imdb":
        root = extract_tar(paths[0], paths[0].parent / "imdb") / "aclImdb"
        return LabelledSet(root / "train", test=root / "test", format="imdb")
    if name == "sst2-phrases":  # GLUE's copy: every labelled phrase, TSV with a header
        root = extract_zip(paths[0], paths[0].parent / "sst2-phrases") / "SST-2"
        return LabelledSet(root / "train.tsv", val=root / "dev.tsv")
    train, dev = paths
    return LabelledSet(train, val=dev)
