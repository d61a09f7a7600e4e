"""Image captions (one-to-many): read COCO, Flickr8k/30k and csv caption files, tokenise
captions, map words to ids with ``<start>``/``<end>`` around each caption.

The flow for training a captioner::

    report = read_captions(coco="annotations/captions_train2017.json", images="train2017")
    items, bad = check_images(report.items)             # rnnkit.data.images: drop unreadable ones
    tokens = [caption_tokens(c) for item in items for c in item.captions]
    vocab = CaptionVocab.build(tokens, min_count=5)
    ids = [vocab.encode(t, max_len=30) for t in tokens]  # [START, w1, ..., wk, END]

The readers only parse text: they do not look at the image files (a missing or broken image is
found by :func:`rnnkit.data.images.check_images`), so captions can be read without the images.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from ..errors import RnnkitError
from . import files
from .labelled import tokenize
from .vocab import Vocabulary

# Flickr8k.token.txt names one image "2258277193_586949ec62.jpg.1#0": the image file is
# "...jpg"; the suffix is dropped and those captions join the image's others.
_FLICKR_SUFFIX = re.compile(r"(\.jpe?g)\.\d+$", re.IGNORECASE)
_FLICKR_NUMBER = re.compile(r"#\d+$")  # "#0".."#4": the caption's number, not part of the name


class CaptionDataError(RnnkitError):
    """Bad caption input; the message names the file and line (``path:line``) or JSON path
    (``path: annotations[3]``) and what was expected."""


@dataclass
class CaptionedImage:
    """One image and its captions; ``source`` says where it came from, for messages."""

    image: str  # path of the image file: the images folder joined with the file name
    captions: list[str]  # caption texts as written, stripped of surrounding whitespace (>= 1)
    source: str  # "path:line" of its first caption (flickr, csv) or "path: images[i]" (coco)


@dataclass
class CaptionReport:
    """What a reader found: the captioned images in file order, and one message per record
    skipped (bad ones with ``skip_bad=True``, and COCO images without captions)."""

    items: list[CaptionedImage]
    skipped: list[str]


# ------------------------------------------------------------------------------- reading
def read_captions(*, coco: str | os.PathLike[str] | None = None,
                  flickr: str | os.PathLike[str] | None = None,
                  csv: str | os.PathLike[str] | None = None, images: str | os.PathLike[str],
                  split: str | os.PathLike[str] | None = None,
                  skip_bad: bool = False) -> CaptionReport:
    """The captioned images of exactly one of a COCO json (``coco=``), a Flickr token file
    (``flickr=``, with an optional ``split=`` image list) or a csv file (``csv=``); see
    :func:`read_coco`, :func:`read_flickr`, :func:`read_caption_csv`."""
    given = {name: path for name, path in (("coco", coco), ("flickr", flickr), ("csv", csv))
             if path is not None}
    if len(given) != 1:
        got = ", ".join(f"{name}=" for name in given) or "none"
        raise ValueError(f"expected exactly one of coco=, flickr=, csv=, got {got}")
    if split is not None and flickr is None:
        raise ValueError("split= applies to flickr= token files only")
    if coco is not None:
        return read_coco(coco, images, skip_bad=skip_bad)
    if flickr is not None:
        return read_flickr(flickr, images, split=split, skip_bad=skip_bad)
    return read_caption_csv(csv, images, skip_bad=skip_bad)


def read_coco(annotations: str | os.PathLike[str], images: str | os.PathLike[str], *,
              skip_bad: bool = False) -> CaptionReport:
    """The captioned images of a COCO captions file (``captions_train2017.json``).

    The file is one JSON object with ``"images"`` (``{"id": int, "file_name": str, ...}``) and
    ``"annotations"`` (``{"image_id": int, "caption": str, ...}``). Items come in the order of
    ``"images"``, captions in the order of ``"annotations"``. An image without captions is
    dropped, with a message in ``skipped`` (this is not an error).

    Args:
        annotations: the json file.  images: the folder holding the image files.
        skip_bad: ``False`` raises :class:`CaptionDataError` at the first bad record (an image
            without an int ``id`` or a ``file_name``, a repeated ``id``, an annotation whose
            ``image_id`` is not in ``"images"``, a missing or empty caption); ``True`` records
            the message in ``skipped`` and goes on.

    Raises :class:`CaptionDataError` for a missing or unreadable file, bytes that are not UTF-8,
    invalid JSON or another layout (each naming the file), and when no captioned image is left.
    """
    path = os.fspath(annotations)
    data = _coco_object(path)
    records = _records(skip_bad)
    by_id = _coco_images(data["images"], path, os.fspath(images), records)
    _coco_captions(data["annotations"], path, by_id, records)
    for item in by_id.values():
        if not item.captions:
            records.messages.append(f"{item.source}: no captions for image "
                                   f"{os.path.basename(item.image)!r}, dropped")
    return _report(path, records, [item for item in by_id.values() if item.captions])


def _coco_object(path: str) -> dict:
    """The top-level object of a COCO captions file, checked to hold the two lists."""
    text = files.read_text(files.require_file(path, "a caption file", CaptionDataError),
                           "strict", CaptionDataError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CaptionDataError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: "
                               f"{e.msg}; expected a COCO captions file") from None
    if not isinstance(data, dict):
        raise CaptionDataError(f"{path}: expected a COCO captions object with \"images\" and "
                               f"\"annotations\" lists, got a JSON {type(data).__name__}")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            got = f"keys {sorted(data)}" if key not in data else type(data[key]).__name__
            raise CaptionDataError(f"{path}: expected a COCO captions object with \"images\" "
                                   f"and \"annotations\" lists, got {got} for {key!r}")
    return data


def _coco_images(entries: list, path: str, images: str,
                 records: files.BadRecords) -> dict[int, CaptionedImage]:
    """``id -> CaptionedImage`` (captions still empty) of the ``"images"`` list."""
    by_id: dict[int, CaptionedImage] = {}
    for i, entry in enumerate(entries):
        source = f"{path}: images[{i}]"
        image_id = entry.get("id") if isinstance(entry, dict) else None
        name = entry.get("file_name") if isinstance(entry, dict) else None
        if not isinstance(entry, dict):
            records.add(source, f"expected an object, got {type(entry).__name__}")
        elif not _is_int(image_id):
            records.add(source, f"expected an integer \"id\", got {image_id!r}")
        elif not isinstance(name, str) or not name.strip():
            records.add(source, f"expected a non-empty \"file_name\" string, got {name!r}")
        elif image_id in by_id:
            records.add(source, f"id {image_id} again (first at {by_id[image_id].source})")
        else:
            by_id[image_id] = CaptionedImage(os.path.join(images, name.strip()), [], source)
    return by_id


def _coco_captions(entries: list, path: str, by_id: dict[int, CaptionedImage],
                   records: files.BadRecords) -> None:
    """Add each caption of the ``"annotations"`` list to its image."""
    for j, entry in enumerate(entries):
        source = f"{path}: annotations[{j}]"
        if not isinstance(entry, dict):
            records.add(source, f"expected an object, got {type(entry).__name__}")
            continue
        image_id, caption = entry.get("image_id"), entry.get("caption")
        if not _is_int(image_id):
            records.add(source, f"expected an integer \"image_id\", got {image_id!r}")
        elif image_id not in by_id:
            records.add(source, f"image_id {image_id} is not in \"images\"")
        elif not isinstance(caption, str):
            hint = " (is this a captions_*.json file?)" if "bbox" in entry else ""
            records.add(source, f"expected a \"caption\" string, got {caption!r}{hint}")
        elif not caption.strip():
            records.add(source, "empty caption")
        else:
            by_id[image_id].captions.append(caption.strip())


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_flickr(tokens: str | os.PathLike[str], images: str | os.PathLike[str], *,
                split: str | os.PathLike[str] | None = None,
                skip_bad: bool = False) -> CaptionReport:
    """The captioned images of a Flickr8k/30k token file.

    Each line is ``<image>#<n><TAB><caption>`` (``Flickr8k.token.txt``,
    ``results_20130124.token``); the ``#<n>`` may be absent. Lines of one image are grouped,
    images in first-seen order; ``source`` is the line of an image's first caption. The one
    quirky name of Flickr8k, ``2258277193_586949ec62.jpg.1``, is read as the ``.jpg`` it stands
    for. Blank lines are skipped.

    Args:
        tokens: the token file.  images: the folder holding the image files.
        split: a file with one image file name per line (``Flickr_8k.trainImages.txt``): only
            those images are kept (in token-file order); a name that is not in ``tokens`` is a
            bad record.
        skip_bad: ``False`` raises :class:`CaptionDataError` at the first bad line (no tab, no
            image name, an empty caption, bytes that are not UTF-8) or unknown split name;
            ``True`` records the message in ``skipped`` and goes on.
    """
    path = os.fspath(tokens)
    records = _records(skip_bad)
    by_name: dict[str, CaptionedImage] = {}
    for source, line in _text_lines(path, records):
        name, tab, caption = line.partition("\t")
        name = _FLICKR_SUFFIX.sub(r"\1", _FLICKR_NUMBER.sub("", name.strip()))
        if not tab:
            hint = " (tabs replaced by spaces?)" if re.match(r"\S+#\d+ ", line) else ""
            records.add(source, f"expected '<image>#<n><TAB><caption>', got no tab in "
                                f"{_shorten(line)!r}{hint}")
        elif not name:
            records.add(source, "expected an image name before the tab, got none")
        elif not caption.strip():
            records.add(source, f"empty caption for {name!r}")
        elif name in by_name:
            by_name[name].captions.append(caption.strip())
        else:
            by_name[name] = CaptionedImage(os.path.join(os.fspath(images), name),
                                           [caption.strip()], source)
    if split is not None:
        wanted = _split_names(os.fspath(split), path, by_name, records)
        by_name = {name: item for name, item in by_name.items() if name in wanted}
    return _report(path, records, list(by_name.values()))


def _split_names(split: str, tokens: str, by_name: dict[str, CaptionedImage],
                 records: files.BadRecords) -> set[str]:
    """The image names listed in a split file, each checked to be in the token file."""
    wanted: set[str] = set()
    for source, line in _text_lines(split, records):
        name = line.strip()
        if name not in by_name:
            records.add(source, f"image {name!r} of the split is not in {tokens}")
        else:
            wanted.add(name)
    if not wanted:
        raise CaptionDataError(f"no image of the split {split} is in {tokens}")
    return wanted


def read_caption_csv(path: str | os.PathLike[str], images: str | os.PathLike[str], *,
                     skip_bad: bool = False) -> CaptionReport:
    """The captioned images of a csv file with a header row naming an ``image`` and a
    ``caption`` column (any case, other columns ignored), one caption per row (Kaggle's Flickr8k
    ``captions.txt``). Rows of one image are grouped, images in first-seen order.

    ``skip_bad=False`` raises :class:`CaptionDataError` at the first bad row (another field
    count than the header, an empty image or caption, bytes that are not UTF-8); ``True``
    records the message in ``skipped`` and goes on.
    """
    path = os.fspath(path)
    records = _records(skip_bad)
    # bytes that are not UTF-8 become lone surrogates, found by files.bad_bytes so that the
    # message names the row
    lines = (line.data.decode("utf-8", "surrogateescape") for line in _lines(path))
    rows = files.csv_rows(lines, path, CaptionDataError)
    header = next(rows, None)
    if header is None:
        raise CaptionDataError(f"no captioned images in {path}: the file is empty")
    image_i, caption_i = files.header_columns(header[1], ("image", "caption"),
                                              f"{path}:{header[0]}", CaptionDataError)
    by_name: dict[str, CaptionedImage] = {}
    for line, row in rows:
        source = f"{path}:{line}"
        problem = _csv_problem(row, len(header[1]), image_i, caption_i)
        if problem:
            records.add(source, problem)
            continue
        name, caption = row[image_i].strip(), row[caption_i].strip()
        if name in by_name:
            by_name[name].captions.append(caption)
        else:
            by_name[name] = CaptionedImage(os.path.join(os.fspath(images), name), [caption],
                                           source)
    return _report(path, records, list(by_name.values()))


def _csv_problem(row: list[str], width: int, image_i: int, caption_i: int) -> str | None:
    """What is wrong with a csv row, or ``None``."""
    if len(row) != width:
        return f"expected {width} fields as in the header, got {len(row)}"
    bad = files.bad_bytes("".join(row))
    if bad:
        return f"expected UTF-8 text, got {bad}"
    if not row[image_i].strip():
        return "empty image name"
    if not row[caption_i].strip():
        return f"empty caption for {row[image_i].strip()!r}"
    return None


# ------------------------------------------------------------------------------- helpers
def _records(skip_bad: bool) -> files.BadRecords:
    """The bad-record messages of one read: raised, or kept with ``skip_bad``."""
    return files.BadRecords(skip_bad, CaptionDataError, "pass skip_bad=True to skip bad records")


def _report(path: str, records: files.BadRecords,
            items: list[CaptionedImage]) -> CaptionReport:
    skipped = records.messages
    if not items:
        first = f"; the first of {len(skipped)} skipped: {skipped[0]}" if skipped else ""
        raise CaptionDataError(f"no captioned images in {path}{first}")
    return CaptionReport(items, skipped)


def _lines(path: str) -> Iterator[files.Line]:
    return files.lines(files.require_file(path, "a caption file", CaptionDataError),
                       CaptionDataError)


def _text_lines(path: str, records: files.BadRecords) -> Iterator[tuple[str, str]]:
    """``("path:line", text)`` of each non-blank line; a line that is not UTF-8 is a bad
    record."""
    for line in _lines(path):
        source = f"{path}:{line.number}"
        problem = files.utf8_problem(line.data, line.offset)
        if problem:
            records.add(source, problem)
        elif line.data.strip():
            yield source, line.data.decode("utf-8").rstrip("\r\n")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------------- tokens
def caption_tokens(text: str) -> list[str]:
    """The lowercase words of a caption (:func:`rnnkit.data.labelled.tokenize`), without a
    final ``"."``: most captions end with one, so it says nothing, and ``<end>`` marks the end.
    ``"A dog runs."`` -> ``["a", "dog", "runs"]``."""
    tokens = tokenize(text, lowercase=True)
    return tokens[:-1] if tokens and tokens[-1] == "." else tokens


# ------------------------------------------------------------------------------- vocabulary
@dataclass(frozen=True)
class CaptionVocab(Vocabulary):
    """Caption words and their ids: ``words[id]``; ids 0..3 are the special tokens. JSON:
    ``{"words": [...]}``."""

    PAD: ClassVar[int] = 0  # fills a batch after the end of a shorter caption
    UNK: ClassVar[int] = 1  # every word not in the vocabulary
    START: ClassVar[int] = 2  # the first input of the decoder
    END: ClassVar[int] = 3  # the last target: generation stops when it is produced
    SPECIALS: ClassVar[tuple[str, ...]] = ("<pad>", "<unk>", "<start>", "<end>")
    NOUN, WHAT, KEY, ERROR = "word", "caption vocabulary", "words", CaptionDataError

    @property
    def words(self) -> tuple[str, ...]:
        """``"<pad>"``, ``"<unk>"``, ``"<start>"``, ``"<end>"``, then the words."""
        return self.tokens

    @classmethod
    def build(cls, token_lists: Iterable[Iterable[str]], min_count: int = 5,
              max_size: int | None = None) -> CaptionVocab:
        """The words seen at least ``min_count`` times (5 is the usual setting for COCO and
        Flickr), most frequent first, after the four special tokens; ``max_size`` caps the size
        *including* those, so it is the number of output classes
        (:meth:`Vocabulary.counted`)."""
        return cls.counted(token_lists, min_count, max_size)

    def encode(self, tokens: Iterable[str], max_len: int | None = 30) -> list[int]:
        """``[START, ids of the first max_len tokens..., END]`` (:attr:`UNK` for unknown words);
        ``max_len=None`` keeps every token."""
        if isinstance(tokens, str):
            raise TypeError("expected a list of tokens (caption_tokens(text)), got a str")
        return [self.START, *self._lookup(tokens, max_len, self.UNK), self.END]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of ``ids`` up to the first :attr:`END`, without ``<start>`` and ``<pad>``
        (``<unk>`` stays). Accepts ints or a 1-D tensor."""
        words = []
        for value in ids:
            index = int(value)
            if index == self.END:
                break
            if not 0 <= index < len(self.words):
                raise IndexError(f"expected word ids in [0, {len(self.words)}), got {index}")
            if index not in (self.START, self.PAD):
                words.append(self.words[index])
        return words
