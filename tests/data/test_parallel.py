"""Parallel text for translation: aligned and tab-separated readers, length filter, pair
batches."""

from __future__ import annotations

import gzip
import re

import pytest
import torch

from rnnkit.data.parallel import (
    PairBatches,
    ParallelDataError,
    SentencePair,
    filter_by_length,
    read_aligned,
    read_parallel,
    read_tsv_pairs,
)


def write(path, data: bytes | str):
    """Write ``data`` (str as UTF-8) to ``path``; return ``path``."""
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def texts(report) -> list[tuple[str, str]]:
    return [(pair.source, pair.target) for pair in report.pairs]


# ------------------------------------------------------------------------------- aligned
def test_aligned_pairs_and_origins(tmp_path):
    """BOM dropped, CRLF and surrounding spaces stripped, blank lines at the end ignored."""
    src = write(tmp_path / "train.en", "\ufeffTwo dogs play.\r\nA man  sings. \nHi\n\n\n")
    tgt = write(tmp_path / "train.de", "Zwei Hunde spielen.\nEin Mann singt.\nHallo\n")
    report = read_aligned(src, tgt)
    assert texts(report) == [("Two dogs play.", "Zwei Hunde spielen."),
                             ("A man  sings.", "Ein Mann singt."), ("Hi", "Hallo")]
    assert [pair.origin for pair in report.pairs] == [f"{src}:{n}" for n in (1, 2, 3)]
    assert (report.empty, report.skipped) == (0, [])
    assert isinstance(report.pairs[0], SentencePair)


def test_aligned_empty_sides_are_counted(tmp_path):
    src = write(tmp_path / "a.en", "one\ntwo\n\nfour\n   \n")
    tgt = write(tmp_path / "a.de", "eins\n \n\nvier\nfünf\n")
    report = read_aligned(src, tgt)
    assert texts(report) == [("one", "eins"), ("four", "vier")]
    assert [pair.origin for pair in report.pairs] == [f"{src}:1", f"{src}:4"]
    assert report.empty == 3
    last_empty = write(tmp_path / "b.de", "eins\n\n")  # the empty last line is a sentence
    report = read_aligned(write(tmp_path / "b.en", "one\ntwo\n"), last_empty)
    assert (texts(report), report.empty) == ([("one", "eins")], 1)


def test_aligned_line_counts_differ(tmp_path):
    src = write(tmp_path / "a.en", "one\ntwo\nthree\n")
    tgt = write(tmp_path / "a.de", "eins\nzwei\n")
    with pytest.raises(ParallelDataError, match=re.escape(
            f"got 3 lines in {src} and 2 lines in {tgt}")):
        read_aligned(src, tgt)


def test_aligned_unicode_line_separator_keeps_alignment(tmp_path):
    """Only \\n ends a line: U+2028 (which str.splitlines splits at) stays in the sentence."""
    src = write(tmp_path / "a.en", "one\u2028more\ntwo\n")
    tgt = write(tmp_path / "a.de", "eins\nzwei\n")
    assert texts(read_aligned(src, tgt)) == [("one\u2028more", "eins"), ("two", "zwei")]


def test_aligned_gzip(tmp_path):
    src = write(tmp_path / "a.en.gz", gzip.compress(b"one\ntwo\n"))
    tgt = write(tmp_path / "a.de", "eins\nzwei\n")
    assert texts(read_aligned(src, tgt)) == [("one", "eins"), ("two", "zwei")]


def test_aligned_non_utf8_names_file_line_and_offset(tmp_path):
    src = write(tmp_path / "a.en", "one\ntwo\nthree\n")
    tgt = write(tmp_path / "a.de", b"eins\nzw\xffei\ndrei\n")
    with pytest.raises(ParallelDataError, match=re.escape(
            f"{tgt}:2: expected UTF-8 text, got byte 0xff at offset 7")):
        read_aligned(src, tgt)
    report = read_aligned(src, tgt, skip_bad=True)
    assert texts(report) == [("one", "eins"), ("three", "drei")]
    assert len(report.skipped) == 1 and report.skipped[0].startswith(f"{tgt}:2: ")
    assert texts(read_aligned(src, tgt, encoding_errors="replace"))[1] == ("two", "zw\ufffdei")


