"""Labelled text for classification: readers of every format, labels, tokenizer, vocabulary,
bucketed batches."""

from __future__ import annotations

import gzip
import json
import re

import pytest
import torch

from rnnkit.data.labelled import (
    BucketBatches,
    Example,
    LabelledDataError,
    LabelSet,
    WordVocab,
    read_labelled,
    tokenize,
)


def write(path, data: bytes | str):
    """Write ``data`` (str as UTF-8) to ``path``, making its folders; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def pairs(report) -> list[tuple[str, str]]:
    return [(example.text, example.label) for example in report.examples]


# ------------------------------------------------------------------------------- csv / tsv
def test_csv_header_by_default_names(tmp_path):
    file = write(tmp_path / "data.csv", 'id,Review,Sentiment\n1,"Great, truly",pos\n'
                                        '2,"multi\nline",neg\n\n3,meh,neg\n')
    report = read_labelled(file)
    assert pairs(report) == [("Great, truly", "pos"), ("multi\nline", "neg"), ("meh", "neg")]
    assert [e.source for e in report.examples] == [f"{file}:2", f"{file}:3", f"{file}:6"]
    assert report.skipped == []


def test_csv_columns_by_name_and_index(tmp_path):
    file = write(tmp_path / "data.csv", "body,stars,text\nnice film,5,x\nawful,1,y\n")
    by_name = read_labelled(file, text_column="body", label_column="stars")
    assert pairs(by_name) == [("nice film", "5"), ("awful", "1")]
    by_index = read_labelled(file, text_column=0, label_column=1)  # header found by "text"
    assert pairs(by_index) == pairs(by_name)


def test_csv_header_detected_by_numeric_column(tmp_path):
    """No known name in the first row, but the label column is numeric below it."""
    file = write(tmp_path / "data.csv", "body,stars\ngreat film,5\nawful,1\n")
    assert pairs(read_labelled(file, text_column=0, label_column=1)) == [
        ("great film", "5"), ("awful", "1")]


def test_csv_without_header(tmp_path):
    file = write(tmp_path / "data.csv", "1,great film\n0,awful\n")
    report = read_labelled(file, text_column=1, label_column=0)
    assert pairs(report) == [("great film", "1"), ("awful", "0")]
    assert report.examples[0].source == f"{file}:1"
    forced = read_labelled(file, text_column=1, label_column=0, header=True)
    assert pairs(forced) == [("awful", "0")]
    with pytest.raises(LabelledDataError, match="has no header row, so columns must be given by "
                                                "0-based index"):
        read_labelled(file)


def test_wrong_column_names_list_the_columns(tmp_path):
    file = write(tmp_path / "data.csv", "id,text,label\n1,good,pos\n")
    with pytest.raises(LabelledDataError,
                       match=re.escape(f"no column 'txt' in {file}; columns: id, text, label")):
        read_labelled(file, text_column="txt")
    other = write(tmp_path / "other.csv", "id,body,label\n1,good,pos\n")
    with pytest.raises(LabelledDataError, match=re.escape(
            f"no text column in {other} (looked for text/sentence/review); columns: id, body, "
            "label; pass text_column=")):
        read_labelled(other)
    with pytest.raises(LabelledDataError, match=r"expected a label column index in \[0, 3\)"):
        read_labelled(file, label_column=3)


def test_tsv_without_quoting(tmp_path):
    """GLUE's SST-2 layout: ``sentence<TAB>label``, quotes are plain characters."""
    file = write(tmp_path / "train.tsv", 'sentence\tlabel\n"hide new secretions\t0\nit \'s a '
                                         'charming " journey\t1\n')
    assert pairs(read_labelled(file)) == [('"hide new secretions', "0"),
                                          ('it \'s a charming " journey', "1")]


def test_csv_gzip_and_bom(tmp_path):
    file = write(tmp_path / "data.csv.gz", gzip.compress(b"\xef\xbb\xbftext,label\nok,1\n"))
    assert pairs(read_labelled(file)) == [("ok", "1")]


