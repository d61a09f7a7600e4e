"""Tests of rnnkit.data.vocab: the logic every vocabulary shares, and that the JSON saved in run
folders before the vocabularies shared it still loads with the same ids."""

import json

import pytest

from rnnkit.data.captions import CaptionDataError, CaptionVocab
from rnnkit.data.labelled import LabelledDataError, LabelSet, WordVocab
from rnnkit.data.text import CharVocab, TextDataError

# vocab.json / checkpoint "vocab" objects as the vocabularies wrote them before
SAVED = [
    (CharVocab, '{"chars": ["\\n", " ", "a", "\\u00e9"]}', "chars", ("\n", " ", "a", "é")),
    (WordVocab, '{"words": ["<pad>", "<unk>", "film", "good"]}', "words",
     ("<pad>", "<unk>", "film", "good")),
    (CaptionVocab, '{"words": ["<pad>", "<unk>", "<start>", "<end>", "dog"]}', "words",
     ("<pad>", "<unk>", "<start>", "<end>", "dog")),
    (LabelSet, '{"names": ["neg", "pos"]}', "names", ("neg", "pos")),
]


@pytest.mark.parametrize(("kind", "text", "attribute", "tokens"), SAVED)
def test_saved_json_loads_with_the_same_ids_and_is_written_back_the_same(kind, text, attribute,
                                                                          tokens):
    vocab = kind.from_json(json.loads(text))
    assert getattr(vocab, attribute) == tokens == vocab.tokens and len(vocab) == len(tokens)
    assert vocab.to_json() == json.loads(text)
    assert kind.from_json(json.loads(json.dumps(vocab.to_json()))) == vocab


@pytest.mark.parametrize(("kind", "error", "noun"), [
    (CharVocab, TextDataError, "characters"), (WordVocab, LabelledDataError, "words"),
    (CaptionVocab, CaptionDataError, "words"), (LabelSet, LabelledDataError, "labels")])
def test_each_kind_raises_its_own_error_naming_its_tokens(kind, error, noun):
    tokens = (*kind.SPECIALS, "a", "b", "a")
    with pytest.raises(error, match=f"expected distinct {noun}, got 'a' at index "
                                    f"{len(kind.SPECIALS)} and again at index "
                                    f"{len(kind.SPECIALS) + 2}"):
        kind(tokens)
    with pytest.raises(error, match=f'"{kind.KEY}" to be a list of {noun}, got str'):
        kind.from_json({kind.KEY: "abc"})


def test_counted_orders_by_frequency_then_alphabet_and_caps_the_size():
    lists = [["b", "a", "c", "a"], ["b", "d", "a", "<unk>", "<start>"]]
    vocab = CaptionVocab.counted(lists, 1, None)
    assert vocab.words[4:] == ("a", "b", "c", "d")  # a:3, b:2, c and d alphabetical
    assert CaptionVocab.counted(lists, 2, 5).words == (*CaptionVocab.SPECIALS, "a")
    with pytest.raises(ValueError, match="expected min_freq to be a positive int, got 0"):
        WordVocab.build(lists, min_freq=0)
    with pytest.raises(ValueError, match=r"expected max_size >= 2 \(the special tokens\)"):
        WordVocab.build(lists, max_size=1)
