"""Tokenizers for translation: subword (SentencePiece), word and char levels, special ids,
round trips, JSON."""

from __future__ import annotations

import functools
import importlib.util
import json
import random
import sys

import pytest
import torch

from rnnkit.data.subword import Tokenizer, detokenize

needs_sentencepiece = pytest.mark.skipif(importlib.util.find_spec("sentencepiece") is None,
                                         reason="sentencepiece is not installed")
KINDS = [pytest.param("subword", marks=needs_sentencepiece), "word", "char"]

SUBJECTS = ["A dog", "Two children", "The old man", "Une femme", "Ein Mädchen", "A café owner"]
VERBS = ["runs", "is playing", "sits", "marche", "läuft", "waits", "doesn't stop"]
PLACES = ["in the park", "on the beach", "près de l'eau", "über die Straße", "at the (big) zoo",
          "next to a red car", "under the trees"]
ENDS = [".", "!", "\u202f!", " ?", ", smiling."]


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """``n`` synthetic sentences (English, French and German words, accents, U+202F)."""
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(PLACES)}{rng.choice(ENDS)}"
            for _ in range(n)]


@functools.cache
def trained(kind: str) -> Tokenizer:
    """A tokenizer of ``kind`` trained on :func:`corpus`, once per test session."""
    return Tokenizer.train(kind, corpus(), vocab_size=200 if kind == "subword" else None)


# ------------------------------------------------------------------------------- every kind
@pytest.mark.parametrize("kind", KINDS)
def test_special_ids_are_fixed(kind):
    tok = trained(kind)
    assert [tok.piece(i) for i in range(4)] == ["<pad>", "<unk>", "<start>", "<end>"]
    assert [tok.id(p) for p in ("<pad>", "<unk>", "<start>", "<end>")] == [0, 1, 2, 3]
    assert (tok.PAD, tok.UNK, tok.START, tok.END) == (0, 1, 2, 3)
    ids = tok.encode("A dog runs.")
    assert ids and not {0, 2, 3} & set(ids)  # no <start>/<end>: the batcher adds them
    assert tok.id("zzz-not-a-piece") == 1
    assert len(tok.pieces("A dog runs in the park.")) == len(tok.encode("A dog runs in the park."))


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_tokens_are_one(kind):
    ids = trained(kind).encode("A dog ☃ runs.")
    assert ids.count(1) == 1
    assert "☃" in trained(kind).pieces("A dog ☃ runs.")[ids.index(1)]  # the unknown text
    assert trained(kind).decode(ids).replace(" ", "") == "Adog<unk>runs."


@pytest.mark.parametrize("kind", KINDS)
def test_decode_stops_at_end_and_skips_pad_and_start(kind):
    tok = trained(kind)
    ids = tok.encode("Two children sit.")
    assert tok.decode([2, *ids, 3, *ids, 0]) == tok.decode(ids)
    assert tok.decode(torch.tensor([2, *ids, 3, 0, 0])) == tok.decode(ids)
    with pytest.raises(IndexError, match=f"expected token ids in \\[0, {len(tok)}\\), got -1"):
        tok.decode([-1])


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip(kind):
    tok = trained(kind)
    again = Tokenizer.from_json(json.loads(json.dumps(tok.to_json())))
    assert (again.kind, again.lowercase, len(again)) == (tok.kind, tok.lowercase, len(tok))
    for text in corpus(20, seed=1) + ["Un ☃ inconnu."]:
        assert again.encode(text) == tok.encode(text)
        assert again.decode(tok.encode(text)) == tok.decode(tok.encode(text))
    assert again.to_json() == tok.to_json()


# ------------------------------------------------------------------------------- subword
@needs_sentencepiece
def test_subword_is_lossless():
    tok = trained("subword")
    for text in corpus(50, seed=2) + ["Ein  Mädchen\u202f! (zoo)", " A dog ", "l'eau, près."]:
        assert tok.decode(tok.encode(text)) == text


@needs_sentencepiece
def test_subword_pieces_and_vocab_size():
    tok = trained("subword")
    assert len(tok) <= 200  # vocab_size is a maximum (hard_vocab_limit=False)
    assert "".join(tok.pieces("A dog runs.")).replace("\u2581", " ").strip() == "A dog runs."
    assert all(tok.id(tok.piece(i)) == i for i in range(len(tok)))


@needs_sentencepiece
def test_subword_training_is_deterministic_and_quiet(capfd):
    texts = corpus(300, seed=5)
    first = Tokenizer.train("subword", texts, vocab_size=150)
    second = Tokenizer.train("subword", texts, vocab_size=150)
    assert first.to_json() == second.to_json()
    assert capfd.readouterr() == ("", "")  # SentencePiece logs nothing, on stdout or stderr


@needs_sentencepiece
def test_subword_vocab_larger_than_the_corpus_allows():
    tok = Tokenizer.train("subword", corpus(100), vocab_size=8000)
    assert 4 < len(tok) < 8000