# ------------------------------------------------------------------------------- jsonl
def test_jsonl_and_gzip(tmp_path):
    lines = [{"id": "pos/0_9", "label": 1, "rating": 9, "text": "Great.<br />Yes"},
             {"id": "neg/1_2", "label": 0, "rating": 2, "text": "Bad"}]
    raw = "\n".join(json.dumps(line) for line in lines) + "\n"
    plain = read_labelled(write(tmp_path / "a.jsonl", raw))
    zipped = read_labelled(write(tmp_path / "a.jsonl.gz", gzip.compress(raw.encode())))
    assert pairs(plain) == pairs(zipped) == [("Great.<br />Yes", "1"), ("Bad", "0")]
    assert zipped.examples[1].source == f"{tmp_path / 'a.jsonl.gz'}:2"


def test_jsonl_keys(tmp_path):
    file = write(tmp_path / "a.jsonl", '{"body": "fine", "stars": "4"}\n')
    assert pairs(read_labelled(file, text_column="body", label_column="stars")) == [("fine", "4")]
    with pytest.raises(LabelledDataError, match=re.escape(
            f"no text column in {file} (looked for text/sentence/review); keys: body, stars")):
        read_labelled(file)


def test_jsonl_bad_rows(tmp_path):
    file = write(tmp_path / "a.jsonl", '{"text": "ok", "label": 1}\n{"text": "x", \n'
                                       '{"text": "no label"}\n[1, 2]\n{"text": "", "label": 0}\n'
                                       '{"text": "y", "label": 0.5}\n{"text": "z", "label": 2}\n')
    with pytest.raises(LabelledDataError, match=re.escape(f"{file}:2: invalid JSON")):
        read_labelled(file)
    report = read_labelled(file, skip_bad_rows=True)
    assert pairs(report) == [("ok", "1"), ("z", "2")]
    assert report.skipped == [
        f"{file}:2: invalid JSON: Expecting property name enclosed in double quotes at "
        "column 14",
        f"{file}:3: missing 'label'",
        f"{file}:4: expected a JSON object, got list",
        f"{file}:5: empty text",
        f"{file}:6: expected 'label' to be a string or an integer, got 0.5"]


# ------------------------------------------------------------------------------- sst, imdb
def test_sst_lines(tmp_path):
    file = write(tmp_path / "stsa.binary.train", "1 a stirring , funny film\r\n\n"
                                                 "0 they wo n't sit still .\n")
    report = read_labelled(file)
    assert pairs(report) == [("a stirring , funny film", "1"), ("they wo n't sit still .", "0")]
    assert [e.source for e in report.examples] == [f"{file}:1", f"{file}:3"]
    assert read_labelled(file, format="sst").examples == report.examples


def test_imdb_folder(tmp_path):
    write(tmp_path / "pos" / "10_7.txt", "Loved it.<br /><br />Really.")
    write(tmp_path / "pos" / "0_9.txt", "Great!")
    write(tmp_path / "neg" / "3_1.txt", "Awful.\n")
    write(tmp_path / "neg" / "notes.md", "not a review")
    write(tmp_path / "unsup" / "0_0.txt", "unlabelled")
    report = read_labelled(tmp_path)
    assert pairs(report) == [("Awful.", "neg"), ("Great!", "pos"),
                             ("Loved it.<br /><br />Really.", "pos")]
    assert report.examples[0].source == str(tmp_path / "neg" / "3_1.txt")


def test_imdb_folder_errors(tmp_path):
    write(tmp_path / "train" / "pos" / "0_9.txt", "x")
    write(tmp_path / "train" / "neg" / "1_1.txt", "y")
    with pytest.raises(LabelledDataError, match=re.escape("(it has train/: pass one of those)")):
        read_labelled(tmp_path)
    (tmp_path / "empty" / "pos").mkdir(parents=True)
    (tmp_path / "empty" / "neg").mkdir()
    with pytest.raises(LabelledDataError, match="no labelled examples in"):
        read_labelled(tmp_path / "empty")