def test_aligned_missing_file_and_nothing_left(tmp_path):
    src = write(tmp_path / "a.en", "one\n\n")
    tgt = write(tmp_path / "a.de", "\nzwei\n")
    with pytest.raises(ParallelDataError, match=re.escape(
            f"expected a text file, got no such file: {tmp_path / 'nope.de'}")):
        read_aligned(src, tmp_path / "nope.de")
    with pytest.raises(ParallelDataError, match="no sentence pairs in .* \\(2 with an empty side"):
        read_aligned(src, tgt)


# ------------------------------------------------------------------------------- tsv
def test_tsv_extra_columns_ignored_and_blank_lines_skipped(tmp_path):
    file = write(tmp_path / "fra.txt", "Go.\tVa !\tCC-BY 2.0 (France) #2877272\n\n"
                                       "Hi.\tSalut\u202f!\n  \nRun!\t\n")
    report = read_tsv_pairs(file)
    assert texts(report) == [("Go.", "Va !"), ("Hi.", "Salut\u202f!")]
    assert [pair.origin for pair in report.pairs] == [f"{file}:1", f"{file}:3"]
    assert (report.empty, report.skipped) == (1, [])  # "Run!" has an empty French side


def test_tsv_line_without_tab(tmp_path):
    file = write(tmp_path / "fra.txt", "Go.\tVa !\nHi. Salut !\nRun!\tCours !\n")
    with pytest.raises(ParallelDataError, match=re.escape(
            f"{file}:2: expected at least 2 tab-separated columns, got 1")):
        read_tsv_pairs(file)
    report = read_tsv_pairs(file, skip_bad=True)
    assert texts(report) == [("Go.", "Va !"), ("Run!", "Cours !")]
    assert report.skipped == [f"{file}:2: expected at least 2 tab-separated columns, got 1"]


def test_tsv_columns(tmp_path):
    file = write(tmp_path / "three.tsv", "a\tb\tc\nd\te\tf\n")
    assert texts(read_tsv_pairs(file, source_column=2, target_column=0)) == [
        ("c", "a"), ("f", "d")]
    short = write(tmp_path / "short.tsv", "a\tb\n")
    with pytest.raises(ParallelDataError, match="expected at least 3 tab-separated columns, "
                                                "got 2"):
        read_tsv_pairs(short, target_column=2)
    with pytest.raises(ValueError, match="expected different source and target columns"):
        read_tsv_pairs(file, source_column=1, target_column=1)
    with pytest.raises(ValueError, match="expected source_column to be a non-negative int"):
        read_tsv_pairs(file, source_column=-1)


def test_tsv_non_utf8(tmp_path):
    file = write(tmp_path / "fra.txt", b"Go.\tVa !\nHi.\tSal\xe9ut\n")
    with pytest.raises(ParallelDataError, match=re.escape(
            f"{file}:2: expected UTF-8 text, got byte 0xe9 at offset 16")):
        read_tsv_pairs(file)
    assert len(read_tsv_pairs(file, skip_bad=True).skipped) == 1
    with pytest.raises(ValueError, match="expected encoding_errors to be 'strict' or 'replace'"):
        read_tsv_pairs(file, encoding_errors="ignore")


