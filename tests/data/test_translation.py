"""Parallel text as the encoder-decoder reads it: tokenizers from the training pairs only,
ids, the length filter, and the text of a translation with ``<unk>`` replaced."""

from __future__ import annotations

import torch

from rnnkit.data.parallel import SentencePair
from rnnkit.data.subword import Tokenizer
from rnnkit.data.translation import encode_pairs, encode_sources, translation_text


def test_encode_pairs_learns_from_training_pairs_and_drops_long_ones() -> None:
    train = [SentencePair(s, t, f"t:{i}") for i, (s, t) in enumerate([
        ("the red house", "das rote haus"), ("a dog", "ein hund"),
        ("one two three four", "eins zwei drei vier")])]
    val = [SentencePair("the zebra", "das zebra", "v:1")]
    data = encode_pairs(train, val, tokenization="word", min_freq=1, max_len=3)
    assert data.too_long == 1 and len(data.train[0]) == len(data.train[1]) == 2
    assert data.val_texts == (["the zebra"], ["das zebra"])  # as written
    assert data.val[0][0] == [data.source.id("the"), Tokenizer.UNK]  # zebra: never trained on
    assert data.target.decode(data.train[1][0]) == "das rote haus"
    assert (data.empty, data.skipped) == (0, [])


def test_an_empty_source_reads_as_one_unknown() -> None:
    source = Tokenizer.train("word", ["a b"], min_freq=1)
    assert encode_sources(source, ["", "a"]) == [[Tokenizer.UNK], [source.id("a")]]


def test_only_word_level_unknowns_are_replaced() -> None:
    chars = Tokenizer.train("char", ["ab"], min_freq=1)
    tokens = [chars.id("a"), Tokenizer.UNK]
    attention = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert translation_text(tokens, attention, ["x", "y"], chars) == "a<unk>"