# ------------------------------------------------------------------------------- bad rows
def test_bad_rows_name_file_and_line(tmp_path):
    file = write(tmp_path / "data.csv", "text,label\ngood,1\nonly one field\n,0\nfine,\n"
                                        "x,1,extra\nok,0\n")
    with pytest.raises(LabelledDataError, match=re.escape(
            f"{file}:3: expected 2 fields, got 1 (pass skip_bad_rows=True")):
        read_labelled(file)
    report = read_labelled(file, skip_bad_rows=True)
    assert pairs(report) == [("good", "1"), ("ok", "0")]
    assert report.skipped == [f"{file}:3: expected 2 fields, got 1", f"{file}:4: empty text",
                              f"{file}:5: empty label", f"{file}:6: expected 2 fields, got 3"]


def test_non_utf8_bytes(tmp_path):
    file = write(tmp_path / "trec.txt", b"0 How ?\n4 a sister\xf0city ?\n1 Why ?\n")
    with pytest.raises(LabelledDataError, match=re.escape(
            f"{file}:2: expected UTF-8 text, got byte 0xf0 in the text")):
        read_labelled(file)
    skipped = read_labelled(file, skip_bad_rows=True)
    assert len(skipped.examples) == 2 and len(skipped.skipped) == 1
    replaced = read_labelled(file, encoding_errors="replace")
    assert replaced.examples[1].text == "a sister\ufffdcity ?"


def test_sst_line_without_text_and_all_bad(tmp_path):
    file = write(tmp_path / "x.txt", "1 fine\n0\n")
    with pytest.raises(LabelledDataError, match=re.escape(
            f"{file}:2: expected '<label> <text>', got only '0'")):
        read_labelled(file)
    only_bad = write(tmp_path / "bad.jsonl", "{\n")
    with pytest.raises(LabelledDataError, match="all 1 rows are bad, the first: .*invalid JSON"):
        read_labelled(only_bad, skip_bad_rows=True)


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.txt", "blank.tsv"])
def test_empty_files(tmp_path, name):
    file = write(tmp_path / name, "\n\n" if name.startswith("blank") else "")
    with pytest.raises(LabelledDataError):
        read_labelled(file)


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(LabelledDataError, match="no such file or folder"):
        read_labelled(tmp_path / "nope.csv")
    file = write(tmp_path / "x.dat", "justoneword\n")
    with pytest.raises(LabelledDataError, match="cannot tell the format of"):
        read_labelled(file)
    with pytest.raises(ValueError, match="expected format to be one of"):
        read_labelled(file, format="xml")


# ------------------------------------------------------------------------------- labels
def test_label_set_order_and_json():
    def examples(*labels):
        return [Example("t", label, f"f:{i}") for i, label in enumerate(labels, 1)]

    assert LabelSet.from_examples(examples("10", "2", "0", "1", "2")).names == (
        "0", "1", "2", "10")
    assert LabelSet.from_examples(examples("pos", "neg", "neutral")).names == (
        "neg", "neutral", "pos")
    labels = LabelSet.from_examples(examples("1", "neg"))  # mixed: alphabetical
    assert labels.names == ("1", "neg")
    assert labels.encode("neg") == 1 and labels.decode(1) == "neg"
    assert LabelSet.from_json(json.loads(json.dumps(labels.to_json()))) == labels


def test_label_set_unknown_label():
    labels = LabelSet(("neg", "pos"))
    with pytest.raises(LabelledDataError, match=re.escape(
            "test.csv:7: unknown label 'positive'; known labels: neg, pos")):
        labels.encode("positive", "test.csv:7")
    with pytest.raises(LabelledDataError, match="expected distinct labels"):
        LabelSet(("a", "a"))