# ------------------------------------------------------------------------------- read_parallel
def test_read_parallel_layouts_and_reverse(tmp_path):
    tsv = write(tmp_path / "fra.txt", "Go.\tVa !\nHi.\tSalut !\n")
    assert texts(read_parallel([tsv])) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert texts(read_parallel(tsv, reverse=True)) == [("Va !", "Go."), ("Salut !", "Hi.")]
    en = write(tmp_path / "a.en", "one\ntwo\n")
    de = write(tmp_path / "a.de", "eins\nzwei\n")
    assert texts(read_parallel([en, de])) == [("one", "eins"), ("two", "zwei")]
    reverse = read_parallel([en, de], reverse=True)
    assert texts(reverse) == [("eins", "one"), ("zwei", "two")]
    assert reverse.pairs[0].origin == f"{de}:1"  # the line of the source side
    with pytest.raises(ValueError, match="expected 1 path .* or 2 paths .*, got 3"):
        read_parallel([en, de, tsv])


# ------------------------------------------------------------------------------- lengths
def test_filter_by_length_counts():
    pairs = [([1] * 3, [1] * 3), ([1] * 4, [1] * 2), ([1] * 2, [1] * 5), ([1], [])]
    kept, too_long = filter_by_length(pairs, max_len=3)
    assert kept == [pairs[0], pairs[3]] and too_long == 2
    assert filter_by_length(pairs, max_len=5).too_long == 0
    with pytest.raises(ValueError, match="expected max_len to be a positive int, got 0"):
        filter_by_length(pairs, 0)


# ------------------------------------------------------------------------------- batching
SOURCES = [[4 + i] * (1 + i % 7) for i in range(23)]  # lengths 1..7, ids tell the pair
TARGETS = [[100 + i] * (i % 5) for i in range(23)]  # lengths 0..4: an empty target is fine


def test_batch_shapes_padding_and_start_end():
    batches = PairBatches(SOURCES, TARGETS, batch_size=4, seed=1)
    assert len(batches) == 6
    source, source_lengths, target, target_lengths = batches.batch(0, 2)
    rows = batches.indices(0, 2)
    assert source.dtype == target.dtype == torch.int64
    assert source.shape == (len(rows), int(source_lengths.max()))
    assert target.shape == (len(rows), int(target_lengths.max()))
    assert torch.all(source_lengths[:-1] >= source_lengths[1:])  # longest source first
    for row, pair in enumerate(rows):
        n, m = len(SOURCES[pair]), len(TARGETS[pair])
        assert source[row, :n].tolist() == SOURCES[pair] and source_lengths[row] == n
        assert torch.all(source[row, n:] == 0)
        assert target[row, :m + 2].tolist() == [2, *TARGETS[pair], 3]
        assert target_lengths[row] == m + 2 and torch.all(target[row, m + 2:] == 0)


def test_every_pair_once_per_epoch_and_deterministic():
    batches = PairBatches(SOURCES, TARGETS, batch_size=5, seed=3, bucket_size=2)
    for epoch in (0, 1):
        seen = sorted(int(b.source[r, 0]) - 4 for i in range(len(batches))
                      for b in [batches.batch(epoch, i)] for r in range(len(b.source)))
        assert seen == list(range(len(SOURCES)))
    again = PairBatches(SOURCES, TARGETS, batch_size=5, seed=3, bucket_size=2)
    for i in range(len(batches)):
        assert all(torch.equal(a, b) for a, b in zip(batches.batch(1, i), again.batch(1, i),
                                                      strict=True))
    plans = [[batches.indices(epoch, i).tolist() for i in range(len(batches))] for epoch in (0, 1)]
    assert plans[0] != plans[1]


def test_pair_batches_errors():
    with pytest.raises(ValueError, match="expected one target per source, got 2 sources and 1 "
                                         "targets"):
        PairBatches([[4], [5]], [[6]], batch_size=2)
    with pytest.raises(ValueError, match="expected non-empty sequences, got 1 empty"):
        PairBatches([[4], []], [[6], [7]], batch_size=2)
    with pytest.raises(ValueError, match="expected batch_size to be a positive int"):
        PairBatches([[4]], [[6]], batch_size=0)
