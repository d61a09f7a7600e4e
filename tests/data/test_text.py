"""Text data for char-rnn: reading files and folders, the vocabulary, splitting, batching."""

from __future__ import annotations

import json
import re

import pytest
import torch

from rnnkit.data.text import (
    CharVocab,
    StatefulBatches,
    TextDataError,
    default_corpus,
    read_text,
    split_tail,
    windows,
)


def write(path, data: bytes | str):
    """Write ``data`` (str as UTF-8) to ``path``, making its folders; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def stream(n: int) -> torch.Tensor:
    """Ids equal to their positions, so every window can be checked against the raw stream."""
    return torch.arange(n)


# ------------------------------------------------------------------------------- reading
def test_folder_order_hidden_and_empty_files(tmp_path):
    """Files are joined with "\\n" in sorted path order (component by component: the folder
    ``a`` before the file ``a.txt``); hidden files and folders and empty files are skipped."""
    write(tmp_path / "b.txt", "B")
    write(tmp_path / "a.txt", "A")
    write(tmp_path / "a" / "z.txt", "AZ")
    write(tmp_path / "sub" / "deep" / "c.txt", "C")
    write(tmp_path / "empty.txt", "")
    write(tmp_path / ".hidden.txt", "HIDDEN")
    write(tmp_path / ".git" / "config", "GIT")
    write(tmp_path / "sub" / ".secret", "SECRET")
    assert read_text(tmp_path) == "AZ\nA\nB\nC"
    assert read_text(str(tmp_path / "sub")) == "C"


def test_folder_without_text_files(tmp_path):
    write(tmp_path / ".hidden", "x")
    write(tmp_path / "empty.txt", "")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(TextDataError, match=re.escape(f"no text files in {tmp_path}")):
        read_text(tmp_path)
    with pytest.raises(TextDataError, match=re.escape(f"no text files in {tmp_path / 'nothing'}")):
        read_text(tmp_path / "nothing")


def test_bom_dropped_and_crlf_normalised(tmp_path):
    path = write(tmp_path / "win.txt", b"\xef\xbb\xbfline one\r\nline two\r\n\rend")
    assert read_text(path) == "line one\nline two\n\rend"  # a lone "\r" stays


def test_invalid_utf8_names_file_offset_and_byte(tmp_path):
    data = b"first line\nsecond \xff line"  # 0xff at offset 18, on line 2
    assert data.index(b"\xff") == 18
    path = write(tmp_path / "input.txt", data)
    with pytest.raises(TextDataError, match=re.escape(
            f"{path}:2: expected UTF-8 text, got byte 0xff at offset 18 "
            "(use --encoding-errors replace to replace bad bytes)")):
        read_text(path)
    assert read_text(path, errors="replace") == "first line\nsecond \ufffd line"


def test_invalid_utf8_offset_counts_the_bom_and_names_every_bad_byte(tmp_path):
    """The offset is in the file as stored; a cut multi-byte sequence is shown whole."""
    path = write(tmp_path / "cut.txt", b"\xef\xbb\xbfabc\xe2\x82")  # euro sign cut short
    with pytest.raises(TextDataError, match=re.escape("got bytes 0xe2 0x82 at offset 6 ")):
        read_text(path)


def test_invalid_utf8_in_a_folder_names_the_file(tmp_path):
    write(tmp_path / "good.txt", "fine")
    bad = write(tmp_path / "z" / "bad.txt", b"ok\x80")
    with pytest.raises(TextDataError, match=re.escape(f"{bad}:1: expected UTF-8 text, got byte "
                                                      "0x80 at offset 2")):
        read_text(tmp_path)


@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_nul_byte_means_binary(tmp_path, errors):
    path = write(tmp_path / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(TextDataError, match=re.escape(
            f"got a binary file (NUL byte 0x00 at offset 8) in {path}")):
        read_text(path, errors=errors)


def test_utf16_file_gets_a_hint(tmp_path):
    path = write(tmp_path / "notepad.txt", "hi".encode("utf-16"))
    with pytest.raises(TextDataError, match="UTF-16 byte order mark: save it as UTF-8"):
        read_text(path)


def test_empty_file(tmp_path):
    path = write(tmp_path / "empty.txt", b"")
    with pytest.raises(TextDataError, match=re.escape(f"got an empty file: {path}")):
        read_text(path)
    assert read_text(write(tmp_path / "space.txt", " \n")) == " \n"  # whitespace is text


def test_missing_path(tmp_path):
    with pytest.raises(TextDataError, match=re.escape(
            f"no such file or folder: {tmp_path / 'nope.txt'}")):
        read_text(tmp_path / "nope.txt")


def test_unknown_errors_mode(tmp_path):
    with pytest.raises(ValueError, match="expected errors to be 'strict' or 'replace', got 'x'"):
        read_text(write(tmp_path / "a.txt", "a"), errors="x")


def test_default_corpus_is_long_english_text():
    text = default_corpus()
    assert isinstance(text, str) and len(text) > 100_000
    assert "\x00" not in text and "statement" in text
    assert default_corpus() == text  # deterministic


# ------------------------------------------------------------------------------- vocabulary
TRICKY = "Grüße,\tnaïve café\n日本語 🙂!\n"


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_vocab_json_round_trip(ensure_ascii):
    vocab = CharVocab.from_text(TRICKY)
    assert list(vocab.chars) == sorted(set(TRICKY)) and len(vocab) == len(set(TRICKY))
    loaded = CharVocab.from_json(json.loads(json.dumps(vocab.to_json(),
                                                       ensure_ascii=ensure_ascii)))
    assert loaded == vocab
    assert loaded.decode(loaded.encode(TRICKY)) == TRICKY


def test_encode_decode():
    vocab = CharVocab.from_text("abc\n")  # ids: "\n" 0, a 1, b 2, c 3
    ids = vocab.encode("cab\n")
    assert ids.dtype == torch.int64 and ids.tolist() == [3, 1, 2, 0]
    assert vocab.decode(ids) == vocab.decode([3, 1, 2, 0]) == "cab\n"
    assert vocab.encode("").shape == (0,)


def test_vocab_keeps_a_given_order():
    """A saved vocabulary in any order loads back with its own ids."""
    vocab = CharVocab.from_json({"chars": ["z", "a", "\n"]})
    assert vocab.encode("a\nz").tolist() == [1, 2, 0]


def test_encode_unknown_names_the_character_and_its_position():
    vocab = CharVocab.from_text("hello\n")
    with pytest.raises(TextDataError, match=re.escape(
            "got '🙂' (U+1F642) at position 8 (line 2)")):
        vocab.encode("hello\nhe🙂llo!")
    assert vocab.encode("hello\nhe🙂llo!", unknown="skip").tolist() == vocab.encode(
        "hello\nhello").tolist()


def test_unknown_chars_in_order_of_first_appearance():
    vocab = CharVocab.from_text("abc")
    assert vocab.unknown_chars("\udc80zaybxcz") == ["\udc80", "z", "y", "x"]
    assert vocab.unknown_chars("cab") == []


@pytest.mark.parametrize(("obj", "message"), [
    (["a"], "got list"),
    ({"chars": ["a"], "extra": 1}, "got keys ['chars', 'extra']"),
    ({"chars": "ab"}, 'expected "chars" to be a list of characters, got str'),
    ({"chars": ["a", "bc"]}, "one character, got 'bc' at index 1"),
    ({"chars": ["a", 7]}, "one character, got 7 at index 1"),
    ({"chars": ["a", "b", "a"]}, "got 'a' at index 0 and again at index 2"),
    ({"chars": ["\ud800"]}, "lone surrogate U+D800 at index 0"),
    ({"chars": []}, "at least one character"),
])
def test_vocab_from_malformed_json(obj, message):
    with pytest.raises(TextDataError, match=re.escape(message)):
        CharVocab.from_json(obj)


def test_decode_rejects_bad_ids():
    vocab = CharVocab.from_text("ab")
    with pytest.raises(ValueError, match=re.escape("expected ids in [0, 2), got -1 at position 1")):
        vocab.decode([0, -1])
    with pytest.raises(ValueError, match=re.escape("expected a 1-D tensor of ids, got shape (1,")):
        vocab.decode(torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(TypeError):
        vocab.decode([0.0])


# ------------------------------------------------------------------------------- splitting
@pytest.mark.parametrize(("n", "fraction", "n_val"), [(100, 0.1, 10), (1000, 0.05, 50),
                                                      (7, 0.5, 4), (2, 0.5, 1)])
def test_split_tail_sizes_and_contiguity(n, fraction, n_val):
    ids = stream(n)
    train, val = split_tail(ids, fraction)
    assert (len(train), len(val)) == (n - n_val, n_val)
    assert torch.equal(torch.cat([train, val]), ids)  # the tail, unshuffled


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_tail_fraction_range(fraction):
    with pytest.raises(ValueError, match="expected 0 < val_fraction < 1"):
        split_tail(stream(100), fraction)


def test_split_tail_too_short():
    with pytest.raises(TextDataError, match="the text has 4 characters: too short"):
        split_tail(stream(4), 0.1)  # validation would get 0


# ------------------------------------------------------------------------------- batching
def test_stateful_batches_continue_rows_and_shift_targets():
    n, b, t = 1000, 4, 7
    ids = stream(n) * 3 % 101  # not equal to positions, to catch index mix-ups
    batches = StatefulBatches(ids, b, t)
    row_len = (n - 1) // b
    assert batches.row_len == row_len and len(batches) == row_len // t
    for k in range(len(batches)):
        x, y = batches.batch(k)
        assert x.shape == y.shape == (b, t) and x.dtype == y.dtype == torch.int64
        for r in range(b):
            start = r * row_len + k * t  # row r of batch k begins where batch k-1 left off
            assert torch.equal(x[r], ids[start:start + t])
            assert torch.equal(y[r], ids[start + 1:start + t + 1])  # shifted by one


def test_stateful_batches_are_a_pure_function_of_the_index():
    batches = StatefulBatches(stream(500), 3, 5)
    first = [batches.batch(k) for k in range(len(batches))]
    first[0][0].fill_(-1)  # callers may modify what they get
    for k in reversed(range(len(batches))):
        x, y = batches.batch(k)
        if k > 0:
            assert torch.equal(x, first[k][0]) and torch.equal(y, first[k][1])
    assert batches.batch(0)[0].min() >= 0
    with pytest.raises(IndexError, match=re.escape(f"in [0, {len(batches)}), got {len(batches)}")):
        batches.batch(len(batches))


def test_starts_epoch():
    batches = StatefulBatches(stream(101), 2, 10)  # rows of 50: 5 batches
    assert len(batches) == 5
    assert [s for s in range(12) if batches.starts_epoch(s)] == [0, 5, 10]


def test_ranks_together_form_the_global_batch():
    ids, b, t, world = stream(2003), 3, 8, 2
    whole = StatefulBatches(ids, b * world, t)
    ranks = [StatefulBatches(ids, b, t, rank=r, world_size=world) for r in range(world)]
    assert all(len(rank) == len(whole) for rank in ranks)
    for k in range(len(whole)):
        x, y = whole.batch(k)
        xs, ys = zip(*(rank.batch(k) for rank in ranks), strict=True)
        assert torch.equal(torch.cat(xs), x) and torch.equal(torch.cat(ys), y)
    assert not torch.equal(ranks[0].batch(0)[0], ranks[1].batch(0)[0])


def test_stateful_batches_too_short():
    with pytest.raises(TextDataError, match=re.escape(
            "the training text has 500 characters: too short for batch 32 x sequence 64 "
            "(needs at least 2049); use a smaller --batch-size or --seq-len")):
        StatefulBatches(stream(500), 32, 64)
    StatefulBatches(stream(2049), 32, 64)  # just enough
    with pytest.raises(TextDataError, match=re.escape(
            "too short for batch 4 per process x 2 processes x sequence 8 (needs at least 65)")):
        StatefulBatches(stream(64), 4, 8, rank=1, world_size=2)


@pytest.mark.parametrize("kwargs", [dict(batch_size=0, seq_len=4), dict(batch_size=2, seq_len=0),
                                    dict(batch_size=2, seq_len=4, rank=2, world_size=2)])
def test_stateful_batches_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="expected"):
        StatefulBatches(stream(100), **kwargs)


# ------------------------------------------------------------------------------- windows
@pytest.mark.parametrize(("n", "b", "t"), [(103, 4, 5), (101, 4, 5), (50, 1, 7), (4, 8, 3),
                                           (2, 3, 3), (97, 3, 32)])
def test_windows_cover_what_they_claim(n, b, t):
    """Targets are exactly ids[1 : R*L + 1] with R = min(b, n - 1), L = (n - 1) // R, in the
    stateful layout; the last window may be shorter; the counts add up."""
    ids = stream(n)
    rows = min(b, n - 1)
    row_len = (n - 1) // rows
    got = list(windows(ids, t, b))
    assert len(got) == -(-row_len // t)
    assert all(x.shape == y.shape == (rows, t) for x, y, _ in got[:-1])
    assert 1 <= got[-1][0].shape[1] <= t
    assert all(count == y.numel() for _, y, count in got)
    assert sum(count for *_, count in got) == rows * row_len
    x = torch.cat([x for x, _, _ in got], dim=1)  # rows continue from window to window
    y = torch.cat([y for _, y, _ in got], dim=1)
    assert torch.equal(x, ids[:rows * row_len].view(rows, row_len))
    assert torch.equal(y.flatten(), ids[1:rows * row_len + 1])
    assert n - 1 - rows * row_len < b  # fewer than batch_size left unpredicted


def test_windows_with_one_row_predict_every_character_but_the_first():
    ids = stream(23)
    y = torch.cat([y for _, y, _ in windows(ids, 5, 1)], dim=1)
    assert torch.equal(y[0], ids[1:])


def test_windows_errors_come_at_the_call():
    with pytest.raises(TextDataError, match="the evaluation text has 1 characters"):
        windows(stream(1), 4, 2)
    with pytest.raises(ValueError, match="expected seq_len to be a positive int, got 0"):
        windows(stream(10), 0, 2)