# ------------------------------------------------------------------------------- tokenizer
TOKEN_TABLE = [
    ("Hello world", ["hello", "world"]),
    ("Don't", ["do", "n't"]),
    ("I can't", ["i", "ca", "n't"]),
    ("won't", ["wo", "n't"]),
    ("isn't", ["is", "n't"]),
    ("It's", ["it", "'s"]),
    ("I'm here", ["i", "'m", "here"]),
    ("we'll", ["we", "'ll"]),
    ("they're", ["they", "'re"]),
    ("you've", ["you", "'ve"]),
    ("he'd", ["he", "'d"]),
    ("John's car", ["john", "'s", "car"]),
    ("don\u2019t", ["do", "n't"]),
    ("wo n't", ["wo", "n't"]),  # SST is already tokenised: unchanged
    ("they wo n't sit still , however .", ["they", "wo", "n't", "sit", "still", ",", "however",
                                           "."]),
    ("Wow!!", ["wow", "!", "!"]),
    ("wait... what?", ["wait", "...", "what", "?"]),
    ("(good)", ["(", "good", ")"]),
    ('"quoted"', ['"', "quoted", '"']),
    ("pi is 3.14.", ["pi", "is", "3.14", "."]),
    ("1,000 fans", ["1,000", "fans"]),
    ("$5.99 or 50%", ["$", "5.99", "or", "50", "%"]),
    ("1930s horror", ["1930s", "horror"]),
    ("re-imagining of k-19", ["re-imagining", "of", "k-19"]),
    ("very silly -- and", ["very", "silly", "--", "and"]),
    ("Great.<br /><br />Really", ["great", ".", "really"]),
    ("a<br>b<BR/>c", ["a", "b", "c"]),
    ("Café naïve Straße", ["café", "naïve", "straße"]),
    ("Cafe\u0301", ["café"]),  # combining accent: NFC makes one letter
    ("Привет мир", ["привет", "мир"]),
    ("see https://example.com/a?b=1.", ["see", "https://example.com/a?b=1", "."]),
    ("(www.imdb.com)", ["(", "www.imdb.com", ")"]),
    ("  lots   of\n\tspace  ", ["lots", "of", "space"]),
    ("Mr. Smith vs. the U.S.", ["mr.", "smith", "vs.", "the", "u.s."]),
    ("the '70s", ["the", "'70s"]),
    ("-lrb- aside -rrb-", ["-lrb-", "aside", "-rrb-"]),
    ("`` quote ''", ["``", "quote", "''"]),
    ("fun :)", ["fun", ":", ")"]),
    ("", []),
]


@pytest.mark.parametrize(("text", "tokens"), TOKEN_TABLE)
def test_tokenize_table(text, tokens):
    assert tokenize(text) == tokens


def test_tokenize_keeps_case_on_request():
    assert tokenize("Don't SHOUT", lowercase=False) == ["Do", "n't", "SHOUT"]


# ------------------------------------------------------------------------------- vocabulary
def test_vocab_extended_keeps_ids_and_adds_only_new_words():
    vocab = WordVocab.build([["b", "a", "b"]])
    bigger = vocab.extended(["a", "c", "<unk>", "", "d", "c"])
    assert bigger.words == ("<pad>", "<unk>", "b", "a", "c", "d")
    assert bigger.encode(["b", "d", "zzz"]) == [2, 5, WordVocab.UNK]


def test_vocab_order_min_freq_max_size():
    tokens = [["b", "a", "c", "a"], ["b", "d", "a", "<unk>"]]
    vocab = WordVocab.build(tokens)
    assert vocab.words == ("<pad>", "<unk>", "a", "b", "c", "d")  # a:3, b:2, then c, d (ties)
    assert WordVocab.build(tokens, min_freq=2).words == ("<pad>", "<unk>", "a", "b")
    assert WordVocab.build(tokens, max_size=3).words == ("<pad>", "<unk>", "a")
    assert len(vocab) == 6


def test_vocab_encode_and_json():
    vocab = WordVocab.build([["good", "film", "good"]])
    assert vocab.encode(["good", "bad", "film"]) == [2, WordVocab.UNK, 3]
    assert vocab.encode(["film", "good", "good"], max_len=2) == [3, 2]
    assert vocab.decode([2, 3]) == ["good", "film"]
    again = WordVocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again == vocab and again.encode(["film"]) == [3]
    with pytest.raises(LabelledDataError, match="expected a word vocabulary starting with"):
        WordVocab(("a", "b"))
    with pytest.raises(LabelledDataError, match="expected a word vocabulary object"):
        WordVocab.from_json({"chars": []})


