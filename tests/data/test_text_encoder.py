"""TextEncoder: a text's tokens, truncation and ids, padded batches in the order given; and a
vocabulary extended by pretrained vectors."""

import pytest
import torch

from rnnkit.data.labelled import WordVocab
from rnnkit.data.text_encoder import TextEncoder, truncate, with_vectors

VOCAB = WordVocab.build([["a", "fine", "film", "dull", "plot"]])


@pytest.mark.parametrize(("truncation", "kept"), [
    ("head", ["w0", "w1", "w2"]), ("tail", ["w7", "w8", "w9"]), ("head+tail", ["w0", "w8", "w9"]),
])
def test_truncate_keeps_at_most_max_len_tokens(truncation, kept):
    tokens = [f"w{i}" for i in range(10)]
    assert truncate(tokens, 3, truncation) == kept
    assert truncate(tokens[:3], 3, truncation) == tokens[:3]


def test_tokens_are_lowercased_and_truncated_as_configured():
    assert TextEncoder(VOCAB, max_len=2, truncation="tail").tokens("A Fine Film") == [
        "fine", "film"]
    assert TextEncoder(VOCAB, lowercase=False).tokens("A Fine") == ["A", "Fine"]
    assert TextEncoder(VOCAB).encode(["A fine film", "Fine"]) == [
        VOCAB.encode(["a", "fine", "film"]), VOCAB.encode(["fine"])]


def test_a_text_without_tokens_reads_as_one_unk():
    assert TextEncoder(VOCAB).encode(["", "   "]) == [[WordVocab.UNK], [WordVocab.UNK]]


def test_batch_pads_after_each_text_and_keeps_the_order():
    ids, lengths = TextEncoder(VOCAB).batch(["dull", "a fine film", "unseen words"])
    assert lengths.tolist() == [1, 3, 2]
    assert ids.shape == (3, 3) and ids.dtype == torch.int64
    assert ids[0].tolist() == VOCAB.encode(["dull"]) + [WordVocab.PAD] * 2
    assert ids[1].tolist() == VOCAB.encode(["a", "fine", "film"])
    assert ids[2].tolist() == [WordVocab.UNK, WordVocab.UNK, WordVocab.PAD]


def test_with_vectors_adds_their_frequent_words_with_their_vectors(tmp_path):
    path = tmp_path / "vec.txt"
    path.write_text("film 0.5 0.5\nsuperb 1.0 2.0\nAwful -1.0 -2.0\n", encoding="utf-8")
    vocab, matrix, coverage = with_vectors(VOCAB, str(path), most_frequent=2)
    assert vocab.words == VOCAB.words + ("superb",)  # "film" is known; "Awful" not among 2
    assert matrix.shape == (len(vocab), 2)
    assert matrix[vocab.words.index("superb")].tolist() == [1.0, 2.0]
    assert matrix[WordVocab.PAD].tolist() == [0.0, 0.0]
    assert coverage.found == 2  # film and superb
    kept, _, _ = with_vectors(VOCAB, str(path), most_frequent=0)
    assert kept.words == VOCAB.words
    cased, _, _ = with_vectors(VOCAB, str(path), most_frequent=3, lowercase=False)
    assert cased.words[-1] == "Awful"
    assert with_vectors(VOCAB, str(path), most_frequent=3)[0].words[-1] == "awful"