@needs_sentencepiece
def test_subword_vocab_too_small_for_the_characters():
    with pytest.raises(ValueError, match=r"expected vocab_size >= \d+ for these texts \(4 special "
                                         r"pieces and one per character\), got 10"):
        Tokenizer.train("subword", corpus(100), vocab_size=10)


@needs_sentencepiece
def test_subword_lowercase():
    tok = Tokenizer.train("subword", corpus(300), vocab_size=150, lowercase=True)
    assert tok.decode(tok.encode("A Dog RUNS.")) == "a dog runs."
    assert Tokenizer.from_json(tok.to_json()).lowercase is True


def test_missing_sentencepiece_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "rnnkit\[translate\]"'):
        Tokenizer.train("subword", corpus(50))
    Tokenizer.train("word", corpus(50))  # the other kinds do not need it


# ------------------------------------------------------------------------------- word, char
def test_word_level_decodes_typical_sentences():
    texts = ["A dog doesn't run, it's sleeping.", "Is the man (in red) eating?",
             "L'homme marche près de l'eau.", 'She said "hello" to me!', "Zwei Hunde: 3.5 kg."]
    tok = Tokenizer.train("word", texts, min_freq=1)
    for text in texts:
        assert tok.decode(tok.encode(text)) == text
    assert tok.pieces("It's a dog.") == ["It", "'s", "a", "dog", "."]
    assert tok.decode(tok.encode("A cat doesn't run.")) == "A <unk> doesn't run."


@pytest.mark.parametrize(("tokens", "text"), [
    (["it", "'s", "a", "dog", "."], "it's a dog."),
    (["do", "n't", "go", "!"], "don't go!"),
    (["l", "'", "homme", ",", "oui", "?"], "l'homme, oui?"),
    (["a", "(", "red", ")", "car", ":", "$", "5", "%"], "a (red) car: $5%"),
    (["er", "sagt", "„", "hallo", "“", "."], "er sagt „hallo “."),
    (["«", "oui", "»"], "«oui»"),
    (["he", "said", '"', "hi", '"', "and", "left"], 'he said "hi" and left'),
    ([], ""),
])
def test_detokenize(tokens, text):
    assert detokenize(tokens) == text


def test_word_min_freq_vocab_size_and_lowercase():
    texts = ["the dog runs", "the dog sits", "The cat"]
    tok = Tokenizer.train("word", texts, lowercase=True)  # min_freq 2 by default
    assert [tok.piece(i) for i in range(4, len(tok))] == ["the", "dog"]
    assert tok.encode("THE CAT") == [4, 1]
    capped = Tokenizer.train("word", texts, min_freq=1, vocab_size=5, lowercase=True)
    assert len(capped) == 5 and capped.piece(4) == "the"


def test_char_level_is_lossless():
    tok = trained("char")
    for text in corpus(50, seed=3):
        assert tok.decode(tok.encode(text)) == text
    assert tok.pieces("Ein  Mädchen") == list("Ein  Mädchen")
    assert len(tok.encode("Ein  Mädchen")) == 12


# ------------------------------------------------------------------------------- errors
def test_train_errors():
    with pytest.raises(ValueError, match="expected a tokenization in .*, got 'bpe'"):
        Tokenizer.train("bpe", ["a b"])
    with pytest.raises(TypeError, match="expected an iterable of texts, got a str"):
        Tokenizer.train("word", "a b c")
    with pytest.raises(ValueError, match="expected at least one non-blank text"):
        Tokenizer.train("char", ["", "  "])
    with pytest.raises(ValueError, match="min_freq applies to word and char tokenizers"):
        Tokenizer.train("subword", ["a b"], min_freq=2)
    with pytest.raises(ValueError, match="expected vocab_size to be an int >= 5"):
        Tokenizer.train("word", ["a b"], vocab_size=4)


def test_from_json_errors():
    with pytest.raises(ValueError, match="expected a tokenizer object with a kind in"):
        Tokenizer.from_json({"kind": "bpe"})
    with pytest.raises(ValueError, match=r'expected a word tokenizer object with keys "kind", '
                                         r'"lowercase", "words", got keys \[.*\'model\'\]'):
        Tokenizer.from_json({"kind": "word", "model": "", "lowercase": False})
    with pytest.raises(ValueError, match="expected a vocabulary starting with"):
        Tokenizer.from_json({"kind": "char", "lowercase": False, "words": ["a", "b"]})
    with pytest.raises(ValueError, match='expected "model" to be a base64 string'):
        Tokenizer.from_json({"kind": "subword", "lowercase": False, "model": "not base64!"})


@needs_sentencepiece
def test_from_json_model_that_does_not_load():
    with pytest.raises(ValueError, match="expected a serialized SentencePiece model, got 3 bytes"):
        Tokenizer.from_json({"kind": "subword", "lowercase": False, "model": "AAAA"})