# ------------------------------------------------------------------------------- batching
def make_data(n: int, seed: int = 0) -> tuple[list[list[int]], list[int]]:
    """``n`` sequences of random lengths 1..60; the first id of sequence ``i`` is ``i + 2`` so
    every row of a batch can be traced to its example."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 61, (n,), generator=g).tolist()
    sequences = [[i + 2] + [7] * (length - 1) for i, length in enumerate(lengths)]
    return sequences, [i % 3 for i in range(n)]


def test_every_example_once_per_epoch_with_right_lengths():
    sequences, labels = make_data(1003)
    batches = BucketBatches(sequences, labels, batch_size=32, bucket_size=4)
    assert len(batches) == 32  # ceil(1003 / 32)
    for epoch in (0, 1):
        seen = []
        for index in range(len(batches)):
            ids, lengths, y = batches.batch(epoch, index)
            assert ids.dtype == lengths.dtype == y.dtype == torch.int64
            assert ids.shape == (len(lengths), int(lengths.max()))
            for row in range(len(lengths)):
                example = int(ids[row, 0]) - 2
                assert lengths[row] == len(sequences[example])
                assert ids[row, :lengths[row]].tolist() == sequences[example]
                assert (ids[row, lengths[row]:] == WordVocab.PAD).all()
                assert y[row] == labels[example]
                seen.append(example)
            assert (lengths[:-1] >= lengths[1:]).all()  # longest first
        assert sorted(seen) == list(range(1003))


def test_padding_stays_small():
    sequences, labels = make_data(3200)
    mean_length = sum(map(len, sequences)) / len(sequences)
    batches = BucketBatches(sequences, labels, batch_size=32, bucket_size=20)
    padded = sum(batches.batch(0, i)[0].numel() for i in range(len(batches))) / len(sequences)
    assert padded < 1.05 * mean_length
    unsorted = BucketBatches(sequences, labels, batch_size=32, bucket_size=1)
    padded_unsorted = sum(unsorted.batch(0, i)[0].numel()
                          for i in range(len(unsorted))) / len(sequences)
    assert padded_unsorted > 1.3 * mean_length  # buckets are what keeps padding small


def test_epochs_differ_and_batches_are_pure():
    sequences, labels = make_data(500)
    batches = BucketBatches(sequences, labels, batch_size=16, bucket_size=5, seed=3)
    order = [batches.indices(0, i).tolist() for i in range(len(batches))]
    other_epoch = [batches.indices(1, i).tolist() for i in range(len(batches))]
    assert order != other_epoch
    fresh = BucketBatches(sequences, labels, batch_size=16, bucket_size=5, seed=3)
    for epoch, index in [(1, 4), (0, 4), (7, 0), (0, 4)]:  # any order, any object
        for a, b in zip(batches.batch(epoch, index), fresh.batch(epoch, index), strict=True):
            assert torch.equal(a, b)
    other_seed = BucketBatches(sequences, labels, batch_size=16, bucket_size=5, seed=4)
    assert [other_seed.indices(0, i).tolist() for i in range(len(batches))] != order


def test_no_shuffle_keeps_order_of_equal_lengths():
    sequences = [[5, 5], [6], [7, 7], [8]]
    batches = BucketBatches(sequences, [0, 1, 0, 1], batch_size=2, shuffle=False)
    ids, lengths, y = batches.batch(0, 0)
    assert ids.tolist() == [[5, 5], [7, 7]] and lengths.tolist() == [2, 2]
    assert y.tolist() == [0, 0]
    assert batches.batch(0, 1)[0].tolist() == [[6], [8]]
    assert batches.batch(5, 1)[0].tolist() == [[6], [8]]


def test_bucket_batches_errors():
    with pytest.raises(ValueError, match="expected non-empty sequences, got 1 empty"):
        BucketBatches([[1], []], [0, 1], batch_size=2)
    with pytest.raises(ValueError, match="one label per sequence"):
        BucketBatches([[1]], [0, 1], batch_size=2)
    batches = BucketBatches([[1]], [0], batch_size=2)
    with pytest.raises(IndexError, match=r"batch index in \[0, 1\), got 1"):
        batches.batch(0, 1)
